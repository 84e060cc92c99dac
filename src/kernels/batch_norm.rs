//! Training-mode batch normalization (batch statistics) in a few fused passes, forward and
//! backward, on `[batch, channels, ...]` maps.
//!
//! burn's default `batch_norm_train` on flex is a dozen full-size passes forward (swap axes,
//! mean, subtract, square, mean, normalise, scale, shift) and as many backward. Here the forward
//! reads each channel twice for its statistics (mean, then the centred sum of squares, the stable
//! two-pass variance; a channel's planes stay in cache between the two) and writes the output in
//! one pass; the backward reads each channel once for its two sums and writes the input gradient
//! in one pass. Sums run in a fixed order per channel, so results do not depend on the thread
//! count.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::Shape;
use rayon::prelude::*;

use super::extension::{flex_tensor, values};
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
    fn from_dims(dims: &[usize]) -> Self {
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
        normalize_plane(
            isa,
            &x[i * shape.plane..(i + 1) * shape.plane],
            a,
            m,
            b,
            out,
        );
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
    let mut sum_g = 0.0f64;
    let mut sum_gx = 0.0f64;
    for (g, x) in shape.planes(grad, c).zip(shape.planes(x, c)) {
        sum_g += lane_sum(g, |v| v);
        let mut lanes = [0.0f32; 8];
        let (g8, x8) = (g.chunks_exact(8), x.chunks_exact(8));
        let tail: f32 = g8
            .remainder()
            .iter()
            .zip(x8.remainder())
            .map(|(&g, &x)| g * (x - m))
            .sum();
        for (g, x) in g8.zip(x8) {
            for i in 0..8 {
                lanes[i] += g[i] * (x[i] - m);
            }
        }
        sum_gx += lanes.iter().map(|&l| l as f64).sum::<f64>() + tail as f64;
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
    assert_eq!(x.len(), shape.batch * shape.channels * shape.plane, "input");
    assert_eq!(grad.len(), x.len(), "output gradient");
    let (mean, variance) = stats;
    let n = shape.samples() as f64;
    let sums = channel_sums(shape, |c| gradient_sums(isa, shape, x, grad, c, mean[c]));
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
        input_grad_plane(isa, &grad[range.clone()], &x[range], coefficients[c], out);
    });
    NormGrads {
        input,
        scale: scale_grad,
        shift: shift_grad,
    }
}

/// Training-mode batch norm as a backend op with a fused backward.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// Output (shape of `x`), batch mean and biased batch variance (`[channels]`, detached) of
    /// `γ·(x − mean)/√(var + ε) + β` with per-channel `scale` γ and `shift` β.
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl BatchNormBackend for Flex {
    fn fused_batch_norm_train(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let dims = x.shape();
        let shape = NormShape::from_dims(&dims);
        let out = forward(&shape, &values(&x), &values(&scale), &values(&shift), eps);
        let channels = Shape::new([shape.channels]);
        (
            flex_tensor(out.output, dims),
            flex_tensor(out.mean, channels.clone()),
            flex_tensor(out.variance, channels),
        )
    }
}

/// Backward step of [`BatchNormBackend::fused_batch_norm_train`]: keeps the checkpointed input
/// and scale and the batch statistics.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (NodeId, NodeId, FlexTensor, FlexTensor, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_scale, node_shift] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, scale_state, mean, variance, eps) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let scale = checkpointer.retrieve_node_output::<FlexTensor>(scale_state);
        let dims = x.shape();
        let shape = NormShape::from_dims(&dims);
        let result = backward(
            &shape,
            &values(&x),
            &values(&scale),
            (&values(&mean), &values(&variance)),
            eps,
            &values(&grad),
        );
        let channels = Shape::new([shape.channels]);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_tensor(result.input, dims));
        }
        if let Some(node) = node_scale {
            grads.register::<Flex>(node.id, flex_tensor(result.scale, channels.clone()));
        }
        if let Some(node) = node_shift {
            grads.register::<Flex>(node.id, flex_tensor(result.shift, channels));
        }
    }
}

impl<C: CheckpointStrategy> BatchNormBackend for Autodiff<Flex, C> {
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let detached = <Self as AutodiffBackend>::from_inner;
        match BatchNormBackward
            .prepare::<C>([x.node(), scale.node(), shift.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let scale_state = prep.checkpoint(&scale);
                let (out, mean, variance) = Flex::fused_batch_norm_train(
                    x.into_primitive(),
                    scale.into_primitive(),
                    shift.into_primitive(),
                    eps,
                );
                let state = (x_state, scale_state, mean.clone(), variance.clone(), eps);
                (prep.finish(state, out), detached(mean), detached(variance))
            }
            OpsKind::UnTracked(prep) => {
                let (out, mean, variance) = Flex::fused_batch_norm_train(
                    x.into_primitive(),
                    scale.into_primitive(),
                    shift.into_primitive(),
                    eps,
                );
                (prep.finish(out), detached(mean), detached(variance))
            }
        }
    }
}
