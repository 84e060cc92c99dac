//! The point-pooled readout of Sinz et al. 2018 (reference: `PointPooled2d`): each neuron reads
//! one point g of the feature map and of `pool_steps` successively average-pooled copies of it
//! (a pyramid, so a point also sees a wider neighbourhood), and weights the concatenated vectors.

use burn::module::{Module, Param};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::bilinear::{bilinear_readout, clamp_straight_through};
use super::gaussian::replace;
use super::reduction::Reduction;
use crate::model::state_dict::{StateDict, StateDictError};
use crate::model::tensor_util::{param_from_f64, to_f64_vec, trainable_leaf};

/// Settings of a point-pooled readout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointPooledReadoutConfig {
    /// Number of pooled levels above the feature map.
    #[serde(default = "default_pool_steps")]
    pub pool_steps: usize,
    /// Pooling kernel = stride.
    #[serde(default = "default_pool_kern")]
    pub pool_kern: usize,
    /// Points start ~ U(±init_range).
    #[serde(default = "default_init_range")]
    pub init_range: f64,
    /// Weight of Σ|features| (the reference's `gamma_readout`).
    #[serde(default = "default_weight", alias = "gamma_readout")]
    pub feature_reg_weight: f64,
    /// Sum or mean of |features|.
    #[serde(default)]
    pub reduction: Reduction,
    /// Learn a per-neuron bias.
    #[serde(default = "default_true")]
    pub bias: bool,
}

fn default_pool_steps() -> usize {
    2
}
fn default_pool_kern() -> usize {
    3
}
fn default_init_range() -> f64 {
    0.2
}
fn default_weight() -> f64 {
    0.0207
}
fn default_true() -> bool {
    true
}

impl Default for PointPooledReadoutConfig {
    /// The Lurz et al. 2020 point-pooled baseline.
    fn default() -> Self {
        Self {
            pool_steps: default_pool_steps(),
            pool_kern: default_pool_kern(),
            init_range: default_init_range(),
            feature_reg_weight: default_weight(),
            reduction: Reduction::Sum,
            bias: true,
        }
    }
}

/// Fixed settings of a built point-pooled readout.
#[derive(Debug, Clone, PartialEq)]
pub struct PointPooledSettings {
    pub pool_steps: usize,
    pub pool_kern: usize,
    pub feature_reg_weight: f64,
    pub reduction: Reduction,
}

/// One dataset's point-pooled readout.
#[derive(Module, Debug)]
pub struct PointPooledReadout {
    /// Read points g (N, 2), (x, y).
    pub grid: Param<Tensor<2>>,
    /// Weights (C·(pool_steps+1), N), row k = level·C + c.
    pub features: Param<Tensor<2>>,
    /// Bias (N).
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub settings: PointPooledSettings,
}

impl PointPooledReadout {
    /// Points U(±init_range), features 1/C, bias = mean activity or 0.
    pub fn init(
        config: &PointPooledReadoutConfig,
        n_channels: usize,
        n_neurons: usize,
        mean_activity: Option<&[f32]>,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let r = config.init_range;
        let grid: Vec<f64> = (0..n_neurons * 2)
            .map(|_| {
                if r > 0.0 {
                    rng.random_range(-r..r)
                } else {
                    0.0
                }
            })
            .collect();
        let k = n_channels * (config.pool_steps + 1);
        let features = vec![1.0 / n_channels as f64; k * n_neurons];
        let bias = config.bias.then(|| {
            let b: Vec<f64> = match mean_activity {
                Some(m) => m.iter().map(|&v| v as f64).collect(),
                None => vec![0.0; n_neurons],
            };
            param_from_f64(&b, [n_neurons], None, device)
        });
        Self {
            grid: param_from_f64(&grid, [n_neurons, 2], None, device),
            features: param_from_f64(&features, [k, n_neurons], None, device),
            bias,
            settings: PointPooledSettings {
                pool_steps: config.pool_steps,
                pool_kern: config.pool_kern,
                feature_reg_weight: config.feature_reg_weight,
                reduction: config.reduction,
            },
        }
    }

    /// The feature map and its pooled copies: avg pool, kernel = stride = pool_kern, no padding,
    /// floor mode.
    pub fn pyramid(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let k = self.settings.pool_kern;
        let mut levels = vec![x];
        for _ in 0..self.settings.pool_steps {
            let last = levels.last().expect("≥1 level").clone();
            levels.push(avg_pool2d(
                last,
                AvgPoolOptions {
                    kernel_size: [k, k],
                    stride: [k, k],
                    padding: [(0, 0); 2],
                    count_include_pad: false,
                    ceil_mode: false,
                },
            ));
        }
        levels
    }

    /// The read points as used: the grid clamped to [−1, 1] (value clamped, gradient as for the
    /// reference's in-place clamp).
    pub fn points(&self) -> Tensor<2> {
        clamp_straight_through(self.grid.val())
    }

    /// Responses (B, N); `shift` (B, 2) is added to the points after the clamp.
    ///
    /// y[b, n] = Σ_l Σ_c bilinear(level_l[b, c], g_n) · features[l·C + c, n]: one Gaussian-style
    /// read-out per pyramid level with that level's rows of the features, so each level runs on
    /// the fused read-out kernel where it applies (`kernels::bilinear_readout`, no
    /// batch × neurons × C·(L+1) intermediate) and as burn ops elsewhere.
    pub fn forward(&self, x: Tensor<4>, shift: Option<Tensor<2>>) -> Tensor<2> {
        let [b, c, _, _] = x.dims();
        let [n, _] = self.grid.dims();
        let points = self.points().unsqueeze_dim::<3>(0).expand([b, n, 2]);
        let points = match shift {
            Some(s) => points + s.unsqueeze_dim(1),
            None => points,
        };
        let features = self.features.val();
        let y = self
            .pyramid(x)
            .into_iter()
            .enumerate()
            .map(|(level, map)| {
                bilinear_readout(
                    map,
                    points.clone(),
                    features.clone().narrow(0, level * c, c),
                )
            })
            .reduce(|sum, y| sum + y)
            .expect("≥1 level");
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// Unweighted Σ|features| or mean (shape [1]).
    pub fn feature_l1(&self, reduction: Reduction) -> Tensor<1> {
        let a = self.features.val().abs();
        match reduction {
            Reduction::Sum => a.sum(),
            Reduction::Mean => a.mean(),
        }
    }

    /// feature_reg_weight · feature L1.
    pub fn regularizer(&self) -> Tensor<1> {
        self.feature_l1(self.settings.reduction) * self.settings.feature_reg_weight
    }

    /// Clamps the grid parameter to [−1, 1] (the reference does this in place every call).
    pub fn clamp_grid(mut self) -> Self {
        self.grid = self.grid.map(|t| trainable_leaf(t.clamp(-1.0, 1.0)));
        self
    }

    /// Writes `grid` (1,N,1,2), `features` (1,K,1,N), `bias` (N) under `prefix`.
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        let [k, n] = self.features.dims();
        sd.insert(
            format!("{prefix}grid"),
            vec![1, n, 1, 2],
            to_f64_vec(self.grid.val()),
        );
        sd.insert(
            format!("{prefix}features"),
            vec![1, k, 1, n],
            to_f64_vec(self.features.val()),
        );
        if let Some(b) = &self.bias {
            sd.insert(format!("{prefix}bias"), vec![n], to_f64_vec(b.val()));
        }
    }

    /// Reads what [`PointPooledReadout::export_state`] writes.
    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let [k, n] = self.features.dims();
        self.grid = replace(Some(self.grid), &format!("{prefix}grid"), &[1, n, 1, 2], sd)?
            .expect("present");
        self.features = replace(
            Some(self.features),
            &format!("{prefix}features"),
            &[1, k, 1, n],
            sd,
        )?
        .expect("present");
        self.bias = replace(self.bias, &format!("{prefix}bias"), &[n], sd)?;
        Ok(self)
    }
}
