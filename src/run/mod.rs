//! Runs: the library API that the command line, the Python package and sweeps call.
//!
//! A *run* is a directory that holds one fitted model and everything about how it was made
//! ([`dir`] lists the files). This layer turns the fitting loop ([`crate::train`]) into run
//! directories and opens them again:
//!
//! - [`train`] / [`resume`]: fit a run from a [`RunConfig`](crate::config::RunConfig) (datasets
//!   are in its `[data]` section), or continue a killed one exactly.
//! - [`Run::open`]: a finished run's model in evaluation mode; [`Run::predict`],
//!   [`Run::predict_arrays`], [`Run::evaluate`] (every metric of a tier, [`evaluate`]).
//! - [`ensemble`]: several seeds of one configuration as one model (mean prediction); every
//!   function that takes a run takes an ensemble.
//! - [`transfer`](transfer::transfer): a frozen core from one run, new readouts on new data.
//! - [`insilico`]: MEIs, tuning and receptive fields of a run's readout (`crate::insilico`).
//! - [`progress`]: the events a fit reports (the library never prints; callers show them).
//!
//! Numerics are chosen by the run's configuration alone: the kernel choice is a config key
//! (`kernels`), applied to the calling thread for the duration of each call.

pub mod dir;
pub mod ensemble;
mod ensemble_file;
pub mod evaluate;
pub mod export;
mod fitting;
pub mod import;
pub mod insilico;
pub mod log;
pub mod open;
mod options;
pub mod progress;
pub mod summary;
pub mod transfer;

pub use dir::RunDir;
pub use evaluate::{TierEvaluation, TierSummary, evaluate_tier};
pub use fitting::{resume, train};
pub use open::{Run, readout_positions, readout_sigma};
pub use options::{Interrupted, RunOptions};
pub use progress::{Event, Progress, Silent};
pub use summary::Summary;
