//! Direct CPU loops for *channel-wise* 2-D convolutions: every output channel `c` is one k×k
//! filter applied to one input plane, either its own channel `c` (the depthwise 13×13 convs of
//! the lurz2020 core) or the single shared image plane (the 1→64 15×15 input conv).
//!
//! These convolutions have almost no reuse across channels, so im2col + matrix multiply (burn's
//! generic path, and its backward through transposed / grouped convolutions) spends its time
//! copying patches. Here every tap is a contiguous multiply-add over one output row, which the
//! compiler vectorises; the weight gradient keeps one row of partial sums per tap so that it,
//! too, is a vectorised multiply-add instead of a horizontal dot product. Work is split over
//! independent planes with rayon, and every sum runs in a fixed order: results do not depend
//! on the thread count.
//!
//! Stride 1, no dilation, zero padding, f32, contiguous NCHW slices.

use rayon::prelude::*;

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
    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }
    fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }
    fn taps(&self) -> usize {
        self.kernel_h * self.kernel_w
    }
    /// Index of the input plane read by output plane (`b`, `c`).
    fn input_plane_index(&self, b: usize, c: usize) -> usize {
        if self.shared_input {
            b
        } else {
            b * self.channels + c
        }
    }
    /// Output columns `ow` whose input column `ow + kw - pad_w` lies inside the image.
    fn valid_cols(&self, kw: usize) -> (usize, usize) {
        let lo = self.pad_w.saturating_sub(kw);
        let hi = (self.in_w + self.pad_w).saturating_sub(kw).min(self.out_w());
        (lo, hi.max(lo))
    }
    /// Input row read by output row `oh` through filter row `kh`, if inside the image.
    fn input_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh + kh).checked_sub(self.pad_h).filter(|&ih| ih < self.in_h)
    }
}

/// `acc += a * b`, fused when the CPU has FMA (the caller decides through `FMA`).
#[inline(always)]
fn madd<const FMA: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FMA { a.mul_add(b, acc) } else { acc + a * b }
}

/// Runs `body::<true>` in a function compiled for AVX2 + FMA when the CPU has them, else the
/// portable `body::<false>`. The release build targets baseline x86-64 (SSE2), so without this
/// the loops would use 4-wide vectors and no fused multiply-add.
macro_rules! simd_dispatch {
    ($name:ident($($arg:ident : $ty:ty),*) => $body:ident) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports the enabled target features (checked above).
                    return unsafe { fast($($arg),*) };
                }
            }
            $body::<false>($($arg),*)
        }
    };
}

/// Forward pass: `out[b,c] = Σ_taps w[c,kh,kw] · x[b, c|0, oh+kh-pad_h, ow+kw-pad_w]`.
///
/// `x`: `[batch, in_channels, in_h, in_w]`, `weight`: `[channels, 1, kernel_h, kernel_w]`,
/// returns `[batch, channels, out_h, out_w]`.
pub fn forward(shape: &ChannelwiseShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), shape.batch * shape.in_channels() * shape.in_plane());
    assert_eq!(weight.len(), shape.channels * shape.taps());
    let mut out = vec![0.0f32; shape.batch * shape.channels * shape.out_plane()];
    out.par_chunks_mut(shape.out_plane())
        .enumerate()
        .for_each(|(bc, out_plane)| {
            let (b, c) = (bc / shape.channels, bc % shape.channels);
            let plane = shape.input_plane_index(b, c) * shape.in_plane();
            let x_plane = &x[plane..plane + shape.in_plane()];
            let w = &weight[c * shape.taps()..(c + 1) * shape.taps()];
            forward_plane(shape, x_plane, w, out_plane);
        });
    out
}

simd_dispatch!(forward_plane(shape: &ChannelwiseShape, x: &[f32], w: &[f32], out: &mut [f32]) => forward_plane_body);

#[inline(always)]
fn forward_plane_body<const FMA: bool>(
    shape: &ChannelwiseShape,
    x: &[f32],
    w: &[f32],
    out: &mut [f32],
) {
    let (in_w, out_w, pad_w) = (shape.in_w, shape.out_w(), shape.pad_w);
    for (oh, out_row) in out.chunks_exact_mut(out_w).enumerate() {
        for kh in 0..shape.kernel_h {
            let Some(ih) = shape.input_row(oh, kh) else {
                continue;
            };
            let x_row = &x[ih * in_w..(ih + 1) * in_w];
            for kw in 0..shape.kernel_w {
                let wv = w[kh * shape.kernel_w + kw];
                let (lo, hi) = shape.valid_cols(kw);
                let shift = lo + kw - pad_w;
                for (o, &xv) in out_row[lo..hi].iter_mut().zip(&x_row[shift..shift + hi - lo]) {
                    *o = madd::<FMA>(*o, wv, xv);
                }
            }
        }
    }
}

/// Gradient of the loss with respect to `x`, given `grad_out` (`[batch, channels, out_h, out_w]`).
///
/// For a shared input plane the contributions of all filters are summed (in channel order).
pub fn input_grad(shape: &ChannelwiseShape, weight: &[f32], grad_out: &[f32]) -> Vec<f32> {
    assert_eq!(grad_out.len(), shape.batch * shape.channels * shape.out_plane());
    let mut grad_x = vec![0.0f32; shape.batch * shape.in_channels() * shape.in_plane()];
    grad_x
        .par_chunks_mut(shape.in_plane())
        .enumerate()
        .for_each(|(plane, gx)| {
            let channels = if shape.shared_input {
                0..shape.channels
            } else {
                let c = plane % shape.channels;
                c..c + 1
            };
            let b = if shape.shared_input { plane } else { plane / shape.channels };
            for c in channels {
                let g0 = (b * shape.channels + c) * shape.out_plane();
                let g = &grad_out[g0..g0 + shape.out_plane()];
                let w = &weight[c * shape.taps()..(c + 1) * shape.taps()];
                input_grad_plane(shape, w, g, gx);
            }
        });
    grad_x
}

simd_dispatch!(input_grad_plane(shape: &ChannelwiseShape, w: &[f32], g: &[f32], gx: &mut [f32]) => input_grad_plane_body);

#[inline(always)]
fn input_grad_plane_body<const FMA: bool>(
    shape: &ChannelwiseShape,
    w: &[f32],
    g: &[f32],
    gx: &mut [f32],
) {
    let (in_w, out_w, pad_w) = (shape.in_w, shape.out_w(), shape.pad_w);
    for (oh, g_row) in g.chunks_exact(out_w).enumerate() {
        for kh in 0..shape.kernel_h {
            let Some(ih) = shape.input_row(oh, kh) else {
                continue;
            };
            let gx_row = &mut gx[ih * in_w..(ih + 1) * in_w];
            for kw in 0..shape.kernel_w {
                let wv = w[kh * shape.kernel_w + kw];
                let (lo, hi) = shape.valid_cols(kw);
                let shift = lo + kw - pad_w;
                for (gxv, &gv) in gx_row[shift..shift + hi - lo].iter_mut().zip(&g_row[lo..hi]) {
                    *gxv = madd::<FMA>(*gxv, wv, gv);
                }
            }
        }
    }
}

/// Gradient of the loss with respect to the filters (`[channels, 1, kernel_h, kernel_w]`).
///
/// One task per filter sums over the whole batch, so the result is the same for any number of
/// threads.
pub fn weight_grad(shape: &ChannelwiseShape, x: &[f32], grad_out: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), shape.batch * shape.in_channels() * shape.in_plane());
    assert_eq!(grad_out.len(), shape.batch * shape.channels * shape.out_plane());
    let mut grad_w = vec![0.0f32; shape.channels * shape.taps()];
    grad_w
        .par_chunks_mut(shape.taps())
        .enumerate()
        .for_each(|(c, gw)| {
            // Per tap, one row of partial sums over output columns: reduced once at the end.
            let mut partial = vec![0.0f32; shape.taps() * shape.out_w()];
            for b in 0..shape.batch {
                let plane = shape.input_plane_index(b, c) * shape.in_plane();
                let g0 = (b * shape.channels + c) * shape.out_plane();
                weight_grad_plane(
                    shape,
                    &x[plane..plane + shape.in_plane()],
                    &grad_out[g0..g0 + shape.out_plane()],
                    &mut partial,
                );
            }
            for (tap, row) in gw.iter_mut().zip(partial.chunks_exact(shape.out_w())) {
                *tap = row.iter().sum();
            }
        });
    grad_w
}

simd_dispatch!(weight_grad_plane(shape: &ChannelwiseShape, x: &[f32], g: &[f32], partial: &mut [f32]) => weight_grad_plane_body);

#[inline(always)]
fn weight_grad_plane_body<const FMA: bool>(
    shape: &ChannelwiseShape,
    x: &[f32],
    g: &[f32],
    partial: &mut [f32],
) {
    let (in_w, out_w, pad_w) = (shape.in_w, shape.out_w(), shape.pad_w);
    for (oh, g_row) in g.chunks_exact(out_w).enumerate() {
        for kh in 0..shape.kernel_h {
            let Some(ih) = shape.input_row(oh, kh) else {
                continue;
            };
            let x_row = &x[ih * in_w..(ih + 1) * in_w];
            for kw in 0..shape.kernel_w {
                let tap = kh * shape.kernel_w + kw;
                let acc = &mut partial[tap * out_w..(tap + 1) * out_w];
                let (lo, hi) = shape.valid_cols(kw);
                let shift = lo + kw - pad_w;
                for ((a, &gv), &xv) in acc[lo..hi]
                    .iter_mut()
                    .zip(&g_row[lo..hi])
                    .zip(&x_row[shift..shift + hi - lo])
                {
                    *a = madd::<FMA>(*a, gv, xv);
                }
            }
        }
    }
}
