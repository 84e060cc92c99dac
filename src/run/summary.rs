//! `summary.json`: what a finished run achieved.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::evaluate::{TierSummary, evaluate_tier};
use crate::config::RunConfig;
use crate::data::{PreparedDataset, Tier};
use crate::model::Encoder;
use crate::train::early_stopping::{EarlyStopping, StopReason};

/// The outcome of a training run (best state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Data keys in readout order.
    pub data_keys: Vec<String>,
    /// Epochs trained.
    pub epochs: usize,
    /// Epoch of the best (returned) state; 0 = untrained.
    pub best_epoch: usize,
    /// Mean validation single-trial correlation of the best state (the early-stopping objective).
    pub best_validation_correlation: f64,
    /// Why training stopped.
    pub stop_reason: StopReason,
    /// Learning rate at the end.
    pub final_lr: f64,
    /// Wall-clock seconds of training (over resumes).
    pub seconds: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Validation metrics per dataset.
    pub validation: Vec<TierSummary>,
    /// Test metrics per dataset (datasets with a test tier).
    pub test: Vec<TierSummary>,
}

/// Evaluates the best model (in evaluation mode) on the validation and test tiers.
pub fn summarize(
    model: &Encoder,
    sets: &[PreparedDataset],
    config: &RunConfig,
    early_stopping: &EarlyStopping,
    reason: StopReason,
    seconds: f64,
    device: &Device,
) -> Summary {
    let bs = config.trainer.batch_size;
    let per_tier = |tier: Tier| -> Vec<TierSummary> {
        sets.iter()
            .enumerate()
            .filter_map(|(k, set)| evaluate_tier(model, k, set, tier, bs, device))
            .map(|e| e.summary)
            .collect()
    };
    Summary {
        data_keys: sets.iter().map(|s| s.data_key().to_string()).collect(),
        epochs: early_stopping.epoch(),
        best_epoch: early_stopping.best_epoch(),
        best_validation_correlation: early_stopping.best_objective(),
        stop_reason: reason,
        final_lr: early_stopping.lr(),
        seconds,
        seed: config.seed,
        validation: per_tier(Tier::Validation),
        test: per_tier(Tier::Test),
    }
}
