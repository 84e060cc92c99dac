//! ELU (`x` for x > 0, `eˣ − 1` otherwise) as one fused pass forward and one backward.
//!
//! Composed from burn primitives, ELU is five full-size passes forward (compare, clamp, exp,
//! subtract, select) and about as many backward, each writing a new activation-sized tensor;
//! after every core block that is a large share of a training step. Here the backward reads
//! only the saved output: dELU/dx = 1 where y > 0, y + 1 elsewhere.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::extension::values;
use super::isa::{Isa, multiversion};
use std::mem::MaybeUninit;

use super::memory::{assume_init, uninit};

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const TASK: usize = 1 << 16;

/// ELU with α = 1 as a backend op with a fused backward.
#[backend_extension(Flex, Autodiff)]
pub trait EluBackend: Backend {
    /// `y = x` where `x > 0`, else `eˣ − 1`; same shape as `x`.
    fn fused_elu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// ELU of every value (α = 1), on [`Isa::active`].
pub fn elu_values(x: &[f32]) -> Vec<f32> {
    elu_values_on(Isa::active(), x)
}

/// [`elu_values`] on the path `isa` (all paths give the same numbers).
pub fn elu_values_on(isa: Isa, x: &[f32]) -> Vec<f32> {
    let mut out = uninit(x.len());
    out.par_chunks_mut(TASK)
        .zip(x.par_chunks(TASK))
        .for_each(|(o, x)| elu_chunk(isa, x, o));
    // SAFETY: every chunk of `out` is zipped with the chunk of `x` of the same length, and `elu_chunk`
    // writes each of its values.
    unsafe { assume_init(out) }
}

/// `out = ELU(a·x + b)` with a per-plane gain `a` and offset `b` (evaluation-mode batch norm
/// folded into one multiply-add, then ELU) in one pass, plane by plane in parallel:
/// `x` `[batch, channels, plane]`, `gain` and `offset` `[channels]`.
pub fn affine_elu_values(x: &[f32], plane: usize, gain: &[f32], offset: &[f32]) -> Vec<f32> {
    affine_elu_values_on(Isa::active(), x, plane, gain, offset)
}

/// [`affine_elu_values`] on the path `isa` (all paths give the same numbers).
pub fn affine_elu_values_on(
    isa: Isa,
    x: &[f32],
    plane: usize,
    gain: &[f32],
    offset: &[f32],
) -> Vec<f32> {
    let channels = gain.len();
    assert_eq!(offset.len(), channels, "offset");
    assert_eq!(x.len() % (plane * channels).max(1), 0, "input");
    let mut out = uninit(x.len());
    // Tasks of whole planes, about TASK values each.
    let per_task = (TASK / plane.max(1)).max(1) * plane.max(1);
    out.par_chunks_mut(per_task)
        .zip(x.par_chunks(per_task))
        .enumerate()
        .for_each(|(task, (o, x))| {
            let first = task * per_task / plane.max(1);
            for (k, (o, x)) in o
                .chunks_mut(plane.max(1))
                .zip(x.chunks(plane.max(1)))
                .enumerate()
            {
                let c = (first + k) % channels;
                affine_elu_chunk(isa, x, gain[c], offset[c], o);
            }
        });
    // SAFETY: the tasks cover `out` in whole planes, each zipped with the plane of `x` of the same
    // length, and `affine_elu_chunk` writes each of its values.
    unsafe { assume_init(out) }
}

multiversion!(
    /// ELU of a chunk, compiled for `isa` (the release build targets baseline x86-64, whose
    /// 4-wide vectors would halve the throughput).
    fn elu_chunk => elu_chunk_body(x: &[f32], out: &mut [MaybeUninit<f32>])
);

multiversion!(
    /// ELU(a·x + b) of a chunk, compiled for `isa`.
    pub(super) fn affine_elu_chunk => affine_elu_chunk_body(x: &[f32], a: f32, b: f32, out: &mut [MaybeUninit<f32>])
);

#[inline(always)]
fn affine_elu_chunk_body(x: &[f32], a: f32, b: f32, out: &mut [MaybeUninit<f32>]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(elu(a * v + b));
    }
}

#[inline(always)]
fn elu_chunk_body(x: &[f32], out: &mut [MaybeUninit<f32>]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(elu(v));
    }
}

/// ELU of one value (α = 1): `v` for v > 0, eᵛ − 1 otherwise; branch-free, so loops over it
/// vectorise.
#[inline(always)]
pub(super) fn elu(v: f32) -> f32 {
    let negative = exp_m1_nonpositive(v.min(0.0));
    if v > 0.0 { v } else { negative }
}

/// `eˣ − 1` for `x ≤ 0` without a libm call, so the loop vectorises (glibc's `expm1f` was the
/// largest single item of a training step's profile).
///
/// Cephes' `expf` reduction: x = n·ln 2 + r with |r| ≤ ln 2 / 2, eʳ ≈ 1 + r + r²·P(r), and
/// eˣ − 1 = 2ⁿ·(r + r²·P(r)) + (2ⁿ − 1), which has no cancellation near 0 (n = 0 there).
/// Relative error ≲ 2·10⁻⁷; inputs below −87 give −1 (2ⁿ underflows to 0).
#[inline(always)]
fn exp_m1_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0);
    let n = (x * LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    // 2ⁿ from the bits of n + 1.5·2²³, whose low mantissa bits hold the integer n (−126 ≤ n ≤ 0
    // here) in two's complement: the same value as `(n as i32 + 127) << 23`, but without the
    // saturating float-to-int cast, which LLVM compiles to scalar compares per lane and so kept
    // the whole loop from vectorising.
    const SHIFTER: f32 = 12_582_912.0; // 1.5·2²³
    let n_bits = (n + SHIFTER).to_bits().wrapping_sub(SHIFTER.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    two_n * (p * r * r + r) + (two_n - 1.0)
}

/// Input gradient of ELU from its output `y` and the output gradient, on [`Isa::active`].
pub fn elu_grad_values(y: &[f32], grad: &[f32]) -> Vec<f32> {
    elu_grad_values_on(Isa::active(), y, grad)
}

/// [`elu_grad_values`] on the path `isa` (all paths give the same numbers).
pub fn elu_grad_values_on(isa: Isa, y: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), grad.len());
    let mut out = uninit(y.len());
    out.par_chunks_mut(TASK)
        .zip(y.par_chunks(TASK).zip(grad.par_chunks(TASK)))
        .for_each(|(o, (y, g))| elu_grad_chunk(isa, y, g, o));
    // SAFETY: `y` and `grad` have `out`'s length, every chunk of `out` is zipped with chunks of the
    // same length, and `elu_grad_chunk` writes each of its values.
    unsafe { assume_init(out) }
}

multiversion!(
    /// ELU's input gradient of a chunk, compiled for `isa`.
    fn elu_grad_chunk => elu_grad_chunk_body(y: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>])
);

#[inline(always)]
fn elu_grad_chunk_body(y: &[f32], g: &[f32], out: &mut [MaybeUninit<f32>]) {
    for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
        o.write(if y > 0.0 { g } else { g * (y + 1.0) });
    }
}

/// ELU(gain·x + offset) per channel as one op (the evaluation-mode batch norm of a core block,
/// folded, and its ELU): one pass instead of three, on flex and, with its backward, on autodiff
/// over flex (gradients with respect to the input of a frozen model: MEIs, RF maps).
#[backend_extension(Flex, Autodiff)]
pub trait AffineEluBackend: Backend {
    /// `x` `[batch, channels, ...]`, `gain` and `offset` `[channels]`; same shape as `x`.
    fn affine_elu(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        offset: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl AffineEluBackend for Flex {
    fn affine_elu(x: FlexTensor, gain: FlexTensor, offset: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let plane = shape[2..].iter().product();
        let out = affine_elu_values(&values(&x), plane, &values(&gain), &values(&offset));
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

/// Backward step of [`AffineEluBackend::affine_elu`]: with d = dELU(v)/dv · grad at v =
/// gain·x + offset (1 where y > 0, y + 1 elsewhere), the input gradient is d · gain[c] (the
/// same rounding as the two-step burn graph), the offset gradient Σ d and the gain gradient
/// Σ d · x over the batch and the plane of each channel.
#[derive(Debug)]
struct AffineEluBackward;

impl Backward<Flex, 3> for AffineEluBackward {
    /// The input, the output and the gain.
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gain, node_offset] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let (x, y, gain) = ops.state;
        let shape = y.shape();
        let plane = shape[2..].iter().product();
        let (y, grad_out, gain) = (values(&y), values(&grad_out), values(&gain));
        if let Some(node) = node_x {
            let grad = affine_elu_input_grad(&y, &grad_out, plane, &gain);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(grad, shape)));
        }
        if node_gain.is_some() || node_offset.is_some() {
            let (grad_gain, grad_offset) =
                affine_elu_parameter_grads(&values(&x), &y, &grad_out, plane, gain.len());
            for (node, grad) in [(node_gain, grad_gain), (node_offset, grad_offset)] {
                if let Some(node) = node {
                    let n = grad.len();
                    grads.register::<Flex>(
                        node.id,
                        FlexTensor::from_data(TensorData::new(grad, [n])),
                    );
                }
            }
        }
    }
}

impl<C: CheckpointStrategy> AffineEluBackend for Autodiff<Flex, C> {
    fn affine_elu(
        x: FloatTensor<Self>,
        gain: FloatTensor<Self>,
        offset: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match AffineEluBackward
            .prepare::<C>([x.node(), gain.node(), offset.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, gain, offset) = (
                    x.into_primitive(),
                    gain.into_primitive(),
                    offset.into_primitive(),
                );
                let y = Flex::affine_elu(x.clone(), gain.clone(), offset);
                prep.finish((x, y.clone(), gain), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::affine_elu(
                x.into_primitive(),
                gain.into_primitive(),
                offset.into_primitive(),
            )),
        }
    }
}

/// Input gradient of [`affine_elu_values`] from its output `y`, the output gradient and the
/// gain, on [`Isa::active`]: `(y > 0 ? g : g·(y + 1)) · gain[c]`.
pub fn affine_elu_input_grad(y: &[f32], grad: &[f32], plane: usize, gain: &[f32]) -> Vec<f32> {
    affine_elu_input_grad_on(Isa::active(), y, grad, plane, gain)
}

/// [`affine_elu_input_grad`] on the path `isa` (all paths give the same numbers).
pub fn affine_elu_input_grad_on(
    isa: Isa,
    y: &[f32],
    grad: &[f32],
    plane: usize,
    gain: &[f32],
) -> Vec<f32> {
    let channels = gain.len();
    assert_eq!(y.len(), grad.len());
    assert_eq!(y.len() % (plane * channels).max(1), 0, "input");
    let plane = plane.max(1);
    let mut out = uninit(y.len());
    let per_task = (TASK / plane).max(1) * plane;
    out.par_chunks_mut(per_task)
        .zip(y.par_chunks(per_task).zip(grad.par_chunks(per_task)))
        .enumerate()
        .for_each(|(task, (o, (y, g)))| {
            let first = task * per_task / plane;
            for (k, ((o, y), g)) in o
                .chunks_mut(plane)
                .zip(y.chunks(plane))
                .zip(g.chunks(plane))
                .enumerate()
            {
                affine_elu_grad_chunk(isa, y, g, gain[(first + k) % channels], o);
            }
        });
    // SAFETY: the tasks cover `out` in whole planes, each zipped with planes of `y` and `grad` of the
    // same length, and `affine_elu_grad_chunk` writes each of its values.
    unsafe { assume_init(out) }
}

multiversion!(
    /// The input gradient of ELU(a·x + b) for a chunk, compiled for `isa`.
    fn affine_elu_grad_chunk => affine_elu_grad_chunk_body(y: &[f32], g: &[f32], a: f32, out: &mut [MaybeUninit<f32>])
);

#[inline(always)]
fn affine_elu_grad_chunk_body(y: &[f32], g: &[f32], a: f32, out: &mut [MaybeUninit<f32>]) {
    for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
        let d = if y > 0.0 { g } else { g * (y + 1.0) };
        o.write(d * a);
    }
}

/// Gradients of ELU(gain·x + offset) with respect to `gain` and `offset` (`[channels]` each):
/// per channel, Σ d·x and Σ d over the batch and the plane, summed in a fixed order in f64.
fn affine_elu_parameter_grads(
    x: &[f32],
    y: &[f32],
    grad: &[f32],
    plane: usize,
    channels: usize,
) -> (Vec<f32>, Vec<f32>) {
    let plane = plane.max(1);
    let mut sums = vec![(0.0f64, 0.0f64); channels];
    for (p, ((x, y), g)) in x
        .chunks(plane)
        .zip(y.chunks(plane))
        .zip(grad.chunks(plane))
        .enumerate()
    {
        let (gain_sum, offset_sum) = &mut sums[p % channels];
        for ((&x, &y), &g) in x.iter().zip(y).zip(g) {
            let d = if y > 0.0 { g } else { g * (y + 1.0) } as f64;
            *gain_sum += d * x as f64;
            *offset_sum += d;
        }
    }
    sums.into_iter().map(|(a, b)| (a as f32, b as f32)).unzip()
}

impl EluBackend for Flex {
    fn fused_elu(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        FlexTensor::from_data(TensorData::new(elu_values(&values(&x)), shape))
    }
}

/// Backward step of [`EluBackend::fused_elu`]: keeps the forward output.
#[derive(Debug)]
struct EluBackward;

impl Backward<Flex, 1> for EluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let y = ops.state;
            let grad = elu_grad_values(&values(&y), &values(&grad_out));
            let grad = FlexTensor::from_data(TensorData::new(grad, y.shape()));
            grads.register::<Flex>(node.id, grad);
        }
    }
}

impl<C: CheckpointStrategy> EluBackend for Autodiff<Flex, C> {
    fn fused_elu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match EluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = Flex::fused_elu(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_elu(x.into_primitive())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_m1_matches_libm() {
        for i in 0..=20_000 {
            let x = -(i as f32) * 0.005; // 0 … −100
            let want = x.exp_m1();
            let got = exp_m1_nonpositive(x);
            let tolerance = 4e-7 * want.abs().max(1e-30) + 1e-38;
            assert!((got - want).abs() <= tolerance, "x = {x}: {got} vs {want}");
        }
        for x in [-1e-3f32, -1e-6, -1e-10, -0.0] {
            let (got, want) = (exp_m1_nonpositive(x), x.exp_m1());
            assert!(
                (got - want).abs() <= 4e-7 * want.abs(),
                "x = {x}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn the_power_of_two_from_bits_is_the_integer_cast() {
        for n in -126..=0 {
            let n = n as f32;
            let cast = f32::from_bits(((n as i32 + 127) << 23) as u32);
            const SHIFTER: f32 = 12_582_912.0;
            let bits = (n + SHIFTER).to_bits().wrapping_sub(SHIFTER.to_bits());
            assert_eq!(
                f32::from_bits(bits.wrapping_add(127) << 23),
                cast,
                "n = {n}"
            );
        }
        // The reduction never leaves that range, even for inputs past the clamp.
        for x in [-87.0f32, -1e30, f32::MIN, f32::NEG_INFINITY, -0.0] {
            let got = exp_m1_nonpositive(x);
            assert!((-1.0..=0.0).contains(&got), "x = {x}: {got}");
        }
    }
}
