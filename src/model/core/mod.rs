//! The shared convolutional core (reference: `Stacked2dCore`, and `SE2dCore` with
//! `n_se_blocks = 0` as used by Lurz et al. 2020).
//!
//! Every neuron of every recording reads from the same feature map, so the core learns features
//! of mouse V1 in general. Block 0: conv (input kernel, optionally valid) → batch norm → ELU.
//! Blocks 1…: conv (hidden kernel, "same" padding; optionally depth-separable) → batch norm → ELU.
//! The output is the channel concatenation of the blocks listed in `stack` (default: last only).

pub mod batch_norm;
pub mod block;
pub(crate) use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::regularizers::{InputRegularizer, LAPLACE_3X3, LaplaceSettings, group_sparsity};
use crate::model::state_dict::{StateDict, StateDictError};

pub use batch_norm::BatchNorm2d;
pub use block::{Conv2d, CoreBlock, DepthSeparableConv2d, ShiftedElu, elu};

/// One value for every layer, or one value per layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerLayer<T> {
    All(T),
    Each(Vec<T>),
}

impl<T: Clone> PerLayer<T> {
    /// The value of layer `i` of `n`; `Err` when a list has the wrong length.
    fn expand(&self, n: usize, what: &str) -> Result<Vec<T>, CoreConfigError> {
        match self {
            PerLayer::All(v) => Ok(vec![v.clone(); n]),
            PerLayer::Each(v) if v.len() == n => Ok(v.clone()),
            PerLayer::Each(v) => Err(CoreConfigError(format!(
                "`{what}` lists {} values, expected {n}",
                v.len()
            ))),
        }
    }
}

/// Which blocks' outputs form the core output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stack {
    /// Blocks `s..` (Python slice start; −1 = the last block only, 0 = all blocks).
    From(i64),
    /// These blocks (negative = from the end), concatenated in this order.
    Layers(Vec<i64>),
}

/// An invalid core configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid model.core configuration: {0}")]
pub struct CoreConfigError(pub String);

/// Configuration of the stacked 2-D core. Defaults are those of the Lurz 2020 model builder
/// (`se2d_fullgaussian2d`), except the kernel sizes of the paper's preset (see `presets.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    /// Number of blocks (≥ 1).
    #[serde(default = "d_layers")]
    pub layers: usize,
    /// Output channels of each block (one number for all, or a list of `layers` numbers).
    #[serde(default = "d_hidden_channels")]
    pub hidden_channels: PerLayer<usize>,
    /// Kernel size of the first (input) convolution.
    #[serde(default = "d_input_kern")]
    pub input_kern: usize,
    /// Kernel size of the hidden convolutions (one for all, or `layers − 1` numbers).
    #[serde(default = "d_hidden_kern")]
    pub hidden_kern: PerLayer<usize>,
    /// Pad the input convolution to keep the image size (false: "valid", the map shrinks by k−1).
    #[serde(default)]
    pub pad_input: bool,
    /// Padding of the hidden convolutions; absent = "same", ((k−1)·dilation+1)/2.
    #[serde(default)]
    pub hidden_padding: Option<usize>,
    /// Dilation of the hidden convolutions.
    #[serde(default = "d_one")]
    pub hidden_dilation: usize,
    /// Hidden convolutions as 1×1 → depthwise k×k → 1×1 (far fewer weights).
    #[serde(default = "d_true")]
    pub depth_separable: bool,
    /// If > 1, block l reads the channel concatenation of the last min(skip, l) block outputs.
    #[serde(default)]
    pub skip: usize,
    /// Which blocks' outputs are stacked into the core output.
    #[serde(default = "d_stack")]
    pub stack: Stack,
    /// Bias on the input convolution (redundant before a batch norm with shift).
    #[serde(default)]
    pub input_bias: bool,
    /// Bias on the hidden convolutions (all three parts when depth-separable).
    #[serde(default)]
    pub hidden_bias: bool,
    /// Batch normalization after every convolution.
    #[serde(default = "d_true")]
    pub batch_norm: bool,
    /// Learnable per-channel shift in the batch norm.
    #[serde(default = "d_true")]
    pub batch_norm_bias: bool,
    /// Learnable per-channel scale in the batch norm (all blocks but the last).
    #[serde(default = "d_true")]
    pub batch_norm_scale: bool,
    /// Learnable per-channel scale in the last block's batch norm.
    #[serde(default = "d_true")]
    pub final_batch_norm_scale: bool,
    /// Weight of the newest batch in the running statistics (PyTorch convention: 0.9 = newest
    /// batch weighs 0.9).
    #[serde(default = "d_momentum")]
    pub momentum: f64,
    /// Batch-norm epsilon.
    #[serde(default = "d_eps")]
    pub batch_norm_eps: f64,
    /// ELU(x − elu_xshift) + elu_yshift.
    #[serde(default)]
    pub elu_xshift: f64,
    #[serde(default)]
    pub elu_yshift: f64,
    /// Apply the nonlinearity after the last block too.
    #[serde(default = "d_true")]
    pub final_nonlinearity: bool,
    /// No nonlinearity anywhere in the core (linear-nonlinear baseline).
    #[serde(default)]
    pub linear: bool,
    /// Weight of the smoothness penalty on the first-layer filters.
    #[serde(default = "d_gamma_input")]
    pub gamma_input: f64,
    /// Weight of the group-sparsity penalty on hidden filters (not for depth-separable cores).
    #[serde(default)]
    pub gamma_hidden: f64,
    /// Which smoothness penalty.
    #[serde(default)]
    pub input_regularizer: InputRegularizer,
    /// Zero padding of the Laplace filter; absent = 1 ("same").
    #[serde(default)]
    pub laplace_padding: Option<usize>,
    /// Mean instead of sum in the smoothness penalty (reference `use_avg_reg`).
    #[serde(default)]
    pub use_avg_reg: bool,
}

fn d_layers() -> usize {
    4
}
fn d_hidden_channels() -> PerLayer<usize> {
    PerLayer::All(64)
}
fn d_input_kern() -> usize {
    9
}
fn d_hidden_kern() -> PerLayer<usize> {
    PerLayer::All(7)
}
fn d_one() -> usize {
    1
}
fn d_true() -> bool {
    true
}
fn d_stack() -> Stack {
    Stack::From(-1)
}
fn d_momentum() -> f64 {
    0.9
}
fn d_eps() -> f64 {
    1e-5
}
fn d_gamma_input() -> f64 {
    6.3831
}

impl Default for CoreConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every core field has a default")
    }
}

/// Per-layer channels, hidden kernels and stacked block indices.
type Resolved = (Vec<usize>, Vec<usize>, Vec<usize>);

/// Static description of a built core.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreSettings {
    /// Block indices whose outputs are concatenated.
    pub stack: Vec<usize>,
    pub skip: usize,
    pub gamma_input: f64,
    pub gamma_hidden: f64,
    pub laplace: LaplaceSettings,
    pub depth_separable: bool,
    /// Channels of the core output.
    pub out_channels: usize,
}

/// Whether batch norm uses batch statistics (and updates its running statistics) or the
/// running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchNormMode {
    Train,
    Eval,
}

/// The stacked 2-D core.
#[derive(Module, Debug)]
pub struct Stacked2dCore {
    pub blocks: Vec<CoreBlock>,
    #[module(skip)]
    pub settings: CoreSettings,
}

impl CoreConfig {
    /// Checks the configuration for an input with `in_channels` channels; returns per-layer
    /// channels and hidden kernels.
    fn resolve(&self) -> Result<Resolved, CoreConfigError> {
        let err = |m: String| Err(CoreConfigError(m));
        if self.layers == 0 {
            return err("`layers` must be at least 1".into());
        }
        let channels = self
            .hidden_channels
            .expand(self.layers, "hidden_channels")?;
        let kernels = self.hidden_kern.expand(self.layers - 1, "hidden_kern")?;
        if channels.contains(&0) {
            return err("`hidden_channels` must be positive".into());
        }
        if self.input_kern == 0 || kernels.contains(&0) {
            return err("kernel sizes must be positive".into());
        }
        if self.hidden_dilation == 0 {
            return err("`hidden_dilation` must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return err(format!(
                "`momentum` must lie in [0, 1], got {}",
                self.momentum
            ));
        }
        if self.batch_norm_eps.is_nan() || self.batch_norm_eps <= 0.0 {
            return err(format!(
                "`batch_norm_eps` must be positive, got {}",
                self.batch_norm_eps
            ));
        }
        if self.gamma_hidden != 0.0 && self.depth_separable {
            return err(format!(
                "`gamma_hidden` = {} has no effect with `depth_separable = true`: the reference \
                 applies the hidden layers' group-sparsity penalty only to dense hidden \
                 convolutions and silently drops it here; set gamma_hidden = 0 or \
                 depth_separable = false",
                self.gamma_hidden
            ));
        }
        if self.input_regularizer == InputRegularizer::GaussianLaplaceL2
            && self.laplace_padding.is_some_and(|p| p != 1)
        {
            return err("GaussianLaplaceL2 needs `laplace_padding` 1 (or absent)".into());
        }
        let n = self.layers as i64;
        let pick = |i: i64| -> Result<usize, CoreConfigError> {
            let j = if i < 0 { n + i } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(CoreConfigError(format!(
                    "`stack` refers to block {i}, but the core has {n} blocks"
                )))
            }
        };
        let stack = match &self.stack {
            Stack::From(s) => {
                let start = if *s < 0 { (n + s).max(0) } else { (*s).min(n) };
                (start..n).map(|i| i as usize).collect()
            }
            Stack::Layers(list) => list
                .iter()
                .map(|&i| pick(i))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if stack.is_empty() {
            return err("`stack` selects no block".into());
        }
        Ok((channels, kernels, stack))
    }

    /// Output channels and spatial size of the core for an input of (channels, height, width).
    pub fn output_shape(&self, in_shape: [usize; 3]) -> Result<[usize; 3], CoreConfigError> {
        let (channels, kernels, stack) = self.resolve()?;
        let [_, mut h, mut w] = in_shape;
        let p = if self.pad_input {
            self.input_kern / 2
        } else {
            0
        };
        let shrink = |size: usize, k: usize, p: usize, d: usize| -> Option<usize> {
            (size + 2 * p).checked_sub(d * (k - 1)).filter(|&s| s > 0)
        };
        let too_small = || {
            CoreConfigError(format!(
                "input {in_shape:?} is too small for the core's kernels"
            ))
        };
        h = shrink(h, self.input_kern, p, 1).ok_or_else(too_small)?;
        w = shrink(w, self.input_kern, p, 1).ok_or_else(too_small)?;
        let mut sizes = vec![(h, w)];
        for (l, &k) in kernels.iter().enumerate() {
            let p = self.hidden_pad(k);
            h = shrink(h, k, p, self.hidden_dilation).ok_or_else(too_small)?;
            w = shrink(w, k, p, self.hidden_dilation).ok_or_else(too_small)?;
            sizes.push((h, w));
            // Skip connections concatenate earlier outputs, which must have one size.
            let block = l + 1;
            if self.skip > 1 && block + 1 < self.layers {
                let inputs = &sizes[block + 1 - self.skip.min(block + 1)..=block];
                if inputs.iter().any(|s| *s != sizes[block]) {
                    return Err(CoreConfigError(format!(
                        "`skip` {} concatenates block outputs of different sizes {inputs:?}; use \"same\" hidden padding",
                        self.skip
                    )));
                }
            }
        }
        let stacked: Vec<(usize, usize)> = stack.iter().map(|&i| sizes[i]).collect();
        if stacked.iter().any(|s| *s != stacked[0]) {
            return Err(CoreConfigError(format!(
                "`stack` concatenates block outputs of different sizes {stacked:?}; use \"same\" hidden padding"
            )));
        }
        let (h, w) = stacked[0];
        let c = stack.iter().map(|&i| channels[i]).sum();
        Ok([c, h, w])
    }

    fn hidden_pad(&self, k: usize) -> usize {
        self.hidden_padding
            .unwrap_or(((k - 1) * self.hidden_dilation).div_ceil(2))
    }

    /// Builds a core for `in_channels` input channels: Xavier-normal weights, zero biases, batch
    /// norm at scale 1 / shift 0 / running mean 0 / running variance 1, all from `seed`.
    pub fn init(
        &self,
        in_channels: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Stacked2dCore, CoreConfigError> {
        let (channels, kernels, stack) = self.resolve()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut blocks = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let out = channels[l];
            let last = l + 1 == self.layers;
            let (conv, ds_conv) = if l == 0 {
                let pad = if self.pad_input {
                    self.input_kern / 2
                } else {
                    0
                };
                let conv = Conv2d::init(
                    in_channels,
                    out,
                    self.input_kern,
                    pad,
                    1,
                    1,
                    self.input_bias,
                    &mut rng,
                    device,
                );
                (Some(conv), None)
            } else {
                let cin = if self.skip > 1 {
                    channels[l - self.skip.min(l)..l].iter().sum()
                } else {
                    channels[l - 1]
                };
                let k = kernels[l - 1];
                let pad = self.hidden_pad(k);
                let d = self.hidden_dilation;
                let b = self.hidden_bias;
                if self.depth_separable {
                    let ds = DepthSeparableConv2d {
                        in_depth_conv: Conv2d::init(cin, out, 1, 0, 1, 1, b, &mut rng, device),
                        spatial_conv: Conv2d::init(out, out, k, pad, d, out, b, &mut rng, device),
                        out_depth_conv: Conv2d::init(out, out, 1, 0, 1, 1, b, &mut rng, device),
                    };
                    (None, Some(ds))
                } else {
                    let conv = Conv2d::init(cin, out, k, pad, d, 1, b, &mut rng, device);
                    (Some(conv), None)
                }
            };
            let scale = if last {
                self.final_batch_norm_scale
            } else {
                self.batch_norm_scale
            };
            let norm = self.batch_norm.then(|| {
                BatchNorm2d::new(
                    out,
                    scale,
                    self.batch_norm_bias,
                    self.momentum,
                    self.batch_norm_eps,
                    device,
                )
            });
            let activation =
                (!self.linear && (!last || self.final_nonlinearity)).then_some(ShiftedElu {
                    xshift: self.elu_xshift,
                    yshift: self.elu_yshift,
                });
            blocks.push(CoreBlock {
                conv,
                ds_conv,
                norm,
                activation,
            });
        }
        let out_channels = stack.iter().map(|&i| channels[i]).sum();
        Ok(Stacked2dCore {
            blocks,
            settings: CoreSettings {
                stack,
                skip: self.skip,
                gamma_input: self.gamma_input,
                gamma_hidden: self.gamma_hidden,
                laplace: LaplaceSettings {
                    kind: self.input_regularizer,
                    padding: self.laplace_padding,
                    avg: self.use_avg_reg,
                },
                depth_separable: self.depth_separable,
                out_channels,
            },
        })
    }
}

impl Stacked2dCore {
    /// Every block's output in `mode` (batch-norm running statistics update in `Train`).
    pub fn forward_layers(&mut self, x: Tensor<4>, mode: BatchNormMode) -> Vec<Tensor<4>> {
        let skip = self.settings.skip;
        let mut outs: Vec<Tensor<4>> = Vec::with_capacity(self.blocks.len());
        for (l, block) in self.blocks.iter_mut().enumerate() {
            let input = if l == 0 {
                x.clone()
            } else if skip > 1 {
                Tensor::cat(outs[l - skip.min(l)..].to_vec(), 1)
            } else {
                outs[l - 1].clone()
            };
            let y = match mode {
                BatchNormMode::Train => block.forward_train(input),
                BatchNormMode::Eval => block.forward_eval(input),
            };
            outs.push(y);
        }
        outs
    }

    /// The core output (B, C, h, w) in `mode`.
    pub fn forward(&mut self, x: Tensor<4>, mode: BatchNormMode) -> Tensor<4> {
        let mut outs = self.forward_layers(x, mode);
        let stack = &self.settings.stack;
        if stack.len() == 1 {
            return outs.swap_remove(stack[0]);
        }
        Tensor::cat(stack.iter().map(|&i| outs[i].clone()).collect(), 1)
    }

    /// Evaluation-mode output without needing `&mut` (running statistics are only read).
    pub fn forward_eval(&self, x: Tensor<4>) -> Tensor<4> {
        let skip = self.settings.skip;
        let mut outs: Vec<Tensor<4>> = Vec::with_capacity(self.blocks.len());
        for (l, block) in self.blocks.iter().enumerate() {
            let input = if l == 0 {
                x.clone()
            } else if skip > 1 {
                Tensor::cat(outs[l - skip.min(l)..].to_vec(), 1)
            } else {
                outs[l - 1].clone()
            };
            outs.push(block.forward_eval(input));
        }
        let stack = &self.settings.stack;
        if stack.len() == 1 {
            return outs.swap_remove(stack[0]);
        }
        Tensor::cat(stack.iter().map(|&i| outs[i].clone()).collect(), 1)
    }

    /// Channels of the core output.
    pub fn out_channels(&self) -> usize {
        self.settings.out_channels
    }

    /// The smoothness penalty of the first-layer filters (without γ).
    pub fn laplace(&self) -> Tensor<1> {
        let w = self.blocks[0]
            .plain_conv_weight()
            .expect("block 0 is a plain convolution");
        self.settings.laplace.penalty(w)
    }

    /// Group sparsity of the hidden convolutions (without γ); 0 for depth-separable cores.
    pub fn group_sparsity(&self) -> Tensor<1> {
        let hidden: Vec<Tensor<4>> = self.blocks[1..]
            .iter()
            .filter_map(|b| b.plain_conv_weight())
            .collect();
        let zero = || {
            let w = self.blocks[0]
                .plain_conv_weight()
                .expect("block 0 is a plain convolution");
            w.sum().mul_scalar(0.0).detach()
        };
        if self.settings.depth_separable {
            return zero();
        }
        group_sparsity(&hidden, self.blocks.len()).unwrap_or_else(zero)
    }

    /// γ_hidden·group sparsity + γ_input·smoothness (reference `Stacked2dCore.regularizer`).
    pub fn regularizer(&self) -> Tensor<1> {
        let lap = self.laplace().mul_scalar(self.settings.gamma_input);
        if self.settings.gamma_hidden == 0.0 || self.settings.depth_separable {
            return lap;
        }
        lap.add(self.group_sparsity().mul_scalar(self.settings.gamma_hidden))
    }

    /// Writes the reference state-dict entries (`features.layer{l}.…` and the Laplace filter
    /// buffer) under `prefix` (e.g. `core.`).
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        for (l, block) in self.blocks.iter().enumerate() {
            block.export_state(&format!("{prefix}features.layer{l}."), sd);
        }
        sd.insert(
            format!("{prefix}_input_weights_regularizer.laplace.filter"),
            vec![1, 1, 3, 3],
            LAPLACE_3X3.to_vec(),
        );
    }

    /// Reads the entries [`export_state`](Self::export_state) writes (the Laplace filter buffer
    /// is optional); shapes must match this core's configuration.
    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let blocks = std::mem::take(&mut self.blocks);
        self.blocks = blocks
            .into_iter()
            .enumerate()
            .map(|(l, b)| b.import_state(&format!("{prefix}features.layer{l}."), sd))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests;
