//! Receptive-field mapping by reverse correlation on plain arrays, used to start free Gaussian
//! readout positions at each neuron's receptive field (`model.readout.init_mu_from_data`): the
//! model builder maps [`receptive_field_centres`] into the facts of each dataset, and
//! `Encoder::init` converts them with [`pixels_to_grid`].
//!
//! Why: a freely learned readout position only moves where its sampled positions find signal.
//! A neuron whose receptive field lies far from its random starting position (beyond the
//! Gaussian's initial spread) gets no gradient towards it, its features decay under the L1
//! penalty, and it stays "dead" at a wrong position. The paper avoids this with retinotopy (a
//! shared map from cortical coordinates); without one, a classic reverse-correlation map gives
//! each neuron a starting point near its receptive field, and training refines it.
//!
//! The map of a neuron is the sum of two correlation maps over training trials: its
//! response's correlation with the *local contrast energy* of the image (high-passed image,
//! squared, smoothed, relative to the image's mean contrast: drives complex and normalized
//! cells) and the local RMS of its *linear* spike-triggered average of the high-passed image
//! (the smoothed squared correlation, square-rooted: drives simple cells). Both are
//! correlations, with the same noise (~1/√trials), so a neuron with only one kind of signal is
//! not drowned by the other map's noise. The position of the
//! maximum, in pixels, is its estimated receptive-field centre.

use burn::tensor::{Device, Tensor, TensorData};

/// Width (σ, pixels) of the blur subtracted to high-pass the images.
const HIGH_PASS_SIGMA: f64 = 3.0;
/// Width (σ, pixels) of the smoothing of energies.
const ENERGY_SIGMA: f64 = 2.0;
/// Width (σ, pixels) of the final smoothing of each neuron's map before taking its maximum.
const MAP_SIGMA: f64 = 1.0;

/// Estimated receptive-field centres (row, column) in pixels, one per neuron.
///
/// `images` holds `trials` grey images of `height × width` (row-major), `responses` holds
/// `trials × n_neurons`. Neurons whose response does not vary get the image centre.
pub fn receptive_field_centres(
    images: &[f32],
    [height, width]: [usize; 2],
    responses: &[f32],
    n_neurons: usize,
    device: &Device,
) -> Vec<[f64; 2]> {
    let pixels = height * width;
    let trials = images.len() / pixels.max(1);
    assert_eq!(
        images.len(),
        trials * pixels,
        "images are not trials × H × W"
    );
    assert_eq!(
        responses.len(),
        trials * n_neurons,
        "responses are not trials × N"
    );
    if trials < 2 || n_neurons == 0 {
        return vec![[(height as f64 - 1.0) / 2.0, (width as f64 - 1.0) / 2.0]; n_neurons];
    }
    // Per-trial high-passed image and its local contrast energy.
    let mut high_pass = Vec::with_capacity(trials * pixels);
    let mut energy = Vec::with_capacity(trials * pixels);
    for image in images.chunks_exact(pixels) {
        let image: Vec<f64> = image.iter().map(|&v| v as f64).collect();
        let low = gaussian_blur(&image, height, width, HIGH_PASS_SIGMA);
        let hp: Vec<f64> = image.iter().zip(&low).map(|(x, l)| x - l).collect();
        let squared: Vec<f64> = hp.iter().map(|v| v * v).collect();
        let local = gaussian_blur(&squared, height, width, ENERGY_SIGMA);
        // Relative to the image's mean contrast: natural images vary in overall contrast from
        // trial to trial, which correlates with every pixel's energy and blurs the maps.
        let mean = local.iter().sum::<f64>() / pixels as f64;
        energy.extend(local.iter().map(|e| e - mean));
        high_pass.extend(hp);
    }
    let responses: Vec<f64> = responses.iter().map(|&v| v as f64).collect();
    let r = zscore_columns(&responses, trials, n_neurons, device);
    let energy_corr = correlations(&r, &energy, trials, pixels, device);
    let sta = correlations(&r, &high_pass, trials, pixels, device);

    let mut centres = Vec::with_capacity(n_neurons);
    for n in 0..n_neurons {
        let e = &energy_corr[n * pixels..(n + 1) * pixels];
        let s2: Vec<f64> = sta[n * pixels..(n + 1) * pixels]
            .iter()
            .map(|v| v * v)
            .collect();
        let s2 = gaussian_blur(&s2, height, width, ENERGY_SIGMA);
        let e_max = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let s_max = s2.iter().fold(0.0f64, |m, &v| m.max(v));
        // Both terms are correlations (the second the local RMS of the linear average), so
        // their noise is the same (~1/√trials) and a map without signal adds only noise.
        let score: Vec<f64> = e.iter().zip(&s2).map(|(e, s)| e + s.sqrt()).collect();
        let score = gaussian_blur(&score, height, width, MAP_SIGMA);
        let best = score
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        if e_max == 0.0 && s_max == 0.0 {
            centres.push([(height as f64 - 1.0) / 2.0, (width as f64 - 1.0) / 2.0]);
        } else {
            centres.push([(best / width) as f64, (best % width) as f64]);
        }
    }
    centres
}

/// Converts pixel centres (row, column) of the input image to readout grid positions (x, y)
/// on a core output of `out_hw` that is the centred crop of the `in_hw` image (stride-1
/// convolutions without padding crop (k − 1)/2 pixels per side), for `grid_sample` with
/// `align_corners = True`. Positions outside the map are clamped to [−1, 1].
pub fn pixels_to_grid(
    centres: &[[f64; 2]],
    [in_h, in_w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
) -> Vec<[f64; 2]> {
    let axis = |p: f64, n_in: usize, n_out: usize| {
        let offset = (n_in as f64 - n_out as f64) / 2.0;
        let span = (n_out as f64 - 1.0).max(1.0);
        (2.0 * (p - offset) / span - 1.0).clamp(-1.0, 1.0)
    };
    centres
        .iter()
        .map(|&[row, col]| [axis(col, in_w, out_w), axis(row, in_h, out_h)])
        .collect()
}

/// Pearson correlation of every neuron with every pixel, `N × P` row-major: `z_r` holds the
/// responses z-scored per neuron (`T × N`), `x` the `T × P` pixel values.
///
/// `corr[n, p] = Σ_t z_r[t, n] · z_x[t, p] / T`; a pixel that never varies correlates 0.
fn correlations(
    z_r: &Tensor<2>,
    x: &[f64],
    trials: usize,
    pixels: usize,
    device: &Device,
) -> Vec<f64> {
    let z_x = zscore_columns(x, trials, pixels, device);
    let c = z_r.clone().transpose().matmul(z_x) / trials as f64;
    c.into_data().iter::<f64>().collect()
}

/// Columns of a `rows × cols` matrix z-scored (constant columns become 0), as an f32 tensor.
fn zscore_columns(values: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let mut mean = vec![0.0; cols];
    let mut sq = vec![0.0; cols];
    for row in values.chunks_exact(cols) {
        for ((m, s), &v) in mean.iter_mut().zip(&mut sq).zip(row) {
            *m += v;
            *s += v * v;
        }
    }
    let scale: Vec<f64> = mean
        .iter_mut()
        .zip(&sq)
        .map(|(m, s)| {
            *m /= rows as f64;
            let var = s / rows as f64 - *m * *m;
            if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 }
        })
        .collect();
    let z: Vec<f32> = values
        .chunks_exact(cols)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| ((v - m) * s) as f32)
        })
        .collect();
    Tensor::from_data(TensorData::new(z, [rows, cols]), device)
}

/// Separable Gaussian blur (truncated at 3σ) with mirrored borders, like scipy's
/// `gaussian_filter(mode="reflect")`.
fn gaussian_blur(image: &[f64], height: usize, width: usize, sigma: f64) -> Vec<f64> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / total).collect();
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        // Mirror about the edges (…, 1, 0 | 0, 1, … n−1 | n−1, n−2, …) until inside.
        while i < 0 || i >= n {
            i = if i < 0 { -i - 1 } else { 2 * n - i - 1 };
        }
        i as usize
    };
    let mut rows_done = vec![0.0; image.len()];
    for r in 0..height {
        for c in 0..width {
            rows_done[r * width + c] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    w * image[r * width + reflect(c as isize + k as isize - radius, width)]
                })
                .sum();
        }
    }
    let mut out = vec![0.0; image.len()];
    for r in 0..height {
        for c in 0..width {
            out[r * width + c] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| {
                    w * rows_done[reflect(r as isize + k as isize - radius, height) * width + c]
                })
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Neurons that respond to the contrast energy (complex-like) or to a signed, rectified
    /// Gabor (simple-like) at known positions in the simulator's natural-like images are found
    /// within a pixel or two.
    #[test]
    fn finds_simulated_receptive_fields() {
        let (h, w, trials) = (24, 40, 1500);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let images: Vec<f32> = (0..trials)
            .flat_map(|_| crate::sim::images::natural_image(&mut rng, h, w))
            .collect();
        // Centres keep 6 px from the border, like the simulator's (a neuron whose RF is cut by the
        // image edge is mapped less reliably; training refines the start anyway).
        let centres = [
            [6.0, 8.0],
            [16.0, 30.0],
            [12.0, 20.0],
            [7.0, 33.0],
            [17.0, 9.0],
            [9.0, 25.0],
        ];
        // Quadrature Gabor pair per neuron (σ 2 px, 0.13 cycles/px), without a DC component
        // so that they see contrast, not mean luminance.
        let filters: Vec<[Vec<f64>; 2]> = centres
            .iter()
            .map(|&[cr, cc]| {
                let mut pair = [vec![0.0; h * w], vec![0.0; h * w]];
                let mut env_sum = 0.0;
                let mut dc = [0.0; 2];
                for r in 0..h {
                    for c in 0..w {
                        let (dr, dx) = (r as f64 - cr, c as f64 - cc);
                        let env = (-(dr * dr + dx * dx) / 8.0).exp();
                        pair[0][r * w + c] = env * (0.8 * dx).cos();
                        pair[1][r * w + c] = env * (0.8 * dx).sin();
                        env_sum += env;
                        dc[0] += pair[0][r * w + c];
                        dc[1] += pair[1][r * w + c];
                    }
                }
                for (f, dc) in pair.iter_mut().zip(dc) {
                    for (i, v) in f.iter_mut().enumerate() {
                        let (r, c) = (i / w, i % w);
                        let (dr, dx) = (r as f64 - cr, c as f64 - cc);
                        *v -= dc / env_sum * (-(dr * dr + dx * dx) / 8.0).exp();
                    }
                }
                pair
            })
            .collect();
        let mut responses = vec![0f32; trials * centres.len()];
        for t in 0..trials {
            let img = &images[t * h * w..(t + 1) * h * w];
            for (n, [even_f, odd_f]) in filters.iter().enumerate() {
                let dot = |f: &[f64]| f.iter().zip(img).map(|(a, &b)| a * b as f64).sum::<f64>();
                let (even, odd) = (dot(even_f), dot(odd_f));
                // Even neurons: simple (rectified); odd neurons: complex (energy).
                let drive = if n % 2 == 0 {
                    even.max(0.0)
                } else {
                    (even * even + odd * odd).sqrt()
                };
                responses[t * centres.len() + n] = drive as f32;
            }
        }
        // Noise as large as each neuron's own response spread (single-trial correlations ~0.7).
        let k = centres.len();
        for n in 0..k {
            let col: Vec<f32> = (0..trials).map(|t| responses[t * k + n]).collect();
            let mean = col.iter().sum::<f32>() / trials as f32;
            let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / trials as f32).sqrt();
            for t in 0..trials {
                responses[t * k + n] += rng.random_range(-sd..sd) * 1.7;
            }
        }
        let found =
            receptive_field_centres(&images, [h, w], &responses, centres.len(), &Device::flex());
        for (f, t) in found.iter().zip(&centres) {
            let err = ((f[0] - t[0]).powi(2) + (f[1] - t[1]).powi(2)).sqrt();
            assert!(err <= 2.0, "found {f:?}, true {t:?}");
        }
    }

    /// Even, zero-mean Gabor (σ 2 px, 0.13 cycles/px) centred at `(row, col)` on an `h × w`
    /// image.
    fn even_gabor(h: usize, w: usize, [cr, cc]: [f64; 2]) -> Vec<f64> {
        let env = |r: usize, c: usize| {
            let (dr, dx) = (r as f64 - cr, c as f64 - cc);
            ((-(dr * dr + dx * dx) / 8.0).exp(), dx)
        };
        let (mut env_sum, mut dc) = (0.0, 0.0);
        let mut f = vec![0.0; h * w];
        for (i, v) in f.iter_mut().enumerate() {
            let (e, dx) = env(i / w, i % w);
            *v = e * (0.8 * dx).cos();
            env_sum += e;
            dc += *v;
        }
        for (i, v) in f.iter_mut().enumerate() {
            *v -= dc / env_sum * env(i / w, i % w).0;
        }
        f
    }

    /// Purely linear neurons (unrectified Gabor, no contrast-energy signal: their response is
    /// odd in the image) are found through their own spike-triggered average, each at its own
    /// position.
    #[test]
    fn linear_neurons_are_found_by_their_spike_triggered_average() {
        let (h, w, trials) = (24, 40, 1200);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let images: Vec<f32> = (0..trials)
            .flat_map(|_| crate::sim::images::natural_image(&mut rng, h, w))
            .collect();
        let centres = [[8.0, 10.0], [15.0, 29.0], [11.0, 20.0]];
        let filters: Vec<Vec<f64>> = centres.iter().map(|&c| even_gabor(h, w, c)).collect();
        let k = centres.len();
        let mut responses = vec![0f32; trials * k];
        for (t, img) in images.chunks_exact(h * w).enumerate() {
            for (n, f) in filters.iter().enumerate() {
                let drive: f64 = f.iter().zip(img).map(|(a, &b)| a * b as f64).sum();
                responses[t * k + n] = drive as f32;
            }
        }
        for n in 0..k {
            let sd = (0..trials)
                .map(|t| responses[t * k + n].powi(2))
                .sum::<f32>()
                .sqrt()
                / (trials as f32).sqrt();
            for t in 0..trials {
                responses[t * k + n] += rng.random_range(-sd..sd) * 1.5;
            }
        }
        let found = receptive_field_centres(&images, [h, w], &responses, k, &Device::flex());
        for (f, t) in found.iter().zip(&centres) {
            let err = ((f[0] - t[0]).powi(2) + (f[1] - t[1]).powi(2)).sqrt();
            assert!(err <= 2.0, "found {f:?}, true {t:?}");
        }
    }

    /// Images that differ only in sign have the same contrast energy on every trial, so only
    /// the spike-triggered average carries a signal; a neuron following the sign is still
    /// mapped (the centre of a 9 × 12 image is not a pixel).
    #[test]
    fn a_neuron_seen_only_through_its_linear_average_is_mapped() {
        let (h, w, trials) = (9, 12, 30);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let pattern: Vec<f32> = (0..h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
        let signs: Vec<f32> = (0..trials)
            .map(|t| if t % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let images: Vec<f32> = signs
            .iter()
            .flat_map(|s| pattern.iter().map(move |p| s * p))
            .collect();
        let centre = [(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0];
        let found = receptive_field_centres(&images, [h, w], &signs, 1, &Device::flex());
        assert!(
            found[0] != centre,
            "mapped from its linear average alone: {found:?}"
        );
    }

    /// Two trials are the fewest that carry a correlation: a neuron that differs between them
    /// is mapped to a pixel.
    #[test]
    fn two_trials_are_enough_to_map_a_neuron() {
        let (h, w) = (9, 12);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let images: Vec<f32> = (0..2 * h * w)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let centre = [(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0];
        let found = receptive_field_centres(&images, [h, w], &[1.0, 3.0], 1, &Device::flex());
        assert!(found[0] != centre, "two trials map: {found:?}");
    }

    /// Blank trials (a grey screen between stimulus blocks: exactly 0 in z-scored images) have
    /// no contrast at all; they neither poison the maps (no 0/0 in the contrast normalisation)
    /// nor move a neuron driven by one pixel's contrast.
    #[test]
    fn blank_trials_do_not_disturb_the_map() {
        let (h, w, trials, blank) = (9, 12, 60, 12);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut images: Vec<f32> = (0..trials * h * w)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        images[..blank * h * w].fill(0.0);
        let responses: Vec<f32> = (0..trials)
            .map(|t| images[t * h * w + 2 * w + 3].abs())
            .collect();
        let found = receptive_field_centres(&images, [h, w], &responses, 1, &Device::flex());
        let err = ((found[0][0] - 2.0).powi(2) + (found[0][1] - 3.0).powi(2)).sqrt();
        assert!(err <= 1.5, "found {:?}, driven by pixel (2, 3)", found[0]);
    }

    /// The maps are Pearson correlations: a neuron that equals a pixel correlates +1 with it,
    /// its negation −1, a constant pixel 0, and any other pixel as computed directly.
    #[test]
    fn correlation_maps_are_pearson_correlations() {
        let (trials, pixels) = (20, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x: Vec<f64> = (0..trials * pixels)
            .map(|i| {
                if i % pixels == 1 {
                    0.5
                } else {
                    rng.random_range(-1.0..1.0)
                }
            })
            .collect();
        let pixel = |p: usize| -> Vec<f64> { (0..trials).map(|t| x[t * pixels + p]).collect() };
        let other: Vec<f64> = (0..trials).map(|_| rng.random_range(0.0..2.0)).collect();
        // Neurons: pixel 0, minus pixel 0, an unrelated response.
        let responses: Vec<f64> = (0..trials)
            .flat_map(|t| [x[t * pixels], -3.0 * x[t * pixels] + 1.0, other[t]])
            .collect();
        let device = Device::flex();
        let z_r = zscore_columns(&responses, trials, 3, &device);
        let c = correlations(&z_r, &x, trials, pixels, &device);
        let pearson = |a: &[f64], b: &[f64]| {
            let n = a.len() as f64;
            let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
            let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
            let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
            let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
            cov / (va * vb).sqrt()
        };
        assert!((c[0] - 1.0).abs() < 1e-5, "{}", c[0]);
        assert!((c[pixels] + 1.0).abs() < 1e-5, "{}", c[pixels]);
        for n in 0..3 {
            assert_eq!(c[n * pixels + 1], 0.0, "constant pixel");
        }
        let expected = pearson(&other, &pixel(2));
        assert!(
            (c[2 * pixels + 2] - expected).abs() < 1e-5,
            "{} vs {expected}",
            c[2 * pixels + 2]
        );
    }

    #[test]
    fn pixel_centres_map_to_the_cropped_grid() {
        // A 15×15 valid convolution crops 7 pixels per side: 36×64 → 22×50.
        let g = pixels_to_grid(
            &[[7.0, 7.0], [28.0, 56.0], [17.5, 31.5], [0.0, 63.0]],
            [36, 64],
            [22, 50],
        );
        assert_eq!(g[0], [-1.0, -1.0]);
        assert_eq!(g[1], [1.0, 1.0]);
        assert!(g[2][0].abs() < 1e-12 && g[2][1].abs() < 1e-12);
        assert_eq!(g[3], [1.0, -1.0], "outside the map: clamped");
    }

    /// Neurons whose response never varies get the image centre, as does everyone when there
    /// are fewer than two trials; the others get a pixel of the image.
    #[test]
    fn silent_neurons_and_too_few_trials_get_the_image_centre() {
        let (h, w, trials) = (9, 12, 40);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let images: Vec<f32> = (0..trials * h * w)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        // Neuron 0 constant, neuron 1 driven by pixel (2, 3)'s contrast.
        let responses: Vec<f32> = (0..trials)
            .flat_map(|t| [4.0, images[t * h * w + 2 * w + 3].abs()])
            .collect();
        let centre = [(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0];
        let found = receptive_field_centres(&images, [h, w], &responses, 2, &Device::flex());
        assert_eq!(found[0], centre);
        assert!(found[1] != centre, "a driven neuron is mapped");
        let one = receptive_field_centres(
            &images[..h * w],
            [h, w],
            &responses[..2],
            2,
            &Device::flex(),
        );
        assert_eq!(one, vec![centre; 2]);
        assert!(receptive_field_centres(&images, [h, w], &[], 0, &Device::flex()).is_empty());
    }

    /// Each column ends with mean 0 and (population) variance 1; a constant column becomes 0.
    #[test]
    fn zscored_columns_have_zero_mean_and_unit_variance() {
        let (rows, cols) = (50, 3);
        let values: Vec<f64> = (0..rows * cols)
            .map(|i| match i % cols {
                0 => (i as f64 * 0.37).sin() * 3.0 + 7.0,
                1 => -2.5,
                _ => (i / cols) as f64,
            })
            .collect();
        let z = zscore_columns(&values, rows, cols, &Device::flex());
        let z: Vec<f32> = z.into_data().iter::<f32>().collect();
        for c in 0..cols {
            let col: Vec<f64> = (0..rows).map(|r| z[r * cols + c] as f64).collect();
            let mean = col.iter().sum::<f64>() / rows as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            assert!(mean.abs() < 1e-6, "column {c}: mean {mean}");
            let expected = if c == 1 { 0.0 } else { 1.0 };
            assert!((var - expected).abs() < 1e-5, "column {c}: variance {var}");
        }
        // A straight line z-scores to evenly spaced values: first −√3·(n−1)/√(n²−1).
        let n = rows as f64;
        let first = -(3.0f64).sqrt() * (n - 1.0) / (n * n - 1.0).sqrt();
        assert!((z[2] as f64 - first).abs() < 1e-5, "{} vs {first}", z[2]);
    }

    /// The separable blur equals a direct 2-D sum with the normalised Gaussian and mirrored
    /// borders (scipy's `mode="reflect"`), also where the kernel reaches past the image twice.
    #[test]
    fn blur_is_the_direct_two_dimensional_sum_with_mirrored_borders() {
        let (h, w) = (5, 8);
        let image: Vec<f64> = (0..h * w)
            .map(|i| ((i * 7919) % 23) as f64 - 11.0)
            .collect();
        // Period 2n mirror: …, 1, 0 | 0, 1, …, n−1 | n−1, …
        let mirror = |i: isize, n: usize| {
            let m = i.rem_euclid(2 * n as isize) as usize;
            if m < n { m } else { 2 * n - 1 - m }
        };
        for sigma in [1.0f64, 2.0] {
            let radius = (3.0 * sigma).ceil() as isize;
            let weight = |d: isize| (-((d * d) as f64) / (2.0 * sigma * sigma)).exp();
            let norm: f64 = (-radius..=radius).map(weight).sum::<f64>().powi(2);
            let blurred = gaussian_blur(&image, h, w, sigma);
            for r in 0..h {
                for c in 0..w {
                    let mut expected = 0.0;
                    for dr in -radius..=radius {
                        for dc in -radius..=radius {
                            let (rr, cc) = (mirror(r as isize + dr, h), mirror(c as isize + dc, w));
                            expected += weight(dr) * weight(dc) * image[rr * w + cc];
                        }
                    }
                    expected /= norm;
                    let got = blurred[r * w + c];
                    assert!(
                        (got - expected).abs() < 1e-9,
                        "σ {sigma} ({r}, {c}): {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn blur_preserves_a_constant_image() {
        let img = vec![2.5; 7 * 9];
        for v in gaussian_blur(&img, 7, 9, 2.0) {
            assert!((v - 2.5).abs() < 1e-12);
        }
    }
}
