//! In-silico experiments on trained models: most exciting inputs (MEIs), grating tuning and
//! receptive-field maps, for single models and ensembles, checked against the simulator's ground
//! truth.
//!
//! - [`ensemble`]: [`ModelEnsemble`], the mean of several models' evaluation-mode predictions
//!   (one member = a single model); every experiment takes one.
//! - [`context`]: [`InputContext`], what the experiments need to know about the model's input
//!   (image units and normalization, range, contrast, behaviour / pupil held fixed).
//! - [`selection`]: which neurons (all, top N by a score, unit ids).
//! - [`objective`]: the batched objective Σ_b response[b, n_b] and its input gradients.
//! - [`stimulus`]: gratings, the Gaussian blur, the contrast constraint.
//! - [`mei`], [`tuning`], [`rf`]: the three experiments.
//! - [`outputs`], [`figures`]: `.npy` / CSV / PNG / SVG files.
//! - [`ground_truth`]: the comparisons with `sim::GroundTruth`.
//!
//! Everything is deterministic given its seed, and everything a caller gets back is plain data,
//! so the command line and the Python package call the same functions.

pub mod context;
pub mod ensemble;
pub mod figures;
pub mod ground_truth;
pub mod mei;
pub mod objective;
pub mod outputs;
pub mod rf;
pub mod selection;
pub mod stimulus;
pub mod tuning;

#[cfg(test)]
mod tests;

pub use context::InputContext;
pub use ensemble::ModelEnsemble;
pub use mei::{MeiConfig, MeiResult, most_exciting_inputs};
pub use rf::{RfConfig, RfResult, receptive_fields};
pub use selection::NeuronChoice;
pub use tuning::{TuningConfig, TuningResult, measure_tuning};
