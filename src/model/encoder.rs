//! The encoding model: core → readout of one dataset (+ eye-position shift, × behavioural gain) →
//! ELU(x + offset) + 1 (reference: Lurz `Encoder` / nnsysident `FiringRateEncoder`).
//!
//! One core is shared by every dataset (scan, animal); each dataset has its own readout, shifter
//! network and modulator network, chosen by its index `key` in [`Encoder::data_keys`].

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::core::{BatchNormMode, CoreConfig, CoreConfigError, elu};
use crate::model::encoder_core::EncoderCore;
use crate::model::goal_directed::GoalDirectedCoreConfig;
use crate::model::modulator::{Modulator, ModulatorConfig};
use crate::model::readout::{MultiReadout, ReadoutConfig, ReadoutError, ReadoutInput};
use crate::model::shifter::{Shifter, ShifterConfig};
use crate::model::state_dict::{StateDict, StateDictError};

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

/// Alias: the encoder's configuration is the model configuration.
pub type EncoderConfig = ModelConfig;

impl Default for ModelConfig {
    /// The Lurz 2020 paper model (`presets::lurz2020`).
    fn default() -> Self {
        crate::model::presets::lurz2020()
    }
}

/// What the model builder must know about the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetFacts {
    /// Image (channels, height, width) as fed to the model (before behaviour channels).
    pub in_shape: [usize; 3],
    /// Number of behaviour variables (0 when there is none).
    #[serde(default)]
    pub n_behaviors: usize,
    /// One entry per dataset (data key), in the order of the keys used in `forward`.
    pub datasets: Vec<DatasetReadoutFacts>,
}

/// The serializable part of [`ReadoutInput`] (what a checkpoint needs to rebuild the readouts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetReadoutFacts {
    pub data_key: String,
    pub n_neurons: usize,
    #[serde(default)]
    pub cell_motor_coordinates: Option<Vec<[f64; 3]>>,
    #[serde(default)]
    pub match_ids: Option<Vec<i64>>,
    /// Mean response per neuron (initial readout bias); not stored in checkpoints.
    #[serde(skip)]
    pub mean_activity: Option<Vec<f32>>,
}

impl DatasetFacts {
    /// Facts from the readout inputs the data module provides.
    pub fn new(in_shape: [usize; 3], n_behaviors: usize, inputs: &[ReadoutInput]) -> Self {
        Self {
            in_shape,
            n_behaviors,
            datasets: inputs
                .iter()
                .map(|i| DatasetReadoutFacts {
                    data_key: i.data_key.clone(),
                    n_neurons: i.n_neurons,
                    cell_motor_coordinates: i.cell_motor_coordinates.clone(),
                    match_ids: i.match_ids.clone(),
                    mean_activity: i.mean_activity.clone(),
                })
                .collect(),
        }
    }

    fn readout_inputs(&self) -> Vec<ReadoutInput> {
        self.datasets
            .iter()
            .map(|d| ReadoutInput {
                data_key: d.data_key.clone(),
                n_neurons: d.n_neurons,
                cell_motor_coordinates: d.cell_motor_coordinates.clone(),
                match_ids: d.match_ids.clone(),
                mean_activity: d.mean_activity.clone(),
            })
            .collect()
    }
}

/// Why a model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Core(#[from] CoreConfigError),
    #[error(transparent)]
    Readout(#[from] ReadoutError),
    #[error("model.{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
}

/// The full model.
#[derive(Module, Debug)]
pub struct Encoder {
    pub core: EncoderCore,
    pub readout: MultiReadout,
    pub shifter: Option<Shifter>,
    pub modulator: Option<Modulator>,
    #[module(skip)]
    pub config: ModelConfig,
    #[module(skip)]
    pub facts: DatasetFacts,
}

impl Encoder {
    /// Builds the model for `facts`, all randomness from `seed`.
    pub fn init(
        config: &ModelConfig,
        facts: &DatasetFacts,
        seed: u64,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let inputs = facts.readout_inputs();
        if config.behavior_as_channels && facts.n_behaviors == 0 {
            return Err(ModelError::Config {
                field: "behavior_as_channels",
                message: "is set, but the data has no behaviour variables".into(),
            });
        }
        if config.modulator.is_some() && facts.n_behaviors == 0 {
            return Err(ModelError::Config {
                field: "modulator",
                message: "is set, but the data has no behaviour variables".into(),
            });
        }
        if config.shifter.is_some()
            && !matches!(
                config.readout,
                ReadoutConfig::Gaussian(_) | ReadoutConfig::PointPooled(_)
            )
        {
            return Err(ModelError::Config {
                field: "shifter",
                message: "needs a readout with positions (gaussian or point_pooled); the factorized readout cannot shift".into(),
            });
        }
        // The MLP shifter has no penalty (as in the reference, whose regulariser returns 0): a
        // non-zero weight would be silently ignored, so it is refused.
        if let Some(shifter) = &config.shifter
            && shifter.gamma_shifter != 0.0
        {
            return Err(ModelError::Config {
                field: "shifter.gamma_shifter",
                message: format!(
                    "is {}, but the MLP shifter has no regulariser to weight (the reference's is \
                     identically 0); set it to 0",
                    shifter.gamma_shifter
                ),
            });
        }
        if !(config.elu_offset.is_finite()) {
            return Err(ModelError::Config {
                field: "elu_offset",
                message: format!("must be finite, got {}", config.elu_offset),
            });
        }
        let in_shape = Self::core_in_shape(config, facts);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let seeds: [u64; 4] = std::array::from_fn(|_| rng.random());
        let (core, core_out) = EncoderCore::init(
            &config.core,
            config.goal_directed_core.as_ref(),
            in_shape,
            seeds[0],
            device,
        )?;
        // A detached core takes no part in backward: its weights must not be tracked either, or
        // every batch leaves an unused autodiff graph of the whole core behind (memory grows
        // without bound during readout fitting).
        let core = if config.detach_core {
            core.no_grad()
        } else {
            core
        };
        let readout = MultiReadout::init(&config.readout, core_out, &inputs, seeds[1], device)?;
        let keys: Vec<String> = inputs.iter().map(|i| i.data_key.clone()).collect();
        let shifter = config
            .shifter
            .as_ref()
            .map(|s| Shifter::init(s, &keys, seeds[2], device));
        let n_neurons: Vec<usize> = inputs.iter().map(|i| i.n_neurons).collect();
        let modulator = config
            .modulator
            .as_ref()
            .map(|m| Modulator::init(m, &keys, facts.n_behaviors, &n_neurons, seeds[3], device));
        Ok(Self {
            core,
            readout,
            shifter,
            modulator,
            config: config.clone(),
            facts: facts.clone(),
        })
    }

    /// The core's input shape: image channels plus behaviour / pupil channels.
    fn core_in_shape(config: &ModelConfig, facts: &DatasetFacts) -> [usize; 3] {
        let [c, h, w] = facts.in_shape;
        let extra = if config.behavior_as_channels {
            facts.n_behaviors
        } else {
            0
        } + if config.pupil_as_channels { 2 } else { 0 };
        [c + extra, h, w]
    }

    /// Shape (C, H, W) of the core's feature map for this model's images.
    pub fn core_output_shape(&self) -> [usize; 3] {
        match &self.core {
            EncoderCore::DataDriven(_) => self
                .config
                .core
                .output_shape(self.facts.in_shape)
                .expect("the core was built from this configuration"),
            EncoderCore::GoalDirected(c) => c.output_shape(self.facts.in_shape),
        }
    }

    /// Whether `forward` needs behaviour in every batch (modulator or behaviour channels).
    pub fn needs_behavior(&self) -> bool {
        self.config.behavior_as_channels || self.modulator.is_some()
    }

    /// Whether `forward` needs the pupil position in every batch (shifter or pupil channels).
    pub fn needs_pupil_center(&self) -> bool {
        self.config.pupil_as_channels || self.shifter.is_some()
    }

    /// The dataset names, indexed by `key`.
    pub fn data_keys(&self) -> &[String] {
        &self.readout.data_keys
    }

    /// Stacks behaviour / pupil position as constant planes onto the images when configured.
    fn core_input(
        &self,
        images: Tensor<4>,
        behavior: Option<&Tensor<2>>,
        pupil_center: Option<&Tensor<2>>,
    ) -> Tensor<4> {
        let [b, _, h, w] = images.dims();
        let mut parts = vec![images];
        let mut planes = |v: &Tensor<2>| {
            let [_, k] = v.dims();
            parts.push(v.clone().reshape([b, k, 1, 1]).expand([b, k, h, w]));
        };
        if self.config.behavior_as_channels {
            planes(behavior.expect("model.behavior_as_channels needs behaviour in every batch"));
        }
        if self.config.pupil_as_channels {
            planes(
                pupil_center
                    .expect("model.pupil_as_channels needs the pupil position in every batch"),
            );
        }
        if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        }
    }

    /// Predicted firing rates (B, N) of dataset `key` for `images` (B, C, H, W).
    ///
    /// `train = true` is the training mode: batch norm uses the batch's statistics (and updates its
    /// running statistics) and the Gaussian readout samples its positions; `false` evaluates
    /// deterministically. `behavior` (B, n_behaviors) and `pupil_center` (B, 2) are needed when the
    /// configuration uses them (modulator / behaviour channels, shifter / pupil channels).
    ///
    /// # Panics
    /// When the configuration needs behaviour or pupil data that is not given (the trainer checks
    /// the data against the configuration before the first batch).
    pub fn forward(
        &mut self,
        images: Tensor<4>,
        key: usize,
        behavior: Option<Tensor<2>>,
        pupil_center: Option<Tensor<2>>,
        train: bool,
    ) -> Tensor<2> {
        let mode = if train && !self.config.freeze_core_batch_norm {
            BatchNormMode::Train
        } else {
            BatchNormMode::Eval
        };
        let x = self.core_input(images, behavior.as_ref(), pupil_center.as_ref());
        let features = self.core.forward(x, mode);
        self.head(features, key, behavior, pupil_center, train)
    }

    /// Evaluation-mode predictions (running batch-norm statistics, readout at its mean positions);
    /// needs no `&mut` and changes nothing.
    pub fn forward_eval(
        &self,
        images: Tensor<4>,
        key: usize,
        behavior: Option<Tensor<2>>,
        pupil_center: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let x = self.core_input(images, behavior.as_ref(), pupil_center.as_ref());
        let features = self.core.forward_eval(x);
        self.head(features, key, behavior, pupil_center, false)
    }

    /// Readout (+ shift, × gain) and the output nonlinearity on core `features`.
    fn head(
        &self,
        features: Tensor<4>,
        key: usize,
        behavior: Option<Tensor<2>>,
        pupil_center: Option<Tensor<2>>,
        sample: bool,
    ) -> Tensor<2> {
        let features = if self.config.detach_core {
            features.detach()
        } else {
            features
        };
        let shift = self.shifter.as_ref().map(|s| {
            s.forward(
                key,
                pupil_center.expect("model.shifter needs the pupil position in every batch"),
            )
        });
        let mut y = self.readout.forward(key, features, shift, sample);
        if let Some(m) = &self.modulator {
            y = y.mul(m.forward(
                key,
                behavior.expect("model.modulator needs behaviour in every batch"),
            ));
        }
        let y = if self.config.elu_offset != 0.0 {
            y.add_scalar(self.config.elu_offset)
        } else {
            y
        };
        elu(y).add_scalar(1.0)
    }

    /// Applies the reference's in-place parameter constraints (readout μ / grid clamped to
    /// [−1, 1], factorized positivity); call after every optimiser step.
    pub fn clamp_parameters(mut self) -> Self {
        self.readout = self.readout.clamp_parameters();
        self
    }

    /// The core's penalty (unless detached) + readout, shifter and modulator penalties of `key`.
    pub fn regularizer(&self, key: usize) -> Tensor<1> {
        let mut reg = self.readout.regularizer(key);
        if !self.config.detach_core {
            reg = reg.add(self.core.regularizer());
        }
        if let Some(s) = &self.shifter {
            reg = reg.add(s.regularizer(key));
        }
        if let Some(m) = &self.modulator {
            reg = reg.add(m.regularizer(key));
        }
        reg
    }

    /// All weights and buffers under the reference's names (`core.features.layer0.conv.weight`,
    /// `readout.<key>._mu`, `shifter.<key>.mlp.0.weight`, …).
    pub fn export_state(&self) -> StateDict {
        let mut sd = StateDict::default();
        self.core.export_state("core.", &mut sd);
        self.readout.export_state(&mut sd);
        if let Some(s) = &self.shifter {
            s.export_state(&mut sd);
        }
        if let Some(m) = &self.modulator {
            m.export_state(&mut sd);
        }
        sd
    }

    /// Loads every weight from `sd` (as written by [`export_state`](Self::export_state)).
    pub fn import_state(mut self, sd: &StateDict) -> Result<Self, StateDictError> {
        self.core = self.core.import_state("core.", sd)?;
        self.readout = self.readout.import_state(sd)?;
        if let Some(s) = self.shifter.take() {
            self.shifter = Some(s.import_state(sd)?);
        }
        if let Some(m) = self.modulator.take() {
            self.modulator = Some(m.import_state(sd)?);
        }
        Ok(self)
    }

    /// Replaces only the core's weights with the `core.*` entries of `sd` (e.g. a core trained in
    /// PyTorch or by another cortexfit run); readouts and the rest stay as they are.
    pub fn load_core_state(mut self, sd: &StateDict) -> Result<Self, StateDictError> {
        self.core = self.core.import_state("core.", sd)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::core::{PerLayer, Stack};
    use crate::model::modulator::ModulatorConfig;
    use burn::tensor::Distribution;

    fn facts(n_behaviors: usize) -> DatasetFacts {
        let coords = |n: usize| {
            (0..n)
                .map(|i| [i as f64 * 10.0, (i * i) as f64, 0.0])
                .collect()
        };
        DatasetFacts {
            in_shape: [1, 18, 24],
            n_behaviors,
            datasets: vec![
                DatasetReadoutFacts {
                    data_key: "a".into(),
                    n_neurons: 7,
                    cell_motor_coordinates: Some(coords(7)),
                    match_ids: None,
                    mean_activity: None,
                },
                DatasetReadoutFacts {
                    data_key: "b".into(),
                    n_neurons: 5,
                    cell_motor_coordinates: Some(coords(5)),
                    match_ids: None,
                    mean_activity: Some(vec![0.5; 5]),
                },
            ],
        }
    }

    fn small(mut config: ModelConfig) -> ModelConfig {
        config.core = CoreConfig {
            layers: 2,
            hidden_channels: PerLayer::All(4),
            input_kern: 5,
            hidden_kern: PerLayer::All(3),
            stack: Stack::From(-1),
            ..config.core
        };
        config
    }

    #[test]
    fn sensorium_plus_with_modulator_runs_on_behaviour_and_pupil_for_every_data_key() {
        let device = Device::flex().autodiff();
        let mut config = small(ModelConfig::preset("sensorium2022_plus").unwrap());
        config.pupil_as_channels = true;
        config.modulator = Some(ModulatorConfig::default());
        let mut enc = Encoder::init(&config, &facts(3), 1, &device).unwrap();
        assert_eq!(
            enc.core.data_driven().unwrap().blocks[0]
                .conv
                .as_ref()
                .unwrap()
                .weight
                .dims()[1],
            1 + 3 + 2
        );
        let x = Tensor::<4>::random([3, 1, 18, 24], Distribution::Normal(0.0, 1.0), &device);
        let beh = Tensor::<2>::random([3, 3], Distribution::Uniform(0.0, 1.0), &device);
        let pupil = Tensor::<2>::random([3, 2], Distribution::Normal(0.0, 1.0), &device);
        for (key, n) in [(0, 7), (1, 5)] {
            let y = enc.forward(x.clone(), key, Some(beh.clone()), Some(pupil.clone()), true);
            assert_eq!(y.dims(), [3, n]);
            let values: Vec<f32> = y.clone().into_data().iter::<f32>().collect();
            assert!(values.iter().all(|&v| v > 0.0), "ELU + 1 is positive");
            let grads = y.sum().add(enc.regularizer(key)).backward();
            let shifter_w = enc.shifter.as_ref().unwrap().networks[key].layers[0]
                .weight
                .val();
            assert!(shifter_w.grad(&grads).is_some(), "the shifter is trained");
            let y_eval = enc.forward_eval(x.clone(), key, Some(beh.clone()), Some(pupil.clone()));
            assert_eq!(y_eval.dims(), [3, n]);
        }
        // Different pupil positions move the readout, so predictions change.
        let a = enc.forward_eval(x.clone(), 0, Some(beh.clone()), Some(pupil.clone()));
        let b = enc.forward_eval(x, 0, Some(beh), Some(pupil.add_scalar(1.0)));
        assert!(a.sub(b).abs().sum().into_scalar::<f32>() > 0.0);
    }

    #[test]
    fn configurations_the_data_cannot_serve_are_rejected() {
        let device = Device::flex();
        let config = small(ModelConfig::preset("sensorium2022_plus").unwrap());
        let err = Encoder::init(&config, &facts(0), 0, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("behavior_as_channels"), "{err}");
        let mut config = small(ModelConfig::preset("lurz2020_factorized").unwrap());
        config.shifter = Some(ShifterConfig::default());
        let err = Encoder::init(&config, &facts(0), 0, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shifter"), "{err}");
        let mut facts = facts(0);
        facts.datasets[0].cell_motor_coordinates = None;
        let config = small(ModelConfig::preset("lurz2020").unwrap());
        let err = Encoder::init(&config, &facts, 0, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cortical coordinates"), "{err}");
    }

    #[test]
    fn every_preset_builds_on_a_small_image_and_exports_the_same_state_after_import() {
        let device = Device::flex();
        for name in crate::model::presets::PRESET_NAMES {
            let config = small(ModelConfig::preset(name).unwrap());
            let enc = Encoder::init(&config, &facts(3), 2, &device).unwrap();
            let sd = enc.export_state();
            let same = Encoder::init(&config, &facts(3), 2, &device).unwrap();
            assert_eq!(same.export_state(), sd, "{name}: same seed, same model");
            let other = Encoder::init(&config, &facts(3), 3, &device).unwrap();
            assert_ne!(other.export_state(), sd, "{name}: seeds differ");
            assert_eq!(
                other.import_state(&sd).unwrap().export_state(),
                sd,
                "{name}"
            );
        }
    }
}
