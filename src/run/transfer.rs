//! Transfer learning (Lurz et al. 2020 §4, REFERENCE §1.9): reuse the core of a trained run on new
//! neurons or a new animal. The core is frozen (no gradient, no core regularizer) and fresh readouts
//! are fitted on the new data; optionally the whole model is then fine-tuned from there.
//!
//! A transferred run is an ordinary run directory (config, checkpoints, log, summary) that
//! `cortexfit evaluate`, `predict` and `train --resume` read like any other. Its `config.toml`
//! holds the source run's model and trainer settings, the new data, `model.detach_core = true`
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

use anyhow::Context;

use super::dir::RunDir;
use super::fitting::train;
use super::open::Run;
use super::options::RunOptions;
use super::progress::Progress;
use super::summary::Summary;
use crate::config::{RunConfig, TransferInit};
use crate::model::state_dict::StateDict;

/// File name of the copied core inside a transferred run.
pub const TRANSFERRED_CORE: &str = "transferred_core.safetensors";

/// What `cortexfit transfer` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRequest {
    /// The run whose core is reused (its best state).
    pub core_run: PathBuf,
    /// The new data (new neurons of the same animal, or a new animal); one readout each.
    pub data: Vec<PathBuf>,
    /// The new run directory.
    pub out: PathBuf,
    /// Fit on a seeded subset of this many training images (`data.image_n`).
    pub train_images: Option<usize>,
    /// Let the core's batch norm normalise with batch statistics and update its running statistics
    /// on the new data while readouts are fitted (the reference's behaviour).
    pub update_bn: bool,
    /// After fitting the readouts, train the whole model from there.
    pub fine_tune: bool,
    /// `--set` overrides, applied last.
    pub overrides: Vec<String>,
    pub seed: Option<u64>,
    pub max_minutes: Option<f64>,
}

/// The run configuration of the readout-fitting step: the source run's model and trainer, the new
/// data (normalised as the source's, no neuron subset unless `--set`), a detached core.
pub fn transfer_config(
    source: &RunConfig,
    request: &TransferRequest,
    core_file: &Path,
) -> anyhow::Result<RunConfig> {
    let mut config = source.clone();
    config.data.paths = request
        .data
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .map(|p| p.display().to_string())
                .with_context(|| format!("resolving --data {}", p.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    // Subsets of the source run describe the source data, not the new one.
    config.data.neuron_n = None;
    config.data.neuron_split = None;
    config.data.image_n = request.train_images;
    config.model.detach_core = true;
    config.model.freeze_core_batch_norm = !request.update_bn;
    if let Some(seed) = request.seed {
        config.seed = seed;
        config.data.subset_seed = seed;
    }
    if request.max_minutes.is_some() {
        config.trainer.max_minutes = request.max_minutes;
    }
    config.transfer = Some(TransferInit {
        core: Some(core_file.to_path_buf()),
        model: None,
        source_run: Some(request.core_run.display().to_string()),
    });
    let config = config
        .with_overrides("cortexfit transfer", &request.overrides)
        .context("the transferred run's configuration")?;
    anyhow::ensure!(
        config.model.core == source.model.core,
        "--set must not change `model.core`: the transferred core has the source run's architecture"
    );
    Ok(config)
}

/// Fits new readouts on a frozen core taken from `request.core_run` (then, with `fine_tune`, the
/// whole model) and returns the final run's summary.
///
/// Without fine-tuning the run is `OUT`. With it, the readout fit is `OUT/readouts/` and the
/// fine-tuned model, started from that fit's best state, is `OUT`.
///
/// When the core run is an ensemble, each member's core is transferred into `OUT/seed-<s>/` (the
/// member keeps its seed) and `OUT` becomes the ensemble of the transferred runs; the summary
/// returned is the last member's.
pub fn transfer(
    request: &TransferRequest,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    if super::ensemble::is_ensemble(&request.core_run) {
        anyhow::ensure!(
            request.seed.is_none(),
            "--seed cannot be combined with an ensemble as the core: each transferred member \
             keeps the seed of its source member"
        );
        let sources = super::ensemble::members(&request.core_run)?;
        let mut members = Vec::new();
        let mut last = None;
        for source in sources {
            let seed = Run::open_single(&source, &options.device)?.config.seed;
            let out = request.out.join(format!("seed-{seed}"));
            let member = TransferRequest {
                core_run: source,
                out: out.clone(),
                ..request.clone()
            };
            last = Some(transfer_one(&member, options, progress)?);
            members.push(out);
        }
        super::ensemble::create(&request.out, &members, &options.device)?;
        return last.context("an ensemble has members");
    }
    transfer_one(request, options, progress)
}

/// [`transfer`] from a single run.
fn transfer_one(
    request: &TransferRequest,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    let source = Run::open_single(&request.core_run, &options.device)
        .with_context(|| format!("opening the source run {}", request.core_run.display()))?;
    let core = core_entries(&source.model().export_state());
    anyhow::ensure!(
        !core.entries.is_empty(),
        "{}: the model has no core weights",
        request.core_run.display()
    );
    RunDir::check_fresh(&request.out)?;
    let out = std::path::absolute(&request.out)
        .with_context(|| format!("resolving --out {}", request.out.display()))?;
    let readout_dir = if request.fine_tune {
        out.join("readouts")
    } else {
        out.clone()
    };
    RunDir::check_fresh(&readout_dir)?;
    let core_file = readout_dir.join(TRANSFERRED_CORE);
    let config = transfer_config(&source.config, request, &core_file)?;
    save_state_dict(&core, &core_file)?;
    let summary = train(config.clone(), &readout_dir, options, progress)?;
    if !request.fine_tune {
        return Ok(summary);
    }
    let mut fine = config;
    fine.model.detach_core = false;
    fine.model.freeze_core_batch_norm = false;
    fine.transfer = Some(TransferInit {
        core: None,
        model: Some(RunDir::new(&readout_dir).best_model()),
        source_run: Some(request.core_run.display().to_string()),
    });
    train(fine, &out, options, progress)
}

/// Saves a state dict as safetensors (f32, the dtype models train in).
pub fn save_state_dict(sd: &StateDict, path: &Path) -> anyhow::Result<()> {
    crate::model::checkpoint::write_state_dict(
        path,
        sd,
        crate::model::checkpoint::StoredPrecision::F32,
        HashMap::new(),
    )
}

/// Loads a safetensors state dict.
pub fn load_state_dict(path: &Path) -> anyhow::Result<StateDict> {
    Ok(crate::model::checkpoint::read_state_dict(path)?.0)
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
}
