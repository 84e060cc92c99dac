//! A depth-separable core block in evaluation mode — 1×1 conv, depthwise conv, 1×1 conv, batch
//! norm with the running statistics and ELU — computed image by image.
//!
//! Op by op, each step reads and writes the whole batch's activations (64 images × 64 channels
//! × 1100 pixels, 18 MB, far more than the caches): every one of the five passes streams from
//! and to memory, and the matrix products of the 1×1 convs run at half the speed they reach on
//! data in cache. In evaluation mode nothing couples the images (batch norm uses its running
//! statistics), so here each image runs through the whole block on one thread: its
//! intermediates (two buffers of 64 × 1100 values, 560 KB) stay in that core's L2 cache, and the
//! batch's activations are read once and written once.
//!
//! Every step is the same kernel with the same summation order as the op-by-op path (the
//! `gemm` products of [`super::pointwise`], the channel-wise correlation of
//! [`super::channelwise`], the folded batch norm + ELU of [`super::elu`]), so the result is the
//! same bits — except for filters large enough that the op-by-op path takes the FFT
//! ([`super::fft_conv`]; 13×13 at the lurz2020 shapes): there the fused block keeps the direct
//! sum (per image, where the FFT's two-image packing does not apply) and the two differ at float
//! rounding level.

use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use rayon::prelude::*;

use super::channelwise::{self, ChannelwiseShape, ForwardScratch};
use super::elu::{AffineEluBackend, affine_elu_chunk};
use super::extension::{ChannelwiseConvBackend, flex_tensor, values};
use super::isa::Isa;
use super::matmul::matmul_uninit;
use super::memory::{assume_init, uninit};
use super::pointwise::PointwiseConvBackend;

/// Sizes of one depth-separable block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthSeparableShape {
    pub batch: usize,
    /// Channels of the block's input.
    pub in_channels: usize,
    /// Channels of the 1×1 convs' outputs (and of the depthwise conv).
    pub channels: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Depthwise filter size (square) and its zero padding on each side.
    pub kernel: usize,
    pub pad: usize,
}

impl DepthSeparableShape {
    fn depthwise(&self) -> ChannelwiseShape {
        ChannelwiseShape {
            batch: 1,
            channels: self.channels,
            shared_input: false,
            in_h: self.h,
            in_w: self.w,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            pad_h: self.pad,
            pad_w: self.pad,
        }
    }

    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        let d = self.depthwise();
        [d.out_h(), d.out_w()]
    }

    /// Whether the depthwise conv is one the channel-wise kernel runs.
    pub fn is_supported(&self) -> bool {
        self.depthwise().is_supported()
    }
}

/// `ELU(gain[c]·(W_out · D(W_in · x))[c] + offset[c])` per image, with `D` the depthwise conv:
/// `x` `[batch, in_channels, h, w]`, `w_in` `[channels, in_channels]`, `w_dw` `[channels,
/// kernel, kernel]`, `w_out` `[channels, channels]`, `gain` and `offset` `[channels]`; returns
/// `[batch, channels, out_h, out_w]`. Runs on [`Isa::active`].
pub fn forward_eval(
    shape: &DepthSeparableShape,
    x: &[f32],
    [w_in, w_dw, w_out]: [&[f32]; 3],
    gain: &[f32],
    offset: &[f32],
) -> Vec<f32> {
    let (c, i) = (shape.channels, shape.in_channels);
    let plane = shape.h * shape.w;
    let [out_h, out_w] = shape.out_hw();
    let out_plane = out_h * out_w;
    assert!(shape.is_supported(), "unsupported depthwise conv {shape:?}");
    assert_eq!(x.len(), shape.batch * i * plane, "input");
    assert_eq!(w_in.len(), c * i, "first 1×1 filters");
    assert_eq!(
        w_dw.len(),
        c * shape.kernel * shape.kernel,
        "depthwise filters"
    );
    assert_eq!(w_out.len(), c * c, "second 1×1 filters");
    assert!(gain.len() == c && offset.len() == c, "gain and offset");
    let depthwise = shape.depthwise();
    let isa = Isa::active();
    let mut out = uninit(shape.batch * c * out_plane);
    out.par_chunks_mut((c * out_plane).max(1))
        .enumerate()
        .for_each_init(ImageScratch::default, |scratch, (b, out)| {
            let x = &x[b * i * plane..(b + 1) * i * plane];
            // 1×1 conv into `a`, depthwise conv into `d`, 1×1 conv back into `a`.
            let a = resize(&mut scratch.a, c * plane.max(out_plane));
            matmul_uninit((c, plane, i), a, (w_in, i, 1), (x, plane, 1));
            // SAFETY: `matmul_uninit` wrote the first c·plane values.
            let a_in = unsafe { init_ref(&a[..c * plane]) };
            let d = resize(&mut scratch.d, c * out_plane);
            channelwise::forward_image(isa, &depthwise, a_in, w_dw, d, &mut scratch.conv);
            // SAFETY: `forward_image` wrote every value of `d`.
            let d = unsafe { init_ref(d) };
            matmul_uninit((c, out_plane, c), a, (w_out, c, 1), (d, out_plane, 1));
            // SAFETY: `matmul_uninit` wrote the first c·out_plane values.
            let y = unsafe { init_ref(&a[..c * out_plane]) };
            for (ch, (o, y)) in out
                .chunks_exact_mut(out_plane.max(1))
                .zip(y.chunks_exact(out_plane.max(1)))
                .enumerate()
            {
                affine_elu_chunk(isa, y, gain[ch], offset[ch], o);
            }
        });
    // SAFETY: the chunks, one per image, cover `out`, and each image's planes are written by
    // `affine_elu_chunk`.
    unsafe { assume_init(out) }
}

/// Per-task buffers, reused from image to image.
#[derive(Default)]
struct ImageScratch {
    a: Vec<MaybeUninit<f32>>,
    d: Vec<MaybeUninit<f32>>,
    conv: ForwardScratch,
}

/// `buf` with exactly `len` (possibly unwritten) values.
fn resize(buf: &mut Vec<MaybeUninit<f32>>, len: usize) -> &mut [MaybeUninit<f32>] {
    buf.resize(len, MaybeUninit::uninit());
    &mut buf[..]
}

/// # Safety
/// Every value of `values` has been written.
unsafe fn init_ref(values: &[MaybeUninit<f32>]) -> &[f32] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the caller vouches that every
    // value is initialised.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<f32>(), values.len()) }
}

/// A depth-separable core block in evaluation mode as one backend op.
#[backend_extension(Flex, Autodiff)]
pub trait DepthSeparableEvalBackend: Backend {
    /// `x` `[batch, in_channels, h, w]`, `w_in` `[channels, in_channels, 1, 1]`, `w_dw`
    /// `[channels, 1, k, k]`, `w_out` `[channels, channels, 1, 1]`, `gain` and `offset`
    /// `[channels]`: `ELU(gain·(w_out ⋆ (w_dw ⋆ (w_in ⋆ x))) + offset)`, depthwise zero padding
    /// `pad`.
    #[allow(clippy::too_many_arguments)]
    fn depth_separable_eval(
        x: FloatTensor<Self>,
        w_in: FloatTensor<Self>,
        w_dw: FloatTensor<Self>,
        w_out: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        offset: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self>;
}

/// The sizes of a block from its input and filters.
pub fn shape_of(x: [usize; 4], w_dw: [usize; 4], pad: usize) -> DepthSeparableShape {
    let [batch, in_channels, h, w] = x;
    let [channels, _, kernel, _] = w_dw;
    DepthSeparableShape {
        batch,
        in_channels,
        channels,
        h,
        w,
        kernel,
        pad,
    }
}

impl DepthSeparableEvalBackend for Flex {
    fn depth_separable_eval(
        x: FlexTensor,
        w_in: FlexTensor,
        w_dw: FlexTensor,
        w_out: FlexTensor,
        gain: FlexTensor,
        offset: FlexTensor,
        pad: usize,
    ) -> FlexTensor {
        let shape = shape_of(x.shape().dims(), w_dw.shape().dims(), pad);
        let [out_h, out_w] = shape.out_hw();
        let out = forward_eval(
            &shape,
            &values(&x),
            [&values(&w_in), &values(&w_dw), &values(&w_out)],
            &values(&gain),
            &values(&offset),
        );
        flex_tensor(out, [shape.batch, shape.channels, out_h, out_w])
    }
}

/// With gradients (input gradients through a frozen model: MEIs, RF maps): the block's ops one
/// after the other, each with its own backward.
impl<C: CheckpointStrategy> DepthSeparableEvalBackend for Autodiff<Flex, C> {
    fn depth_separable_eval(
        x: FloatTensor<Self>,
        w_in: FloatTensor<Self>,
        w_dw: FloatTensor<Self>,
        w_out: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        offset: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self> {
        let y = <Self as PointwiseConvBackend>::pointwise_conv2d(x, w_in);
        let y = <Self as ChannelwiseConvBackend>::channelwise_conv2d(y, w_dw, pad, pad, false);
        let y = <Self as PointwiseConvBackend>::pointwise_conv2d(y, w_out);
        <Self as AffineEluBackend>::affine_elu(y, gain, offset)
    }
}
