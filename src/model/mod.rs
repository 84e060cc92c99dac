//! The model family of Lurz et al. 2020: core → readout (+ shifter, × modulator) → ELU+1.

pub mod checkpoint;
pub mod config;
pub mod core;
pub mod encoder;
pub mod encoder_core;
pub mod facts;
pub mod goal_directed;
pub mod loss;
pub mod modulator;
pub mod neuralpredictors;
pub mod presets;
pub mod pytorch;
pub mod readout;
pub mod regularizers;
pub mod shifter;
pub mod state_dict;
pub mod tensor_util;
pub mod torch_save;

#[cfg(test)]
mod penalty_tests;

pub use self::core::{BatchNormMode, CoreConfig, Stacked2dCore};
pub use checkpoint::{CheckpointError, FORMAT_VERSION};
pub use config::ModelConfig;
pub use encoder::{Encoder, ModelError};
pub use facts::{DatasetFacts, DatasetReadoutFacts};
pub use loss::{LossReduction, PoissonLoss, poisson_loss};
pub use presets::PRESET_NAMES;
pub use readout::gaussian::SamplingRng;
pub use state_dict::{StateDict, StateDictError};
pub use tensor_util::cast_module;
