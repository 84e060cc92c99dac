//! One readout per dataset (data key): every scan has its own neurons, so each gets its own
//! readout on the shared core's feature map (reference: `MultiReadoutBase` /
//! `MultiReadoutSharedParametersBase`). Holds the shared feature bank when features are shared.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::ReadoutConfig;
use super::factorized::FactorizedReadout;
use super::feature_sharing::{FeatureSharingError, SharingPlan, init_bank, plan_sharing};
use super::gaussian::SamplingRng;
use super::gaussian::replace;
use super::gaussian::{GaussianInit, GaussianReadout};
use super::point_pooled::PointPooledReadout;
use super::retinotopy::normalize_cortex_coordinates;
use crate::model::facts::DatasetReadoutFacts;
use crate::model::state_dict::{StateDict, StateDictError};
use crate::model::tensor_util::to_f64_vec;

/// Why readouts could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReadoutError {
    #[error("no datasets given to build readouts for")]
    NoDatasets,
    #[error("readout config field `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error(
        "readout config sets `grid_mean_predictor` (retinotopy), but data key `{0}` has no cortical coordinates (meta/neurons/cell_motor_coordinates)"
    )]
    MissingCoordinates(String),
    #[error(
        "data key `{data_key}`: {what} has {actual} entries, expected one per neuron ({expected})"
    )]
    Length {
        data_key: String,
        what: &'static str,
        actual: usize,
        expected: usize,
    },
    #[error(transparent)]
    Sharing(#[from] FeatureSharingError),
}

/// One dataset's readout.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Readout {
    Gaussian(GaussianReadout),
    Factorized(FactorizedReadout),
    PointPooled(PointPooledReadout),
}

/// The readouts of all datasets, indexed like `data_keys`.
#[derive(Module, Debug)]
pub struct MultiReadout {
    pub readouts: Vec<Readout>,
    /// Shared feature bank (C, U) when `share_features` (owned by the first dataset).
    pub feature_bank: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub data_keys: Vec<String>,
    #[module(skip)]
    pub shared_match_ids: Option<Vec<i64>>,
}

fn check(ok: bool, field: &'static str, message: impl Into<String>) -> Result<(), ReadoutError> {
    if ok {
        Ok(())
    } else {
        Err(ReadoutError::Config {
            field,
            message: message.into(),
        })
    }
}

impl MultiReadout {
    /// Builds one readout per dataset on a core output of shape `in_shape` = (C, H, W), seeded.
    pub fn init(
        config: &ReadoutConfig,
        in_shape: [usize; 3],
        inputs: &[DatasetReadoutFacts],
        seed: u64,
        device: &Device,
    ) -> Result<Self, ReadoutError> {
        if inputs.is_empty() {
            return Err(ReadoutError::NoDatasets);
        }
        for input in inputs {
            if let Some(m) = &input.mean_activity
                && m.len() != input.n_neurons
            {
                return Err(ReadoutError::Length {
                    data_key: input.data_key.clone(),
                    what: "mean_activity",
                    actual: m.len(),
                    expected: input.n_neurons,
                });
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [c, h, w] = in_shape;
        let mut feature_bank = None;
        let mut shared_match_ids = None;
        let readouts = match config {
            ReadoutConfig::Gaussian(g) => {
                check(
                    g.init_mu_range > 0.0 && g.init_mu_range <= 1.0,
                    "init_mu_range",
                    format!("must lie in (0, 1], got {}", g.init_mu_range),
                )?;
                check(
                    g.init_sigma.is_finite() && g.init_sigma >= 0.0,
                    "init_sigma",
                    format!("must be finite and ≥ 0, got {}", g.init_sigma),
                )?;
                check(
                    g.feature_reg_weight.is_finite() && g.feature_reg_weight >= 0.0,
                    "feature_reg_weight",
                    format!("must be finite and ≥ 0, got {}", g.feature_reg_weight),
                )?;
                check(
                    !(g.init_mu_from_data && g.grid_mean_predictor.is_some()),
                    "init_mu_from_data",
                    "needs free positions: μ is predicted by grid_mean_predictor (remove one)",
                )?;
                if let Some(pc) = &g.grid_mean_predictor {
                    check(
                        (1..=3).contains(&pc.input_dimensions),
                        "grid_mean_predictor.input_dimensions",
                        format!(
                            "must be 1, 2 or 3 (cortical x, y, z), got {}",
                            pc.input_dimensions
                        ),
                    )?;
                }
                let plan: Option<SharingPlan> = if g.share_features {
                    let mut ids = Vec::new();
                    for input in inputs {
                        let m = input.match_ids.as_deref().ok_or_else(|| {
                            FeatureSharingError::MissingMatchIds(input.data_key.clone())
                        })?;
                        if m.len() != input.n_neurons {
                            return Err(FeatureSharingError::Length {
                                data_key: input.data_key.clone(),
                                n_ids: m.len(),
                                n_neurons: input.n_neurons,
                            }
                            .into());
                        }
                        ids.push((input.data_key.as_str(), m));
                    }
                    Some(plan_sharing(&ids)?)
                } else {
                    None
                };
                if let Some(plan) = &plan {
                    let u = plan.unique_ids.len();
                    feature_bank = Some(init_bank(c, u, g.init, g.init_noise, &mut rng, device));
                    shared_match_ids = Some(plan.unique_ids.clone());
                }
                let mut readouts = Vec::new();
                for (d, input) in inputs.iter().enumerate() {
                    let grid = match (&g.grid_mean_predictor, &input.cell_motor_coordinates) {
                        (None, _) => None,
                        (Some(pc), Some(coords)) => {
                            if coords.len() != input.n_neurons {
                                return Err(ReadoutError::Length {
                                    data_key: input.data_key.clone(),
                                    what: "cell_motor_coordinates",
                                    actual: coords.len(),
                                    expected: input.n_neurons,
                                });
                            }
                            Some(normalize_cortex_coordinates(coords, pc.input_dimensions))
                        }
                        (Some(_), None) => {
                            return Err(ReadoutError::MissingCoordinates(input.data_key.clone()));
                        }
                    };
                    let facts = GaussianInit {
                        n_channels: c,
                        n_neurons: input.n_neurons,
                        source_grid: grid.as_deref(),
                        sharing: plan.as_ref().map(|p| p.per_dataset[d].clone()),
                        mean_activity: input.mean_activity.as_deref(),
                    };
                    readouts.push(Readout::Gaussian(GaussianReadout::init(
                        g, facts, &mut rng, device,
                    )));
                }
                readouts
            }
            ReadoutConfig::Factorized(fc) => inputs
                .iter()
                .map(|input| {
                    Readout::Factorized(FactorizedReadout::init(
                        fc,
                        [c, h, w],
                        input.n_neurons,
                        input.mean_activity.as_deref(),
                        &mut rng,
                        device,
                    ))
                })
                .collect(),
            ReadoutConfig::PointPooled(pc) => {
                check(pc.pool_kern >= 1, "pool_kern", "must be ≥ 1")?;
                let mut size = (h, w);
                for _ in 0..pc.pool_steps {
                    size = (size.0 / pc.pool_kern, size.1 / pc.pool_kern);
                }
                check(
                    size.0 >= 1 && size.1 >= 1,
                    "pool_steps",
                    format!(
                        "{} poolings of {}×{} with kernel {} leave an empty map",
                        pc.pool_steps, h, w, pc.pool_kern
                    ),
                )?;
                inputs
                    .iter()
                    .map(|input| {
                        Readout::PointPooled(PointPooledReadout::init(
                            pc,
                            c,
                            input.n_neurons,
                            input.mean_activity.as_deref(),
                            &mut rng,
                            device,
                        ))
                    })
                    .collect()
            }
        };
        Ok(Self {
            readouts,
            feature_bank,
            data_keys: inputs.iter().map(|i| i.data_key.clone()).collect(),
            shared_match_ids,
        })
    }

    /// Number of neurons of dataset `key`.
    pub fn n_neurons(&self, key: usize) -> usize {
        match &self.readouts[key] {
            Readout::Gaussian(g) => g.settings.n_neurons,
            Readout::Factorized(f) => f.features.dims()[0],
            Readout::PointPooled(p) => p.grid.dims()[0],
        }
    }

    /// Responses (B, N) of dataset `key` to core output `features` (B, C, H, W). `shift` (B, 2)
    /// moves all positions (the factorized readout has none; the model builder refuses a shifter on it);
    /// `noise`: the stream of the Gaussian readout's training-mode position sampling (`None`
    /// reads at μ).
    pub fn forward(
        &self,
        key: usize,
        features: Tensor<4>,
        shift: Option<Tensor<2>>,
        noise: Option<&mut SamplingRng>,
    ) -> Tensor<2> {
        let bank = self.feature_bank.as_ref().map(|b| b.val());
        match &self.readouts[key] {
            Readout::Gaussian(g) => g.forward(features, shift, noise, bank.as_ref()),
            Readout::Factorized(f) => f.forward(features),
            Readout::PointPooled(p) => p.forward(features, shift),
        }
    }

    /// The neurons N whose positions a training-mode [`MultiReadout::forward`] of dataset `key`
    /// samples (B·N·2 normals from the noise stream): a Gaussian readout's, none otherwise.
    pub fn sampled_neurons(&self, key: usize) -> Option<usize> {
        match &self.readouts[key] {
            Readout::Gaussian(g) => Some(g.settings.n_neurons),
            Readout::Factorized(_) | Readout::PointPooled(_) => None,
        }
    }

    /// [`MultiReadout::forward`] with the Gaussian readout's standard normals already drawn
    /// (`gaussian::draw_position_noise`; `None` = evaluation, and for the other readouts).
    pub fn forward_with_draws(
        &self,
        key: usize,
        features: Tensor<4>,
        shift: Option<Tensor<2>>,
        draws: Option<Vec<f32>>,
    ) -> Tensor<2> {
        let bank = self.feature_bank.as_ref().map(|b| b.val());
        match &self.readouts[key] {
            Readout::Gaussian(g) => g.forward_with_draws(features, shift, draws, bank.as_ref()),
            Readout::Factorized(f) => f.forward(features),
            Readout::PointPooled(p) => p.forward(features, shift),
        }
    }

    /// Evaluation responses (B, K) of only the neurons `neurons` of dataset `key` (K indices,
    /// repeats allowed): column k is column `neurons[k]` of the evaluation
    /// [`forward_with_draws`](Self::forward_with_draws). A Gaussian readout reads out only
    /// those neurons; the others read out all and keep those columns.
    pub fn forward_eval_neurons(
        &self,
        key: usize,
        features: Tensor<4>,
        shift: Option<Tensor<2>>,
        neurons: &[usize],
    ) -> Tensor<2> {
        let index: Vec<i64> = neurons.iter().map(|&n| n as i64).collect();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(index, [neurons.len()]),
            &features.device(),
        );
        let bank = self.feature_bank.as_ref().map(|b| b.val());
        match &self.readouts[key] {
            Readout::Gaussian(g) => g.forward_eval_neurons(features, shift, bank.as_ref(), index),
            _ => self
                .forward_with_draws(key, features, shift, None)
                .select(1, index),
        }
    }

    /// The weighted regulariser of dataset `key` (shape [1]).
    pub fn regularizer(&self, key: usize) -> Tensor<1> {
        let bank = self.feature_bank.as_ref().map(|b| b.val());
        match &self.readouts[key] {
            Readout::Gaussian(g) => g.regularizer(bank.as_ref()),
            Readout::Factorized(f) => f.regularizer(),
            Readout::PointPooled(p) => p.regularizer(),
        }
    }

    /// Sets dataset `key`'s free Gaussian readout positions μ (N, 2); false when that readout
    /// has no free μ (another readout kind, or μ predicted by retinotopy).
    pub fn set_positions(&mut self, key: usize, mu: Tensor<2>) -> bool {
        match &mut self.readouts[key] {
            Readout::Gaussian(g) => g.set_mu(mu),
            _ => false,
        }
    }

    /// Evaluation read positions (N, 2) (x, y in [−1, 1]) of Gaussian and point-pooled readouts.
    pub fn positions(&self, key: usize) -> Option<Tensor<2>> {
        match &self.readouts[key] {
            Readout::Gaussian(g) => Some(g.positions()),
            Readout::PointPooled(p) => Some(p.points()),
            Readout::Factorized(_) => None,
        }
    }

    /// Σ of a Gaussian readout: (N, 2, 2), (N, 1, 2) or (N, 1, 1).
    pub fn sigma(&self, key: usize) -> Option<Tensor<3>> {
        match &self.readouts[key] {
            Readout::Gaussian(g) => Some(g.sigma()),
            _ => None,
        }
    }

    /// The effective feature weights of a Gaussian readout (C, N).
    pub fn gaussian_features(&self, key: usize) -> Option<Tensor<2>> {
        let bank = self.feature_bank.as_ref().map(|b| b.val());
        match &self.readouts[key] {
            Readout::Gaussian(g) => Some(g.effective_features(bank.as_ref())),
            _ => None,
        }
    }

    /// Applies the reference's in-place parameter constraints (μ and point grids clamped to
    /// [−1, 1], factorized positivity); call after every optimiser step.
    pub fn clamp_parameters(self) -> Self {
        Self {
            readouts: self
                .readouts
                .into_iter()
                .map(|r| match r {
                    Readout::Gaussian(g) => Readout::Gaussian(g.clamp_mu()),
                    Readout::Factorized(f) => Readout::Factorized(f.constrain()),
                    Readout::PointPooled(p) => Readout::PointPooled(p.clamp_grid()),
                })
                .collect(),
            ..self
        }
    }

    /// Writes every readout under `readout.<data_key>.` in the reference's names and shapes; the
    /// shared bank goes to `readout.<owner>._features` (1, C, 1, U).
    pub fn export_state(&self, sd: &mut StateDict) {
        for (key, r) in self.data_keys.iter().zip(&self.readouts) {
            let prefix = format!("readout.{key}.");
            match r {
                Readout::Gaussian(g) => g.export_state(&prefix, sd),
                Readout::Factorized(f) => f.export_state(&prefix, sd),
                Readout::PointPooled(p) => p.export_state(&prefix, sd),
            }
        }
        if let Some(bank) = &self.feature_bank {
            let [c, u] = bank.dims();
            sd.insert(self.bank_name(), vec![1, c, 1, u], to_f64_vec(bank.val()));
        }
    }

    fn bank_name(&self) -> String {
        format!("readout.{}._features", self.data_keys[0])
    }

    /// Reads what [`MultiReadout::export_state`] writes (names and shapes must match).
    pub fn import_state(self, sd: &StateDict) -> Result<Self, StateDictError> {
        let name = self.bank_name();
        let mut readouts = Vec::new();
        for (key, r) in self.data_keys.iter().zip(self.readouts) {
            let prefix = format!("readout.{key}.");
            readouts.push(match r {
                Readout::Gaussian(g) => Readout::Gaussian(g.import_state(&prefix, sd)?),
                Readout::Factorized(f) => Readout::Factorized(f.import_state(&prefix, sd)?),
                Readout::PointPooled(p) => Readout::PointPooled(p.import_state(&prefix, sd)?),
            });
        }
        let feature_bank = match self.feature_bank {
            Some(bank) => {
                let [c, u] = bank.dims();
                replace(Some(bank), &name, &[1, c, 1, u], sd)?
            }
            None => None,
        };
        Ok(Self {
            readouts,
            feature_bank,
            data_keys: self.data_keys,
            shared_match_ids: self.shared_match_ids,
        })
    }
}
