//! Readouts: how each neuron's response is read from the core's feature map.
//!
//! - [`gaussian`]: one learned (sampled) position per neuron, Lurz et al. 2020.
//! - [`position_sampling`]: training positions μ + Σz by the reparameterisation trick.
//! - [`retinotopy`]: positions predicted from cortical coordinates.
//! - [`feature_sharing`]: matched neurons of several scans share feature vectors.
//! - [`factorized`]: spatial mask × feature vector, Klindt et al. 2017.
//! - [`point_pooled`]: one point read from a pyramid of pooled maps, Sinz et al. 2018.
//! - [`multi`]: one readout per dataset (data key).
//! - [`rf_mapping`]: receptive-field centres by reverse correlation (`init_mu_from_data`).

pub mod bilinear;
mod config;
pub mod factorized;
pub mod feature_sharing;
pub mod gaussian;
mod init_scheme;
pub mod linear;
pub mod multi;
pub mod point_pooled;
pub mod position_sampling;
mod reduction;
pub mod retinotopy;
pub mod rf_mapping;

pub use config::ReadoutConfig;
pub use factorized::{FactorizedReadout, FactorizedReadoutConfig};
pub use gaussian::{GaussType, GaussianReadout, GaussianReadoutConfig};
pub use init_scheme::InitScheme;
pub use multi::{MultiReadout, Readout, ReadoutError};
pub use point_pooled::{PointPooledReadout, PointPooledReadoutConfig};
pub use reduction::Reduction;
pub use retinotopy::{GridPredictor, GridPredictorConfig};

#[cfg(test)]
mod tests;
