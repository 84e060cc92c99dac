//! 1×1 convolutions (the in/out "depth" convs of the depth-separable blocks) as one matrix
//! product per image, forward and backward: `out[b] = W · x[b]` with `x[b]` viewed as
//! `[in_channels, h·w]` and `W` `[out_channels, in_channels]`.
//!
//! Written with burn's batched matmul (a `[1, out, in]` filter broadcast against `[batch, in,
//! h·w]`), a step allocates and zero-fills every output on the calling thread, and the filter
//! gradient goes through a `[batch, out, in]` product and a broadcast reduction. Here each image
//! is one task ([`matmul_uninit`], single-threaded inside it) writing straight into an output
//! buffer that is never zero-filled first (the product writes every value), and the filter
//! gradient sums per-image products in image order, so results do not depend on the thread count.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use rayon::prelude::*;

use super::extension::{flex_tensor, values};
use super::matmul::matmul_uninit;
use super::memory::{assume_init, uninit};

/// Sizes of one 1×1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointwiseShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Height × width.
    pub plane: usize,
}

impl PointwiseShape {
    fn input(&self) -> usize {
        self.in_channels * self.plane
    }
    fn output(&self) -> usize {
        self.out_channels * self.plane
    }
}

/// `[batch, out_channels, plane]` from `x` `[batch, in_channels, plane]` and the filters
/// `[out_channels, in_channels]`.
pub fn forward(shape: &PointwiseShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    check_lengths(shape, x, weight);
    let (i, o, p) = (shape.in_channels, shape.out_channels, shape.plane);
    let mut out = uninit(shape.batch * shape.output());
    out.par_chunks_mut(shape.output().max(1))
        .enumerate()
        .for_each(|(b, out)| {
            let x = image(x, b, shape.input());
            matmul_uninit((o, p, i), out, (weight, i, 1), (x, p, 1));
        });
    // SAFETY: the chunks of o·p values, one per image, cover `out`, and `matmul_uninit` writes
    // all of each.
    unsafe { assume_init(out) }
}

/// Gradients with respect to `x` (`[batch, in_channels, plane]`) and the filters
/// (`[out_channels, in_channels]`) given the output gradient `grad`; `None` where not wanted.
pub fn backward(
    shape: &PointwiseShape,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    wanted: [bool; 2],
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    check_lengths(shape, x, weight);
    assert_eq!(grad.len(), shape.batch * shape.output(), "output gradient");
    let (i, o, p) = (shape.in_channels, shape.out_channels, shape.plane);
    let x_grad = wanted[0].then(|| {
        // dx[b] = Wᵀ · g[b]
        let mut dx = uninit(x.len());
        dx.par_chunks_mut(shape.input().max(1))
            .enumerate()
            .for_each(|(b, dx)| {
                let g = image(grad, b, shape.output());
                matmul_uninit((i, p, o), dx, (weight, 1, i), (g, p, 1));
            });
        // SAFETY: the chunks of i·p values, one per image, cover `dx`, and `matmul_uninit`
        // writes all of each.
        unsafe { assume_init(dx) }
    });
    let weight_grad = wanted[1].then(|| {
        // dW = Σ_b g[b] · x[b]ᵀ, per image in parallel, then summed in image order.
        let mut per_image = uninit(shape.batch * o * i);
        per_image
            .par_chunks_mut((o * i).max(1))
            .enumerate()
            .for_each(|(b, dw)| {
                let (g, x) = (image(grad, b, shape.output()), image(x, b, shape.input()));
                matmul_uninit((o, i, p), dw, (g, p, 1), (x, 1, p));
            });
        // SAFETY: the chunks of o·i values, one per image, cover `per_image`, and
        // `matmul_uninit` writes all of each.
        let per_image = unsafe { assume_init(per_image) };
        let mut dw = vec![0.0f32; o * i];
        for image in per_image.chunks_exact((o * i).max(1)) {
            for (d, &v) in dw.iter_mut().zip(image) {
                *d += v;
            }
        }
        dw
    });
    (x_grad, weight_grad)
}

/// Image `b`'s `len` values of a `[batch, …]` buffer.
fn image(values: &[f32], b: usize, len: usize) -> &[f32] {
    &values[b * len..(b + 1) * len]
}

fn check_lengths(shape: &PointwiseShape, x: &[f32], weight: &[f32]) {
    assert_eq!(x.len(), shape.batch * shape.input(), "input");
    assert_eq!(
        weight.len(),
        shape.out_channels * shape.in_channels,
        "filters"
    );
}

/// The 1×1 convolution as a backend op with a hand-written backward.
#[backend_extension(Flex, Autodiff)]
pub trait PointwiseConvBackend: Backend {
    /// `[batch, out_channels, h, w]` from `x` `[batch, in_channels, h, w]` and `weight`
    /// `[out_channels, in_channels, 1, 1]` (no bias, no padding).
    fn pointwise_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
}

fn shape_of(x: &FlexTensor, weight: &FlexTensor) -> PointwiseShape {
    let [batch, in_channels, h, w] = x.shape().dims();
    let [out_channels, ..] = weight.shape().dims::<4>();
    PointwiseShape {
        batch,
        in_channels,
        out_channels,
        plane: h * w,
    }
}

impl PointwiseConvBackend for Flex {
    fn pointwise_conv2d(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let shape = shape_of(&x, &weight);
        let [batch, _, h, w] = x.shape().dims();
        let out = forward(&shape, &values(&x), &values(&weight));
        flex_tensor(out, [batch, shape.out_channels, h, w])
    }
}

/// Backward step of [`PointwiseConvBackend::pointwise_conv2d`] on the autodiff graph.
#[derive(Debug)]
struct PointwiseConvBackward;

impl Backward<Flex, 2> for PointwiseConvBackward {
    /// Checkpointed input and filters.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let shape = shape_of(&x, &weight);
        let (x_shape, weight_shape) = (x.shape(), weight.shape());
        let (dx, dw) = backward(
            &shape,
            &values(&x),
            &values(&weight),
            &values(&grad_out),
            [node_x.is_some(), node_weight.is_some()],
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex_tensor(dx, x_shape));
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            grads.register::<Flex>(node.id, flex_tensor(dw, weight_shape));
        }
    }
}

impl<C: CheckpointStrategy> PointwiseConvBackend for Autodiff<Flex, C> {
    fn pointwise_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        match PointwiseConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight));
                let out = Flex::pointwise_conv2d(x.into_primitive(), weight.into_primitive());
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::pointwise_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
            )),
        }
    }
}
