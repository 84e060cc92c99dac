//! The factorized readout's read-out in one op, forward and backward:
//! `y[b, n] = Σ_c f[n, c] · Σ_p x[b, c, p] · S[n, p]` for the map `x` `[batch, channels, plane]`
//! (plane = h·w), the spatial masks `S` `[neurons, plane]` and the feature vectors `f`
//! `[neurons, channels]`.
//!
//! Composed from burn ops this is one batched matrix product into a batch × channels × neurons
//! intermediate (87 MB for lurz2020 at batch 64), a product with the features and a sum over
//! channels, each a pass over that intermediate, and as many backward. Here the matrix products
//! run per image (forward, map gradient) or per block of neurons (mask and feature gradients)
//! into scratch buffers of one image's or one block's size, and the product with the features
//! is applied to them while they are in cache ([`matmul`]: single-threaded inside each parallel
//! task).
//!
//! Every sum runs in a fixed order (images in order within a neuron block, `gemm` without
//! internal threads), so results do not depend on the thread count.

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
use super::matmul::matmul;
use super::memory::zeroed;

/// Sizes of one factorized read-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorizedShape {
    pub batch: usize,
    pub channels: usize,
    /// Height × width of the map.
    pub plane: usize,
    pub neurons: usize,
}

/// Neurons per task of the mask and feature gradients.
const NEURON_BLOCK: usize = 64;

/// `y` `[batch, neurons]` from the map `[batch, channels, plane]`, masks `[neurons, plane]` and
/// features `[neurons, channels]`.
pub fn forward(shape: &FactorizedShape, x: &[f32], masks: &[f32], features: &[f32]) -> Vec<f32> {
    check_lengths(shape, x, masks, features);
    let FactorizedShape {
        channels: c,
        plane: p,
        neurons: n,
        ..
    } = *shape;
    let mut y = vec![0.0f32; shape.batch * n];
    y.par_chunks_mut(n.max(1))
        .zip(x.par_chunks((c * p).max(1)))
        .for_each_init(Vec::new, |pooled, (y, image)| {
            // pooled[n, c] = Σ_p S[n, p] · x[c, p]
            pooled.clear();
            pooled.resize(n * c, 0.0);
            matmul((n, c, p), pooled, false, (masks, p, 1), (image, 1, p));
            for ((y, row), f) in y
                .iter_mut()
                .zip(pooled.chunks_exact(c.max(1)))
                .zip(features.chunks_exact(c.max(1)))
            {
                *y = row.iter().zip(f).map(|(a, b)| a * b).sum();
            }
        });
    y
}

/// Gradients of [`forward`] given the output gradient `grad` `[batch, neurons]`: map
/// `[batch, channels, plane]`, masks `[neurons, plane]`, features `[neurons, channels]`.
pub fn backward(
    shape: &FactorizedShape,
    (x, masks, features): (&[f32], &[f32], &[f32]),
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    check_lengths(shape, x, masks, features);
    assert_eq!(grad.len(), shape.batch * shape.neurons, "output gradient");
    let FactorizedShape {
        batch,
        channels: c,
        plane: p,
        neurons: n,
    } = *shape;
    // Map gradient, image by image: dx[c, p] = Σ_n g[b, n]·f[n, c] · S[n, p].
    let mut x_grad = zeroed(x.len());
    x_grad
        .par_chunks_mut((c * p).max(1))
        .zip(grad.par_chunks(n.max(1)))
        .for_each_init(Vec::new, |weighted, (dx, g)| {
            scale_rows(weighted, features, g, c);
            matmul((c, p, n), dx, false, (weighted, 1, c), (masks, p, 1));
        });
    // Mask and feature gradients, block of neurons by block, images in order:
    // dS[n, p] = Σ_b Σ_c g[b, n]·f[n, c] · x[b, c, p], df[n, c] = Σ_b g[b, n] · Σ_p S[n, p]·x[b, c, p].
    let mut mask_grad = vec![0.0f32; masks.len()];
    let mut feature_grad = vec![0.0f32; features.len()];
    mask_grad
        .par_chunks_mut((NEURON_BLOCK * p).max(1))
        .zip(feature_grad.par_chunks_mut((NEURON_BLOCK * c).max(1)))
        .enumerate()
        .for_each(|(block, (ds, df))| {
            let first = block * NEURON_BLOCK;
            let count = df.len() / c.max(1);
            let block_masks = &masks[first * p..(first + count) * p];
            let block_features = &features[first * c..(first + count) * c];
            let (mut weighted, mut pooled) = (Vec::new(), vec![0.0f32; count * c]);
            for b in 0..batch {
                let image = &x[b * c * p..(b + 1) * c * p];
                let g = &grad[b * n + first..b * n + first + count];
                scale_rows(&mut weighted, block_features, g, c);
                matmul((count, p, c), ds, b > 0, (&weighted, c, 1), (image, p, 1));
                matmul(
                    (count, c, p),
                    &mut pooled,
                    false,
                    (block_masks, p, 1),
                    (image, 1, p),
                );
                for ((df, row), &g) in df.chunks_exact_mut(c).zip(pooled.chunks_exact(c)).zip(g) {
                    for (d, &v) in df.iter_mut().zip(row) {
                        *d += g * v;
                    }
                }
            }
        });
    (x_grad, mask_grad, feature_grad)
}

/// `out[n, c] = g[n] · f[n, c]` (rows of `f`, `c` wide, scaled by `g`).
fn scale_rows(out: &mut Vec<f32>, f: &[f32], g: &[f32], c: usize) {
    out.clear();
    out.extend(
        f.chunks_exact(c.max(1))
            .zip(g)
            .flat_map(|(row, &g)| row.iter().map(move |&v| g * v)),
    );
}

fn check_lengths(shape: &FactorizedShape, x: &[f32], masks: &[f32], features: &[f32]) {
    assert_eq!(
        x.len(),
        shape.batch * shape.channels * shape.plane,
        "feature map"
    );
    assert_eq!(masks.len(), shape.neurons * shape.plane, "spatial masks");
    assert_eq!(features.len(), shape.neurons * shape.channels, "features");
}

/// The factorized read-out as a backend op with a hand-written backward.
#[backend_extension(Flex, Autodiff)]
pub trait FactorizedReadoutBackend: Backend {
    /// `[batch, neurons]` from the map `[batch, channels, h, w]`, masks `[neurons, h, w]` and
    /// features `[neurons, channels]`.
    fn factorized_readout(
        x: FloatTensor<Self>,
        masks: FloatTensor<Self>,
        features: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

fn shape_of(x: &FlexTensor, features: &FlexTensor) -> FactorizedShape {
    let [batch, channels, h, w] = x.shape().dims();
    let [neurons, _] = features.shape().dims();
    FactorizedShape {
        batch,
        channels,
        plane: h * w,
        neurons,
    }
}

impl FactorizedReadoutBackend for Flex {
    fn factorized_readout(x: FlexTensor, masks: FlexTensor, features: FlexTensor) -> FlexTensor {
        let shape = shape_of(&x, &features);
        let y = forward(&shape, &values(&x), &values(&masks), &values(&features));
        flex_tensor(y, [shape.batch, shape.neurons])
    }
}

/// Backward step of [`FactorizedReadoutBackend::factorized_readout`] on the autodiff graph.
#[derive(Debug)]
struct FactorizedReadoutBackward;

impl Backward<Flex, 3> for FactorizedReadoutBackward {
    /// Checkpointed map, masks and features.
    type State = (NodeId, NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_masks, node_features] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        let (x_state, masks_state, features_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let masks = checkpointer.retrieve_node_output::<FlexTensor>(masks_state);
        let features = checkpointer.retrieve_node_output::<FlexTensor>(features_state);
        let shape = shape_of(&x, &features);
        let (x_shape, masks_shape, features_shape) = (x.shape(), masks.shape(), features.shape());
        let (dx, dmasks, dfeatures) = backward(
            &shape,
            (&values(&x), &values(&masks), &values(&features)),
            &values(&grad_out),
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_tensor(dx, x_shape));
        }
        if let Some(node) = node_masks {
            grads.register::<Flex>(node.id, flex_tensor(dmasks, masks_shape));
        }
        if let Some(node) = node_features {
            grads.register::<Flex>(node.id, flex_tensor(dfeatures, features_shape));
        }
    }
}

impl<C: CheckpointStrategy> FactorizedReadoutBackend for Autodiff<Flex, C> {
    fn factorized_readout(
        x: FloatTensor<Self>,
        masks: FloatTensor<Self>,
        features: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match FactorizedReadoutBackward
            .prepare::<C>([x.node(), masks.node(), features.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&masks),
                    prep.checkpoint(&features),
                );
                let out = Flex::factorized_readout(
                    x.into_primitive(),
                    masks.into_primitive(),
                    features.into_primitive(),
                );
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::factorized_readout(
                x.into_primitive(),
                masks.into_primitive(),
                features.into_primitive(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 29 + salt * 7) % 53) as f32 - 26.0) / 13.0)
            .collect()
    }

    /// Forward and all three gradients against the textbook sums (f64), at a size with a partial
    /// neuron block.
    #[test]
    fn forward_and_gradients_are_the_direct_sums() {
        let shape = FactorizedShape {
            batch: 3,
            channels: 5,
            plane: 12,
            neurons: NEURON_BLOCK + 7,
        };
        let (b_, c_, p_, n_) = (shape.batch, shape.channels, shape.plane, shape.neurons);
        let x = values(b_ * c_ * p_, 1);
        let s = values(n_ * p_, 2);
        let f = values(n_ * c_, 3);
        let g = values(b_ * n_, 4);
        let y = forward(&shape, &x, &s, &f);
        let (dx, ds, df) = backward(&shape, (&x, &s, &f), &g);
        let xv = |b: usize, c: usize, p: usize| x[(b * c_ + c) * p_ + p] as f64;
        let close = |got: f32, want: f64, what: &str| {
            assert!(
                (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{what}: {got} vs {want}"
            );
        };
        for b in 0..b_ {
            for n in 0..n_ {
                let mut want = 0.0;
                for c in 0..c_ {
                    for p in 0..p_ {
                        want += f[n * c_ + c] as f64 * xv(b, c, p) * s[n * p_ + p] as f64;
                    }
                }
                close(y[b * n_ + n], want, "y");
            }
        }
        for b in 0..b_ {
            for c in 0..c_ {
                for p in 0..p_ {
                    let want: f64 = (0..n_)
                        .map(|n| g[b * n_ + n] as f64 * f[n * c_ + c] as f64 * s[n * p_ + p] as f64)
                        .sum();
                    close(dx[(b * c_ + c) * p_ + p], want, "dx");
                }
            }
        }
        for n in 0..n_ {
            for p in 0..p_ {
                let want: f64 = (0..b_)
                    .flat_map(|b| (0..c_).map(move |c| (b, c)))
                    .map(|(b, c)| g[b * n_ + n] as f64 * f[n * c_ + c] as f64 * xv(b, c, p))
                    .sum();
                close(ds[n * p_ + p], want, "dS");
            }
            for c in 0..c_ {
                let want: f64 = (0..b_)
                    .flat_map(|b| (0..p_).map(move |p| (b, p)))
                    .map(|(b, p)| g[b * n_ + n] as f64 * s[n * p_ + p] as f64 * xv(b, c, p))
                    .sum();
                close(df[n * c_ + c], want, "df");
            }
        }
    }
}
