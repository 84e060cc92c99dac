//! The encoder's core, whichever kind it is: trained on the neural data (the data-driven
//! [`Stacked2dCore`]) or taken from a network trained on an image task (the goal-directed
//! [`GoalDirectedCore`]). The encoder and the trainer see only this type.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::model::core::{BatchNormMode, CoreConfigError, Stacked2dCore};
use crate::model::goal_directed::{GoalDirectedCore, GoalDirectedCoreConfig};
use crate::model::state_dict::{StateDict, StateDictError};

/// The encoder's core: trained on neural data (data-driven) or taken from a network trained on
/// an image task (goal-directed). Both take images (B, C, H, W) and give feature maps.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum EncoderCore {
    DataDriven(Stacked2dCore),
    GoalDirected(GoalDirectedCore),
}

impl EncoderCore {
    /// Builds the core of a model configuration: goal-directed when `goal_directed` is given.
    pub fn init(
        data_driven: &crate::model::core::CoreConfig,
        goal_directed: Option<&GoalDirectedCoreConfig>,
        in_shape: [usize; 3],
        seed: u64,
        device: &Device,
    ) -> Result<(Self, [usize; 3]), CoreConfigError> {
        match goal_directed {
            Some(config) => {
                let core = config
                    .init(device)
                    .map_err(|e| CoreConfigError(format!("goal_directed_core: {e:#}")))?;
                if in_shape[0] != 1 && in_shape[0] != core.plan.input_channels {
                    return Err(CoreConfigError(format!(
                        "goal_directed_core: the pretrained network takes {} input channels, the \
                         data gives {} (grey images, 1 channel, are repeated)",
                        core.plan.input_channels, in_shape[0]
                    )));
                }
                let out = core.output_shape(in_shape);
                Ok((EncoderCore::GoalDirected(core), out))
            }
            None => {
                let out = data_driven.output_shape(in_shape)?;
                let core = data_driven.init(in_shape[0], seed, device)?;
                Ok((EncoderCore::DataDriven(core), out))
            }
        }
    }

    /// Feature maps in `mode` (batch statistics + running update, or running statistics).
    pub fn forward(&mut self, x: Tensor<4>, mode: BatchNormMode) -> Tensor<4> {
        match self {
            EncoderCore::DataDriven(c) => c.forward(x, mode),
            EncoderCore::GoalDirected(c) => c.forward(x, mode),
        }
    }

    /// Evaluation-mode feature maps; changes nothing.
    pub fn forward_eval(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            EncoderCore::DataDriven(c) => c.forward_eval(x),
            EncoderCore::GoalDirected(c) => c.forward_eval(x),
        }
    }

    /// The core's regularizer (none for a goal-directed core, as in the reference).
    pub fn regularizer(&self) -> Tensor<1> {
        match self {
            EncoderCore::DataDriven(c) => c.regularizer(),
            EncoderCore::GoalDirected(c) => {
                let w = c.conv_weights[0].val();
                Tensor::zeros([1], (&w.device(), w.dtype()))
            }
        }
    }

    /// The data-driven core, if that is what this is (e.g. to inspect its filters).
    pub fn data_driven(&self) -> Option<&Stacked2dCore> {
        match self {
            EncoderCore::DataDriven(c) => Some(c),
            EncoderCore::GoalDirected(_) => None,
        }
    }

    /// The dtype the core computes in.
    pub fn dtype(&self) -> burn::tensor::DType {
        let mut dtype = None;
        struct First<'a>(&'a mut Option<burn::tensor::DType>);
        impl burn::module::ModuleVisitor for First<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if self.0.is_none() {
                    *self.0 = Some(param.val().dtype());
                }
            }
        }
        self.visit(&mut First(&mut dtype));
        dtype.unwrap_or(burn::tensor::DType::F32)
    }

    /// Reference state_dict names under `prefix`.
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        match self {
            EncoderCore::DataDriven(c) => c.export_state(prefix, sd),
            EncoderCore::GoalDirected(c) => c.export_state(prefix, sd),
        }
    }

    /// Reads back [`export_state`](Self::export_state).
    pub fn import_state(self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        Ok(match self {
            EncoderCore::DataDriven(c) => EncoderCore::DataDriven(c.import_state(prefix, sd)?),
            EncoderCore::GoalDirected(c) => EncoderCore::GoalDirected(c.import_state(prefix, sd)?),
        })
    }
}
