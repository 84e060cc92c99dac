//! The factorized readout of Klindt et al. 2017 (reference: `FullFactorized2d`,
//! `SpatialXFeatureLinear`): each neuron has a spatial mask over the whole feature map and a
//! feature vector; its response is Σ_{c,h,w} x[c,h,w]·Ŝ[h,w]·f[c] + b. It needs h·w + c + 1
//! parameters per neuron, the baseline the Gaussian readout improves on.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
use serde::{Deserialize, Serialize};

use super::gaussian::replace;
use super::reduction::Reduction;
use crate::model::state_dict::{StateDict, StateDictError};
use crate::model::tensor_util::{param_from_f64, to_f64_vec, trainable_leaf};

/// Settings of a factorized readout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactorizedReadoutConfig {
    /// Masks and features start ~ N(0, init_noise) (Lurz 2020: 4.1232e-5).
    #[serde(default = "default_init_noise")]
    pub init_noise: f64,
    /// Divide each mask by its L2 norm (+1e-6).
    #[serde(default)]
    pub normalize: bool,
    /// Keep masks and features non-negative (clamped at every forward and by `constrain`).
    #[serde(default)]
    pub constrain_pos: bool,
    /// Keep features non-negative.
    #[serde(default)]
    pub positive_weights: bool,
    /// Use |mask|.
    #[serde(default)]
    pub positive_spatial: bool,
    /// Weight of the L1 penalty (the reference's `gamma_readout`).
    #[serde(default = "default_weight", alias = "gamma_readout")]
    pub feature_reg_weight: f64,
    /// Sum or mean (÷ N·C·H·W) of the L1 penalty.
    #[serde(default)]
    pub reduction: Reduction,
    /// Learn a per-neuron bias.
    #[serde(default = "default_true")]
    pub bias: bool,
}

fn default_init_noise() -> f64 {
    1e-3
}
fn default_weight() -> f64 {
    0.0076
}
fn default_true() -> bool {
    true
}

impl Default for FactorizedReadoutConfig {
    fn default() -> Self {
        Self {
            init_noise: default_init_noise(),
            normalize: false,
            constrain_pos: false,
            positive_weights: false,
            positive_spatial: false,
            feature_reg_weight: default_weight(),
            reduction: Reduction::Sum,
            bias: true,
        }
    }
}

/// Fixed settings of a built factorized readout.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorizedSettings {
    pub normalize: bool,
    pub constrain_pos: bool,
    pub positive_weights: bool,
    pub positive_spatial: bool,
    pub feature_reg_weight: f64,
    pub reduction: Reduction,
}

/// One dataset's factorized readout.
#[derive(Module, Debug)]
pub struct FactorizedReadout {
    /// Spatial masks S (N, H, W).
    pub spatial: Param<Tensor<3>>,
    /// Feature vectors f (N, C).
    pub features: Param<Tensor<2>>,
    /// Bias (N).
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub settings: FactorizedSettings,
}

impl FactorizedReadout {
    /// Masks and features ~ N(0, init_noise); bias = mean activity or 0.
    pub fn init(
        config: &FactorizedReadoutConfig,
        in_shape: [usize; 3],
        n_neurons: usize,
        mean_activity: Option<&[f32]>,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let [c, h, w] = in_shape;
        let normal = Normal::new(0.0, config.init_noise.max(0.0)).expect("finite init_noise");
        let mut draw = |k: usize| -> Vec<f64> { (0..k).map(|_| normal.sample(rng)).collect() };
        let spatial = param_from_f64(&draw(n_neurons * h * w), [n_neurons, h, w], None, device);
        let features = param_from_f64(&draw(n_neurons * c), [n_neurons, c], None, device);
        let bias = config.bias.then(|| {
            let b: Vec<f64> = match mean_activity {
                Some(m) => m.iter().map(|&v| v as f64).collect(),
                None => vec![0.0; n_neurons],
            };
            param_from_f64(&b, [n_neurons], None, device)
        });
        Self {
            spatial,
            features,
            bias,
            settings: FactorizedSettings {
                normalize: config.normalize,
                constrain_pos: config.constrain_pos,
                positive_weights: config.positive_weights,
                positive_spatial: config.positive_spatial,
                feature_reg_weight: config.feature_reg_weight,
                reduction: config.reduction,
            },
        }
    }

    /// The masks as used: |S| if positive_spatial, clamped ≥ 0 if constrain_pos, divided by
    /// (‖S_n‖₂ + 1e-6) if normalize. (N, H, W).
    pub fn normalized_spatial(&self) -> Tensor<3> {
        let mut s = self.spatial.val();
        if self.settings.constrain_pos {
            s = s.clamp_min(0.0);
        }
        if self.settings.positive_spatial {
            s = s.abs();
        }
        if self.settings.normalize {
            let norm = s.clone().square().sum_dim(2).sum_dim(1).sqrt() + 1e-6;
            s = s / norm;
        }
        s
    }

    /// The feature vectors as used (N, C): clamped ≥ 0 under constrain_pos / positive_weights.
    pub fn effective_features(&self) -> Tensor<2> {
        let f = self.features.val();
        if self.settings.constrain_pos || self.settings.positive_weights {
            f.clamp_min(0.0)
        } else {
            f
        }
    }

    /// Responses (B, N): y[b, n] = Σ_c f[n, c] · Σ_{h,w} x[b, c, h, w] · Ŝ[n, h, w] + bias.
    /// One fused op with its backward on flex (`kernels::factorized_readout`), burn ops
    /// elsewhere.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let s = self.normalized_spatial();
        let f = self.effective_features();
        let y = if crate::kernels::uses_factorized_kernel(&x, &s, &f) {
            crate::kernels::factorized_readout(x, s, f)
        } else {
            Self::read_ops(x, s, f)
        };
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// The read-out (without bias) from burn ops: masks `s` (N, H, W), features `f` (N, C).
    pub fn read_ops(x: Tensor<4>, s: Tensor<3>, f: Tensor<2>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let [n, _, _] = s.dims();
        // (B, C, HW) · (HW, N) → (B, C, N)
        let pooled = x
            .reshape([b, c, h * w])
            .matmul(s.reshape([1, n, h * w]).swap_dims(1, 2));
        let f = f.transpose().unsqueeze_dim::<3>(0); // (1, C, N)
        (pooled * f).sum_dim(1).reshape([b, n])
    }

    /// cortexfit's L1 penalty, the **per-neuron paired** form the reference intends:
    /// Σ_n (Σ_{h,w}|Ŝ_n|)·(Σ_c|f_n|) ("mean": ÷ N·C·H·W). Deviation: neuralpredictors 0.3.0
    /// broadcasts an (N,1) column against an (N,) vector and so computes
    /// (Σ_all|Ŝ|)·(Σ_all|f|) instead (see [`FactorizedReadout::reference_quirk_l1`]); that couples
    /// every neuron's mask to every other neuron's features, which is not what the penalty means.
    pub fn feature_l1(&self, reduction: Reduction) -> Tensor<1> {
        let s = self.normalized_spatial();
        let [n, h, w] = s.dims();
        let f = self.effective_features();
        let [_, c] = f.dims();
        let s_l1 = s.abs().reshape([n, h * w]).sum_dim(1).reshape([n]);
        let f_l1 = f.abs().sum_dim(1).reshape([n]);
        let l1 = (s_l1 * f_l1).sum();
        match reduction {
            Reduction::Sum => l1,
            Reduction::Mean => l1 / ((n * c * h * w) as f64),
        }
    }

    /// The value neuralpredictors 0.3.0 actually computes: (Σ|Ŝ|)·(Σ|f|) (÷ N·C·H·W for "mean"),
    /// kept to reproduce reference numbers.
    pub fn reference_quirk_l1(&self, reduction: Reduction) -> Tensor<1> {
        let s = self.normalized_spatial();
        let [n, h, w] = s.dims();
        let f = self.effective_features();
        let [_, c] = f.dims();
        let l1 = s.abs().sum() * f.abs().sum();
        match reduction {
            Reduction::Sum => l1,
            Reduction::Mean => l1 / ((n * c * h * w) as f64),
        }
    }

    /// feature_reg_weight · [`FactorizedReadout::feature_l1`].
    pub fn regularizer(&self) -> Tensor<1> {
        self.feature_l1(self.settings.reduction) * self.settings.feature_reg_weight
    }

    /// Clamps the parameters in place as the reference does (constrain_pos: masks and features
    /// ≥ 0; positive_weights: features ≥ 0); the trainer may call it after each step.
    pub fn constrain(mut self) -> Self {
        if self.settings.constrain_pos {
            self.spatial = self.spatial.map(|t| trainable_leaf(t.clamp_min(0.0)));
        }
        if self.settings.constrain_pos || self.settings.positive_weights {
            self.features = self.features.map(|t| trainable_leaf(t.clamp_min(0.0)));
        }
        self
    }

    /// Writes `spatial` (N,H,W), `features` (N,C), `bias` (N) under `prefix`.
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        sd.insert(
            format!("{prefix}spatial"),
            self.spatial.dims().to_vec(),
            to_f64_vec(self.spatial.val()),
        );
        sd.insert(
            format!("{prefix}features"),
            self.features.dims().to_vec(),
            to_f64_vec(self.features.val()),
        );
        if let Some(b) = &self.bias {
            sd.insert(
                format!("{prefix}bias"),
                b.dims().to_vec(),
                to_f64_vec(b.val()),
            );
        }
    }

    /// Reads what [`FactorizedReadout::export_state`] writes.
    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let sdims = self.spatial.dims().to_vec();
        let fdims = self.features.dims().to_vec();
        self.spatial =
            replace(Some(self.spatial), &format!("{prefix}spatial"), &sdims, sd)?.expect("present");
        self.features = replace(
            Some(self.features),
            &format!("{prefix}features"),
            &fdims,
            sd,
        )?
        .expect("present");
        let n = fdims[0];
        self.bias = replace(self.bias, &format!("{prefix}bias"), &[n], sd)?;
        Ok(self)
    }
}
