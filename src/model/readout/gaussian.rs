//! The Gaussian readout of Lurz et al. 2020 (reference: `FullGaussian2d`).
//!
//! Each neuron reads the core's feature vector at one position μ of the feature map (bilinear
//! interpolation), weights it with its own feature vector f and adds a bias. During training the
//! position is drawn from N(μ, ΣΣᵀ) by the reparameterisation trick, p = clamp(μ + Σz, −1, 1), one
//! draw per image and neuron, so gradients reach μ and Σ; at evaluation it reads at μ exactly.
//! μ is either free (2 numbers per neuron) or predicted from cortical coordinates (retinotopy).

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use serde::{Deserialize, Serialize};

use super::bilinear::{bilinear_readout, clamp_positions, clamp_straight_through};
use super::init_scheme::InitScheme;
use super::linear::TorchLinear;
use super::position_sampling::sampled_positions_ops;
pub use super::position_sampling::{SamplingRng, draw_position_noise};
use super::reduction::Reduction;
use super::retinotopy::{GridPredictor, GridPredictorConfig};
use crate::kernels;
use crate::model::state_dict::{StateDict, StateDictError};
use crate::model::tensor_util::{param_from_f64, tensor_from_f64, to_f64_vec, trainable_leaf};

/// Shape of the covariance factor Σ (covariance ΣΣᵀ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GaussType {
    /// A full 2×2 factor per neuron (the paper's setting).
    #[default]
    Full,
    /// Independent x and y spreads per neuron.
    Uncorrelated,
    /// One spread per neuron.
    Isotropic,
}

impl GaussType {
    /// Σ's per-neuron shape `[rows, cols]` (library shape without the leading 1 and N).
    fn sigma_shape(self) -> [usize; 2] {
        match self {
            GaussType::Full => [2, 2],
            GaussType::Uncorrelated => [1, 2],
            GaussType::Isotropic => [1, 1],
        }
    }
}

/// Settings of a Gaussian readout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianReadoutConfig {
    /// "full", "uncorrelated" or "isotropic" Σ.
    #[serde(default)]
    pub gauss_type: GaussType,
    /// μ starts ~ U(−init_mu_range, +init_mu_range) (must lie in (0, 1]).
    #[serde(default = "default_init_mu_range")]
    pub init_mu_range: f64,
    /// Full Σ entries start ~ U(±init_sigma); other types start at init_sigma.
    #[serde(default = "default_init_sigma")]
    pub init_sigma: f64,
    /// Weight of the feature L1 penalty (the reference's `gamma_readout`).
    #[serde(default = "default_feature_reg_weight", alias = "gamma_readout")]
    pub feature_reg_weight: f64,
    /// Sum (reference default; scales with N) or mean of |f|.
    #[serde(default)]
    pub reduction: Reduction,
    /// Learn a per-neuron bias.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// Which library version's initialisation to follow.
    #[serde(default)]
    pub init: InitScheme,
    /// Std of the normal initialisations of the "lurz2020" scheme.
    #[serde(default = "default_init_noise")]
    pub init_noise: f64,
    /// Start the free μ at each neuron's receptive-field centre estimated by reverse correlation
    /// of its training responses (`train::rf_mapping`) instead of at random (not in the
    /// reference; needs free positions, i.e. no grid_mean_predictor).
    #[serde(default)]
    pub init_mu_from_data: bool,
    /// Predict μ from cortical coordinates (retinotopy) instead of learning it freely.
    #[serde(default)]
    pub grid_mean_predictor: Option<GridPredictorConfig>,
    /// Share feature vectors between matched neurons of different datasets (needs match ids).
    #[serde(default)]
    pub share_features: bool,
}

fn default_init_mu_range() -> f64 {
    0.3
}
fn default_init_sigma() -> f64 {
    0.1
}
fn default_feature_reg_weight() -> f64 {
    0.0076
}
fn default_init_noise() -> f64 {
    1e-3
}
fn default_true() -> bool {
    true
}

impl Default for GaussianReadoutConfig {
    /// The reference builders' defaults (free μ).
    fn default() -> Self {
        Self {
            gauss_type: GaussType::Full,
            init_mu_range: default_init_mu_range(),
            init_sigma: default_init_sigma(),
            feature_reg_weight: default_feature_reg_weight(),
            reduction: Reduction::Sum,
            bias: true,
            init: InitScheme::default(),
            init_noise: default_init_noise(),
            init_mu_from_data: false,
            grid_mean_predictor: None,
            share_features: false,
        }
    }
}

/// How a readout's features come from a shared bank (see `feature_sharing.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFeatures {
    /// Column of the bank for each neuron (index of its match id among the sorted unique ids).
    pub bank_index: Vec<usize>,
    /// The first dataset owns the bank and is the only one regularised.
    pub owner: bool,
}

/// Fixed settings of a built readout.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianSettings {
    pub gauss_type: GaussType,
    pub feature_reg_weight: f64,
    pub reduction: Reduction,
    pub n_channels: usize,
    pub n_neurons: usize,
    pub sharing: Option<SharedFeatures>,
}

/// One dataset's Gaussian readout.
#[derive(Module, Debug)]
pub struct GaussianReadout {
    /// Free mean positions μ (N, 2), (x, y); `None` when predicted.
    pub mu: Option<Param<Tensor<2>>>,
    /// Retinotopy network predicting μ; `None` when μ is free.
    pub grid_predictor: Option<GridPredictor>,
    /// Covariance factor Σ: (N, 2, 2) full, (N, 1, 2) uncorrelated, (N, 1, 1) isotropic.
    pub sigma: Param<Tensor<3>>,
    /// Own feature weights (C, N); `None` when shared.
    pub features: Option<Param<Tensor<2>>>,
    /// Per-neuron scales of shared features (N); `None` when not shared.
    pub feature_scales: Option<Param<Tensor<1>>>,
    /// Per-neuron bias (N).
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub settings: GaussianSettings,
}

/// Facts about one dataset a readout is built for.
pub struct GaussianInit<'a> {
    pub n_channels: usize,
    pub n_neurons: usize,
    /// Normalised cortical coordinates (N·2) when μ is predicted.
    pub source_grid: Option<&'a [f64]>,
    pub sharing: Option<SharedFeatures>,
    pub mean_activity: Option<&'a [f32]>,
}

fn normal(rng: &mut ChaCha8Rng, mean: f64, std: f64, n: usize) -> Vec<f64> {
    let d = Normal::new(mean, std.max(0.0)).expect("finite std");
    (0..n).map(|_| d.sample(rng)).collect()
}

fn uniform(rng: &mut ChaCha8Rng, bound: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            if bound > 0.0 {
                rng.random_range(-bound..bound)
            } else {
                0.0
            }
        })
        .collect()
}

impl GaussianReadout {
    /// Initialises a readout (REFERENCE §2.2 / §3.6) from `rng`.
    pub fn init(
        config: &GaussianReadoutConfig,
        facts: GaussianInit<'_>,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let (c, n) = (facts.n_channels, facts.n_neurons);
        let lurz = config.init == InitScheme::Lurz2020;
        let (grid_predictor, mu) = match (&config.grid_mean_predictor, facts.source_grid) {
            (Some(pc), Some(grid)) => {
                let mut p = GridPredictor::init(pc, grid, rng, device);
                if lurz {
                    // v0.0.1: biases N(0, init_noise); a lone affine map gets 0.2·orthogonal.
                    let single =
                        pc.hidden_layers == 0 && !pc.final_tanh && pc.input_dimensions == 2;
                    let layers = p
                        .layers
                        .into_iter()
                        .map(|l| {
                            let (i, o) = l.dims();
                            let w = if single {
                                random_orthogonal_2x2(rng).map(|v| 0.2 * v).to_vec()
                            } else {
                                to_f64_vec(l.weight.val())
                            };
                            let b = normal(rng, 0.0, config.init_noise, o);
                            TorchLinear::from_values(&w, &b, i, o, None, device)
                        })
                        .collect();
                    p = GridPredictor::with_layers(layers, grid, pc.final_tanh, device);
                }
                (Some(p), None)
            }
            _ => {
                let mu = uniform(rng, config.init_mu_range, n * 2);
                (None, Some(param_from_f64(&mu, [n, 2], None, device)))
            }
        };
        let [sr, sc] = config.gauss_type.sigma_shape();
        let sigma = match config.gauss_type {
            GaussType::Full => uniform(rng, config.init_sigma, n * 4),
            _ => vec![config.init_sigma; n * sr * sc],
        };
        let sigma = param_from_f64(&sigma, [n, sr, sc], None, device);
        let (features, feature_scales) = match &facts.sharing {
            None => {
                let f = if lurz {
                    normal(rng, 0.0, config.init_noise, c * n)
                } else {
                    vec![1.0 / c as f64; c * n]
                };
                (Some(param_from_f64(&f, [c, n], None, device)), None)
            }
            Some(_) => {
                let s = if lurz {
                    normal(rng, 1.0, config.init_noise, n)
                } else {
                    vec![1.0; n]
                };
                (None, Some(param_from_f64(&s, [n], None, device)))
            }
        };
        let bias = config.bias.then(|| {
            let b = match facts.mean_activity {
                Some(m) => m.iter().map(|&v| v as f64).collect(),
                None if lurz => normal(rng, 0.0, 1e-3, n),
                None => vec![0.0; n],
            };
            param_from_f64(&b, [n], None, device)
        });
        Self {
            mu,
            grid_predictor,
            sigma,
            features,
            feature_scales,
            bias,
            settings: GaussianSettings {
                gauss_type: config.gauss_type,
                feature_reg_weight: config.feature_reg_weight,
                reduction: config.reduction,
                n_channels: c,
                n_neurons: n,
                sharing: facts.sharing,
            },
        }
    }

    /// μ (N, 2) as the forward pass uses it: free μ clamped to [−1, 1] (value clamped, gradient
    /// as for the reference's in-place clamp), or the predictor's output (not clamped).
    pub fn mean_positions(&self) -> Tensor<2> {
        match (&self.mu, &self.grid_predictor) {
            (Some(mu), _) => clamp_straight_through(mu.val()),
            (None, Some(p)) => p.forward(),
            (None, None) => unreachable!("a Gaussian readout has free or predicted μ"),
        }
    }

    /// Evaluation positions clamp(μ, −1, 1) (N, 2), e.g. for receptive-field maps.
    pub fn positions(&self) -> Tensor<2> {
        clamp_positions(self.mean_positions())
    }

    /// Σ in the library shape without the leading 1: (N, 2, 2), (N, 1, 2) or (N, 1, 1).
    pub fn sigma(&self) -> Tensor<3> {
        self.sigma.val()
    }

    /// The feature weights (C, N) this readout uses; `bank` is the shared (C, U) bank when sharing.
    pub fn effective_features(&self, bank: Option<&Tensor<2>>) -> Tensor<2> {
        match (
            &self.features,
            &self.settings.sharing,
            bank,
            &self.feature_scales,
        ) {
            (Some(f), _, _, _) => f.val(),
            (None, Some(share), Some(bank), Some(scales)) => {
                let device = bank.device();
                let idx: Vec<i64> = share.bank_index.iter().map(|&i| i as i64).collect();
                let idx = Tensor::<1, Int>::from_data(
                    TensorData::new(idx, [share.bank_index.len()]),
                    &device,
                );
                bank.clone().select(1, idx) * scales.val().unsqueeze_dim(0)
            }
            _ => panic!("a readout with shared features needs the shared bank"),
        }
    }

    /// Sampled positions (B, N, 2) for standard-normal draws `z` (B, N, 2): clamp(μ + Σz, −1, 1)
    /// (one fused op on flex, f32: [`kernels::sampled_positions`]).
    pub fn sampled_positions(&self, z: Tensor<3>) -> Tensor<3> {
        let mu = self.mean_positions();
        let sigma = self.sigma.val();
        if kernels::uses_position_kernel(&mu, &sigma, &z) {
            return kernels::sampled_positions(mu, sigma, z);
        }
        sampled_positions_ops(mu, sigma, z)
    }

    /// Responses (B, N). With `noise` (training) one position per image and neuron is drawn as
    /// μ + Σz with z ~ N(0, I) taken from that stream (B·N·2 standard normals, row-major);
    /// without it (evaluation) every neuron is read at μ. `shift` (B, 2) is added to all positions
    /// after the clamp.
    pub fn forward(
        &self,
        x: Tensor<4>,
        shift: Option<Tensor<2>>,
        noise: Option<&mut SamplingRng>,
        bank: Option<&Tensor<2>>,
    ) -> Tensor<2> {
        let [b, ..] = x.dims();
        let draws = noise.map(|rng| draw_position_noise(rng, b, self.settings.n_neurons));
        self.forward_with_draws(x, shift, draws, bank)
    }

    /// [`GaussianReadout::forward`] with the standard normals already drawn
    /// ([`draw_position_noise`], B·N·2 values; `None` = evaluation).
    pub fn forward_with_draws(
        &self,
        x: Tensor<4>,
        shift: Option<Tensor<2>>,
        draws: Option<Vec<f32>>,
        bank: Option<&Tensor<2>>,
    ) -> Tensor<2> {
        let [b, ..] = x.dims();
        let n = self.settings.n_neurons;
        let z = draws.map(|draws| {
            Tensor::<3>::from_data(TensorData::new(draws, [b, n, 2]), (&x.device(), x.dtype()))
        });
        self.forward_with_noise(x, shift, z, bank)
    }

    /// Like [`GaussianReadout::forward`] with explicit draws `z` (B, N, 2) (`None` = evaluation).
    pub fn forward_with_noise(
        &self,
        x: Tensor<4>,
        shift: Option<Tensor<2>>,
        z: Option<Tensor<3>>,
        bank: Option<&Tensor<2>>,
    ) -> Tensor<2> {
        let [b, c, _, _] = x.dims();
        let n = self.settings.n_neurons;
        debug_assert_eq!(c, self.settings.n_channels, "feature-map channels");
        let positions = match z {
            Some(z) => self.sampled_positions(z),
            None => self.positions().unsqueeze_dim::<3>(0).expand([b, n, 2]),
        };
        let positions = match shift {
            Some(s) => positions + s.unsqueeze_dim(1),
            None => positions,
        };
        let y = bilinear_readout(x, positions, self.effective_features(bank));
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// Evaluation responses (B, K) of only the readout neurons `neurons` (K indices, repeats
    /// allowed), each read at its μ: column k is column `neurons[k]` of the evaluation
    /// [`forward`](Self::forward), the same numbers, without reading out the others.
    pub fn forward_eval_neurons(
        &self,
        x: Tensor<4>,
        shift: Option<Tensor<2>>,
        bank: Option<&Tensor<2>>,
        neurons: Tensor<1, Int>,
    ) -> Tensor<2> {
        let [b, c, _, _] = x.dims();
        let [k] = neurons.dims();
        debug_assert_eq!(c, self.settings.n_channels, "feature-map channels");
        let positions = self
            .positions()
            .select(0, neurons.clone())
            .unsqueeze_dim::<3>(0)
            .expand([b, k, 2]);
        let positions = match shift {
            Some(s) => positions + s.unsqueeze_dim(1),
            None => positions,
        };
        let features = self.effective_features(bank).select(1, neurons.clone());
        let y = bilinear_readout(x, positions, features);
        match &self.bias {
            Some(bias) => y + bias.val().select(0, neurons).unsqueeze_dim(0),
            None => y,
        }
    }

    /// Unweighted feature L1 (sum or mean of |f|, shape [1]); zero for a readout that uses but
    /// does not own shared features.
    pub fn feature_l1(&self, bank: Option<&Tensor<2>>, reduction: Reduction) -> Tensor<1> {
        let f = self.effective_features(bank);
        if self.settings.sharing.as_ref().is_some_and(|s| !s.owner) {
            return Tensor::zeros([1], (&f.device(), f.dtype()));
        }
        let a = f.abs();
        match reduction {
            Reduction::Sum => a.sum(),
            Reduction::Mean => a.mean(),
        }
    }

    /// The readout's regulariser: feature_reg_weight · feature L1 (shape [1]).
    pub fn regularizer(&self, bank: Option<&Tensor<2>>) -> Tensor<1> {
        self.feature_l1(bank, self.settings.reduction) * self.settings.feature_reg_weight
    }

    /// Sets the free mean positions μ (N, 2) (x, y in [−1, 1]); returns false (and changes
    /// nothing) when μ is predicted from cortical coordinates instead.
    pub fn set_mu(&mut self, mu: Tensor<2>) -> bool {
        match self.mu.take() {
            Some(m) => {
                let dtype = m.val().dtype();
                self.mu = Some(m.map(|_| trainable_leaf(mu.cast(dtype))));
                true
            }
            None => false,
        }
    }

    /// Clamps the free μ parameter to [−1, 1], as the reference does in place on every call; the
    /// trainer calls this after each optimiser step so μ cannot drift beyond the map.
    pub fn clamp_mu(mut self) -> Self {
        if let Some(mu) = self.mu.take() {
            self.mu = Some(mu.map(|t| trainable_leaf(t.clamp(-1.0, 1.0))));
        }
        self
    }

    /// Writes the reference's parameters under `prefix` (e.g. `readout.20457-5-9-0.`): `_mu`
    /// (1,N,1,2) or the predictor, `sigma` (1,N,·,·), `_features` (1,C,1,N) or `scales` (1,1,1,N),
    /// `bias` (N).
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        let (c, n) = (self.settings.n_channels, self.settings.n_neurons);
        if let Some(mu) = &self.mu {
            sd.insert(
                format!("{prefix}_mu"),
                vec![1, n, 1, 2],
                to_f64_vec(mu.val()),
            );
        }
        if let Some(p) = &self.grid_predictor {
            p.export_state(prefix, sd);
        }
        let [_, sr, sc] = self.sigma.dims();
        sd.insert(
            format!("{prefix}sigma"),
            vec![1, n, sr, sc],
            to_f64_vec(self.sigma.val()),
        );
        if let Some(f) = &self.features {
            sd.insert(
                format!("{prefix}_features"),
                vec![1, c, 1, n],
                to_f64_vec(f.val()),
            );
        }
        if let Some(s) = &self.feature_scales {
            sd.insert(
                format!("{prefix}scales"),
                vec![1, 1, 1, n],
                to_f64_vec(s.val()),
            );
        }
        if let Some(b) = &self.bias {
            sd.insert(format!("{prefix}bias"), vec![n], to_f64_vec(b.val()));
        }
    }

    /// Reads what [`GaussianReadout::export_state`] writes (shapes must match this readout).
    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let (c, n) = (self.settings.n_channels, self.settings.n_neurons);
        self.mu = replace(self.mu, &format!("{prefix}_mu"), &[1, n, 1, 2], sd)?;
        if let Some(p) = self.grid_predictor.take() {
            self.grid_predictor = Some(p.import_state(prefix, sd)?);
        }
        let [_, sr, sc] = self.sigma.dims();
        self.sigma = replace(
            Some(self.sigma),
            &format!("{prefix}sigma"),
            &[1, n, sr, sc],
            sd,
        )?
        .expect("present");
        self.features = replace(
            self.features,
            &format!("{prefix}_features"),
            &[1, c, 1, n],
            sd,
        )?;
        self.feature_scales = replace(
            self.feature_scales,
            &format!("{prefix}scales"),
            &[1, 1, 1, n],
            sd,
        )?;
        self.bias = replace(self.bias, &format!("{prefix}bias"), &[n], sd)?;
        Ok(self)
    }
}

/// Replaces the values of `param` (if present) by the state-dict entry `name` of shape `shape`.
pub(crate) fn replace<const D: usize>(
    param: Option<Param<Tensor<D>>>,
    name: &str,
    shape: &[usize],
    sd: &StateDict,
) -> Result<Option<Param<Tensor<D>>>, StateDictError> {
    let Some(param) = param else { return Ok(None) };
    let entry = sd.get(name, shape)?;
    Ok(Some(param.map(|t| {
        let dims = t.dims();
        trainable_leaf(tensor_from_f64(
            &entry.data,
            dims,
            Some(t.dtype()),
            &t.device(),
        ))
    })))
}

/// A uniformly random 2×2 orthogonal matrix (rotation, or rotation with reflection), row-major.
fn random_orthogonal_2x2(rng: &mut ChaCha8Rng) -> [f64; 4] {
    let theta = rng.random_range(0.0..std::f64::consts::TAU);
    let (s, c) = theta.sin_cos();
    if rng.random_bool(0.5) {
        [c, -s, s, c]
    } else {
        [c, s, s, -c]
    }
}
