//! The `[transfer]` section: what a run starts from instead of a fresh initialisation
//! (`cortexfit transfer` writes it; Lurz et al. 2020 §4).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a run's initial weights come from (`[transfer]` in the run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInit {
    /// Safetensors state_dict (reference names, `core.…`) whose core replaces the initial one.
    #[serde(default)]
    pub core: Option<PathBuf>,
    /// A cortexfit checkpoint of the same model and data to start from entirely (core and readouts):
    /// the fine-tuning step after readouts were fitted on a frozen core.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// The run the core was taken from (for the record).
    #[serde(default)]
    pub source_run: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn transfer_section_parses_and_rejects_unknown_keys() {
        let t: TransferInit = toml::from_str("core = \"/r/transferred_core.safetensors\"").unwrap();
        assert_eq!(
            t.core.as_deref(),
            Some(Path::new("/r/transferred_core.safetensors"))
        );
        assert_eq!(t.model, None);
        let err = toml::from_str::<TransferInit>("core = \"c\"\nfreeze = true").unwrap_err();
        assert!(err.to_string().contains("freeze"), "{err}");
    }
}
