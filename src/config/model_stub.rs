//! TEMPORARY stand-in for crate::model::ModelConfig until branch `core` lands.
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelConfig(pub toml::Table);
impl ModelConfig {
    pub fn preset(_name: &str) -> Result<Self, String> { Ok(Self::default()) }
    pub fn validate(&self) -> Result<(), String> { Ok(()) }
}
