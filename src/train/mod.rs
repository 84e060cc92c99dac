//! The trainer: Adam, early stopping on validation correlation, LR decay with best-state
//! restore, round-robin over datasets (REFERENCE.md §1.7, §4).
//!
//! - [`early_stopping`]: the early-stopping / plateau-LR state machine (pure, serde).
//! - [`cycler`]: the LongCycler schedule over datasets with gradient accumulation.
//! - [`trainer`]: the training loop, resumable checkpoints, `--max-minutes`.
//! - [`datasets`]: recordings loaded, subset and normalized once, cut into batches.
//! - [`evaluation`], [`tier_report`]: predictions in evaluation mode and every metric of a tier.
//! - [`transfer`]: a frozen core from another run, new readouts (then optionally fine-tuning).
//! - [`run_dir`], [`trained_run`], [`summary`], [`progress`]: the run directory and its files.

pub mod cycler;
pub mod datasets;
pub mod early_stopping;
pub mod evaluation;
mod param_ids;
pub mod progress;
pub mod rf_mapping;
pub mod run_dir;
pub mod seeds;
pub mod summary;
pub mod tier_report;
pub mod trained_run;
pub mod trainer;
pub mod transfer;

pub use datasets::PreparedSet;
pub use summary::Summary;
pub use tier_report::{TierEvaluation, TierSummary, evaluate_tier};
pub use trained_run::{TrainedRun, readout_positions, readout_sigma};
pub use trainer::{TrainOptions, resume, train};
