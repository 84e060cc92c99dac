//! The `[model]` section of a run configuration: core, readout, shifter, modulator and output.
//! Its default is the Lurz 2020 paper model (`presets::lurz2020`, where the `Default` impl lives).

use serde::{Deserialize, Serialize};

use crate::model::core::CoreConfig;
use crate::model::goal_directed::GoalDirectedCoreConfig;
use crate::model::modulator::ModulatorConfig;
use crate::model::readout::ReadoutConfig;
use crate::model::shifter::ShifterConfig;

/// The `model` section of the run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The shared convolutional core.
    #[serde(default)]
    pub core: CoreConfig,
    /// Use a goal-directed core instead (the first layers of a network pretrained on an image
    /// task, e.g. VGG16, loaded from a safetensors file; `model::goal_directed`). When set, the
    /// `core` settings are not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_directed_core: Option<GoalDirectedCoreConfig>,
    /// The per-dataset readout (`type = "gaussian" | "factorized" | "point_pooled"`).
    #[serde(default)]
    pub readout: ReadoutConfig,
    /// Shift all readout positions by an MLP of the pupil position (needs pupil data).
    #[serde(default)]
    pub shifter: Option<ShifterConfig>,
    /// Scale each neuron's output by an MLP of the behaviour (needs behaviour data).
    #[serde(default)]
    pub modulator: Option<ModulatorConfig>,
    /// Output = ELU(readout + elu_offset) + 1.
    #[serde(default)]
    pub elu_offset: f64,
    /// Append each behaviour variable as a constant image channel (Sensorium+).
    #[serde(default)]
    pub behavior_as_channels: bool,
    /// Append the pupil position (x, y) as two constant image channels.
    #[serde(default)]
    pub pupil_as_channels: bool,
    /// No gradient into the core and no core regularizer (transfer: fit readouts on a frozen core).
    /// As in the reference, the core's batch-norm running statistics still update in training
    /// mode unless `freeze_core_batch_norm` is set.
    #[serde(default)]
    pub detach_core: bool,
    /// Always run the core's batch norm with its running statistics (a frozen core that stays
    /// exactly as trained; a documented deviation from the reference, REFERENCE §8.5).
    #[serde(default)]
    pub freeze_core_batch_norm: bool,
}
