//! Faster CPU kernels for the operations that dominate training the lurz2020 core on burn's
//! flex backend, plugged into burn through its backend-extension mechanism (so they work on
//! `Tensor<D>` on a flex or autodiff-flex device, with gradients).
//!
//! - [`channelwise`]: direct, vectorised loops for convolutions where each output channel reads
//!   one input plane — the depthwise 13×13 hidden convs and the 1→64 15×15 input conv —
//!   forward and backward. burn runs their backward through grouped / transposed convolutions
//!   built from im2col, which is several times slower at these shapes.
//!   The 13×13 depthwise convs of training go through the FFT instead ([`fft_conv`], on the
//!   transforms of [`fft`]): about twice as fast at that filter size.
//!
//! - [`pointwise`]: 1×1 convolutions as one matrix product per image (forward, input and filter
//!   gradients) instead of burn's conv backward through a transposed convolution and im2col.
//! - [`depth_separable`]: in evaluation mode, a whole depth-separable block (1×1, depthwise,
//!   1×1, batch norm, ELU) image by image, its intermediates in cache instead of memory.
//! - [`isa`]: the instruction set (AVX-512, AVX2 + FMA, portable) the kernels run on, chosen at
//!   run time.
//!
//! - [`elu`]: ELU as one fused pass forward and backward instead of five burn ops each.
//! - [`batch_norm`]: training-mode batch norm (batch statistics) in three passes forward and two
//!   backward instead of a dozen burn ops each, also with the core block's ELU folded in, so
//!   neither the normalised map nor its gradient is written; [`batch_norm_op`]: both as burn
//!   backend ops.
//! - [`readout`]: the Gaussian readout's bilinear read at each neuron's position dotted with its
//!   feature vector, one pass per image instead of some forty burn ops over batch × neurons ×
//!   channels intermediates (the point-pooled readout uses it once per pyramid level).
//! - [`poisson`]: the Poisson loss in one parallel pass forward and one backward.
//! - [`position_sampling`]: the Gaussian readout's training positions clamp(μ + Σz, −1, 1) in one
//!   parallel pass forward and one backward instead of a dozen single-threaded burn ops.
//! - [`factorized`]: the factorized readout's mask-and-feature read-out as one op, without its
//!   batch × channels × neurons intermediate.
//! - [`memory`]: allocator settings that keep freed activation buffers for reuse instead of
//!   returning them to the OS after every step (the largest single saving), and output
//!   buffers that are either zeroed by all threads rather than by the calling one, or, where a
//!   kernel writes every value, not zeroed at all.
//!
//! [`conv2d`], [`elu`], [`batch_norm_train`], [`batch_norm_elu_train`] and
//! [`depth_separable_eval`] are the entry points the model uses: they take
//! the fast path where it applies and fall back to burn's ops everywhere else (other shapes,
//! dtypes or devices), so callers never need to know which one ran. [`bilinear_readout`] is the
//! fast path alone; `model::readout::bilinear` falls back to its own burn-op composition where
//! [`uses_readout_kernel`] says no. `benches/kernels.rs` times both side by side, and the run
//! option `kernels = "burn"` ([`Kernels`], `cortexfit bench --kernels burn`) turns the fast
//! paths off to time or check burn's own implementation of a whole model.

pub mod batch_norm;
pub mod batch_norm_op;
pub mod channelwise;
mod correlate;
pub mod depth_separable;
pub mod elu;
pub mod extension;
pub mod factorized;
mod fft;
mod fft_conv;
mod filter_grad;
pub mod isa;
mod matmul;
pub mod memory;
pub mod pointwise;
pub mod poisson;
pub mod position_sampling;
pub mod readout;
mod vector;

#[cfg(test)]
mod fused_tests;
#[cfg(test)]
mod isa_tests;
#[cfg(test)]
mod objective_tests;
#[cfg(test)]
mod tests;

use batch_norm_op::{BatchNormBackend, BatchNormEluBackend};
use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::module::{self, BatchNormTrainOutput};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use depth_separable::DepthSeparableEvalBackend;
use elu::{AffineEluBackend, EluBackend};
use extension::ChannelwiseConvBackend;
use factorized::FactorizedReadoutBackend;
use pointwise::PointwiseConvBackend;
use readout::BilinearReadoutBackend;

pub use isa::{Isa, use_isa};
pub use poisson::{poisson_loss, uses_poisson_kernel};
pub use position_sampling::{sampled_positions, uses_position_kernel};

/// 2-D convolution with stride 1, no dilation and no bias, as in every layer of the lurz2020
/// core: `x` `[batch, in_channels, h, w]`, `weight` `[out_channels, in_channels / groups, kh, kw]`,
/// symmetric zero `padding` `[top/bottom, left/right]`.
///
/// Uses cortexfit's channel-wise kernels on flex for depthwise convs (`groups == in_channels ==
/// out_channels`) and for convs from a single input channel; burn's `conv2d` otherwise.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, padding: [usize; 2], groups: usize) -> Tensor<4> {
    conv2d_with(x, weight, padding, groups, false)
}

/// [`conv2d`] for training mode: large channel-wise filters may go through the FFT with two
/// images per transform ([`channelwise::forward_auto`]), so each image's values depend on its
/// partner's at float rounding level. Training sums the batch into one loss (and batch norm
/// normalises it together), so nothing observable depends on images being apart there;
/// evaluation keeps [`conv2d`], where a prediction must not depend on the rest of its batch.
pub fn conv2d_training(
    x: Tensor<4>,
    weight: Tensor<4>,
    padding: [usize; 2],
    groups: usize,
) -> Tensor<4> {
    conv2d_with(x, weight, padding, groups, true)
}

fn conv2d_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    padding: [usize; 2],
    groups: usize,
    pair_images: bool,
) -> Tensor<4> {
    if uses_channelwise_kernel(&x, &weight, padding, groups) {
        let out = <Dispatch as ChannelwiseConvBackend>::channelwise_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            padding[0],
            padding[1],
            pair_images,
        );
        return Tensor::from_dispatch(out);
    }
    if is_pointwise(&weight, padding, groups) && enabled() {
        return pointwise_conv2d(x, weight);
    }
    module::conv2d(
        x,
        weight,
        None,
        ConvOptions::new([1, 1], padding, [1, 1], groups),
    )
}

/// Whether [`conv2d`] takes the channel-wise fast path for these operands.
pub fn uses_channelwise_kernel(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    padding: [usize; 2],
    groups: usize,
) -> bool {
    let [_, in_channels, _, _] = x.dims();
    let [out_channels, per_group, kernel_h, kernel_w] = weight.dims();
    let depthwise = groups == in_channels && out_channels == in_channels && per_group == 1;
    let single_plane = groups == 1 && in_channels == 1 && per_group == 1;
    // The input gradient needs padding < kernel size (true for every conv of the core).
    let [_, _, in_h, in_w] = x.dims();
    let sizes_fit = padding[0] < kernel_h
        && padding[1] < kernel_w
        && in_h + 2 * padding[0] >= kernel_h
        && in_w + 2 * padding[1] >= kernel_w;
    (depthwise || single_plane)
        && sizes_fit
        && enabled()
        && on_flex(x)
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
}

/// Which implementation computes the model's hot operations. The choice changes the numbers (at
/// float rounding level), so it is part of a run's configuration (`kernels = "fused"|"burn"`)
/// and recorded with the run; the run layer selects it for the thread that fits or evaluates
/// with [`use_kernels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// cortexfit's fused CPU kernels where they apply, burn's ops elsewhere.
    #[default]
    Fused,
    /// burn's own ops everywhere (the reference implementation to compare against).
    Burn,
}

thread_local! {
    static CHOICE: std::cell::Cell<Kernels> = const { std::cell::Cell::new(Kernels::Fused) };
}

/// Restores the previous kernel choice of this thread when dropped.
#[must_use = "the choice holds only while the guard lives"]
pub struct KernelsGuard(Kernels);

impl Drop for KernelsGuard {
    fn drop(&mut self) {
        CHOICE.with(|c| c.set(self.0));
    }
}

/// Uses `choice` on this thread until the guard is dropped (each thread has its own choice, so
/// two fits in one process do not affect each other).
pub fn use_kernels(choice: Kernels) -> KernelsGuard {
    KernelsGuard(CHOICE.with(|c| c.replace(choice)))
}

/// The kernel choice of this thread.
pub fn current() -> Kernels {
    CHOICE.with(|c| c.get())
}

/// Whether the fast kernels are on for this thread.
fn enabled() -> bool {
    current() == Kernels::Fused
}

/// Whether `weight` is an ungrouped 1×1 filter bank without padding.
fn is_pointwise(weight: &Tensor<4>, padding: [usize; 2], groups: usize) -> bool {
    let [_, _, kernel_h, kernel_w] = weight.dims();
    kernel_h == 1 && kernel_w == 1 && padding == [0, 0] && groups == 1
}

/// 1×1 convolution as matrix products, `out[b] = W · x[b]` with `x[b]` viewed as
/// `[in_channels, h·w]`: burn's conv backward for 1×1 filters goes through a transposed
/// convolution and im2col, while a matrix product's backward is two more. On flex (f32) one
/// product per image ([`pointwise`]), elsewhere burn's batched matmul.
fn pointwise_conv2d(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    let all_f32 = [x.dtype(), weight.dtype()] == [DType::F32; 2];
    if all_f32 && on_flex(&x) && x.shape().num_elements() > 0 {
        return Tensor::from_dispatch(<Dispatch as PointwiseConvBackend>::pointwise_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
        ));
    }
    pointwise_matmul(x, weight)
}

/// [`pointwise_conv2d`] as burn's batched matmul (any backend).
fn pointwise_matmul(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    let [batch, in_channels, h, w] = x.dims();
    let [out_channels, _, _, _] = weight.dims();
    let filters = weight.reshape([1, out_channels, in_channels]);
    filters
        .matmul(x.reshape([batch, in_channels, h * w]))
        .reshape([batch, out_channels, h, w])
}

/// ELU (α = 1): `x` where `x > 0`, else `eˣ − 1`. Fused kernel on flex (f32), burn ops elsewhere.
pub fn elu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if enabled() && on_flex(&x) && x.dtype() == DType::F32 {
        return Tensor::from_dispatch(<Dispatch as EluBackend>::fused_elu(x.into_dispatch()));
    }
    let negative = x.clone().lower_equal_scalar(0.0);
    let exp_part = x.clone().clamp_max(0.0).exp().sub_scalar(1.0);
    x.mask_where(negative, exp_part)
}

/// `ELU(gain[c]·x + offset[c])` per channel `c` of `x` `[batch, channels, ...]`: an
/// evaluation-mode batch norm folded into one multiply-add, then ELU. One fused parallel pass on
/// flex, with or without autodiff (evaluation runs on `model.valid()`; MEIs and RF maps take
/// input gradients through a frozen model in evaluation mode); burn ops elsewhere. Both give the
/// same numbers (the multiply and the add are rounded separately in both), and so does the input
/// gradient.
pub fn affine_elu<const D: usize>(x: Tensor<D>, gain: Tensor<1>, offset: Tensor<1>) -> Tensor<D> {
    let all_f32 = [x.dtype(), gain.dtype(), offset.dtype()] == [DType::F32; 3];
    let channels = gain.dims()[0];
    let fits = D >= 2 && x.dims()[1] == channels && offset.dims()[0] == channels;
    if enabled() && on_flex(&x) && all_f32 && fits && x.shape().num_elements() > 0 {
        return Tensor::from_dispatch(<Dispatch as AffineEluBackend>::affine_elu(
            x.into_dispatch(),
            gain.into_dispatch(),
            offset.into_dispatch(),
        ));
    }
    let mut per_channel = [1; D];
    per_channel[1] = channels;
    elu(x * gain.reshape(per_channel) + offset.reshape(per_channel))
}

/// A depth-separable core block in evaluation mode: `ELU(gain[c]·y[c] + offset[c])` with `y` the
/// 1×1 conv `w_out` of the depthwise conv `w_dw` (zero padding `pad`) of the 1×1 conv `w_in` of
/// `x` (filters `[channels, in_channels, 1, 1]`, `[channels, 1, k, k]`, `[channels, channels, 1,
/// 1]`; `gain` and `offset` the running-statistics batch norm folded, `[channels]`). On flex
/// (f32) image by image with the intermediates in cache ([`depth_separable`]), the same numbers
/// as the ops one after the other, which run everywhere else.
pub fn depth_separable_eval(
    x: Tensor<4>,
    [w_in, w_dw, w_out]: [Tensor<4>; 3],
    gain: Tensor<1>,
    offset: Tensor<1>,
    pad: usize,
) -> Tensor<4> {
    let dtypes = [
        x.dtype(),
        w_in.dtype(),
        w_dw.dtype(),
        w_out.dtype(),
        gain.dtype(),
        offset.dtype(),
    ];
    let [channels, in_channels, _, _] = w_in.dims();
    let shape = depth_separable::shape_of(x.dims(), w_dw.dims(), pad);
    let [_, per_group, kh, kw] = w_dw.dims();
    let fits = is_pointwise(&w_in, [0, 0], 1)
        && is_pointwise(&w_out, [0, 0], 1)
        && x.dims()[1] == in_channels
        && w_dw.dims()[0] == channels
        && per_group == 1
        && kh == kw
        && w_out.dims()[..2] == [channels, channels]
        && gain.dims() == [channels]
        && offset.dims() == [channels]
        && shape.is_supported();
    if enabled() && on_flex(&x) && dtypes == [DType::F32; 6] && fits && x.shape().num_elements() > 0
    {
        return Tensor::from_dispatch(
            <Dispatch as DepthSeparableEvalBackend>::depth_separable_eval(
                x.into_dispatch(),
                w_in.into_dispatch(),
                w_dw.into_dispatch(),
                w_out.into_dispatch(),
                gain.into_dispatch(),
                offset.into_dispatch(),
                pad,
            ),
        );
    }
    let groups = w_dw.dims()[0];
    let y = conv2d(x, w_in, [0, 0], 1);
    let y = conv2d(y, w_dw, [pad, pad], groups);
    affine_elu(conv2d(y, w_out, [0, 0], 1), gain, offset)
}

/// Training-mode batch norm of `x` `[batch, channels, ...]` with per-channel `scale` γ and
/// `shift` β: the output and the detached batch mean and biased variance, like burn's
/// `module::batch_norm_train` (which runs elsewhere). Fused kernel on flex (f32).
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    eps: f64,
) -> BatchNormTrainOutput<D> {
    if uses_norm_kernel(&x, &scale, &shift) {
        return fused_norm(x, scale, shift, eps, false);
    }
    module::batch_norm_train(x, scale, shift, eps)
}

/// `ELU(batch_norm_train(x, scale, shift, eps))`: a core block's training-mode batch norm and
/// its ELU as one op on flex ([`batch_norm_op`]: the same numbers without the normalised map in
/// between), the two ops elsewhere. The output is the ELU's; mean and variance are the batch
/// norm's.
pub fn batch_norm_elu_train<const D: usize>(
    x: Tensor<D>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    eps: f64,
) -> BatchNormTrainOutput<D> {
    if uses_norm_kernel(&x, &scale, &shift) {
        return fused_norm(x, scale, shift, eps, true);
    }
    let norm = batch_norm_train(x, scale, shift, eps);
    BatchNormTrainOutput {
        output: elu(norm.output),
        ..norm
    }
}

/// Whether the batch-norm kernels run on these operands (flex, f32, fast kernels on, not empty).
fn uses_norm_kernel<const D: usize>(x: &Tensor<D>, scale: &Tensor<1>, shift: &Tensor<1>) -> bool {
    let all_f32 = [x.dtype(), scale.dtype(), shift.dtype()] == [DType::F32; 3];
    enabled() && on_flex(x) && all_f32 && x.shape().num_elements() > 0
}

/// The fused batch-norm op, with the ELU folded in where `elu`.
fn fused_norm<const D: usize>(
    x: Tensor<D>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    eps: f64,
    elu: bool,
) -> BatchNormTrainOutput<D> {
    let (x, scale, shift) = (
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    );
    let (output, mean, variance) = if elu {
        <Dispatch as BatchNormEluBackend>::fused_batch_norm_elu_train(x, scale, shift, eps)
    } else {
        <Dispatch as BatchNormBackend>::fused_batch_norm_train(x, scale, shift, eps)
    };
    BatchNormTrainOutput {
        output: Tensor::from_dispatch(output),
        mean: Tensor::from_dispatch(mean),
        variance: Tensor::from_dispatch(variance),
    }
}

/// Whether [`bilinear_readout`] can run on these operands (flex, f32, fast kernels on, no empty
/// axis).
pub fn uses_readout_kernel(map: &Tensor<4>, positions: &Tensor<3>, features: &Tensor<2>) -> bool {
    let [batch, channels, h, w] = map.dims();
    let [position_batch, neurons, coordinates] = positions.dims();
    let shapes_fit = position_batch == batch
        && coordinates == 2
        && features.dims() == [channels, neurons]
        && [batch, channels, h, w, neurons]
            .iter()
            .all(|&size| size > 0);
    let all_f32 = [map.dtype(), positions.dtype(), features.dtype()] == [DType::F32; 3];
    shapes_fit && all_f32 && enabled() && on_flex(map)
}

/// `y[b, n] = Σ_c bilinear(map[b, c], positions[b, n]) · features[c, n]` `[batch, neurons]`:
/// the Gaussian readout's read (grid_sample conventions: align_corners, zeros outside) for the
/// map `[batch, channels, h, w]`, positions `[batch, neurons, 2]` (x, y in [−1, 1]) and features
/// `[channels, neurons]`, with its backward. Only where [`uses_readout_kernel`] says so.
pub fn bilinear_readout(map: Tensor<4>, positions: Tensor<3>, features: Tensor<2>) -> Tensor<2> {
    assert!(
        uses_readout_kernel(&map, &positions, &features),
        "bilinear_readout: unsupported operands (check uses_readout_kernel first)"
    );
    Tensor::from_dispatch(<Dispatch as BilinearReadoutBackend>::bilinear_readout(
        map.into_dispatch(),
        positions.into_dispatch(),
        features.into_dispatch(),
    ))
}

/// Whether [`factorized_readout`] can run on these operands (flex, f32, fast kernels on, no
/// empty axis).
pub fn uses_factorized_kernel(map: &Tensor<4>, masks: &Tensor<3>, features: &Tensor<2>) -> bool {
    let [batch, channels, h, w] = map.dims();
    let [neurons, mask_h, mask_w] = masks.dims();
    let shapes_fit = [mask_h, mask_w] == [h, w]
        && features.dims() == [neurons, channels]
        && [batch, channels, h, w, neurons]
            .iter()
            .all(|&size| size > 0);
    let all_f32 = [map.dtype(), masks.dtype(), features.dtype()] == [DType::F32; 3];
    shapes_fit && all_f32 && enabled() && on_flex(map)
}

/// `y[b, n] = Σ_c features[n, c] · Σ_{h,w} map[b, c, h, w] · masks[n, h, w]` `[batch, neurons]`:
/// the factorized readout's read-out as one op with its backward (no batch × channels × neurons
/// intermediate). Only where [`uses_factorized_kernel`] says so.
pub fn factorized_readout(map: Tensor<4>, masks: Tensor<3>, features: Tensor<2>) -> Tensor<2> {
    assert!(
        uses_factorized_kernel(&map, &masks, &features),
        "factorized_readout: unsupported operands (check uses_factorized_kernel first)"
    );
    Tensor::from_dispatch(<Dispatch as FactorizedReadoutBackend>::factorized_readout(
        map.into_dispatch(),
        masks.into_dispatch(),
        features.into_dispatch(),
    ))
}

/// Whether `x` lives on the flex backend (directly or under autodiff).
fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(
        x.device().as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}
