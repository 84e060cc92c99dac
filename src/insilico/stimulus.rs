//! Stimulus building blocks: static sinusoidal gratings, the Gaussian blur used to precondition
//! MEI gradients, and the contrast constraint (fixed L2 norm around grey, then the input range).
//!
//! Geometry convention (shared with the simulator, `sim::neurons`): pixel (row r, column c);
//! a grating of orientation θ and spatial frequency f (cycles / pixel) is
//! `cos(2π·f·((c − c₀)·cos θ + (r − r₀)·sin θ) + φ)`: θ is the direction of the wave vector
//! (x to the right, y downwards), θ ∈ [0, π), and the phase φ is relative to the origin
//! (r₀, c₀).

/// One static grating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grating {
    /// Wave-vector direction in radians (see the module docs).
    pub orientation: f64,
    /// Cycles per pixel.
    pub frequency: f64,
    /// Phase in radians at `origin`.
    pub phase: f64,
    /// Phase origin (row, column) in pixels.
    pub origin: [f64; 2],
}

impl Grating {
    /// The carrier cos(…) at pixel (row, column).
    pub fn value(&self, row: f64, col: f64) -> f64 {
        let (s, c) = self.orientation.sin_cos();
        let along = (col - self.origin[1]) * c + (row - self.origin[0]) * s;
        (std::f64::consts::TAU * self.frequency * along + self.phase).cos()
    }
}

/// Where a grating is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aperture {
    /// The whole image.
    FullField,
    /// A disc of this radius (pixels) around the grating's origin, with a raised-cosine edge
    /// of 2 pixels; grey outside.
    Disc { radius_px: f64 },
}

/// Grating image (C·H·W, dataset units): `grey + amplitude · carrier · window`, clipped to
/// `range`, the same in every channel.
pub fn grating_image(
    shape: [usize; 3],
    grating: &Grating,
    aperture: Aperture,
    grey: f64,
    amplitude: f64,
    range: [f64; 2],
) -> Vec<f32> {
    let [c, h, w] = shape;
    let mut plane = Vec::with_capacity(h * w);
    for row in 0..h {
        for col in 0..w {
            let window = match aperture {
                Aperture::FullField => 1.0,
                Aperture::Disc { radius_px } => {
                    let d = ((row as f64 - grating.origin[0]).powi(2)
                        + (col as f64 - grating.origin[1]).powi(2))
                    .sqrt();
                    let edge = 2.0;
                    if d <= radius_px - edge {
                        1.0
                    } else if d >= radius_px {
                        0.0
                    } else {
                        0.5 * (1.0 + (std::f64::consts::PI * (d - radius_px + edge) / edge).cos())
                    }
                }
            };
            let v = grey + amplitude * window * grating.value(row as f64, col as f64);
            plane.push(v.clamp(range[0], range[1]) as f32);
        }
    }
    plane.repeat(c)
}

/// A normalized 1-D Gaussian kernel of standard deviation `sigma`, truncated at 4σ.
fn kernel(sigma: f64) -> Vec<f64> {
    let radius = (4.0 * sigma).ceil().max(1.0) as isize;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= total);
    k
}

/// Blurs every `h × w` plane of `values` in place with a Gaussian of `sigma` pixels (separable;
/// at the borders the kernel is renormalized over the pixels inside). `sigma ≤ 0` leaves it.
pub fn gaussian_blur(values: &mut [f32], h: usize, w: usize, sigma: f64) {
    if sigma <= 0.0 || h * w == 0 {
        return;
    }
    let k = kernel(sigma);
    let radius = (k.len() / 2) as isize;
    let mut tmp = vec![0f64; h * w];
    for plane in values.chunks_exact_mut(h * w) {
        for r in 0..h {
            for c in 0..w {
                let (mut acc, mut weight) = (0.0, 0.0);
                for (j, kv) in k.iter().enumerate() {
                    let cc = c as isize + j as isize - radius;
                    if (0..w as isize).contains(&cc) {
                        acc += kv * plane[r * w + cc as usize] as f64;
                        weight += kv;
                    }
                }
                tmp[r * w + c] = acc / weight;
            }
        }
        for r in 0..h {
            for c in 0..w {
                let (mut acc, mut weight) = (0.0, 0.0);
                for (j, kv) in k.iter().enumerate() {
                    let rr = r as isize + j as isize - radius;
                    if (0..h as isize).contains(&rr) {
                        acc += kv * tmp[rr as usize * w + c];
                        weight += kv;
                    }
                }
                plane[r * w + c] = (acc / weight) as f32;
            }
        }
    }
}

/// L2 norm of a slice (in f64).
pub fn l2(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt()
}

/// The contrast constraint of MEIs (as the `mei` package's ChangeNorm + ClipRange): the
/// deviation from grey is scaled to L2 norm `norm`, then grey + deviation is clipped into
/// `range`. `deviation` is one image; an all-zero deviation stays zero.
pub fn constrain(deviation: &mut [f32], norm: f64, grey: f64, range: [f64; 2]) {
    let n = l2(deviation);
    let scale = if n > 0.0 { norm / n } else { 0.0 };
    for v in deviation.iter_mut() {
        let x = (grey + *v as f64 * scale).clamp(range[0], range[1]);
        *v = (x - grey) as f32;
    }
}

/// `count` values evenly spaced on [0, `period`).
pub fn circular_grid(count: usize, period: f64) -> Vec<f64> {
    (0..count)
        .map(|i| period * i as f64 / count as f64)
        .collect()
}

/// `count` values spaced evenly on a log scale from `lo` to `hi` (both included).
pub fn log_grid(count: usize, lo: f64, hi: f64) -> Vec<f64> {
    if count == 1 {
        return vec![(lo * hi).sqrt()];
    }
    (0..count)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (count - 1) as f64).exp())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_constants_and_spreads_an_impulse_like_a_gaussian() {
        let mut flat = vec![3.0f32; 7 * 9];
        gaussian_blur(&mut flat, 7, 9, 1.5);
        assert!(flat.iter().all(|v| (v - 3.0).abs() < 1e-5));
        let (h, w) = (21, 21);
        let mut impulse = vec![0f32; h * w];
        impulse[10 * w + 10] = 1.0;
        gaussian_blur(&mut impulse, h, w, 2.0);
        let total: f32 = impulse.iter().sum();
        assert!((total - 1.0).abs() < 1e-3, "{total}");
        let var: f64 = (0..h * w)
            .map(|i| impulse[i] as f64 * (((i % w) as f64 - 10.0).powi(2)))
            .sum();
        assert!((var - 4.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn the_constraint_fixes_the_norm_and_the_range() {
        let mut d = vec![3.0f32, -4.0, 0.0];
        constrain(&mut d, 10.0, 0.0, [-100.0, 100.0]);
        assert!((l2(&d) - 10.0).abs() < 1e-5);
        let mut d = vec![3.0f32, -4.0];
        constrain(&mut d, 10.0, 100.0, [0.0, 105.0]);
        assert_eq!(d, vec![5.0, -8.0]);
    }

    #[test]
    fn grating_orientation_follows_the_simulator_convention() {
        // θ = 0: varies along columns only; θ = π/2: along rows only.
        let g = Grating {
            orientation: 0.0,
            frequency: 0.25,
            phase: 0.0,
            origin: [2.0, 2.0],
        };
        assert!((g.value(0.0, 2.0) - 1.0).abs() < 1e-12);
        assert!((g.value(2.0, 4.0) + 1.0).abs() < 1e-12);
        let v = Grating {
            orientation: std::f64::consts::FRAC_PI_2,
            ..g
        };
        assert!((v.value(2.0, 0.0) - 1.0).abs() < 1e-12);
        assert!((v.value(4.0, 2.0) + 1.0).abs() < 1e-12);
        let img = grating_image([2, 4, 4], &g, Aperture::FullField, 10.0, 5.0, [0.0, 12.0]);
        assert_eq!(img.len(), 32);
        assert!(img.iter().all(|&x| (5.0..=12.0).contains(&x)));
        assert_eq!(&img[..16], &img[16..]);
    }
}
