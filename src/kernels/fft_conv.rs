//! Depthwise convolutions with large filters (the lurz2020 core's 13×13) through the 2-D fast
//! Fourier transform: forward pass, input gradient and filter gradient.
//!
//! A direct k×k depthwise conv costs k² multiply-adds per output value (169 at 13×13), however
//! well vectorised ([`super::channelwise`] runs at 80–90 % of the CPU's peak). Through the FFT,
//! with `X`, `G` the transforms of an input plane and an output-gradient plane and `K` that of the
//! filter laid out on the same grid,
//!
//! - forward: `y = F⁻¹(X · K)`;
//! - input gradient: `∂L/∂x = F⁻¹(G · K̄)`;
//! - filter gradient: `∂L/∂w = F⁻¹(Σ_b G_b · X̄_b)`, summed over the batch in the frequency
//!   domain, so it costs one transform per channel, not per image;
//!
//! five transforms of an `nh × nw` grid per pair of images and 8 channels for a whole training
//! step (forward 2; both gradients 3: the output gradient's, the input's again, and the input
//! gradient's inverse) instead of 3 × k² × out_h × out_w multiply-adds per image and channel.
//! Measured at the lurz2020 shape (batch 64, 64 channels, 22×50, one thread, `cargo bench
//! --bench isa`): forward 11.3 ms against the direct sum's 20.1, both gradients 18.8 ms against
//! 20.1 + 21.3.
//!
//! **Grid.** The transform computes circular convolutions; with the plane at the grid's origin
//! and the filter at offsets `(pad − i) mod n`, they equal the zero-padded linear ones on every
//! value read when `n ≥ in + pad` and `n ≥ out + k − 1 − pad` along each axis (22×50 planes with
//! a 13×13 filter and padding 6: a 28×56 minimum, a 32×64 grid). Grid sizes are powers of two.
//!
//! **Lanes and packing.** One transform handles 8 channels in the 8 lanes of a vector (so every
//! butterfly is 8-wide with no shuffles), and two images at once as the real and imaginary parts
//! of one complex plane: the filters are real, so `F⁻¹((X_b + i·X_{b+1}) · K)` has `y_b` as its
//! real and `y_{b+1}` as its imaginary part; for the filter gradient the real part of
//! `F⁻¹(Σ G·Z̄)` with `Z = X_b + i·X_{b+1}`, `G = G_b + i·G_{b+1}` is `Σ_b g_b ⋆ x_b`.
//!
//! **Transforms** ([`super::fft`]): 8 channels in the lanes of a vector, radix-2 stage pairs,
//! rows then columns, no permutations.
//!
//! **Numbers.** Plain multiplies and adds (no fused multiply-add), so the AVX2 and portable
//! transforms give the same bits (AVX-512 CPUs run the AVX2 code); the rounding differs from the
//! direct sum's (errors relative to the plane's largest values rather than to each value, at f32
//! rounding level). Forward tasks are
//! (image pair, channel group) and write disjoint planes; each gradient task owns one channel
//! group and sums the filter gradient over the image pairs in order, so results do not depend on
//! the thread count.

use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::channelwise::ChannelwiseShape;
use super::fft::{
    Grid, Plan, Spectrum, accumulate_correlation, accumulate_correlation_block, filter_columns,
    forward_2d, forward_columns_2d, inverse_2d, inverse_columns_2d, load_rows, product, store_rows,
};
use super::isa::Isa;
use super::memory::{assume_init, uninit};
use super::vector::{LANES, Vector, vectorized};

/// Smallest filter (taps) for which [`pays`] considers the FFT.
const MIN_TAPS: usize = 49;

/// The smallest grid on which the circular convolutions of `shape` equal its zero-padded ones.
fn grid(shape: &ChannelwiseShape) -> Grid {
    let need = |input: usize, output: usize, kernel: usize, pad: usize| {
        (input + pad).max(output + kernel - 1 - pad)
    };
    Grid::at_least(
        need(shape.in_h, shape.out_h(), shape.kernel_h, shape.pad_h),
        need(shape.in_w, shape.out_w(), shape.kernel_w, shape.pad_w),
    )
}

/// Whether the FFT path runs `shape`: a filter of at least 7×7 taps, on a grid with at most taps × output values / 12 points (about
/// where the transforms' cost meets the direct sum's).
pub(super) fn pays(shape: &ChannelwiseShape) -> bool {
    if shape.taps() < MIN_TAPS || !shape.is_supported() {
        return false;
    }
    let grid = grid(shape);
    grid.nh * grid.nw * 12 <= shape.taps() * shape.out_plane()
}

/// Row of an `n`-point axis that holds filter row `i` (`(pad − i) mod n`).
fn filter_row(pad: usize, i: usize, n: usize) -> usize {
    (pad + n - i) % n
}

/// Transform of channel group `group`'s filters at offsets `(pad − i, pad − j)`, divided by the
/// grid's point count (the inverse transforms' factor).
#[inline(always)]
fn filter_spectrum_body<V: Vector>(
    plan: &Plan,
    shape: &ChannelwiseShape,
    weight: &[f32],
    group: usize,
) -> Spectrum {
    let g = &plan.grid;
    let mut s = Spectrum::zeros(g);
    let scale = 1.0 / (g.nh * g.nw) as f32;
    let (kh, kw) = (shape.kernel_h, shape.kernel_w);
    for l in 0..LANES.min(shape.channels - group * LANES) {
        let c = group * LANES + l;
        for i in 0..kh {
            for j in 0..kw {
                let at = g.at(
                    filter_row(shape.pad_h, i, g.nh),
                    filter_row(shape.pad_w, j, g.nw),
                );
                s.re[at + l] = weight[(c * kh + i) * kw + j] * scale;
            }
        }
    }
    forward_2d::<V>(plan, &mut s, g.nh);
    s
}

vectorized!(
    /// [`filter_spectrum_body`] on the path `isa`.
    fn filter_spectrum => filter_spectrum_body(
        plan: &Plan,
        shape: &ChannelwiseShape,
        weight: &[f32],
        group: usize,
    ) -> Spectrum
);

/// The filter spectra of all channel groups.
fn filter_spectra(
    isa: Isa,
    plan: &Plan,
    shape: &ChannelwiseShape,
    weight: &[f32],
) -> Vec<Spectrum> {
    (0..shape.channels.div_ceil(LANES))
        .into_par_iter()
        .map(|group| filter_spectrum(isa, plan, shape, weight, group))
        .collect()
}

/// Planes of an NCHW tensor, written by tasks that each own distinct planes.
struct Planes {
    ptr: *mut f32,
    len: usize,
    plane: usize,
}

// SAFETY: tasks write through `Planes` only to planes no other task touches (see `group`).
unsafe impl Sync for Planes {}

impl Planes {
    fn new(values: &mut [MaybeUninit<f32>], plane: usize) -> Planes {
        Planes {
            ptr: values.as_mut_ptr().cast(),
            len: values.len(),
            plane,
        }
    }

    /// Planes (`image`, `first + l`) for `l < lanes`.
    ///
    /// # Safety
    /// No other reference to these planes may exist while the returned ones live.
    #[allow(clippy::mut_from_ref)]
    unsafe fn group(
        &self,
        image: usize,
        channels: usize,
        first: usize,
        lanes: usize,
    ) -> Vec<&mut [f32]> {
        (0..lanes)
            .map(|l| {
                let index = image * channels + first + l;
                assert!(
                    (index + 1) * self.plane <= self.len,
                    "plane {index} out of range"
                );
                // SAFETY: in bounds (asserted); exclusive by the caller's guarantee; the values
                // are only written before they are read, and f32 has no invalid bit patterns.
                unsafe {
                    std::slice::from_raw_parts_mut(self.ptr.add(index * self.plane), self.plane)
                }
            })
            .collect()
    }
}

impl Planes {
    /// Inverse row transforms of rows `0..h` of `s` (its columns done), each row then written to
    /// the `h × w` planes of images `b` (the real part) and `b + 1` (the imaginary part, if
    /// `b + 1 < batch`) for channel group `group` of `channels`.
    ///
    /// # Safety
    /// No other reference to these planes may exist meanwhile (each task owns its planes).
    #[inline(always)]
    unsafe fn store_pair<V: Vector>(
        &self,
        plan: &Plan,
        s: &mut Spectrum,
        (b, batch, channels, group): (usize, usize, usize, usize),
        size: (usize, usize),
    ) {
        let lanes = LANES.min(channels - group * LANES);
        // SAFETY: the caller's guarantee.
        let mut first = unsafe { self.group(b, channels, group * LANES, lanes) };
        // SAFETY: as above (image b + 1's planes are distinct from image b's).
        let mut second =
            (b + 1 < batch).then(|| unsafe { self.group(b + 1, channels, group * LANES, lanes) });
        store_rows::<V>(plan, s, size, &mut first, second.as_deref_mut());
    }
}

/// The source planes of one channel group of image `b` (a zero plane for missing channels or
/// images).
fn group_planes<'a>(
    values: &'a [f32],
    zero: &'a [f32],
    (plane, channels, batch): (usize, usize, usize),
    b: usize,
    group: usize,
) -> [&'a [f32]; LANES] {
    std::array::from_fn(|l| {
        let c = group * LANES + l;
        if b < batch && c < channels {
            let at = (b * channels + c) * plane;
            &values[at..at + plane]
        } else {
            zero
        }
    })
}

/// Image `b`'s single input plane in every lane (a zero plane past the batch).
fn shared_planes<'a>(
    x: &'a [f32],
    zero: &'a [f32],
    plane: usize,
    batch: usize,
    b: usize,
) -> [&'a [f32]; LANES] {
    let src = if b < batch {
        &x[b * plane..(b + 1) * plane]
    } else {
        zero
    };
    [src; LANES]
}

/// Transform of the input planes of images `b`, `b + 1` of a shared-input conv (the same in every
/// lane), as its filter spectra expect them.
#[inline(always)]
fn shared_input_spectrum<V: Vector>(
    plan: &Plan,
    shape: &ChannelwiseShape,
    x: &[f32],
    zero: &[f32],
    b: usize,
) -> Spectrum {
    let mut z = Spectrum::zeros(&plan.grid);
    let (plane, n) = (shape.in_plane(), shape.batch);
    let (re, im) = (
        shared_planes(x, zero, plane, n, b),
        shared_planes(x, zero, plane, n, b + 1),
    );
    load_rows::<V>(plan, &mut z, (shape.in_h, shape.in_w), &re, &im);
    forward_columns_2d::<V>(plan, &mut z);
    z
}

vectorized!(
    /// [`shared_input_spectrum`] on the path `isa`.
    fn shared_input_spectrum_on => shared_input_spectrum(
        plan: &Plan,
        shape: &ChannelwiseShape,
        x: &[f32],
        zero: &[f32],
        b: usize,
    ) -> Spectrum
);

/// The input spectra of every image pair of a shared-input conv.
fn shared_input_spectra(
    isa: Isa,
    plan: &Plan,
    shape: &ChannelwiseShape,
    x: &[f32],
    zero: &[f32],
) -> Vec<Spectrum> {
    (0..shape.batch.div_ceil(2))
        .into_par_iter()
        .map(|pair| shared_input_spectrum_on(isa, plan, shape, x, zero, 2 * pair))
        .collect()
}

/// Forward pass: `x` `[batch, channels | 1, in_h, in_w]`, `weight` `[channels, 1, kh, kw]`,
/// returns `[batch, channels, out_h, out_w]`. A shared input plane is transformed once per image
/// pair for all channel groups.
pub(super) fn forward(isa: Isa, shape: &ChannelwiseShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        shape.batch * shape.in_channels() * shape.in_plane()
    );
    assert_eq!(weight.len(), shape.channels * shape.taps());
    let plan = Plan::new(grid(shape));
    let spectra = filter_spectra(isa, &plan, shape, weight);
    let mut out = uninit(shape.batch * shape.channels * shape.out_plane());
    let planes = Planes::new(&mut out, shape.out_plane());
    let zero = vec![0.0f32; shape.in_plane().max(shape.out_plane())];
    let (pairs, groups) = (shape.batch.div_ceil(2), shape.channels.div_ceil(LANES));
    if shape.shared_input {
        (0..pairs).into_par_iter().for_each_init(
            || Spectrum::zeros(&plan.grid),
            |y, pair| {
                let z = shared_input_spectrum_on(isa, &plan, shape, x, &zero, 2 * pair);
                for (group, filters) in spectra.iter().enumerate() {
                    let task = ForwardTask {
                        plan: &plan,
                        shape,
                        x,
                        zero: &zero,
                        filters,
                        out: &planes,
                    };
                    shared_forward_task(isa, &task, (&z, y), 2 * pair, group);
                }
            },
        );
        // SAFETY: the tasks cover every image pair and channel group, and each writes all of
        // its planes.
        return unsafe { assume_init(out) };
    }
    (0..pairs * groups).into_par_iter().for_each_init(
        || Spectrum::zeros(&plan.grid),
        |z, task| {
            let (pair, group) = (task / groups, task % groups);
            let task = ForwardTask {
                plan: &plan,
                shape,
                x,
                zero: &zero,
                filters: &spectra[group],
                out: &planes,
            };
            forward_task(isa, &task, 2 * pair, group, z);
        },
    );
    // SAFETY: the tasks cover every (image pair, channel group), and each writes all of its
    // planes (`store` writes every value of an `out_h × out_w` plane).
    unsafe { assume_init(out) }
}

/// What every forward task reads, and where it writes.
struct ForwardTask<'a> {
    plan: &'a Plan,
    shape: &'a ChannelwiseShape,
    x: &'a [f32],
    zero: &'a [f32],
    filters: &'a Spectrum,
    out: &'a Planes,
}

vectorized!(
    /// [`forward_task_body`] on the path `isa`.
    fn forward_task => forward_task_body(
        t: &ForwardTask,
        b: usize,
        group: usize,
        z: &mut Spectrum,
    )
);

vectorized!(
    /// [`shared_forward_task_body`] on the path `isa`.
    fn shared_forward_task => shared_forward_task_body(
        t: &ForwardTask,
        zy: (&Spectrum, &mut Spectrum),
        b: usize,
        group: usize,
    )
);

/// Output planes of images `b`, `b + 1` in channel group `group` of a shared-input conv, from
/// the pair's input spectrum `z` (`y`: scratch).
#[inline(always)]
fn shared_forward_task_body<V: Vector>(
    t: &ForwardTask,
    (z, y): (&Spectrum, &mut Spectrum),
    b: usize,
    group: usize,
) {
    let (shape, g) = (t.shape, &t.plan.grid);
    let (c, n) = (shape.channels, shape.batch);
    product::<V>(g, y, z, t.filters);
    inverse_columns_2d::<V>(t.plan, y);
    // SAFETY: planes (b and b + 1, group's channels) belong to this task only.
    unsafe {
        t.out
            .store_pair::<V>(t.plan, y, (b, n, c, group), (shape.out_h(), shape.out_w()))
    };
}

/// Output planes of images `b`, `b + 1` in channel group `group`.
#[inline(always)]
fn forward_task_body<V: Vector>(t: &ForwardTask, b: usize, group: usize, z: &mut Spectrum) {
    let shape = t.shape;
    let (c, n) = (shape.channels, shape.batch);
    let sizes = (shape.in_plane(), c, n);
    let re = group_planes(t.x, t.zero, sizes, b, group);
    let im = group_planes(t.x, t.zero, sizes, b + 1, group);
    load_rows::<V>(t.plan, z, (shape.in_h, shape.in_w), &re, &im);
    filter_columns::<V>(t.plan, z, (t.filters, false), |_, _| {});
    // SAFETY: planes (b and b + 1, group's channels) belong to this task only.
    unsafe {
        t.out
            .store_pair::<V>(t.plan, z, (b, n, c, group), (shape.out_h(), shape.out_w()))
    };
}

/// Input and filter gradients of a depthwise conv given `grad_out` `[batch, channels, out_h,
/// out_w]`, each only where `want_input` / `want_filter`.
pub(super) fn backward(
    isa: Isa,
    shape: &ChannelwiseShape,
    (x, weight, grad_out): (&[f32], &[f32], &[f32]),
    want_input: bool,
    want_filter: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    assert!(
        !(shape.shared_input && want_input),
        "the FFT path has no input gradient for a shared input plane"
    );
    assert_eq!(
        x.len(),
        shape.batch * shape.in_channels() * shape.in_plane()
    );
    assert_eq!(weight.len(), shape.channels * shape.taps());
    assert_eq!(
        grad_out.len(),
        shape.batch * shape.channels * shape.out_plane()
    );
    let plan = Plan::new(grid(shape));
    let spectra = filter_spectra(isa, &plan, shape, weight);
    let mut grad_x = uninit(if want_input { x.len() } else { 0 });
    let planes = Planes::new(&mut grad_x, shape.in_plane());
    let zero = vec![0.0f32; shape.in_plane().max(shape.out_plane())];
    let groups = shape.channels.div_ceil(LANES);
    let x_spectra = (shape.shared_input && want_filter)
        .then(|| shared_input_spectra(isa, &plan, shape, x, &zero));
    let filter_grads: Vec<Vec<f32>> = (0..groups)
        .into_par_iter()
        .map(|group| {
            let task = BackwardTask {
                plan: &plan,
                shape,
                x,
                grad_out,
                zero: &zero,
                filters: &spectra[group],
                grad_x: want_input.then_some(&planes),
                want_filter,
                x_spectra: x_spectra.as_deref(),
            };
            backward_group(isa, &task, group)
        })
        .collect();
    let grad_w = want_filter.then(|| filter_grads.concat());
    // SAFETY: with `want_input`, the tasks cover every channel group and write every image's
    // planes of it; otherwise `grad_x` is empty.
    let grad_x = want_input.then(|| unsafe { assume_init(grad_x) });
    (grad_x, grad_w)
}

/// What every gradient task reads, and where it writes.
struct BackwardTask<'a> {
    plan: &'a Plan,
    shape: &'a ChannelwiseShape,
    x: &'a [f32],
    grad_out: &'a [f32],
    zero: &'a [f32],
    filters: &'a Spectrum,
    grad_x: Option<&'a Planes>,
    want_filter: bool,
    /// The input spectra of every image pair (shared-input convs).
    x_spectra: Option<&'a [Spectrum]>,
}

vectorized!(
    /// [`backward_group_body`] on the path `isa`.
    fn backward_group => backward_group_body(t: &BackwardTask, group: usize) -> Vec<f32>
);

/// Input-gradient planes of channel group `group` (into `t.grad_x`) and its filters' gradient
/// `[channels in group, kh, kw]` (empty unless `t.want_filter`).
#[inline(always)]
fn backward_group_body<V: Vector>(t: &BackwardTask, group: usize) -> Vec<f32> {
    let (shape, g) = (t.shape, &t.plan.grid);
    let (c, n) = (shape.channels, shape.batch);
    let out_sizes = (shape.out_plane(), c, n);
    let in_sizes = (shape.in_plane(), c, n);
    let lanes = LANES.min(c - group * LANES);
    let mut grad = Spectrum::zeros(g);
    let mut z = Spectrum::zeros(g);
    let mut acc = Spectrum::zeros(g);
    for b in (0..n).step_by(2) {
        let re = group_planes(t.grad_out, t.zero, out_sizes, b, group);
        let im = group_planes(t.grad_out, t.zero, out_sizes, b + 1, group);
        load_rows::<V>(t.plan, &mut grad, (shape.out_h(), shape.out_w()), &re, &im);
        let x_spectrum = if let Some(spectra) = t.x_spectra {
            Some(&spectra[b / 2])
        } else if t.want_filter {
            let re = group_planes(t.x, t.zero, in_sizes, b, group);
            let im = group_planes(t.x, t.zero, in_sizes, b + 1, group);
            load_rows::<V>(t.plan, &mut z, (shape.in_h, shape.in_w), &re, &im);
            forward_columns_2d::<V>(t.plan, &mut z);
            Some(&z)
        } else {
            None
        };
        if let Some(grad_x) = t.grad_x {
            // Column block by column block: the filter gradient's sum, then the input gradient.
            filter_columns::<V>(t.plan, &mut grad, (t.filters, true), |grad, block| {
                if let Some(x) = x_spectrum {
                    accumulate_correlation_block::<V>(g, &mut acc, (grad, x), block);
                }
            });
            // SAFETY: planes (b and b + 1, group's channels) belong to this task only.
            unsafe {
                grad_x.store_pair::<V>(
                    t.plan,
                    &mut grad,
                    (b, n, c, group),
                    (shape.in_h, shape.in_w),
                )
            };
        } else if let Some(x) = x_spectrum {
            forward_columns_2d::<V>(t.plan, &mut grad);
            accumulate_correlation::<V>(g, &mut acc, &grad, x);
        }
    }
    if !t.want_filter {
        return Vec::new();
    }
    let (kh, kw) = (shape.kernel_h, shape.kernel_w);
    let rows: Vec<usize> = (0..kh).map(|i| filter_row(shape.pad_h, i, g.nh)).collect();
    inverse_2d::<V>(t.plan, &mut acc, rows.iter().copied());
    let scale = 1.0 / (g.nh * g.nw) as f32;
    let mut out = Vec::with_capacity(lanes * kh * kw);
    for l in 0..lanes {
        for &row in &rows {
            for j in 0..kw {
                let at = g.at(row, filter_row(shape.pad_w, j, g.nw));
                out.push(acc.re[at + l] * scale);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn direct_forward(s: &ChannelwiseShape, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut out = vec![0.0f64; s.batch * s.channels * oh * ow];
        for b in 0..s.batch {
            for c in 0..s.channels {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut sum = 0.0f64;
                        for i in 0..s.kernel_h {
                            for j in 0..s.kernel_w {
                                let (r, col) = (y + i, xo + j);
                                if r < s.pad_h || col < s.pad_w {
                                    continue;
                                }
                                let (r, col) = (r - s.pad_h, col - s.pad_w);
                                if r >= s.in_h || col >= s.in_w {
                                    continue;
                                }
                                sum += w[(c * s.kernel_h + i) * s.kernel_w + j] as f64
                                    * x[(s.input_plane_index(b, c) * s.in_h + r) * s.in_w + col]
                                        as f64;
                            }
                        }
                        out[((b * s.channels + c) * oh + y) * ow + xo] = sum;
                    }
                }
            }
        }
        out
    }

    /// Largest difference relative to the largest magnitude of `expected`.
    fn relative_error(got: &[f32], expected: &[f64]) -> f64 {
        assert_eq!(got.len(), expected.len());
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        got.iter()
            .zip(expected)
            .fold(0.0f64, |m, (&g, &e)| m.max((g as f64 - e).abs()))
            / scale
    }

    fn random(rng: &mut rand::rngs::StdRng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Forward, input and filter gradients against f64 direct sums (the gradients through the
    /// forward pass's adjoint: `<g, conv(x)> = <conv_x^T(g), x> = <∂w, w>` per entry).
    #[test]
    fn fft_conv_matches_the_direct_sums() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let shapes = [
            (64, 5, 22, 50, 13, 6),
            (9, 3, 22, 50, 13, 6),
            (3, 2, 7, 11, 5, 2),
            (10, 1, 9, 9, 9, 0),
            (8, 4, 6, 30, 7, 6),
            // Shared input plane (the lurz2020 input conv and a ragged one): no input gradient.
            (64, 3, 36, 64, 15, 0),
            (11, 5, 12, 17, 7, 3),
        ];
        for (channels, batch, in_h, in_w, k, pad) in shapes {
            let shared_input = k == 15 || channels == 11;
            let s = ChannelwiseShape {
                batch,
                channels,
                shared_input,
                in_h,
                in_w,
                kernel_h: k,
                kernel_w: k,
                pad_h: pad,
                pad_w: pad,
            };
            let x = random(&mut rng, batch * s.in_channels() * s.in_plane());
            let w = random(&mut rng, channels * s.taps());
            let g = random(&mut rng, batch * channels * s.out_plane());
            let mut first: Option<(Vec<f32>, Vec<f32>, Vec<f32>)> = None;
            for isa in Isa::supported() {
                let y = forward(isa, &s, &x, &w);
                let e = relative_error(&y, &direct_forward(&s, &x, &w));
                assert!(e < 1e-5, "forward {s:?} {isa}: {e}");
                let (gx, gw) = backward(isa, &s, (&x, &w, &g), !shared_input, true);
                let (gx, gw) = (gx.unwrap_or_default(), gw.unwrap());
                // Input gradient: entry m is the forward pass's output dotted with g for a unit x.
                let mut gx_ref = vec![0.0f64; x.len()];
                let mut gw_ref = vec![0.0f64; w.len()];
                let (oh, ow) = (s.out_h(), s.out_w());
                for b in 0..batch {
                    for c in 0..channels {
                        for y in 0..oh {
                            for xo in 0..ow {
                                let gv = g[((b * channels + c) * oh + y) * ow + xo] as f64;
                                for i in 0..k {
                                    for j in 0..k {
                                        let (r, col) = (y + i, xo + j);
                                        if r < pad
                                            || col < pad
                                            || r - pad >= in_h
                                            || col - pad >= in_w
                                        {
                                            continue;
                                        }
                                        let xi = (s.input_plane_index(b, c) * in_h + r - pad)
                                            * in_w
                                            + col
                                            - pad;
                                        let wi = (c * k + i) * k + j;
                                        gx_ref[xi] += gv * w[wi] as f64;
                                        gw_ref[wi] += gv * x[xi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
                let e = relative_error(&gw, &gw_ref);
                assert!(e < 1e-5, "filter grad {s:?} {isa}: {e}");
                if !shared_input {
                    let e = relative_error(&gx, &gx_ref);
                    assert!(e < 1e-5, "input grad {s:?} {isa}: {e}");
                    let (only_x, none) = backward(isa, &s, (&x, &w, &g), true, false);
                    assert_eq!(only_x.unwrap(), gx);
                    assert!(none.is_none());
                }
                assert_eq!(backward(isa, &s, (&x, &w, &g), false, true).1.unwrap(), gw);
                // Every path gives the same bits (plain multiplies and adds in the same order).
                match &first {
                    None => first = Some((y, gx, gw)),
                    Some(f) => assert!(*f == (y, gx, gw), "{isa} differs from the first path"),
                }
            }
        }
    }

    #[test]
    fn fft_conv_does_not_depend_on_the_thread_count() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for shared_input in [false, true] {
            let s = ChannelwiseShape {
                batch: 5,
                channels: 11,
                shared_input,
                in_h: 14,
                in_w: 20,
                kernel_h: 9,
                kernel_w: 9,
                pad_h: 4,
                pad_w: 4,
            };
            let x = random(&mut rng, s.batch * s.in_channels() * s.in_plane());
            let w = random(&mut rng, s.channels * s.taps());
            let g = random(&mut rng, s.batch * s.channels * s.out_plane());
            let compute = || {
                (
                    forward(Isa::best(), &s, &x, &w),
                    backward(Isa::best(), &s, (&x, &w, &g), !shared_input, true),
                )
            };
            let pool = |n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            };
            assert_eq!(pool(1).install(compute), pool(3).install(compute));
        }
    }
}
