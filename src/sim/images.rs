//! Natural-like grey stimuli: a dead-leaves model (occluding ellipses of random grey level
//! with power-law sizes, which is scale invariant like natural scenes) mixed with 1/f noise
//! (a sum of octaves of smooth random fields, amplitude ∝ scale, so power falls ≈ 1/f²).
//! White noise would drive V1 models poorly and look nothing like ImageNet crops.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Target grey-level mean and standard deviation (close to the real 36×64 ImageNet frames:
/// mean ≈ 111, std ≈ 61).
const MEAN_GREY: f64 = 112.0;
const STD_GREY: f64 = 70.0;
/// Share of the 1/f noise in the mixture (the rest is dead leaves).
const NOISE_WEIGHT: f64 = 0.35;

/// One image, row-major `height × width`, integer grey levels in 0..=255 stored as f32.
pub fn natural_image(rng: &mut ChaCha8Rng, height: usize, width: usize) -> Vec<f32> {
    let leaves = standardize(dead_leaves(rng, height, width));
    let noise = standardize(pink_noise(rng, height, width));
    // Per-image contrast varies like in natural image sets.
    let contrast = rng.random_range(0.7..1.2);
    leaves
        .iter()
        .zip(&noise)
        .map(|(l, n)| {
            let v = (1.0 - NOISE_WEIGHT) * l + NOISE_WEIGHT * n;
            (MEAN_GREY + STD_GREY * contrast * v)
                .round()
                .clamp(0.0, 255.0) as f32
                + 0.0 // turns −0.0 (from rounding small negatives) into 0.0
        })
        .collect()
}

/// Dead leaves: ellipses drawn back to front (later ones occlude earlier ones) until the
/// image is well covered; radii follow p(r) ∝ r⁻³ between 1 px and half the image size.
fn dead_leaves(rng: &mut ChaCha8Rng, height: usize, width: usize) -> Vec<f64> {
    let mut img = vec![rng.random_range(0.0..1.0); height * width];
    let (r_min, r_max) = (1.0f64, height.max(width) as f64 / 2.0);
    let n_leaves = 4 * (height * width) / 20 + 40;
    for _ in 0..n_leaves {
        // Inverse-CDF sampling of the truncated r⁻³ power law.
        let u: f64 = rng.random();
        let inv = r_min.powi(-2) - u * (r_min.powi(-2) - r_max.powi(-2));
        let radius = inv.powf(-0.5);
        let aspect: f64 = rng.random_range(0.5..1.0);
        let angle: f64 = rng.random_range(0.0..std::f64::consts::PI);
        let cy = rng.random_range(-radius..height as f64 + radius);
        let cx = rng.random_range(-radius..width as f64 + radius);
        let grey: f64 = rng.random();
        let (s, c) = angle.sin_cos();
        let (ra, rb) = (radius, radius * aspect);
        let y0 = (cy - radius).floor().max(0.0) as usize;
        let y1 = ((cy + radius).ceil().max(0.0) as usize).min(height);
        let x0 = (cx - radius).floor().max(0.0) as usize;
        let x1 = ((cx + radius).ceil().max(0.0) as usize).min(width);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dy, dx) = (y as f64 - cy, x as f64 - cx);
                let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                if (u / ra).powi(2) + (v / rb).powi(2) <= 1.0 {
                    img[y * width + x] = grey;
                }
            }
        }
    }
    img
}

/// 1/f ("pink") noise: octaves of bilinearly interpolated random grids with cell size
/// 2, 4, …, amplitude proportional to the cell size.
fn pink_noise(rng: &mut ChaCha8Rng, height: usize, width: usize) -> Vec<f64> {
    let mut img = vec![0.0; height * width];
    let mut cell = 1usize;
    while cell <= height.max(width) {
        let gh = height / cell + 2;
        let gw = width / cell + 2;
        let grid: Vec<f64> = (0..gh * gw).map(|_| rng.random_range(-1.0..1.0)).collect();
        let offset = (
            rng.random_range(0.0..cell as f64),
            rng.random_range(0.0..cell as f64),
        );
        for y in 0..height {
            let fy = (y as f64 + offset.0) / cell as f64;
            let (iy, ty) = (fy.floor() as usize, fy.fract());
            for x in 0..width {
                let fx = (x as f64 + offset.1) / cell as f64;
                let (ix, tx) = (fx.floor() as usize, fx.fract());
                let g = |a: usize, b: usize| grid[a.min(gh - 1) * gw + b.min(gw - 1)];
                let top = g(iy, ix) * (1.0 - tx) + g(iy, ix + 1) * tx;
                let bottom = g(iy + 1, ix) * (1.0 - tx) + g(iy + 1, ix + 1) * tx;
                img[y * width + x] += cell as f64 * (top * (1.0 - ty) + bottom * ty);
            }
        }
        cell *= 2;
    }
    img
}

fn standardize(mut v: Vec<f64>) -> Vec<f64> {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let std = if std > 1e-12 { std } else { 1.0 };
    v.iter_mut().for_each(|x| *x = (*x - mean) / std);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Radially averaged power spectrum of a mean-subtracted image (direct DFT; small images).
    fn radial_power(img: &[f32], h: usize, w: usize) -> Vec<(f64, f64)> {
        let mean = img.iter().map(|&x| x as f64).sum::<f64>() / img.len() as f64;
        let mut bins = std::collections::BTreeMap::<usize, (f64, usize)>::new();
        for ky in 0..h {
            for kx in 0..w {
                let fy = (if ky <= h / 2 {
                    ky as f64
                } else {
                    ky as f64 - h as f64
                }) / h as f64;
                let fx = (if kx <= w / 2 {
                    kx as f64
                } else {
                    kx as f64 - w as f64
                }) / w as f64;
                let f = (fy * fy + fx * fx).sqrt();
                if !(0.04..=0.4).contains(&f) {
                    continue;
                }
                let (mut re, mut im) = (0.0, 0.0);
                for y in 0..h {
                    for x in 0..w {
                        let phase = -2.0 * std::f64::consts::PI * (fy * y as f64 + fx * x as f64);
                        let v = img[y * w + x] as f64 - mean;
                        re += v * phase.cos();
                        im += v * phase.sin();
                    }
                }
                let e = bins.entry((f * 40.0) as usize).or_default();
                e.0 += re * re + im * im;
                e.1 += 1;
            }
        }
        bins.into_iter()
            .map(|(b, (p, n))| ((b as f64 + 0.5) / 40.0, p / n as f64))
            .collect()
    }

    #[test]
    fn images_are_grey_levels_with_roughly_one_over_f_squared_power() {
        let (h, w) = (36, 64);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut total: Vec<(f64, f64)> = Vec::new();
        for _ in 0..4 {
            let img = natural_image(&mut rng, h, w);
            assert!(
                img.iter()
                    .all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0)
            );
            let p = radial_power(&img, h, w);
            if total.is_empty() {
                total = p;
            } else {
                total.iter_mut().zip(p).for_each(|(t, (_, q))| t.1 += q);
            }
        }
        // Least-squares slope of log power on log frequency.
        let pts: Vec<(f64, f64)> = total.iter().map(|(f, p)| (f.ln(), p.ln())).collect();
        let n = pts.len() as f64;
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
            / pts.iter().map(|(x, _)| (x - mx).powi(2)).sum::<f64>();
        assert!(
            (-3.2..=-1.3).contains(&slope),
            "power spectrum slope {slope}"
        );
    }
}
