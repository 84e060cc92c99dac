//! Training-mode batch normalization (batch statistics) in a few fused passes, forward and
//! backward, on `[batch, channels, ...]` maps.
//!
//! burn's default `batch_norm_train` on flex is a dozen full-size passes forward (swap axes,
//! mean, subtract, square, mean, normalise, scale, shift) and as many backward. Here the forward
//! reads each channel twice for its statistics (mean, then the centred sum of squares, the stable
//! two-pass variance; a channel's planes stay in cache between the two) and writes the output in
//! one pass; the backward reads each channel once for its two sums and writes the input gradient
//! in one pass. Sums run in a fixed order per channel, so results do not depend on the thread
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

/// Two sums per channel, one parallel task per channel.
fn channel_sums(
    shape: &NormShape,
    per_channel: impl Fn(usize) -> [f64; 2] + Sync + Send,
) -> Vec<[f64; 2]> {
    (0..shape.channels)
        .into_par_iter()
        .map(per_channel)
        .collect()
}

/// A new tensor of all `shape`'s planes written plane by plane in parallel:
/// `per_plane(channel, plane index, plane)` must write every value of `plane`.
fn map_planes(
    shape: &NormShape,
    per_plane: impl Fn(usize, usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut out = uninit(shape.batch * shape.channels * shape.plane);
    out.par_chunks_mut(shape.plane.max(1))
        .enumerate()
        .for_each(|(i, plane)| per_plane(i % shape.channels, i, plane));
    // SAFETY: the chunks cover `out`, and `per_plane` writes every value of each (its contract;
    // both callers zip the plane with input planes of the same length).
    unsafe { assume_init(out) }
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
    let stats = channel_sums(shape, |c| channel_stats(isa, shape, x, c));
    // out = a·(x − mean) + β with a = γ/√(var + ε).
    let coefficients: Vec<(f32, f32, f32)> = stats
        .iter()
        .enumerate()
        .map(|(c, &[mean, var])| {
            let a = scale[c] as f64 / (var + eps).sqrt();
            (a as f32, mean as f32, shift[c])
        })
        .collect();
    let output = map_planes(shape, |c, i, out| {
        let (a, m, b) = coefficients[c];
        let x = &x[i * shape.plane..(i + 1) * shape.plane];
        if elu {
            normalize_elu_plane(isa, x, a, m, b, out);
        } else {
            normalize_plane(isa, x, a, m, b, out);
        }
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
    let sums = channel_sums(shape, |c| match elu_output {
        Some(y) => elu_gradient_sums(isa, shape, x, grad, y, c, mean[c]),
        None => gradient_sums(isa, shape, x, grad, c, mean[c]),
    });
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + eps).sqrt())
        .collect();
    let shift_grad: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
    let scale_grad: Vec<f32> = sums
        .iter()
        .zip(&inv_std)
        .map(|(s, &r)| (s[1] * r) as f32)
        .collect();
    let coefficients: Vec<[f32; 4]> = (0..shape.channels)
        .map(|c| {
            let k = scale[c] as f64 * inv_std[c];
            let q = -k * inv_std[c] * inv_std[c] * sums[c][1] / n;
            let r = -k * sums[c][0] / n;
            [k as f32, q as f32, r as f32, mean[c]]
        })
        .collect();
    let input = map_planes(shape, |c, i, out| {
        let range = i * shape.plane..(i + 1) * shape.plane;
        let (g, x) = (&grad[range.clone()], &x[range.clone()]);
        match elu_output {
            Some(y) => elu_input_grad_plane(isa, g, &y[range], x, coefficients[c], out),
            None => input_grad_plane(isa, g, x, coefficients[c], out),
        }
    });
    NormGrads {
        input,
        scale: scale_grad,
        shift: shift_grad,
    }
}
