//! The Gaussian readout's read-out in one pass: for every image b and neuron n, the bilinear
//! reading of the feature map at the neuron's position, dotted with the neuron's feature vector,
//! `y[b, n] = Σ_c bilinear(x[b, c], p[b, n]) · f[c, n]`, forward and backward.
//!
//! Composed from burn ops (`model::readout::bilinear_sample`, then a product with the features and
//! a sum over channels) this is some forty passes, several over batch × neurons × channels
//! intermediates (87 MB each for lurz2020 at batch 64). Here each (b, n) reads four C-vectors of
//! the map laid out channels-last ([`layout`]), so the C-vector of every tap is contiguous; the
//! per-(image, neuron) loops are in [`reading`]. Both passes lay each image out in a buffer of
//! their task's that stays in cache.
//!
//! Conventions are those of `grid_sample(mode="bilinear", padding_mode="zeros",
//! align_corners=True)` as `bilinear_sample` writes them: the tap coordinates (floors) carry no
//! gradient, the interpolation weights do, and taps outside the map read 0.
//!
//! Parallel work is split so that no two tasks write the same value and every sum runs in a fixed
//! order, so results do not depend on the thread count: the forward pass goes image by image; the
//! backward pass goes by fixed groups of images, the feature gradient summed within each group
//! and then over the groups in order.

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
use super::isa::Isa;
use super::memory::{assume_init, uninit, zeroed};

mod layout;
mod reading;

pub(super) use layout::transpose_into;
use layout::{as_uninit, channels_last_image, transpose};
use reading::{forward_image, image_grads};

/// Sizes of one read-out: map `[batch, channels, height, width]`, positions `[batch, neurons, 2]`
/// and features `[channels, neurons]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadoutShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub neurons: usize,
}

/// Gradients of the read-out; `None` where not asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadoutGrads {
    /// `[batch, channels, height, width]`.
    pub map: Option<Vec<f32>>,
    /// `[batch, neurons, 2]`.
    pub positions: Option<Vec<f32>>,
    /// `[channels, neurons]`.
    pub features: Option<Vec<f32>>,
}

/// Which gradients [`backward`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub map: bool,
    pub positions: bool,
    pub features: bool,
}

/// Images per task of the backward pass (each task adds its images' feature gradients into a
/// `neurons × C` buffer of its own).
const IMAGES_PER_TASK: usize = 8;

/// Values per task of the sum of the tasks' feature gradients.
const SUM_BLOCK: usize = 16 * 1024;

/// `y` `[batch, neurons]` from the map `[batch, channels, h, w]`, positions `[batch, neurons, 2]`
/// and features `[channels, neurons]`, on [`Isa::active`].
pub fn forward(shape: &ReadoutShape, map: &[f32], positions: &[f32], features: &[f32]) -> Vec<f32> {
    forward_on(Isa::active(), shape, map, positions, features)
}

/// [`forward`] on the path `isa` (all paths give the same numbers). Image by image: each image is
/// laid out channels-last in a per-thread buffer (which stays in cache), then read.
pub fn forward_on(
    isa: Isa,
    shape: &ReadoutShape,
    map: &[f32],
    positions: &[f32],
    features: &[f32],
) -> Vec<f32> {
    check_lengths(shape, map, positions, features);
    let (n, c) = (shape.neurons, shape.channels);
    let features = transpose(isa, features, c, n); // [neurons, channels]
    let mut out = vec![0.0f32; shape.batch * n];
    out.par_chunks_mut(n.max(1))
        .zip(map.par_chunks(shape.image().max(1)))
        .zip(positions.par_chunks((2 * n).max(1)))
        .for_each_init(
            || vec![0.0f32; shape.padded_image()],
            |scratch, ((out, image), positions)| {
                channels_last_image(isa, shape, image, as_uninit(scratch));
                forward_image(isa, shape, scratch, positions, &features, out)
            },
        );
    out
}

/// Gradients of [`forward`] given the output gradient `grad` `[batch, neurons]`, on
/// [`Isa::active`].
pub fn backward(
    shape: &ReadoutShape,
    map: &[f32],
    positions: &[f32],
    features: &[f32],
    grad: &[f32],
    wanted: Wanted,
) -> ReadoutGrads {
    backward_on(
        Isa::active(),
        shape,
        (map, positions, features),
        grad,
        wanted,
    )
}

/// [`backward`] on the path `isa` (all paths give the same numbers), with the operands (map,
/// positions, features).
///
/// Tasks of [`IMAGES_PER_TASK`] images: each lays its images out channels-last one at a time in
/// a buffer of its own (which stays in cache), sums each image's map gradient there and lays it
/// out channels-first, writes the position gradient, and adds the feature gradient into a
/// `neurons × C` buffer of its own, streamed in neuron order; the tasks' feature gradients are
/// added in task order at the end, so the sums do not depend on the thread count.
pub fn backward_on(
    isa: Isa,
    shape: &ReadoutShape,
    (map, positions, features): (&[f32], &[f32], &[f32]),
    grad: &[f32],
    wanted: Wanted,
) -> ReadoutGrads {
    check_lengths(shape, map, positions, features);
    assert_eq!(grad.len(), shape.batch * shape.neurons, "output gradient");
    let (n, c, image) = (shape.neurons, shape.channels, shape.image());
    if n == 0 {
        return ReadoutGrads {
            map: wanted.map.then(|| zeroed(map.len())),
            positions: wanted.positions.then(Vec::new),
            features: wanted.features.then(Vec::new),
        };
    }
    let features_nc = transpose(isa, features, c, n);
    let tasks = shape.batch.div_ceil(IMAGES_PER_TASK);
    let images_in = |task: usize| IMAGES_PER_TASK.min(shape.batch - task * IMAGES_PER_TASK);
    let mut map_grad = uninit(if wanted.map { map.len() } else { 0 });
    let mut positions_grad = vec![0.0f32; positions.len()];
    let (mut map_rest, mut positions_rest) = (&mut map_grad[..], &mut positions_grad[..]);
    let mut chunks = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let map_len = if wanted.map {
            images_in(task) * image
        } else {
            0
        };
        let (map_chunk, rest) = map_rest.split_at_mut(map_len);
        let (positions_chunk, positions_tail) =
            positions_rest.split_at_mut(images_in(task) * 2 * n);
        chunks.push((map_chunk, positions_chunk));
        (map_rest, positions_rest) = (rest, positions_tail);
    }
    let feature_grads: Vec<Vec<f32>> = chunks
        .into_par_iter()
        .enumerate()
        .map(|(task, (map_grad, positions_grad))| {
            let mut layout = vec![0.0f32; shape.padded_image()];
            let mut image_grad = vec![0.0f32; shape.padded_image()];
            let mut feature_grad = vec![0.0f32; if wanted.features { n * c } else { 0 }];
            for k in 0..images_in(task) {
                let b = task * IMAGES_PER_TASK + k;
                channels_last_image(
                    isa,
                    shape,
                    &map[b * image..(b + 1) * image],
                    as_uninit(&mut layout),
                );
                image_grad.fill(0.0);
                let inputs = (
                    &layout[..],
                    &positions[b * 2 * n..(b + 1) * 2 * n],
                    &features_nc[..],
                    &grad[b * n..(b + 1) * n],
                );
                let outputs = (
                    &mut image_grad[..],
                    &mut positions_grad[k * 2 * n..(k + 1) * 2 * n],
                    &mut feature_grad[..],
                );
                image_grads(isa, shape, inputs, outputs);
                if wanted.map {
                    let out = &mut map_grad[k * image..(k + 1) * image];
                    transpose_into(
                        isa,
                        &image_grad[..shape.zero_row()],
                        (shape.plane(), c),
                        out,
                    );
                }
            }
            feature_grad
        })
        .collect();
    let features = wanted.features.then(|| {
        let mut sum = vec![0.0f32; n * c];
        sum.par_chunks_mut(SUM_BLOCK)
            .enumerate()
            .for_each(|(block, sum)| {
                for task_grad in &feature_grads {
                    let part = &task_grad[block * SUM_BLOCK..][..sum.len()];
                    sum.iter_mut().zip(part).for_each(|(s, v)| *s += v);
                }
            });
        transpose(isa, &sum, n, c)
    });
    ReadoutGrads {
        // SAFETY: with `wanted.map`, the tasks' chunks cover `map_grad` (one `image` per image of
        // the batch), and `transpose_into` writes every value of each image's.
        map: wanted.map.then(|| unsafe { assume_init(map_grad) }),
        positions: wanted.positions.then_some(positions_grad),
        features,
    }
}

fn check_lengths(shape: &ReadoutShape, map: &[f32], positions: &[f32], features: &[f32]) {
    assert_eq!(map.len(), shape.batch * shape.image(), "feature map");
    assert_eq!(
        positions.len(),
        shape.batch * shape.neurons * 2,
        "positions"
    );
    assert_eq!(features.len(), shape.channels * shape.neurons, "features");
}

/// The read-out as a backend op with a hand-written backward.
#[backend_extension(Flex, Autodiff)]
pub trait BilinearReadoutBackend: Backend {
    /// `[batch, neurons]` from the map `[batch, channels, h, w]`, positions `[batch, neurons, 2]`
    /// and features `[channels, neurons]`.
    fn bilinear_readout(
        map: FloatTensor<Self>,
        positions: FloatTensor<Self>,
        features: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

fn shape_of(map: &FlexTensor, features: &FlexTensor) -> ReadoutShape {
    let [batch, channels, height, width] = map.shape().dims();
    let [_, neurons] = features.shape().dims();
    ReadoutShape {
        batch,
        channels,
        height,
        width,
        neurons,
    }
}

impl BilinearReadoutBackend for Flex {
    fn bilinear_readout(
        map: FlexTensor,
        positions: FlexTensor,
        features: FlexTensor,
    ) -> FlexTensor {
        let shape = shape_of(&map, &features);
        let out = forward(
            &shape,
            &values(&map),
            &values(&positions),
            &values(&features),
        );
        flex_tensor(out, [shape.batch, shape.neurons])
    }
}

/// Backward step of [`BilinearReadoutBackend::bilinear_readout`] on the autodiff graph.
#[derive(Debug)]
struct BilinearReadoutBackward;

impl Backward<Flex, 3> for BilinearReadoutBackward {
    /// Checkpointed map, positions and features.
    type State = (NodeId, NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_map, node_positions, node_features] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let (map_state, positions_state, features_state) = ops.state;
        let map = checkpointer.retrieve_node_output::<FlexTensor>(map_state);
        let positions = checkpointer.retrieve_node_output::<FlexTensor>(positions_state);
        let features = checkpointer.retrieve_node_output::<FlexTensor>(features_state);
        let shape = shape_of(&map, &features);
        let wanted = Wanted {
            map: node_map.is_some(),
            positions: node_positions.is_some(),
            features: node_features.is_some(),
        };
        let result = backward(
            &shape,
            &values(&map),
            &values(&positions),
            &values(&features),
            &values(&grad_out),
            wanted,
        );
        let ReadoutShape {
            batch,
            channels,
            height,
            width,
            neurons,
        } = shape;
        if let (Some(node), Some(grad)) = (node_map, result.map) {
            grads.register::<Flex>(node.id, flex_tensor(grad, [batch, channels, height, width]));
        }
        if let (Some(node), Some(grad)) = (node_positions, result.positions) {
            grads.register::<Flex>(node.id, flex_tensor(grad, [batch, neurons, 2]));
        }
        if let (Some(node), Some(grad)) = (node_features, result.features) {
            grads.register::<Flex>(node.id, flex_tensor(grad, [channels, neurons]));
        }
    }
}

impl<C: CheckpointStrategy> BilinearReadoutBackend for Autodiff<Flex, C> {
    fn bilinear_readout(
        map: FloatTensor<Self>,
        positions: FloatTensor<Self>,
        features: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match BilinearReadoutBackward
            .prepare::<C>([map.node(), positions.node(), features.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&map),
                    prep.checkpoint(&positions),
                    prep.checkpoint(&features),
                );
                let out = Flex::bilinear_readout(
                    map.into_primitive(),
                    positions.into_primitive(),
                    features.into_primitive(),
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::bilinear_readout(
                map.into_primitive(),
                positions.into_primitive(),
                features.into_primitive(),
            )),
        }
    }
}
