//! Which version of the reference library's readout initialisation to follow.

use serde::{Deserialize, Serialize};

/// Which version of the reference library's initialisation to follow (they differ, REFERENCE §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum InitScheme {
    /// neuralpredictors v0.0.1 as pinned by the paper's code: features N(0, init_noise), shared
    /// scales N(1, init_noise), a lone affine retinotopy map 0.2·orthogonal with N(0, init_noise)
    /// biases, bias N(0, 1e-3) unless mean activity is given.
    #[default]
    #[serde(rename = "lurz2020")]
    Lurz2020,
    /// Current neuralpredictors: features 1/C, scales 1, PyTorch-default predictor, bias = mean
    /// activity or 0.
    #[serde(rename = "neuralpredictors")]
    Neuralpredictors,
}
