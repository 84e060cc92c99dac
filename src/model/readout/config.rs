//! The `[model.readout]` section (`type = "gaussian" | "factorized" | "point_pooled"`) and the
//! settings the readout types share.

use serde::{Deserialize, Serialize};

use super::factorized::FactorizedReadoutConfig;
use super::gaussian::GaussianReadoutConfig;
use super::point_pooled::PointPooledReadoutConfig;

/// The readout of every dataset, chosen by `type` in the run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum ReadoutConfig {
    /// `type = "gaussian"`: Lurz et al. 2020.
    Gaussian(GaussianReadoutConfig),
    /// `type = "factorized"`: Klindt et al. 2017.
    Factorized(FactorizedReadoutConfig),
    /// `type = "point_pooled"`: Sinz et al. 2018.
    PointPooled(PointPooledReadoutConfig),
}

impl Default for ReadoutConfig {
    fn default() -> Self {
        ReadoutConfig::Gaussian(GaussianReadoutConfig::default())
    }
}
