//! Training-mode batch normalization (batch statistics) in a few fused passes, forward and
//! backward, on `[batch, channels, ...]` maps.
//!
//! burn's default `batch_norm_train` on flex is a dozen full-size passes forward (swap axes,
//! mean, subtract, square, mean, normalise, scale, shift) and as many backward. Here the forward
//! reads each channel twice for its statistics (mean, then the centred sum of squares, the stable
//! two-pass variance) and once more to write the output; the backward reads each channel once for
//! its two sums and once more to write the input gradient. One task does all of a channel's
//! passes, so only the first reads its planes from memory: the others find them in the core's L2
//! cache (a channel of the lurz2020 core is 282 KB per tensor at batch 64). Sums run in a fixed order per channel, so results do not depend on the thread
//! count. [`forward_elu_on`] and [`backward_elu_on`] do the same with the ELU that follows the
//! batch norm in a core block folded into the writing pass and the two gradient passes; the ops
//! built on these are in [`super::batch_norm_op`].

use rayon::prelude::*;

use super::elu::elu;
use super::isa::{Isa, multiversion};
use std::mem::MaybeUninit;

use super::memory::{assume_init, uninit};

/// Sizes of a batch-norm input `[batch, channels, plane...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    pub batch: usize,
    pub channels: usize,
    /// Elements per (image, channel) plane (e.g. h·w).
    pub plane: usize,
}

impl NormShape {
    pub(super) fn from_dims(dims: &[usize]) -> Self {
        Self {
            batch: dims[0],
            channels: dims[1],
            plane: dims[2..].iter().product(),
        }
    }

    /// Values per channel (the statistics' sample size).
    fn samples(&self) -> usize {
        self.batch * self.plane
    }

    /// The plane (`image`, `channel`) of `values`.
    fn plane<'a>(&self, values: &'a [f32], image: usize, channel: usize) -> &'a [f32] {
        let start = (image * self.channels + channel) * self.plane;
        &values[start..start + self.plane]
    }

    /// The planes of `values` that belong to `channel`, image by image.
    fn planes<'a>(&self, values: &'a [f32], channel: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch).map(move |b| {
            let start = (b * self.channels + channel) * self.plane;
            &values[start..start + self.plane]
        })
    }
}

/// Output and batch statistics of [`forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct NormOutput {
    pub output: Vec<f32>,
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel biased (population) variance, without ε.
    pub variance: Vec<f32>,
}

/// Gradients of [`forward`]'s output with respect to its input, scale γ and shift β.
#[derive(Debug, Clone, PartialEq)]
pub struct NormGrads {
    pub input: Vec<f32>,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// `Σ f(v)` over `values` in eight f32 lanes (a fixed order that vectorises), returned in f64.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for i in 0..8 {
            lanes[i] += f(chunk[i]);
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64
}

/// Runs `per_channel(c, planes)` for every channel in parallel, one task per channel, and
/// returns its results in channel order and the tensor it wrote: `planes` are channel `c`'s
/// output planes in image order, and `per_channel` must write every value of each. A channel's
/// statistics and its output come from one task, so its input planes are still in the core's L2
/// cache when the output pass reads them again (read from memory once instead of twice).
fn map_channels<T: Send>(
    shape: &NormShape,
    per_channel: impl Fn(usize, &mut [&mut [MaybeUninit<f32>]]) -> T + Sync,
) -> (Vec<T>, Vec<f32>) {
    let mut out = uninit(shape.batch * shape.channels * shape.plane);
    let planes = ChannelPlanes {
        ptr: out.as_mut_ptr(),
        len: out.len(),
    };
    let results = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            // SAFETY: each task takes the planes of its own channel only.
            let mut planes = unsafe { planes.of_channel(shape, c) };
            per_channel(c, &mut planes)
        })
        .collect();
    // SAFETY: the tasks cover every channel, and `per_channel` writes every value of each of its
    // planes (its contract); the channels' planes cover `out`.
    (results, unsafe { assume_init(out) })
}

/// The output of [`map_channels`], handed to its tasks.
struct ChannelPlanes {
    ptr: *mut MaybeUninit<f32>,
    len: usize,
}

// SAFETY: tasks take disjoint planes through it (one channel each, see `of_channel`).
unsafe impl Sync for ChannelPlanes {}

impl ChannelPlanes {
    /// Channel `c`'s planes, image by image.
    ///
    /// # Safety
    /// No other reference to these planes may exist while the returned ones live.
    #[allow(clippy::mut_from_ref)]
    unsafe fn of_channel(&self, shape: &NormShape, c: usize) -> Vec<&mut [MaybeUninit<f32>]> {
        (0..shape.batch)
            .map(|b| {
                let start = (b * shape.channels + c) * shape.plane;
                assert!(start + shape.plane <= self.len, "plane out of range");
                // SAFETY: in bounds (asserted); exclusive by the caller's guarantee.
                unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), shape.plane) }
            })
            .collect()
    }
}

multiversion!(
    /// Mean and biased variance of channel `c` (two passes), compiled for `isa`.
    fn channel_stats => channel_stats_body(shape: &NormShape, x: &[f32], c: usize) -> [f64; 2]
);

#[inline(always)]
fn channel_stats_body(shape: &NormShape, x: &[f32], c: usize) -> [f64; 2] {
    let n = shape.samples() as f64;
    let mean = shape.planes(x, c).map(|p| lane_sum(p, |v| v)).sum::<f64>() / n;
    let m = mean as f32;
    let var = shape
        .planes(x, c)
        .map(|p| lane_sum(p, |v| (v - m) * (v - m)))
        .sum::<f64>()
        / n;
    [mean, var]
}

multiversion!(
    /// `out = a·(x − m) + b`, compiled for `isa`.
    fn normalize_plane => normalize_plane_body(x: &[f32], a: f32, m: f32, b: f32, out: &mut [MaybeUninit<f32>])
);

#[inline(always)]
fn normalize_plane_body(x: &[f32], a: f32, m: f32, b: f32, out: &mut [MaybeUninit<f32>]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(a * (v - m) + b);
    }
}

multiversion!(
    /// `out = ELU(a·(x − m) + b)`: [`normalize_plane`] and ELU rounded as the two steps are,
    /// without the intermediate plane. Compiled for `isa`.
    fn normalize_elu_plane => normalize_elu_plane_body(
        x: &[f32],
        a: f32,
        m: f32,
        b: f32,
        out: &mut [MaybeUninit<f32>],
    )
);

#[inline(always)]
fn normalize_elu_plane_body(x: &[f32], a: f32, m: f32, b: f32, out: &mut [MaybeUninit<f32>]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(elu(a * (v - m) + b));
    }
}

/// Normalises `x` with its batch statistics: `γ·(x − mean)/√(var + ε) + β` per channel, on
/// [`Isa::active`].
pub fn forward(shape: &NormShape, x: &[f32], scale: &[f32], shift: &[f32], eps: f64) -> NormOutput {
    forward_on(Isa::active(), shape, x, scale, shift, eps)
}

/// [`forward`] on the path `isa` (all paths give the same numbers).
pub fn forward_on(
    isa: Isa,
    shape: &NormShape,
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    eps: f64,
) -> NormOutput {
    forward_with(isa, shape, x, (scale, shift), eps, false)
}

/// ELU of [`forward`]'s output, in the same pass: the numbers of the two steps without the
/// normalised map in between. On the path `isa`.
pub fn forward_elu_on(
    isa: Isa,
    shape: &NormShape,
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    eps: f64,
) -> NormOutput {
    forward_with(isa, shape, x, (scale, shift), eps, true)
}

fn forward_with(
    isa: Isa,
    shape: &NormShape,
    x: &[f32],
    (scale, shift): (&[f32], &[f32]),
    eps: f64,
    elu: bool,
) -> NormOutput {
    assert_eq!(x.len(), shape.batch * shape.channels * shape.plane, "input");
    // out = a·(x − mean) + β with a = γ/√(var + ε).
    let (stats, output) = map_channels(shape, |c, out| {
        let [mean, var] = channel_stats(isa, shape, x, c);
        let a = (scale[c] as f64 / (var + eps).sqrt()) as f32;
        let (m, b) = (mean as f32, shift[c]);
        for (x, out) in shape.planes(x, c).zip(out.iter_mut()) {
            if elu {
                normalize_elu_plane(isa, x, a, m, b, out);
            } else {
                normalize_plane(isa, x, a, m, b, out);
            }
        }
        [mean, var]
    });
    NormOutput {
        output,
        mean: stats.iter().map(|s| s[0] as f32).collect(),
        variance: stats.iter().map(|s| s[1] as f32).collect(),
    }
}

/// Gradients of [`forward`] given the statistics it returned and the output gradient `grad`.
///
/// With x̂ = (x − mean)/σ: dβ = Σ g, dγ = Σ g·x̂ and
/// dx = γ/σ · (g − dβ/n − x̂·dγ/n), written as `k·g + q·(x − mean) + r` per channel. On
/// [`Isa::active`].
pub fn backward(
    shape: &NormShape,
    x: &[f32],
    scale: &[f32],
    stats: (&[f32], &[f32]),
    eps: f64,
    grad: &[f32],
) -> NormGrads {
    backward_on(Isa::active(), shape, x, scale, stats, eps, grad)
}

multiversion!(
    /// `[Σ g, Σ g·(x − m)]` over channel `c`, compiled for `isa`.
    fn gradient_sums => gradient_sums_body(
        shape: &NormShape,
        x: &[f32],
        grad: &[f32],
        c: usize,
        m: f32,
    ) -> [f64; 2]
);

#[inline(always)]
fn gradient_sums_body(shape: &NormShape, x: &[f32], grad: &[f32], c: usize, m: f32) -> [f64; 2] {
    sums_with(shape, x, (grad, grad), c, m, |g, _| g)
}

multiversion!(
    /// [`gradient_sums`] of a batch norm followed by ELU, from the ELU's output `y` and output
    /// gradient: g = dELU · grad, formed on the fly. Compiled for `isa`.
    fn elu_gradient_sums => elu_gradient_sums_body(
        shape: &NormShape,
        x: &[f32],
        grad: &[f32],
        y: &[f32],
        c: usize,
        m: f32,
    ) -> [f64; 2]
);

#[inline(always)]
fn elu_gradient_sums_body(
    shape: &NormShape,
    x: &[f32],
    grad: &[f32],
    y: &[f32],
    c: usize,
    m: f32,
) -> [f64; 2] {
    sums_with(shape, x, (grad, y), c, m, elu_input_grad)
}

/// ELU's input gradient from its output `y` and output gradient `g` (1 where y > 0, y + 1 =
/// e^z elsewhere), as `kernels::elu` computes it.
#[inline(always)]
fn elu_input_grad(g: f32, y: f32) -> f32 {
    if y > 0.0 { g } else { g * (y + 1.0) }
}

/// `[Σ g, Σ g·(x − m)]` over channel `c` with g = `dz(grad, y)` per value, in eight f32 lanes
/// per plane (the order of [`lane_sum`]).
#[inline(always)]
fn sums_with(
    shape: &NormShape,
    x: &[f32],
    (grad, y): (&[f32], &[f32]),
    c: usize,
    m: f32,
    dz: impl Fn(f32, f32) -> f32,
) -> [f64; 2] {
    let mut sum_g = 0.0f64;
    let mut sum_gx = 0.0f64;
    for ((g, y), x) in shape
        .planes(grad, c)
        .zip(shape.planes(y, c))
        .zip(shape.planes(x, c))
    {
        let mut lanes_g = [0.0f32; 8];
        let mut lanes_gx = [0.0f32; 8];
        let (g8, y8, x8) = (g.chunks_exact(8), y.chunks_exact(8), x.chunks_exact(8));
        let tail = || {
            g8.remainder()
                .iter()
                .zip(y8.remainder())
                .map(|(&g, &y)| dz(g, y))
        };
        let tail_g: f32 = tail().sum();
        let tail_gx: f32 = tail().zip(x8.remainder()).map(|(g, &x)| g * (x - m)).sum();
        for ((g, y), x) in g8.clone().zip(y8.clone()).zip(x8.clone()) {
            for i in 0..8 {
                let g = dz(g[i], y[i]);
                lanes_g[i] += g;
                lanes_gx[i] += g * (x[i] - m);
            }
        }
        sum_g += lanes_g.iter().map(|&l| l as f64).sum::<f64>() + tail_g as f64;
        sum_gx += lanes_gx.iter().map(|&l| l as f64).sum::<f64>() + tail_gx as f64;
    }
    [sum_g, sum_gx]
}

multiversion!(
    /// `out = k·g + q·(x − m) + r`, compiled for `isa`.
    fn input_grad_plane => input_grad_plane_body(
        g: &[f32],
        x: &[f32],
        coefficients: [f32; 4],
        out: &mut [MaybeUninit<f32>],
    )
);

#[inline(always)]
fn input_grad_plane_body(
    g: &[f32],
    x: &[f32],
    coefficients: [f32; 4],
    out: &mut [MaybeUninit<f32>],
) {
    let [k, q, r, m] = coefficients;
    for ((o, &g), &v) in out.iter_mut().zip(g).zip(x) {
        o.write(k * g + q * (v - m) + r);
    }
}

multiversion!(
    /// [`input_grad_plane`] behind an ELU: g = dELU · grad from the ELU's output `y`. Compiled
    /// for `isa`.
    fn elu_input_grad_plane => elu_input_grad_plane_body(
        grad: &[f32],
        y: &[f32],
        x: &[f32],
        coefficients: [f32; 4],
        out: &mut [MaybeUninit<f32>],
    )
);

#[inline(always)]
fn elu_input_grad_plane_body(
    grad: &[f32],
    y: &[f32],
    x: &[f32],
    coefficients: [f32; 4],
    out: &mut [MaybeUninit<f32>],
) {
    let [k, q, r, m] = coefficients;
    for (((o, &g), &y), &v) in out.iter_mut().zip(grad).zip(y).zip(x) {
        o.write(k * elu_input_grad(g, y) + q * (v - m) + r);
    }
}

/// [`backward`] on the path `isa` (all paths give the same numbers).
pub fn backward_on(
    isa: Isa,
    shape: &NormShape,
    x: &[f32],
    scale: &[f32],
    stats: (&[f32], &[f32]),
    eps: f64,
    grad: &[f32],
) -> NormGrads {
    backward_with(isa, shape, (x, scale), stats, eps, grad, None)
}

/// Gradients of [`forward_elu_on`] given its statistics, its output `y` and the gradient `grad`
/// of `y`: [`backward_on`] of dELU · grad, which is formed on the fly (the same numbers as the
/// two steps, without the gradient map in between). On the path `isa`.
pub fn backward_elu_on(
    isa: Isa,
    shape: &NormShape,
    (x, y): (&[f32], &[f32]),
    scale: &[f32],
    stats: (&[f32], &[f32]),
    eps: f64,
    grad: &[f32],
) -> NormGrads {
    assert_eq!(y.len(), x.len(), "output");
    backward_with(isa, shape, (x, scale), stats, eps, grad, Some(y))
}

fn backward_with(
    isa: Isa,
    shape: &NormShape,
    (x, scale): (&[f32], &[f32]),
    stats: (&[f32], &[f32]),
    eps: f64,
    grad: &[f32],
    elu_output: Option<&[f32]>,
) -> NormGrads {
    assert_eq!(x.len(), shape.batch * shape.channels * shape.plane, "input");
    assert_eq!(grad.len(), x.len(), "output gradient");
    let (mean, variance) = stats;
    let n = shape.samples() as f64;
    // dx = k·g + q·(x − mean) + r per channel.
    let (sums, input) = map_channels(shape, |c, out| {
        let sums = match elu_output {
            Some(y) => elu_gradient_sums(isa, shape, x, grad, y, c, mean[c]),
            None => gradient_sums(isa, shape, x, grad, c, mean[c]),
        };
        let inv_std = 1.0 / (variance[c] as f64 + eps).sqrt();
        let k = scale[c] as f64 * inv_std;
        let q = -k * inv_std * inv_std * sums[1] / n;
        let r = -k * sums[0] / n;
        let coefficients = [k as f32, q as f32, r as f32, mean[c]];
        for (b, out) in out.iter_mut().enumerate() {
            let (g, x) = (shape.plane(grad, b, c), shape.plane(x, b, c));
            match elu_output {
                Some(y) => elu_input_grad_plane(isa, g, shape.plane(y, b, c), x, coefficients, out),
                None => input_grad_plane(isa, g, x, coefficients, out),
            }
        }
        (sums, inv_std)
    });
    let shift_grad: Vec<f32> = sums.iter().map(|(s, _)| s[0] as f32).collect();
    let scale_grad: Vec<f32> = sums.iter().map(|(s, r)| (s[1] * r) as f32).collect();
    NormGrads {
        input,
        scale: scale_grad,
        shift: shift_grad,
    }
}
