//! The trainer: Adam, early stopping on validation correlation, LR decay with best-state
//! restore, round-robin over datasets.

pub mod cycler;
pub mod early_stopping;
