//! One block of the stacked core: convolution (plain or depth-separable) → batch norm → ELU.

use burn::module::{Module, Param};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::model::state_dict::{StateDict, StateDictError};

use super::batch_norm::BatchNorm2d;
use crate::model::tensor_util::{replace_param, tensor_f64, tensor_like, to_f64_vec as values};

/// Which forward pass a convolution serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training: the batch is one sum (and, with batch norm, normalised together), so two
    /// images may share one FFT (their values then depend on each other at float rounding
    /// level).
    Train,
    /// Evaluation: each image on its own, so a prediction does not depend on its batch.
    Eval,
}
/// A 2-D cross-correlation (PyTorch `Conv2d`, stride 1, zero padding). All of the core's
/// convolutions go through [`Conv2d::forward`], so a faster kernel can be swapped in here.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// (out, in/groups, kh, kw).
    pub weight: Param<Tensor<4>>,
    /// (out); `None` = no bias.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub padding: usize,
    #[module(skip)]
    pub dilation: usize,
    #[module(skip)]
    pub groups: usize,
}

impl Conv2d {
    /// Xavier-normal weights (PyTorch fan convention: fan_in = in/groups·k², fan_out = out·k²),
    /// zero bias.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
        bias: bool,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let per_group = in_channels / groups;
        let shape = [out_channels, per_group, kernel, kernel];
        let receptive = (kernel * kernel) as f64;
        let fan_in = per_group as f64 * receptive;
        let fan_out = out_channels as f64 * receptive;
        let std = (2.0 / (fan_in + fan_out)).sqrt();
        let normal = Normal::new(0.0, std).expect("finite std");
        let w: Vec<f64> = (0..shape.iter().product::<usize>())
            .map(|_| normal.sample(rng))
            .collect();
        Self {
            weight: Param::from_tensor(tensor_f64(&w, shape, device)),
            bias: bias.then(|| {
                Param::from_tensor(tensor_f64(&vec![0.0; out_channels], [out_channels], device))
            }),
            padding,
            dilation,
            groups,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_in(x, Mode::Eval)
    }

    /// [`Conv2d::forward`]; in [`Mode::Train`] large channel-wise filters may pair images in
    /// one FFT ([`crate::kernels::conv2d_training`]).
    pub fn forward_in(&self, x: Tensor<4>, mode: Mode) -> Tensor<4> {
        if self.bias.is_none() && self.dilation == 1 {
            // cortexfit's kernels (depthwise and single-input-channel convs on flex; burn's
            // conv2d for everything else).
            let padding = [self.padding, self.padding];
            let w = self.weight.val();
            return match mode {
                Mode::Train => crate::kernels::conv2d_training(x, w, padding, self.groups),
                Mode::Eval => crate::kernels::conv2d(x, w, padding, self.groups),
            };
        }
        let options = ConvOptions::new(
            [1, 1],
            [self.padding, self.padding],
            [self.dilation, self.dilation],
            self.groups,
        );
        burn::tensor::module::conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            options,
        )
    }

    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        let w = self.weight.val();
        sd.insert(format!("{prefix}weight"), w.dims().to_vec(), values(w));
        if let Some(b) = &self.bias {
            let b = b.val();
            sd.insert(format!("{prefix}bias"), b.dims().to_vec(), values(b));
        }
    }

    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let like = self.weight.val();
        let shape = like.dims();
        let w = sd.get(&format!("{prefix}weight"), &shape)?;
        replace_param(&mut self.weight, tensor_like(&w.data, shape, &like));
        if let Some(bias) = self.bias.as_mut() {
            let n = shape[0];
            let b = sd.get(&format!("{prefix}bias"), &[n])?;
            replace_param(bias, tensor_like(&b.data, [n], &like));
        }
        Ok(self)
    }
}

/// 1×1 conv (in→out) → depthwise k×k conv (groups = out) → 1×1 conv (out→out)
/// (reference: `DepthSeparableConv2d`).
#[derive(Module, Debug)]
pub struct DepthSeparableConv2d {
    pub in_depth_conv: Conv2d,
    pub spatial_conv: Conv2d,
    pub out_depth_conv: Conv2d,
}

impl DepthSeparableConv2d {
    /// No biases, no dilation and no padding of the 1×1 convs: the block
    /// [`crate::kernels::depth_separable_eval`] computes.
    fn is_plain(&self) -> bool {
        let convs = [
            &self.in_depth_conv,
            &self.spatial_conv,
            &self.out_depth_conv,
        ];
        convs.iter().all(|c| c.bias.is_none() && c.dilation == 1)
            && [&self.in_depth_conv, &self.out_depth_conv]
                .iter()
                .all(|c| c.padding == 0 && c.groups == 1)
            && self.spatial_conv.groups == self.spatial_conv.weight.dims()[0]
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_in(x, Mode::Eval)
    }

    /// [`DepthSeparableConv2d::forward`] in `mode` (see [`Conv2d::forward_in`]).
    pub fn forward_in(&self, x: Tensor<4>, mode: Mode) -> Tensor<4> {
        let x = self.in_depth_conv.forward_in(x, mode);
        let x = self.spatial_conv.forward_in(x, mode);
        self.out_depth_conv.forward_in(x, mode)
    }
}

/// ELU(x − xshift) + yshift (reference: `AdaptiveELU`; plain ELU with both shifts 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftedElu {
    pub xshift: f64,
    pub yshift: f64,
}

impl ShiftedElu {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.xshift != 0.0 {
            x.sub_scalar(self.xshift)
        } else {
            x
        };
        let y = elu(x);
        if self.yshift != 0.0 {
            y.add_scalar(self.yshift)
        } else {
            y
        }
    }
}

/// ELU with α = 1: x for x > 0, exp(x) − 1 otherwise. The exponential only sees x ≤ 0, so large
/// inputs cannot overflow it (an inf there would turn the gradient into NaN).
pub fn elu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    // One fused pass forward and backward on flex (cortexfit::kernels::elu).
    crate::kernels::elu(x)
}

/// One core block.
#[derive(Module, Debug)]
pub struct CoreBlock {
    /// Plain convolution (the input block, and hidden blocks unless depth-separable).
    pub conv: Option<Conv2d>,
    /// Depth-separable convolution (hidden blocks when `depth_separable`).
    pub ds_conv: Option<DepthSeparableConv2d>,
    /// Batch norm (absent when `batch_norm = false`).
    pub norm: Option<BatchNorm2d>,
    /// Nonlinearity (absent in linear mode and on the last block without final nonlinearity).
    #[module(skip)]
    pub activation: Option<ShiftedElu>,
}

impl CoreBlock {
    fn convolve(&self, x: Tensor<4>, mode: Mode) -> Tensor<4> {
        match (&self.conv, &self.ds_conv) {
            (Some(conv), _) => conv.forward_in(x, mode),
            (None, Some(ds)) => ds.forward_in(x, mode),
            (None, None) => unreachable!("a core block always has a convolution"),
        }
    }

    fn activate(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.activation {
            Some(act) => act.forward(x),
            None => x,
        }
    }

    /// Evaluation mode: batch norm with running statistics.
    pub fn forward_eval(&self, x: Tensor<4>) -> Tensor<4> {
        // A depth-separable block with batch norm and a plain ELU image by image.
        if let (Some(ds), Some(norm), Some(act)) = (&self.ds_conv, &self.norm, &self.activation)
            && act.xshift == 0.0
            && ds.is_plain()
        {
            let (gain, offset) = norm.eval_gain_and_offset();
            let filters = [
                ds.in_depth_conv.weight.val(),
                ds.spatial_conv.weight.val(),
                ds.out_depth_conv.weight.val(),
            ];
            let pad = ds.spatial_conv.padding;
            let y = crate::kernels::depth_separable_eval(x, filters, gain, offset, pad);
            return if act.yshift != 0.0 {
                y.add_scalar(act.yshift)
            } else {
                y
            };
        }
        let x = self.convolve(x, Mode::Eval);
        match (&self.norm, &self.activation) {
            // Batch norm and a plain ELU in one pass.
            (Some(norm), Some(act)) if act.xshift == 0.0 => {
                let y = norm.forward_eval_elu(x);
                if act.yshift != 0.0 {
                    y.add_scalar(act.yshift)
                } else {
                    y
                }
            }
            (Some(norm), _) => self.activate(norm.forward_eval(x)),
            (None, _) => self.activate(x),
        }
    }

    /// Training mode: batch norm with batch statistics, running statistics updated.
    pub fn forward_train(&mut self, x: Tensor<4>) -> Tensor<4> {
        let x = self.convolve(x, Mode::Train);
        match (self.norm.as_mut(), &self.activation) {
            // Batch norm and a plain ELU as one op.
            (Some(norm), Some(act)) if act.xshift == 0.0 => {
                let y = norm.forward_train_elu(x);
                if act.yshift != 0.0 {
                    y.add_scalar(act.yshift)
                } else {
                    y
                }
            }
            (Some(norm), _) => {
                let x = norm.forward_train(x);
                self.activate(x)
            }
            (None, _) => self.activate(x),
        }
    }

    /// The (single) convolution weights whose smoothness / sparsity is regularized.
    pub fn plain_conv_weight(&self) -> Option<Tensor<4>> {
        self.conv.as_ref().map(|c| c.weight.val())
    }

    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        if let Some(conv) = &self.conv {
            conv.export_state(&format!("{prefix}conv."), sd);
        }
        if let Some(ds) = &self.ds_conv {
            ds.in_depth_conv
                .export_state(&format!("{prefix}ds_conv.in_depth_conv."), sd);
            ds.spatial_conv
                .export_state(&format!("{prefix}ds_conv.spatial_conv."), sd);
            ds.out_depth_conv
                .export_state(&format!("{prefix}ds_conv.out_depth_conv."), sd);
        }
        if let Some(norm) = &self.norm {
            norm.export_state(prefix, sd);
        }
    }

    pub fn import_state(mut self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        if let Some(conv) = self.conv.take() {
            self.conv = Some(conv.import_state(&format!("{prefix}conv."), sd)?);
        }
        if let Some(ds) = self.ds_conv.take() {
            self.ds_conv = Some(DepthSeparableConv2d {
                in_depth_conv: ds
                    .in_depth_conv
                    .import_state(&format!("{prefix}ds_conv.in_depth_conv."), sd)?,
                spatial_conv: ds
                    .spatial_conv
                    .import_state(&format!("{prefix}ds_conv.spatial_conv."), sd)?,
                out_depth_conv: ds
                    .out_depth_conv
                    .import_state(&format!("{prefix}ds_conv.out_depth_conv."), sd)?,
            });
        }
        if let Some(norm) = self.norm.take() {
            self.norm = Some(norm.import_state(prefix, sd)?);
        }
        Ok(self)
    }
}
