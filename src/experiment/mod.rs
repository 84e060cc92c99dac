//! Families of fits that answer one scientific question, with their results table and figure.
//!
//! - [`data_efficiency`]: how prediction performance grows with the number of training images when
//!   the core is trained directly on the new data, transferred frozen from other neurons/animals, or
//!   taken from a network pretrained on object recognition (Lurz et al. 2020, Figures 4–5).
//! - [`spec`]: conditions, image counts, seeds and the fits they expand to.
//! - [`runner`]: how one fit is trained and scored (by running the `cortexfit` binary, so each fit is
//!   an ordinary run directory that `cortexfit evaluate` can read again).
//! - [`results`]: the results table (`results.csv`) and its summary over seeds.
//! - [`plot`]: the figure (PNG and SVG, no system libraries: an embedded font).

pub mod data_efficiency;
pub mod plot;
pub mod results;
pub mod runner;
pub mod spec;

pub use data_efficiency::{DataEfficiency, run_data_efficiency};
pub use results::{ResultRow, Score, ScoreMetric, SummaryPoint, summarize};
pub use runner::{CommandRunner, FitRunner};
pub use spec::{Condition, Fit, ImageCount};
