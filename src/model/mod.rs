//! The model family of Lurz et al. 2020: core → readout (+ shifter, × modulator) → ELU+1.

pub mod checkpoint;
pub mod core;
pub mod encoder;
pub mod encoder_core;
pub mod goal_directed;
pub mod loss;
pub mod modulator;
pub mod presets;
pub mod readout;
pub mod regularizers;
pub mod shifter;
pub mod state_dict;

#[cfg(test)]
mod penalty_tests;

pub use self::core::{BatchNormMode, CoreConfig, Stacked2dCore};
pub use checkpoint::{CheckpointError, FORMAT_VERSION};
pub use encoder::{
    DatasetFacts, DatasetReadoutFacts, Encoder, EncoderConfig, ModelConfig, ModelError,
};
pub use loss::{LossReduction, PoissonLoss, poisson_loss};
pub use presets::PRESET_NAMES;
pub use state_dict::{StateDict, StateDictError};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, Tensor};

/// Casts every floating-point parameter and buffer of `module` to `dtype` (e.g. `DType::F64` for
/// parity checks against float64 references), keeping parameter ids and what is trained.
pub fn cast_module<M: Module>(module: M, dtype: DType) -> M {
    struct Cast(DType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            let require_grad = param.val().is_require_grad();
            // A fresh leaf from the values: a `cast` op would make it a non-leaf of the graph.
            param.map(|t| {
                let device = t.device();
                let fresh = Tensor::from_data(t.into_data(), (&device, dtype));
                burn::module::Parameter::set_require_grad(fresh, require_grad)
            })
        }
    }
    module.map(&mut Cast(dtype))
}
