//! What one epoch did: one line of a run's `log.jsonl`.

use serde::{Deserialize, Serialize};

/// One epoch's outcome (epoch 0 is the evaluation before training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number (1-based; 0 = the untrained model).
    pub epoch: usize,
    /// Early-stopping round (0-based).
    pub round: usize,
    /// Learning rate used during this epoch.
    pub lr: f64,
    /// Mean Poisson loss per trial (summed over neurons) over the epoch's training batches.
    pub train_loss: Option<f64>,
    /// Mean of the optimized objective (scaled loss + regularizers) per batch.
    pub train_objective: Option<f64>,
    /// Mean validation single-trial correlation over all neurons of all datasets (eval mode).
    pub val_corr: Option<f64>,
    /// The validation correlation beat the best so far (this state is the new best).
    pub improved: bool,
    /// The plateau scheduler cut the LR after this evaluation.
    pub lr_cut: bool,
    /// Seconds spent training this epoch.
    pub train_seconds: f64,
    /// Seconds spent on the validation pass.
    pub eval_seconds: f64,
    /// Wall-clock seconds since the run started (over resumes).
    pub elapsed_seconds: f64,
}
