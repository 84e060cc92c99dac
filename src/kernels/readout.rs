//! The Gaussian readout's read-out in one pass: for every image b and neuron n, the bilinear
//! reading of the feature map at the neuron's position, dotted with the neuron's feature vector,
//! `y[b, n] = Σ_c bilinear(x[b, c], p[b, n]) · f[c, n]`, forward and backward.
//!
//! Composed from burn ops (`model::readout::bilinear_sample`, then a product with the features and
//! a sum over channels) this is some forty passes, several over batch × neurons × channels
//! intermediates (87 MB each for lurz2020 at batch 64). Here each (b, n) costs four dot products
//! of length C on the map laid out channels-last, so the C-vector of every tap is contiguous.
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
use std::mem::MaybeUninit;

use super::extension::{flex_tensor, values};
use super::isa::{Isa, multiversion};
use super::memory::{assume_init, uninit, zeroed};

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
/// in L1 while one image's map is streamed from L2.
const NEURON_BLOCK: usize = 32;

impl ReadoutShape {
    fn plane(&self) -> usize {
        self.height * self.width
    }
    fn image(&self) -> usize {
        self.channels * self.plane()
    }
}

/// The four taps of one reading: offsets of their C-vectors in a channels-last image, their
/// weights (0 for taps outside the map), the fractional parts and the validity masks.
struct Taps {
    offsets: [usize; 4],
    weights: [f32; 4],
    /// 1 where the tap lies inside the map, else 0 (order: (x0,y0), (x1,y0), (x0,y1), (x1,y1)).
    inside: [f32; 4],
    /// Fractional parts along x and y (weights of the second column / row).
    frac_x: f32,
    frac_y: f32,
}

impl Taps {
    /// The taps of position (`px`, `py`) in normalised coordinates, with the arithmetic of
    /// `bilinear_sample` (so the same taps are chosen near integer coordinates).
    #[inline(always)]
    fn new(shape: &ReadoutShape, px: f32, py: f32) -> Self {
        let (h, w) = (shape.height, shape.width);
        let ix = (px + 1.0) / 2.0 * (w - 1) as f32;
        let iy = (py + 1.0) / 2.0 * (h - 1) as f32;
        let (x0, y0) = (ix.floor(), iy.floor());
        let (frac_x, frac_y) = (ix - x0, iy - y0);
        let columns = [x0, x0 + 1.0, x0, x0 + 1.0];
        let rows = [y0, y0, y0 + 1.0, y0 + 1.0];
        let base = [
            (1.0 - frac_y) * (1.0 - frac_x),
            (1.0 - frac_y) * frac_x,
            frac_y * (1.0 - frac_x),
            frac_y * frac_x,
        ];
        let mut taps = Self {
            offsets: [0; 4],
            weights: [0.0; 4],
            inside: [0.0; 4],
            frac_x,
            frac_y,
        };
        for t in 0..4 {
            let (c, r) = (columns[t], rows[t]);
            if c >= 0.0 && c <= (w - 1) as f32 && r >= 0.0 && r <= (h - 1) as f32 {
                taps.offsets[t] = (r as usize * w + c as usize) * shape.channels;
                taps.weights[t] = base[t];
                taps.inside[t] = 1.0;
            }
        }
        taps
    }

    /// Gradient of `Σ_t weight_t · value_t` with respect to the position (px, py), given the
    /// tap values (0 outside the map) and the output gradient `g`.
    #[inline(always)]
    fn position_grad(&self, shape: &ReadoutShape, values: [f32; 4], g: f32) -> [f32; 2] {
        let v: [f32; 4] = std::array::from_fn(|t| values[t] * self.inside[t]);
        let (fx, fy) = (self.frac_x, self.frac_y);
        let d_fx = (1.0 - fy) * (v[1] - v[0]) + fy * (v[3] - v[2]);
        let d_fy = (1.0 - fx) * (v[2] - v[0]) + fx * (v[3] - v[1]);
        [
            g * d_fx * (shape.width - 1) as f32 / 2.0,
            g * d_fy * (shape.height - 1) as f32 / 2.0,
        ]
    }
}

/// Dot product in eight independent lanes (a fixed summation order that vectorises).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a, b) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `out += scale · x`.
#[inline(always)]
fn axpy(out: &mut [f32], scale: f32, x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += scale * v;
    }
}

/// `[rows, cols]` → `[cols, rows]`.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(values.len(), rows * cols);
    let mut out = uninit(values.len());
    transpose_into(values, rows, cols, &mut out);
    // SAFETY: `transpose_into` writes all rows · cols values of `out`.
    unsafe { assume_init(out) }
}

/// `[rows, cols]` → `[cols, rows]` into `out`, in square tiles of [`TILE`]: each output row of a
/// tile is one contiguous write, and the tile's reads stay in the L1 cache (an element-by-element
/// loop writes every value to a different cache line).
/// Writes every one of `out`'s first `rows · cols` values.
pub(super) fn transpose_into(
    values: &[f32],
    rows: usize,
    cols: usize,
    out: &mut [MaybeUninit<f32>],
) {
    const TILE: usize = 16;
    assert!(values.len() >= rows * cols && out.len() >= rows * cols);
    if cols == 0 {
        return;
    }
    for r0 in (0..rows).step_by(TILE) {
        let tile_rows = &values[r0 * cols..(r0 + TILE).min(rows) * cols];
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let dst = &mut out[c * rows + r0..][..tile_rows.len() / cols];
                for (d, row) in dst.iter_mut().zip(tile_rows.chunks_exact(cols)) {
                    d.write(row[c]);
                }
            }
        }
    }
}

/// The map `[batch, channels, h, w]` laid out channels-last, `[batch, h, w, channels]`.
fn channels_last(shape: &ReadoutShape, map: &[f32]) -> Vec<f32> {
    assert_eq!(map.len(), shape.batch * shape.image());
    let mut out = uninit(map.len());
    out.par_chunks_mut(shape.image().max(1))
        .zip(map.par_chunks(shape.image().max(1)))
        .for_each(|(out, image)| transpose_into(image, shape.channels, shape.plane(), out));
    // SAFETY: `out` and `map` have the same length and are cut into the same images, and
    // `transpose_into` writes all channels · plane values of each.
    unsafe { assume_init(out) }
}

/// The four tap values `x_tap · f` of one reading (garbage where a tap is outside the map:
/// its weight and mask are 0).
#[inline(always)]
fn tap_values(taps: &Taps, image: &[f32], feature: &[f32]) -> [f32; 4] {
    let tap = |t: usize| &image[taps.offsets[t]..taps.offsets[t] + feature.len()];
    [
        dot(tap(0), feature),
        dot(tap(1), feature),
        dot(tap(2), feature),
        dot(tap(3), feature),
    ]
}

/// `y` `[batch, neurons]` from the map `[batch, channels, h, w]`, positions `[batch, neurons, 2]`
/// and features `[channels, neurons]`, on [`Isa::active`].
pub fn forward(shape: &ReadoutShape, map: &[f32], positions: &[f32], features: &[f32]) -> Vec<f32> {
    forward_on(Isa::active(), shape, map, positions, features)
}

/// [`forward`] on the path `isa` (all paths give the same numbers).
pub fn forward_on(
    isa: Isa,
    shape: &ReadoutShape,
    map: &[f32],
    positions: &[f32],
    features: &[f32],
) -> Vec<f32> {
    check_lengths(shape, map, positions, features);
    let (n, c) = (shape.neurons, shape.channels);
    let map = channels_last(shape, map);
    let features = transpose(features, c, n); // [neurons, channels]
    let mut out = vec![0.0f32; shape.batch * n];
    out.par_chunks_mut(n.max(1))
        .zip(map.par_chunks(shape.image().max(1)))
        .zip(positions.par_chunks((2 * n).max(1)))
        .for_each(|((out, image), positions)| {
            forward_image(isa, shape, image, positions, &features, out)
        });
    out
}

multiversion!(
    /// [`forward_image_body`] compiled for `isa`.
    fn forward_image => forward_image_body(
        shape: &ReadoutShape,
        image: &[f32],
        positions: &[f32],
        features: &[f32],
        out: &mut [f32],
    )
);

/// [`forward`] for one image (channels-last), its positions and the features `[neurons, channels]`.
#[inline(always)]
fn forward_image_body(
    shape: &ReadoutShape,
    image: &[f32],
    positions: &[f32],
    features: &[f32],
    out: &mut [f32],
) {
    let c = shape.channels;
    for (j, y) in out.iter_mut().enumerate() {
        let taps = Taps::new(shape, positions[2 * j], positions[2 * j + 1]);
        let values = tap_values(&taps, image, &features[j * c..(j + 1) * c]);
        *y = (0..4).map(|t| taps.weights[t] * values[t]).sum();
    }
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
    let map = channels_last(shape, map);
    let features_nc = transpose(features, shape.channels, shape.neurons);
    let (map_grad, positions_grad) = if wanted.map || wanted.positions {
        let (m, p) = map_and_position_grads(isa, shape, &map, positions, &features_nc, grad);
        (wanted.map.then_some(m), wanted.positions.then_some(p))
    } else {
        (None, None)
    };
    ReadoutGrads {
        map: map_grad,
        positions: positions_grad,
        features: wanted
            .features
            .then(|| feature_grad(isa, shape, &map, positions, grad)),
    }
}

/// Map gradient `[batch, channels, h, w]` and position gradient `[batch, neurons, 2]`, image by
/// image (each image's map gradient is written by one task only).
fn map_and_position_grads(
    isa: Isa,
    shape: &ReadoutShape,
    map: &[f32],
    positions: &[f32],
    features: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (n, c) = (shape.neurons, shape.channels);
    let image_len = shape.image().max(1);
    let mut positions_grad = vec![0.0f32; positions.len()];
    if n == 0 {
        return (zeroed(map.len()), positions_grad);
    }
    let mut map_grad = uninit(map.len());
    map_grad
        .par_chunks_mut(image_len)
        .zip(positions_grad.par_chunks_mut((2 * n).max(1)))
        .zip(map.par_chunks(image_len))
        .zip(positions.par_chunks((2 * n).max(1)))
        .zip(grad.par_chunks(n.max(1)))
        .for_each(|((((map_grad, positions_grad), image), positions), grad)| {
            let mut image_grad = vec![0.0f32; image_len]; // channels-last
            let inputs = (image, positions, features, grad);
            image_grads(isa, shape, inputs, &mut image_grad, positions_grad);
            transpose_into(&image_grad, shape.plane(), c, map_grad);
        });
    // SAFETY: with neurons present, every image's chunk of `map_grad` is zipped with that
    // image's positions and gradient (`check_lengths` and the assert on `grad` fix their lengths),
    // and `transpose_into` writes all of its channels · plane values.
    (unsafe { assume_init(map_grad) }, positions_grad)
}

/// One image's inputs: map (channels-last), positions, features `[neurons, channels]` and output
/// gradient.
type ImageInputs<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32]);

multiversion!(
    /// [`image_grads_body`] compiled for `isa`.
    fn image_grads => image_grads_body(
        shape: &ReadoutShape,
        inputs: ImageInputs<'_>,
        image_grad: &mut [f32],
        positions_grad: &mut [f32],
    )
);

/// Adds one image's map gradient (channels-last) to `image_grad` and writes its position gradient.
#[inline(always)]
fn image_grads_body(
    shape: &ReadoutShape,
    (image, positions, features, grad): ImageInputs<'_>,
    image_grad: &mut [f32],
    positions_grad: &mut [f32],
) {
    let c = shape.channels;
    for j in 0..shape.neurons {
        let taps = Taps::new(shape, positions[2 * j], positions[2 * j + 1]);
        let feature = &features[j * c..(j + 1) * c];
        let values = tap_values(&taps, image, feature);
        let g = grad[j];
        let [gx, gy] = taps.position_grad(shape, values, g);
        positions_grad[2 * j] = gx;
        positions_grad[2 * j + 1] = gy;
        for t in 0..4 {
            if taps.weights[t] != 0.0 {
                let o = taps.offsets[t];
                axpy(&mut image_grad[o..o + c], g * taps.weights[t], feature);
            }
        }
    }
}

/// Feature gradient `[channels, neurons]`: `Σ_b grad[b, n] · bilinear(x[b], p[b, n])`, block of
/// neurons by block, each summing over the images in order.
fn feature_grad(
    isa: Isa,
    shape: &ReadoutShape,
    map: &[f32],
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
                (map, positions, grad),
                block * NEURON_BLOCK,
                acc,
            )
        });
    transpose(&grad_nc, n, c)
}

multiversion!(
    /// [`feature_block_body`] compiled for `isa`.
    fn feature_block => feature_block_body(
        shape: &ReadoutShape,
        inputs: (&[f32], &[f32], &[f32]),
        first: usize,
        acc: &mut [f32],
    )
);

/// Feature gradient `[neurons, channels]` of the neurons from `first` on that `acc` holds, from
/// the map (channels-last), positions and output gradient of all images, summed in image order.
#[inline(always)]
fn feature_block_body(
    shape: &ReadoutShape,
    (map, positions, grad): (&[f32], &[f32], &[f32]),
    first: usize,
    acc: &mut [f32],
) {
    let (n, c) = (shape.neurons, shape.channels);
    let count = acc.len() / c.max(1);
    for b in 0..shape.batch {
        let image = &map[b * shape.image()..(b + 1) * shape.image()];
        for k in 0..count {
            let i = b * n + first + k;
            let taps = Taps::new(shape, positions[2 * i], positions[2 * i + 1]);
            let g = grad[i];
            let acc = &mut acc[k * c..(k + 1) * c];
            for t in 0..4 {
                if taps.weights[t] != 0.0 {
                    let o = taps.offsets[t];
                    axpy(acc, g * taps.weights[t], &image[o..o + c]);
                }
            }
        }
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
