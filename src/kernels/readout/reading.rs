//! The read-out of one neuron at one position, and its gradients, on channels-last images (see
//! [`super::layout`]): the loops that run once per (image, neuron).
//!
//! With `x_t` the C-vectors of the four taps, `w_t` their bilinear weights, `f` the neuron's
//! feature vector and `g = ∂L/∂y`:
//! - forward: the reading `s = Σ_t w_t · x_t`, then `y = s · f`, 8 channels at a time;
//! - position gradient: from the four tap values `x_t · f` (see [`Taps::position_grad`]);
//! - map gradient: `∂L/∂x_t += (g · w_t) · f`;
//! - feature gradient: `∂L/∂f += Σ_t (g · w_t) · x_t`.
//!
//! Taps outside the map point at the image's zero row with weight 0 (the forward pass reads
//! zeros there; the gradients skip them).

use super::super::isa::multiversion;
use super::super::vector::{LANES, Vector, vectorized};
use super::ReadoutShape;

/// The four taps of one reading: offsets of their C-vectors in a channels-last image, their
/// weights (0 for taps outside the map), the fractional parts and the validity masks.
pub(super) struct Taps {
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
    pub(super) fn new(shape: &ReadoutShape, px: f32, py: f32) -> Self {
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
            offsets: [shape.zero_row(); 4],
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

    /// The taps' C-vectors in `image` (channels-last, with its zero row).
    #[inline(always)]
    fn rows<'a>(&self, image: &'a [f32], channels: usize) -> [&'a [f32]; 4] {
        self.offsets.map(|o| &image[o..o + channels])
    }
}

/// Channels `k..k + 8` of the reading `s = ((w0·x0 + w1·x1) + w2·x2) + w3·x3`.
#[inline(always)]
fn sample<V: Vector>(rows: &[&[f32]; 4], w: &[V; 4], k: usize) -> V {
    let x = |t: usize| V::from_slice(&rows[t][k..]).mul(w[t]);
    x(0).add(x(1)).add(x(2)).add(x(3))
}

/// Channel `k` of the reading, in the order of [`sample`].
#[inline(always)]
fn sample_one(rows: &[&[f32]; 4], w: &[f32; 4], k: usize) -> f32 {
    rows[0][k] * w[0] + rows[1][k] * w[1] + rows[2][k] * w[2] + rows[3][k] * w[3]
}

/// Responses `out[j]` of the neurons of one image (channels-last), from their positions and
/// features `[neurons, channels]`.
#[inline(always)]
fn forward_image_body<V: Vector>(
    shape: &ReadoutShape,
    image: &[f32],
    positions: &[f32],
    features: &[f32],
    out: &mut [f32],
) {
    let c = shape.channels;
    let full = c / LANES * LANES;
    for (j, y) in out.iter_mut().enumerate() {
        let taps = Taps::new(shape, positions[2 * j], positions[2 * j + 1]);
        let rows = taps.rows(image, c);
        let w = taps.weights.map(V::splat);
        let f = &features[j * c..(j + 1) * c];
        let mut acc = V::zero();
        for k in (0..full).step_by(LANES) {
            acc = acc.add(sample(&rows, &w, k).mul(V::from_slice(&f[k..])));
        }
        let tail: f32 = (full..c)
            .map(|k| sample_one(&rows, &taps.weights, k) * f[k])
            .sum();
        *y = acc.sum() + tail;
    }
}

vectorized!(
    /// [`forward_image_body`] on the path `isa`.
    pub(super) fn forward_image => forward_image_body(
        shape: &ReadoutShape,
        image: &[f32],
        positions: &[f32],
        features: &[f32],
        out: &mut [f32],
    )
);

/// One image's inputs: map (channels-last), positions, features `[neurons, channels]` and output
/// gradient.
pub(super) type ImageInputs<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32]);

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

/// One image's outputs: map gradient (channels-last, the layout of the image), position gradient
/// and the feature gradient `[neurons, channels]` to add to (empty: not wanted).
pub(super) type ImageOutputs<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32]);

/// Adds one image's map gradient to `image_grad` and its feature gradient to `feature_grad`
/// (unless empty), and writes its position gradient, neuron by neuron in order.
#[inline(always)]
fn image_grads_body(
    shape: &ReadoutShape,
    (image, positions, features, grad): ImageInputs<'_>,
    (image_grad, positions_grad, feature_grad): ImageOutputs<'_>,
) {
    let c = shape.channels;
    let with_features = !feature_grad.is_empty();
    for j in 0..shape.neurons {
        let taps = Taps::new(shape, positions[2 * j], positions[2 * j + 1]);
        let feature = &features[j * c..(j + 1) * c];
        let rows = taps.rows(image, c);
        let values = rows.map(|row| dot(row, feature));
        let g = grad[j];
        let [gx, gy] = taps.position_grad(shape, values, g);
        positions_grad[2 * j] = gx;
        positions_grad[2 * j + 1] = gy;
        let taps_with_rows = taps.offsets.iter().zip(taps.weights).zip(rows);
        for ((&o, weight), row) in taps_with_rows {
            if weight != 0.0 {
                axpy(&mut image_grad[o..o + c], g * weight, feature);
                if with_features {
                    axpy(&mut feature_grad[j * c..(j + 1) * c], g * weight, row);
                }
            }
        }
    }
}

multiversion!(
    /// [`image_grads_body`] compiled for `isa`.
    pub(super) fn image_grads => image_grads_body(
        shape: &ReadoutShape,
        inputs: ImageInputs<'_>,
        outputs: ImageOutputs<'_>,
    )
);
