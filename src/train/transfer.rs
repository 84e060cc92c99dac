//! Transfer learning (Lurz et al. 2020 §4, REFERENCE §1.9): reuse the core of a trained run on new
//! neurons or a new animal. The core is frozen (no gradient, no core regularizer) and fresh readouts
//! are fitted on the new data; optionally the whole model is then fine-tuned from there.
//!
//! A transferred run is an ordinary run directory (config, checkpoints, log, summary) that
//! `cortexfit evaluate`, `predict` and `train --resume` read like any other. Its `config.toml`
//! holds the source run's model and trainer settings, the new data, `trainer.detach_core = true`
//! and a `[transfer]` section naming the core it starts from; the core's weights are copied into
//! the run directory (`transferred_core.safetensors`), so the run does not depend on the source
//! run staying where it was.
//!
//! **Batch norm — a deliberate deviation.** The reference fits the new readouts with the whole model
//! in training mode, so the frozen core's batch-norm layers keep normalising with batch statistics
//! and keep updating their running statistics on the new data (REFERENCE §4.5, §8 item 5): the core
//! is not quite frozen, and what it computes at evaluation drifts during readout fitting. cortexfit
//! keeps the core's batch norm frozen by default (running statistics of the source data, used in
//! training and evaluation alike), so the transferred core computes exactly the features it
//! computed on its source. `--update-bn` restores the reference's behaviour.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::model::state_dict::StateDict;

/// File name of the copied core inside a transferred run.
pub const TRANSFERRED_CORE: &str = "transferred_core.safetensors";

/// How the core's batch-norm layers behave while a detached (frozen) core's readouts are fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoreBatchNorm {
    /// Running statistics of the source data, in training and evaluation (cortexfit default).
    #[default]
    Frozen,
    /// Batch statistics in training and running statistics updated on the new data (reference).
    Update,
}

/// What a run starts from instead of a fresh initialisation (`[transfer]` in the run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInit {
    /// Safetensors state_dict (reference names, `core.…`) of the core to start from.
    pub core: PathBuf,
    /// The run the core was taken from (for the record).
    #[serde(default)]
    pub source_run: Option<String>,
    /// Batch norm of the core while it is detached (`frozen` or `update`).
    #[serde(default)]
    pub core_batch_norm: CoreBatchNorm,
}

/// Saves a state dict as safetensors (f32 values, the dtype models train in).
pub fn save_state_dict(sd: &StateDict, path: &Path) -> anyhow::Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = sd
        .entries
        .iter()
        .map(|(name, t)| {
            let b = t
                .data
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect();
            (name.clone(), t.shape.clone(), b)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .with_context(|| format!("tensor `{n}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, None::<HashMap<String, String>>)
        .with_context(|| format!("serializing {}", path.display()))?;
    crate::io::atomic_write(path, &out)
}

/// Loads a safetensors state dict (F32 or F64 tensors).
pub fn load_state_dict(path: &Path) -> anyhow::Result<StateDict> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let mut sd = StateDict::default();
    for (name, view) in file.tensors() {
        let data: Vec<f64> = match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            safetensors::Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            other => bail!(
                "{}: tensor `{name}` has dtype {other:?} (expected F32 or F64)",
                path.display()
            ),
        };
        sd.insert(name, view.shape().to_vec(), data);
    }
    Ok(sd)
}

/// The `core.` entries of a state dict (names kept).
pub fn core_entries(sd: &StateDict) -> StateDict {
    StateDict {
        entries: sd
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with("core."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dict_file_round_trip_and_core_filter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.safetensors");
        let mut sd = StateDict::default();
        sd.insert(
            "core.features.layer0.conv.weight",
            vec![2, 1, 1, 1],
            vec![0.5, -1.25],
        );
        sd.insert("readout.a.bias", vec![1], vec![3.0]);
        let core = core_entries(&sd);
        assert_eq!(core.entries.len(), 1);
        save_state_dict(&core, &path).unwrap();
        assert_eq!(load_state_dict(&path).unwrap(), core);
        std::fs::write(&path, b"nope").unwrap();
        let err = format!("{:#}", load_state_dict(&path).unwrap_err());
        assert!(err.contains("not a safetensors file"), "{err}");
    }

    #[test]
    fn transfer_section_parses_with_defaults_and_rejects_unknown_keys() {
        let t: TransferInit = toml::from_str("core = \"/r/transferred_core.safetensors\"").unwrap();
        assert_eq!(t.core_batch_norm, CoreBatchNorm::Frozen);
        let t: TransferInit = toml::from_str("core = \"c\"\ncore_batch_norm = \"update\"").unwrap();
        assert_eq!(t.core_batch_norm, CoreBatchNorm::Update);
        let err = toml::from_str::<TransferInit>("core = \"c\"\nfreeze = true").unwrap_err();
        assert!(err.to_string().contains("freeze"), "{err}");
    }
}
