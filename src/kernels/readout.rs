//! The Gaussian readout's read-out in one pass: for every image b and neuron n, the bilinear
//! reading of the feature map at the neuron's position, dotted with the neuron's feature vector,
//! `y[b, n] = Σ_c bilinear(x[b, c], p[b, n]) · f[c, n]`, forward and backward.
//!
//! Composed from burn ops (`model::readout::bilinear_sample`, then a product with the features and
//! a sum over channels) this is some forty passes, several over batch × neurons × channels
//! intermediates (87 MB each for lurz2020 at batch 64). Here each (b, n) reads four C-vectors of
//! the map laid out channels-last ([`layout`]), so the C-vector of every tap is contiguous; the
//! per-(image, neuron) loops are in [`reading`]. The forward pass lays each image out in a
//! per-thread buffer that stays in cache; the backward pass lays out the whole batch once for the
//! map, position and feature gradients.
//!
//! Conventions are those of `grid_sample(mode="bilinear", padding_mode="zeros",
//! align_corners=True)` as `bilinear_sample` writes them: the tap coordinates (floors) carry no
//! gradient, the interpolation weights do, and taps outside the map read 0.
//!
//! Parallel work is split so that no two tasks write the same value and every sum runs in a fixed
//! order, so results do not depend on the thread count: the forward pass, the map gradient and
//! the position gradient go image by image; the feature gradient goes neuron block by neuron
//! block, each summing over images in order.

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
use layout::{as_uninit, channels_last, channels_last_image, transpose};
use reading::{feature_block, forward_image, image_grads};

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

/// Neurons per task of the feature gradient: their accumulators (`NEURON_BLOCK × C` floats) stay
/// in L1 while each neuron's taps are read from every image.
const NEURON_BLOCK: usize = 32;

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
pub fn backward_on(
    isa: Isa,
    shape: &ReadoutShape,
    (map, positions, features): (&[f32], &[f32], &[f32]),
    grad: &[f32],
    wanted: Wanted,
) -> ReadoutGrads {
    check_lengths(shape, map, positions, features);
    assert_eq!(grad.len(), shape.batch * shape.neurons, "output gradient");
    let maps = channels_last(isa, shape, map);
    let (map_grad, positions_grad) = if wanted.map || wanted.positions {
        let features_nc = transpose(isa, features, shape.channels, shape.neurons);
        let (m, p) = map_and_position_grads(isa, shape, &maps, positions, &features_nc, grad);
        (wanted.map.then_some(m), wanted.positions.then_some(p))
    } else {
        (None, None)
    };
    ReadoutGrads {
        map: map_grad,
        positions: positions_grad,
        features: wanted
            .features
            .then(|| feature_grad(isa, shape, &maps, positions, grad)),
    }
}

/// Map gradient `[batch, channels, h, w]` and position gradient `[batch, neurons, 2]` from the
/// channels-last map, image by image (each image's map gradient is summed by one task, in a
/// per-thread channels-last buffer, then laid out channels-first).
fn map_and_position_grads(
    isa: Isa,
    shape: &ReadoutShape,
    maps: &[f32],
    positions: &[f32],
    features: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let n = shape.neurons;
    let mut positions_grad = vec![0.0f32; positions.len()];
    if n == 0 {
        return (zeroed(shape.batch * shape.image()), positions_grad);
    }
    let mut map_grad = uninit(shape.batch * shape.image());
    map_grad
        .par_chunks_mut(shape.image().max(1))
        .zip(positions_grad.par_chunks_mut(2 * n))
        .zip(maps.par_chunks(shape.padded_image().max(1)))
        .zip(positions.par_chunks(2 * n))
        .zip(grad.par_chunks(n))
        .for_each_init(
            || vec![0.0f32; shape.padded_image()],
            |image_grad, ((((map_grad, positions_grad), image), positions), grad)| {
                image_grad.fill(0.0);
                let inputs = (image, positions, features, grad);
                image_grads(isa, shape, inputs, image_grad, positions_grad);
                let points = &image_grad[..shape.zero_row()];
                transpose_into(isa, points, (shape.plane(), shape.channels), map_grad);
            },
        );
    // SAFETY: with neurons present, every image's chunk of `map_grad` is zipped with that
    // image's positions and gradient (`check_lengths` and the assert on `grad` fix their lengths),
    // and `transpose_into` writes all of its channels · plane values.
    (unsafe { assume_init(map_grad) }, positions_grad)
}

/// Feature gradient `[channels, neurons]`: `Σ_b grad[b, n] · bilinear(x[b], p[b, n])` from the
/// channels-last map, block of neurons by block, each summing over the images in order.
fn feature_grad(
    isa: Isa,
    shape: &ReadoutShape,
    maps: &[f32],
    positions: &[f32],
    grad: &[f32],
) -> Vec<f32> {
    let (n, c) = (shape.neurons, shape.channels);
    let mut grad_nc = vec![0.0f32; n * c];
    grad_nc
        .par_chunks_mut((NEURON_BLOCK * c).max(1))
        .enumerate()
        .for_each(|(block, acc)| {
            feature_block(
                isa,
                shape,
                (maps, positions, grad),
                block * NEURON_BLOCK,
                acc,
            )
        });
    transpose(isa, &grad_nc, n, c)
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
