//! Fitting a model to prepared datasets (REFERENCE.md §1.7, §4): the loop of the reference
//! `standard_trainer` with Adam, early stopping on validation correlation, LR decay with
//! best-state restore and round-robin over datasets. Knows nothing of run directories: the run
//! layer (`crate::run`) drives a [`Fit`] and writes its checkpoints and logs.
//!
//! - [`build`]: the model of a run for its data (facts from the data, seeded init, transfer init).
//! - [`step`]: one batch's objective (√(M/B)-scaled Poisson loss + regularizers), Adam, clamping.
//! - [`fit`]: the epoch loop as a state machine driven by [`Fit::advance`]; resumable state.
//! - [`early_stopping`]: the early-stopping / plateau-LR state machine (pure, serde).
//! - [`cycler`]: the LongCycler schedule over datasets with gradient accumulation.
//! - [`evaluation`]: predictions in evaluation mode and the early-stopping objective.
//! - [`seeds`]: the per-purpose, per-epoch random streams derived from the run seed.
//! - [`record`]: what one epoch did (a line of `log.jsonl`).

pub mod build;
pub mod cycler;
pub mod early_stopping;
pub mod evaluation;
pub mod fit;
mod param_ids;
pub mod record;
pub mod seeds;
pub mod step;

pub use build::build_model;
pub use early_stopping::StopReason;
pub use fit::{Control, EpochObserver, EpochStart, Fit, Next, TrainerState, Unobserved};
pub use record::EpochRecord;

#[cfg(test)]
mod tests;
