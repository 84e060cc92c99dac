//! Direct CPU loops for *channel-wise* 2-D convolutions: every output channel `c` is one k×k
//! filter applied to one input plane, either its own channel `c` (the depthwise 13×13 convs of
//! the lurz2020 core) or the single shared image plane (the 1→64 15×15 input conv).
//!
//! These convolutions have almost no reuse across channels, so im2col + matrix multiply (burn's
//! generic path, and its backward through transposed / grouped convolutions) spends its time
//! copying patches. Here the forward pass and the input gradient are one operation, a 2-D
//! cross-correlation of a zero-padded plane with a small kernel ([`correlate`]):
//! - forward: the padded input plane with the filter;
//! - input gradient: the padded output gradient with the flipped filter.
//!
//! The filter gradient, a correlation of the input with a "kernel" as large as the output
//! gradient, has a kernel of its own that vectorises along the output columns instead
//! ([`super::filter_grad`]).
//!
//! [`correlate`] keeps a block of rows × column chunks of the result in registers while it runs
//! over the source rows and kernel columns: each unaligned load of a source chunk feeds a fused
//! multiply-add (with a broadcast tap) for every block row it reaches, so it runs near the CPU's
//! multiply-add throughput instead of its load/store throughput. Rows of zero padding are
//! skipped. The chunk is
//! one vector register of the instruction set chosen at run time ([`Isa`]): with AVX-512, 16
//! columns (and one 8-column `ymm` chunk where an odd 8 columns are left, so a 50-wide row costs
//! 56 columns of work as with AVX2, not 64); with AVX2 + FMA, 8; on other CPUs, 8 plain-Rust
//! lanes. Rows are laid out in 8-column chunks for every path. Work is split over independent
//! planes with rayon, and every sum runs in a fixed order: results do not depend on the thread
//! count, and the AVX-512 and AVX2 paths give the same bits.
//!
//! [`forward_auto`] and [`backward_auto`], which the burn op calls, send depthwise convs with
//! large filters to [`super::fft_conv`] instead (where [`super::fft_conv::pays`]).
//!
//! Stride 1, no dilation, zero padding, f32, contiguous NCHW slices.

use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::correlate::{LANES, correlate};
use super::fft_conv;
use super::filter_grad::filter_grad;
use super::isa::Isa;
use super::memory::{assume_init, uninit};

/// Sizes of one channel-wise convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelwiseShape {
    /// Images in the batch.
    pub batch: usize,
    /// Output channels (= filters).
    pub channels: usize,
    /// Whether every filter reads the single input plane (`x` has 1 channel) instead of its own
    /// channel (`x` has `channels` channels).
    pub shared_input: bool,
    /// Input height and width.
    pub in_h: usize,
    pub in_w: usize,
    /// Filter height and width.
    pub kernel_h: usize,
    pub kernel_w: usize,
    /// Zero padding added on each side (top/bottom, left/right).
    pub pad_h: usize,
    pub pad_w: usize,
}

impl ChannelwiseShape {
    /// Output height (stride 1).
    pub fn out_h(&self) -> usize {
        self.in_h + 2 * self.pad_h + 1 - self.kernel_h
    }
    /// Output width (stride 1).
    pub fn out_w(&self) -> usize {
        self.in_w + 2 * self.pad_w + 1 - self.kernel_w
    }
    /// Channels of the input tensor.
    pub fn in_channels(&self) -> usize {
        if self.shared_input { 1 } else { self.channels }
    }
    pub(super) fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }
    pub(super) fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }
    pub(super) fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }
    /// Index of the input plane read by output plane (`b`, `c`).
    pub(super) fn input_plane_index(&self, b: usize, c: usize) -> usize {
        if self.shared_input {
            b
        } else {
            b * self.channels + c
        }
    }
}

/// Column chunks covering `columns`.
fn chunks(columns: usize) -> usize {
    columns.div_ceil(LANES)
}

/// `isa` if this CPU runs it, else the portable path.
fn runnable(isa: Isa) -> Isa {
    if isa.is_supported() {
        isa
    } else {
        Isa::Portable
    }
}

/// Scratch layout for one plane: the zero-padded input (forward pass) or output gradient (input
/// gradient; the filter gradient has its own), with row stride wide enough for every full-chunk
/// read.
pub(super) struct Padded {
    pub(super) rows: usize,
    pub(super) stride: usize,
    pub(super) top: usize,
    pub(super) left: usize,
}

impl Padded {
    /// The rows a filled `h`-row plane occupies (all others are zero padding).
    pub(super) fn filled_rows(&self, h: usize) -> std::ops::Range<usize> {
        self.top..self.top + h
    }

    /// Copies the `h × w` plane `src` into `buf` at (`top`, `left`), zero elsewhere.
    ///
    /// A buffer of the right size (the previous plane of the same layout, in the same task) only
    /// has its padding cleared: the plane's own values are all overwritten.
    pub(super) fn fill(&self, src: &[f32], h: usize, w: usize, buf: &mut Vec<f32>) {
        let len = self.rows * self.stride;
        if buf.len() != len {
            buf.clear();
            buf.resize(len, 0.0);
        } else {
            let (first, last) = (self.top * self.stride, (self.top + h) * self.stride);
            buf[..first].fill(0.0);
            buf[last..].fill(0.0);
            for row in buf[first..last].chunks_exact_mut(self.stride) {
                row[..self.left].fill(0.0);
                row[self.left + w..].fill(0.0);
            }
        }
        for (r, row) in src.chunks_exact(w).take(h).enumerate() {
            let at = (r + self.top) * self.stride + self.left;
            buf[at..at + w].copy_from_slice(row);
        }
    }
}

impl ChannelwiseShape {
    /// The padded input plane of the forward pass.
    fn padded_input(&self) -> Padded {
        Padded {
            rows: self.in_h + 2 * self.pad_h,
            stride: chunks(self.out_w()) * LANES + self.kernel_w - 1,
            top: self.pad_h,
            left: self.pad_w,
        }
    }
    /// The output gradient padded for a full correlation with the flipped filter.
    fn padded_grad(&self) -> Padded {
        Padded {
            rows: self.in_h + self.kernel_h - 1,
            stride: chunks(self.in_w) * LANES + self.kernel_w - 1,
            top: self.kernel_h - 1 - self.pad_h,
            left: self.kernel_w - 1 - self.pad_w,
        }
    }
    /// Whether the padding is smaller than the filter (needed by the input gradient).
    pub fn is_supported(&self) -> bool {
        self.pad_h < self.kernel_h
            && self.pad_w < self.kernel_w
            && self.in_h + 2 * self.pad_h >= self.kernel_h
            && self.in_w + 2 * self.pad_w >= self.kernel_w
    }
}

/// Forward pass on the fastest method for `shape`: with `pair_images`, through the FFT for
/// large filters ([`super::fft_conv::pays`]; two images per transform, so each image's values
/// depend on its partner's at float rounding level), else [`forward_on`] the active path (each
/// image on its own).
pub fn forward_auto(
    shape: &ChannelwiseShape,
    x: &[f32],
    weight: &[f32],
    pair_images: bool,
) -> Vec<f32> {
    let isa = runnable(Isa::active());
    if pair_images && fft_conv::pays(shape) {
        fft_conv::forward(isa, shape, x, weight)
    } else {
        forward_on(isa, shape, x, weight)
    }
}

/// Input gradient (with `want_input`) and filter gradient (with `want_filter`) on the fastest
/// method for `shape`, as [`forward_auto`] chooses it.
pub fn backward_auto(
    shape: &ChannelwiseShape,
    (x, weight, grad_out): (&[f32], &[f32], &[f32]),
    want_input: bool,
    want_filter: bool,
    pair_images: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let isa = runnable(Isa::active());
    let fft = pair_images && fft_conv::pays(shape);
    if fft && !shape.shared_input {
        return fft_conv::backward(isa, shape, (x, weight, grad_out), want_input, want_filter);
    }
    if fft {
        // The FFT path has the filter gradient of a shared input plane, not its input gradient
        // (a sum over all channels; only asked for by input-gradient tools such as MEIs).
        let (_, grad_w) = fft_conv::backward(isa, shape, (x, weight, grad_out), false, want_filter);
        return (
            want_input.then(|| input_grad_on(isa, shape, weight, grad_out)),
            grad_w,
        );
    }
    (
        want_input.then(|| input_grad_on(isa, shape, weight, grad_out)),
        want_filter.then(|| weight_grad_on(isa, shape, x, grad_out)),
    )
}

/// The FFT path's forward pass (depthwise convs only), for benchmarks and tests.
pub fn fft_forward_on(isa: Isa, shape: &ChannelwiseShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    fft_conv::forward(runnable(isa), shape, x, weight)
}

/// The FFT path's gradients (depthwise convs only), for benchmarks and tests.
pub fn fft_backward_on(
    isa: Isa,
    shape: &ChannelwiseShape,
    operands: (&[f32], &[f32], &[f32]),
    want_input: bool,
    want_filter: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    fft_conv::backward(runnable(isa), shape, operands, want_input, want_filter)
}

/// Forward pass: `out[b,c] = Σ_taps w[c,kh,kw] · x[b, c|0, oh+kh-pad_h, ow+kw-pad_w]`.
///
/// `x`: `[batch, in_channels, in_h, in_w]`, `weight`: `[channels, 1, kernel_h, kernel_w]`,
/// returns `[batch, channels, out_h, out_w]`. Runs on [`Isa::active`].
pub fn forward(shape: &ChannelwiseShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    forward_on(Isa::active(), shape, x, weight)
}

/// [`forward`] on the path `isa` (the portable one where this CPU lacks it).
pub fn forward_on(isa: Isa, shape: &ChannelwiseShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let isa = runnable(isa);
    assert!(
        shape.is_supported(),
        "unsupported channel-wise conv {shape:?}"
    );
    assert_eq!(
        x.len(),
        shape.batch * shape.in_channels() * shape.in_plane()
    );
    assert_eq!(weight.len(), shape.channels * shape.taps());
    let mut out = uninit(shape.batch * shape.channels * shape.out_plane());
    out.par_chunks_mut(shape.out_plane())
        .enumerate()
        .for_each_init(ForwardScratch::default, |scratch, (bc, out_plane)| {
            let (b, c) = (bc / shape.channels, bc % shape.channels);
            let plane = shape.input_plane_index(b, c) * shape.in_plane();
            let src = &x[plane..plane + shape.in_plane()];
            forward_plane(isa, shape, c, src, weight, scratch, out_plane);
        });
    // SAFETY: the chunks, one per output plane, cover `out`, and `write_rows` writes each whole.
    unsafe { assume_init(out) }
}

/// Scratch buffers of one task of the forward pass (reused from plane to plane).
#[derive(Default)]
pub(super) struct ForwardScratch {
    /// The zero-padded input plane.
    x_pad: Vec<f32>,
    /// The output plane's rows, `chunks(out_w)·8` wide.
    acc: Vec<f32>,
}

/// Output plane `c` of one image from its input plane `src`: the body of [`forward_on`].
fn forward_plane(
    isa: Isa,
    shape: &ChannelwiseShape,
    c: usize,
    src: &[f32],
    weight: &[f32],
    scratch: &mut ForwardScratch,
    out_plane: &mut [MaybeUninit<f32>],
) {
    let (out_h, out_w) = (shape.out_h(), shape.out_w());
    let out_stride = chunks(out_w) * LANES;
    let padded = shape.padded_input();
    padded.fill(src, shape.in_h, shape.in_w, &mut scratch.x_pad);
    scratch.acc.clear();
    scratch.acc.resize(out_h * out_stride, 0.0);
    let w = &weight[c * shape.taps()..(c + 1) * shape.taps()];
    correlate::<2>(
        isa,
        &scratch.x_pad,
        padded.stride,
        padded.filled_rows(shape.in_h),
        w,
        shape.kernel_h,
        shape.kernel_w,
        &mut scratch.acc,
        out_stride,
        out_h,
    );
    write_rows(out_plane, out_w, &scratch.acc, out_stride);
}

/// The forward pass of one image on the calling thread, plane after plane: `x` holds the
/// image's input planes, `out` receives its `channels` output planes (every value written).
/// For kernels that run a whole block per image ([`super::depth_separable`]).
pub(super) fn forward_image(
    isa: Isa,
    shape: &ChannelwiseShape,
    x: &[f32],
    weight: &[f32],
    out: &mut [MaybeUninit<f32>],
    scratch: &mut ForwardScratch,
) {
    let isa = runnable(isa);
    assert!(
        shape.is_supported(),
        "unsupported channel-wise conv {shape:?}"
    );
    assert_eq!(x.len(), shape.in_channels() * shape.in_plane());
    assert_eq!(weight.len(), shape.channels * shape.taps());
    assert_eq!(out.len(), shape.channels * shape.out_plane());
    for (c, out_plane) in out.chunks_exact_mut(shape.out_plane()).enumerate() {
        let plane = shape.input_plane_index(0, c) * shape.in_plane();
        let src = &x[plane..plane + shape.in_plane()];
        forward_plane(isa, shape, c, src, weight, scratch, out_plane);
    }
}

/// Gradient of the loss with respect to `x`, given `grad_out` (`[batch, channels, out_h, out_w]`).
///
/// For a shared input plane the contributions of all filters are summed (in channel order).
/// Runs on [`Isa::active`].
pub fn input_grad(shape: &ChannelwiseShape, weight: &[f32], grad_out: &[f32]) -> Vec<f32> {
    input_grad_on(Isa::active(), shape, weight, grad_out)
}

/// [`input_grad`] on the path `isa` (the portable one where this CPU lacks it).
pub fn input_grad_on(
    isa: Isa,
    shape: &ChannelwiseShape,
    weight: &[f32],
    grad_out: &[f32],
) -> Vec<f32> {
    let isa = runnable(isa);
    assert!(
        shape.is_supported(),
        "unsupported channel-wise conv {shape:?}"
    );
    assert_eq!(
        grad_out.len(),
        shape.batch * shape.channels * shape.out_plane()
    );
    assert_eq!(weight.len(), shape.channels * shape.taps());
    let (in_h, in_w) = (shape.in_h, shape.in_w);
    let acc_stride = chunks(in_w) * LANES;
    let padded = shape.padded_grad();
    // The input gradient correlates with the filters rotated by 180°.
    let flipped: Vec<f32> = weight
        .chunks_exact(shape.taps())
        .flat_map(|w| w.iter().rev().copied())
        .collect();
    let mut grad_x = uninit(shape.batch * shape.in_channels() * shape.in_plane());
    grad_x
        .par_chunks_mut(shape.in_plane())
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(g_pad, acc), (plane, gx)| {
                let (b, channels) = if shape.shared_input {
                    (plane, 0..shape.channels)
                } else {
                    let c = plane % shape.channels;
                    (plane / shape.channels, c..c + 1)
                };
                acc.clear();
                acc.resize(in_h * acc_stride, 0.0);
                for c in channels {
                    let g0 = (b * shape.channels + c) * shape.out_plane();
                    let g = &grad_out[g0..g0 + shape.out_plane()];
                    padded.fill(g, shape.out_h(), shape.out_w(), g_pad);
                    let w = &flipped[c * shape.taps()..(c + 1) * shape.taps()];
                    correlate::<2>(
                        isa,
                        g_pad,
                        padded.stride,
                        padded.filled_rows(shape.out_h()),
                        w,
                        shape.kernel_h,
                        shape.kernel_w,
                        acc,
                        acc_stride,
                        in_h,
                    );
                }
                write_rows(gx, in_w, acc, acc_stride);
            },
        );
    // SAFETY: the chunks, one per input plane, cover `grad_x`, and `write_rows` writes each whole.
    unsafe { assume_init(grad_x) }
}

/// Writes the whole plane `dst` (rows of `width`) from the first `width` values of each row of
/// `acc` (row stride `stride`), which has at least as many rows.
fn write_rows(dst: &mut [MaybeUninit<f32>], width: usize, acc: &[f32], stride: usize) {
    assert!(
        width > 0 && dst.len().is_multiple_of(width) && acc.len() >= dst.len() / width * stride
    );
    for (dst, src) in dst.chunks_exact_mut(width).zip(acc.chunks_exact(stride)) {
        for (d, &v) in dst.iter_mut().zip(&src[..width]) {
            d.write(v);
        }
    }
}

/// Gradient of the loss with respect to the filters (`[channels, 1, kernel_h, kernel_w]`).
///
/// One task per filter sums over the whole batch, so the result is the same for any number of
/// threads. Runs on [`Isa::active`].
pub fn weight_grad(shape: &ChannelwiseShape, x: &[f32], grad_out: &[f32]) -> Vec<f32> {
    weight_grad_on(Isa::active(), shape, x, grad_out)
}

/// [`weight_grad`] on the path `isa` (the portable one where this CPU lacks it).
pub fn weight_grad_on(isa: Isa, shape: &ChannelwiseShape, x: &[f32], grad_out: &[f32]) -> Vec<f32> {
    assert!(
        shape.is_supported(),
        "unsupported channel-wise conv {shape:?}"
    );
    filter_grad(runnable(isa), shape, x, grad_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refilling_a_used_buffer_leaves_exactly_the_plane_and_zero_padding() {
        let padded = Padded {
            rows: 7,
            stride: 12,
            top: 2,
            left: 3,
        };
        let (h, w) = (4, 6);
        let plane: Vec<f32> = (1..=h * w).map(|v| v as f32).collect();
        let fresh = {
            let mut buf = Vec::new();
            padded.fill(&plane, h, w, &mut buf);
            buf
        };
        let mut used = vec![f32::NAN; padded.rows * padded.stride];
        padded.fill(&plane, h, w, &mut used);
        assert_eq!(used, fresh);
        for r in 0..padded.rows {
            for c in 0..padded.stride {
                let inside = (2..6).contains(&r) && (3..9).contains(&c);
                let expected = if inside {
                    plane[(r - 2) * w + c - 3]
                } else {
                    0.0
                };
                assert_eq!(fresh[r * padded.stride + c], expected, "({r}, {c})");
            }
        }
    }
}
