//! The encoding model: core → readout of one dataset (+ eye-position shift, × behavioural gain) →
//! ELU(x + offset) + 1 (reference: Lurz `Encoder` / nnsysident `FiringRateEncoder`).
//!
//! One core is shared by every dataset (scan, animal); each dataset has its own readout, shifter
//! network and modulator network, chosen by its index `key` in [`Encoder::data_keys`].

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::config::ModelConfig;
use crate::model::core::{BatchNormMode, CoreConfigError, elu};
use crate::model::encoder_core::EncoderCore;
use crate::model::facts::DatasetFacts;
use crate::model::modulator::Modulator;
use crate::model::readout::gaussian::{SamplingRng, draw_position_noise};
use crate::model::readout::rf_mapping::pixels_to_grid;
use crate::model::readout::{MultiReadout, ReadoutConfig, ReadoutError};
use crate::model::shifter::Shifter;
use crate::model::state_dict::{StateDict, StateDictError};

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

/// Which responses [`Encoder::head_of`] computes.
enum Head<'a> {
    /// Every neuron, with the readout's position draws (`None` = evaluation).
    All(Option<Vec<f32>>),
    /// These readout neurons, in evaluation mode.
    Neurons(&'a [usize]),
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
        let inputs = &facts.datasets;
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
        if let Some(s) = &config.shifter {
            if s.shift_layers == 0 {
                return Err(ModelError::Config {
                    field: "shifter.shift_layers",
                    message: "must be at least 1 (the last layer maps to the 2-D shift)".into(),
                });
            }
            if s.gamma_shifter != 0.0 {
                return Err(ModelError::Config {
                    field: "shifter.gamma_shifter",
                    message: format!(
                        "= {} would be ignored: the MLP shifter has no regularizer (in the \
                         reference too, which silently ignores it; only its static affine \
                         shifter uses gamma_shifter, and cortexfit does not implement that one); \
                         set it to 0",
                        s.gamma_shifter
                    ),
                });
            }
        }
        if config.modulator.as_ref().is_some_and(|m| m.layers == 0) {
            return Err(ModelError::Config {
                field: "modulator.layers",
                message: "must be at least 1 (the last layer maps to the neurons)".into(),
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
        let mut readout = MultiReadout::init(&config.readout, core_out, inputs, seeds[1], device)?;
        if let ReadoutConfig::Gaussian(g) = &config.readout
            && g.init_mu_from_data
        {
            // Pooling cores shrink the map: positions scale with the image instead of cropping.
            let [_, in_h, in_w] = facts.in_shape;
            let map = match &core {
                EncoderCore::GoalDirected(_) => [in_h, in_w],
                EncoderCore::DataDriven(_) => [core_out[1], core_out[2]],
            };
            for (key, input) in inputs.iter().enumerate() {
                let centres = input
                    .rf_centers_px
                    .as_ref()
                    .ok_or_else(|| ModelError::Config {
                        field: "readout.init_mu_from_data",
                        message: format!(
                            "needs each neuron's receptive-field centre mapped from the training \
                         data, but the model of `{}` was built without it",
                            input.data_key
                        ),
                    })?;
                if centres.len() != input.n_neurons {
                    return Err(ReadoutError::Length {
                        data_key: input.data_key.clone(),
                        what: "rf_centers_px",
                        actual: centres.len(),
                        expected: input.n_neurons,
                    }
                    .into());
                }
                let grid = pixels_to_grid(centres, [in_h, in_w], map);
                let flat: Vec<f32> = grid
                    .iter()
                    .flat_map(|p| [p[0] as f32, p[1] as f32])
                    .collect();
                let mu = Tensor::<2>::from_data(TensorData::new(flat, [grid.len(), 2]), device);
                readout.set_positions(key, mu);
            }
        }
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
    /// With `noise` this is the training mode: batch norm uses the batch's statistics (and
    /// updates its running statistics, unless `freeze_core_batch_norm`) and the Gaussian readout
    /// samples its positions from that stream; `None` evaluates deterministically (running
    /// statistics, positions at μ). `behavior` (B, n_behaviors) and `pupil_center` (B, 2) are needed when the
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
        noise: Option<&mut SamplingRng>,
    ) -> Tensor<2> {
        let mode = if noise.is_some() && !self.config.freeze_core_batch_norm {
            BatchNormMode::Train
        } else {
            BatchNormMode::Eval
        };
        let [batch, ..] = images.dims();
        let x = self.core_input(images, behavior.as_ref(), pupil_center.as_ref());
        let draws = noise.and_then(|rng| Some((rng, self.readout.sampled_neurons(key)?)));
        // The readout's position noise (B·N·2 normals from one sequential stream, so the same
        // numbers for any thread count) is drawn on a helper thread while this thread runs the
        // core, instead of serially between the two. The core stays on this thread: the kernel
        // choices (`kernels::use_kernels`, `use_isa`) are per thread.
        let (features, draws) = std::thread::scope(|scope| {
            let drawing = draws.map(|(rng, neurons)| {
                scope.spawn(move || draw_position_noise(rng, batch, neurons))
            });
            let features = self.core.forward(x, mode);
            let draws = drawing.map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (features, draws)
        });
        self.head(features, key, behavior, pupil_center, draws)
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
        self.head(features, key, behavior, pupil_center, None)
    }

    /// [`forward_eval`](Self::forward_eval) for only the readout neurons `neurons` (readout
    /// indices, repeats allowed): column k of the (B, K) result is column `neurons[k]` of
    /// `forward_eval`, the same numbers, but the readout reads out only those neurons (the
    /// in-silico experiments probe a few of thousands).
    pub fn forward_eval_neurons(
        &self,
        images: Tensor<4>,
        key: usize,
        neurons: &[usize],
        behavior: Option<Tensor<2>>,
        pupil_center: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let x = self.core_input(images, behavior.as_ref(), pupil_center.as_ref());
        let features = self.core.forward_eval(x);
        self.head_of(
            features,
            key,
            behavior,
            pupil_center,
            Head::Neurons(neurons),
        )
    }

    /// Readout (+ shift, × gain) and the output nonlinearity on core `features`.
    fn head(
        &self,
        features: Tensor<4>,
        key: usize,
        behavior: Option<Tensor<2>>,
        pupil_center: Option<Tensor<2>>,
        draws: Option<Vec<f32>>,
    ) -> Tensor<2> {
        self.head_of(features, key, behavior, pupil_center, Head::All(draws))
    }

    /// [`head`](Self::head) for every neuron (with the readout's position draws, if any) or for
    /// some neurons in evaluation mode.
    fn head_of(
        &self,
        features: Tensor<4>,
        key: usize,
        behavior: Option<Tensor<2>>,
        pupil_center: Option<Tensor<2>>,
        which: Head<'_>,
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
        let neurons = match &which {
            Head::All(_) => None,
            Head::Neurons(neurons) => Some(*neurons),
        };
        let mut y = match which {
            Head::All(draws) => self.readout.forward_with_draws(key, features, shift, draws),
            Head::Neurons(neurons) => self
                .readout
                .forward_eval_neurons(key, features, shift, neurons),
        };
        if let Some(m) = &self.modulator {
            let gain = m.forward(
                key,
                behavior.expect("model.modulator needs behaviour in every batch"),
            );
            y = y.mul(match neurons {
                None => gain,
                Some(neurons) => {
                    let index: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
                    let device = gain.device();
                    gain.select(
                        1,
                        Tensor::<1, burn::tensor::Int>::from_data(
                            TensorData::new(index, [neurons.len()]),
                            &device,
                        ),
                    )
                }
            });
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
mod tests;
