//! Readouts: how each neuron's response is read from the core's feature map.
//!
//! - [`gaussian`]: one learned (sampled) position per neuron, Lurz et al. 2020.
//! - [`retinotopy`]: positions predicted from cortical coordinates.
//! - [`feature_sharing`]: matched neurons of several scans share feature vectors.
//! - [`factorized`]: spatial mask × feature vector, Klindt et al. 2017.
//! - [`point_pooled`]: one point read from a pyramid of pooled maps, Sinz et al. 2018.
//! - [`multi`]: one readout per dataset (data key).
//! - [`rf_mapping`]: receptive-field centres by reverse correlation (`init_mu_from_data`).

pub mod bilinear;
pub mod factorized;
pub mod feature_sharing;
pub mod gaussian;
pub mod linear;
pub mod multi;
pub mod point_pooled;
pub mod retinotopy;
pub mod rf_mapping;

use serde::{Deserialize, Serialize};

pub use factorized::{FactorizedReadout, FactorizedReadoutConfig};
pub use gaussian::{GaussType, GaussianReadout, GaussianReadoutConfig};
pub use multi::{MultiReadout, Readout, ReadoutError};
pub use point_pooled::{PointPooledReadout, PointPooledReadoutConfig};
pub use retinotopy::{GridPredictor, GridPredictorConfig};

/// How a regulariser aggregates |weights|.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// Σ|w| (the reference default; the penalty grows with the number of neurons).
    #[default]
    Sum,
    /// mean |w|.
    Mean,
}

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

/// The readout of every dataset, chosen by `type` in the run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum ReadoutConfig {
    /// `type = "gaussian"`: Lurz et al. 2020.
    Gaussian(GaussianReadoutConfig),
    /// `type = "factorized"`: Klindt et al. 2017.
    Factorized(FactorizedReadoutConfig),
    /// `type = "point_pooled"`: Sinz et al. 2018.
    PointPooled(PointPooledReadoutConfig),
}

impl Default for ReadoutConfig {
    fn default() -> Self {
        ReadoutConfig::Gaussian(GaussianReadoutConfig::default())
    }
}

#[cfg(test)]
mod tests;
