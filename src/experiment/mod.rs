//! Families of fits that answer one scientific question, with their results table and figure.
//!
//! - [`data_efficiency`]: how prediction performance grows with the number of training images when
//!   the core is trained directly on the new data, transferred frozen from other neurons/animals, or
//!   taken from a network pretrained on object recognition (Lurz et al. 2020, Figures 4–5).
//! - [`spec`]: conditions, image counts, seeds and the fits they expand to.
//! - [`fits`]: the fits as sweep fits (resolved configurations, content-hash ids), run by the
//!   sweep engines ([`crate::sweep`]), so each fit is an ordinary run directory recorded in the
//!   sweep store.
//! - [`results`]: the results table (`results.csv`) and its summary over seeds.
//! - [`plot`]: the figure (PNG and SVG, no system libraries: an embedded font).

pub mod data_efficiency;
pub mod fits;
pub mod plot;
pub mod results;
pub mod spec;

pub use data_efficiency::{DataEfficiency, run_data_efficiency};
pub use fits::Setup;
pub use results::{ResultRow, Score, ScoreMetric, SummaryPoint, score_from_summary, summarize};
pub use spec::{Condition, Fit, ImageCount};
