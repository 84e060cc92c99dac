//! Bilinear reading of a feature map at continuous positions, exactly like PyTorch's
//! `grid_sample(mode="bilinear", padding_mode="zeros", align_corners=True)`, plus the two position
//! clamps of the reference readouts.
//!
//! Why not burn's `grid_sample_2d`: the reading is written here from a gather of the four taps and
//! their weights, so the gradients to the positions, to the map and (through the reparameterisation)
//! to Σ come from burn's autodiff of ordinary ops, on every backend and in f32 and f64 alike, and the
//! zero-padding / corner conventions are visible in a dozen lines.

use burn::tensor::{Int, Tensor};

use crate::kernels;

/// What each neuron of a Gaussian readout reads: `y[b, n] = Σ_c read[b, n, c] · features[c, n]`
/// with `read` = [`bilinear_sample`]`(x, positions)`, `[batch, neurons]`. Runs as one fused kernel
/// on flex (`cortexfit::kernels::readout`), as burn ops everywhere else.
pub fn bilinear_readout(x: Tensor<4>, positions: Tensor<3>, features: Tensor<2>) -> Tensor<2> {
    if kernels::uses_readout_kernel(&x, &positions, &features) {
        return kernels::bilinear_readout(x, positions, features);
    }
    bilinear_readout_ops(x, positions, features)
}

/// [`bilinear_readout`] composed from burn ops (any backend and dtype).
pub fn bilinear_readout_ops(x: Tensor<4>, positions: Tensor<3>, features: Tensor<2>) -> Tensor<2> {
    let [b, n, _] = positions.dims();
    let read = bilinear_sample(x, positions); // (B, N, C)
    let f = features.transpose().unsqueeze_dim::<3>(0); // (1, N, C)
    (read * f).sum_dim(2).reshape([b, n])
}

/// Reads `x` (B, C, H, W) at `positions` (B, N, 2) given in normalised grid coordinates
/// (last axis (x, y): x along the width, y along the height, −1 and +1 the centres of the corner
/// pixels). Taps outside the map contribute 0. Returns (B, N, C).
///
/// Each tap is one row `select` from the map laid out as (B·H·W, C), so the index holds B·N
/// entries (not B·C·N) and the backward pass is a row scatter-add.
pub fn bilinear_sample(x: Tensor<4>, positions: Tensor<3>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    let [pb, n, _] = positions.dims();
    debug_assert_eq!(pb, b, "one position set per image");
    let device = x.device();
    let px = positions.clone().narrow(2, 0, 1).reshape([b, n]);
    let py = positions.narrow(2, 1, 1).reshape([b, n]);
    // align_corners=True: -1 ↦ 0, +1 ↦ size-1.
    let ix = (px + 1.0) / 2.0 * ((w - 1) as f64);
    let iy = (py + 1.0) / 2.0 * ((h - 1) as f64);
    // Tap coordinates carry no gradient; the weights do.
    let x0 = ix.clone().detach().floor();
    let y0 = iy.clone().detach().floor();
    let wx1 = ix - x0.clone();
    let wy1 = iy - y0.clone();
    let wx0 = wx1.clone().neg() + 1.0;
    let wy0 = wy1.clone().neg() + 1.0;
    let rows = x.permute([0, 2, 3, 1]).reshape([b * h * w, c]);
    let image_offset: Tensor<2, Int> =
        (Tensor::<1, Int>::arange(0..b as i64, &device) * (h * w) as i64).reshape([b, 1]);

    let tap = |xs: Tensor<2>, ys: Tensor<2>, weight: Tensor<2>| -> Tensor<3> {
        let inside = xs
            .clone()
            .greater_equal_elem(0.0)
            .bool_and(xs.clone().lower_equal_elem((w - 1) as f64))
            .bool_and(ys.clone().greater_equal_elem(0.0))
            .bool_and(ys.clone().lower_equal_elem((h - 1) as f64));
        let xs = xs.clamp(0.0, (w - 1) as f64);
        let ys = ys.clamp(0.0, (h - 1) as f64);
        let index: Tensor<2, Int> = (ys * (w as f64) + xs).int() + image_offset.clone();
        let weight = weight.mask_fill(inside.bool_not(), 0.0);
        rows.clone()
            .select(0, index.reshape([b * n]))
            .reshape([b, n, c])
            * weight.unsqueeze_dim(2)
    };
    let x1 = x0.clone() + 1.0;
    let y1 = y0.clone() + 1.0;
    tap(x0.clone(), y0.clone(), wy0.clone() * wx0.clone())
        + tap(x1.clone(), y0, wy0 * wx1.clone())
        + tap(x0, y1.clone(), wy1.clone() * wx0)
        + tap(x1, y1, wy1 * wx1)
}

/// Clamps positions to [−1, 1] with the reference's gradient: the gradient passes only where
/// −1 < p < 1 strictly (at exactly ±1 and beyond it is 0).
pub fn clamp_positions<const D: usize>(p: Tensor<D>) -> Tensor<D> {
    let outside = p
        .clone()
        .lower_equal_elem(-1.0)
        .bool_or(p.clone().greater_equal_elem(1.0));
    let clamped = p.clone().detach().clamp(-1.0, 1.0);
    p.mask_where(outside, clamped)
}

/// The value of `clamp(p, −1, 1)` with the gradient of the identity.
///
/// The reference clamps its μ (and point-pooled grid) *parameter in place* without gradient before
/// every forward pass, so the gradient arrives at the clamped value as if no clamp were there. The
/// value is exact: `c + (p − p)` adds an exact zero.
pub fn clamp_straight_through<const D: usize>(p: Tensor<D>) -> Tensor<D> {
    let clamped = p.clone().detach().clamp(-1.0, 1.0);
    clamped + (p.clone() - p.detach())
}
