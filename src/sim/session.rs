//! The recording session: which image is shown in which trial (train / validation tiers of
//! unique images, a test tier of repeated images), the animal's state over time (running
//! speed, pupil size, eye position) and the trial-to-trial variability it causes.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal};

/// Mean eye position in camera pixels (like the real recording) and its spread.
const PUPIL_MEAN: [f64; 2] = [755.0, 471.0];
const PUPIL_STD: [f64; 2] = [6.0, 4.0];
/// RF shift (pixels) per standard deviation of eye position.
const EYE_SHIFT_PER_STD: f64 = 0.4;

/// One trial, in file order.
#[derive(Debug, Clone)]
pub struct Trial {
    /// `train`, `validation` or `test`.
    pub tier: &'static str,
    /// Image shown (repeats share the id).
    pub image_id: i64,
    /// Position of the trial in time.
    pub trial_idx: i64,
    /// Pupil dilation, its derivative, running speed (like the real `behavior`).
    pub behavior: [f64; 3],
    /// Eye position (x, y) in camera pixels.
    pub pupil_center: [f64; 2],
    /// Multiplicative gain shared by all neurons (arousal / locomotion).
    pub shared_gain: f64,
    /// Shift of all RFs (rows, columns) in pixels caused by the eye position.
    pub rf_shift_px: [f64; 2],
}

/// Builds all trials: tiers, image ids, a random file order and the behavioural state.
pub fn trials(
    rng: &mut impl Rng,
    train: usize,
    validation: usize,
    test: usize,
    repeats: usize,
) -> Vec<Trial> {
    let mut shown: Vec<(&'static str, i64)> = Vec::new();
    shown.extend((0..train).map(|i| ("train", i as i64)));
    shown.extend((0..validation).map(|i| ("validation", (train + i) as i64)));
    for i in 0..test {
        let id = (train + validation + i) as i64;
        shown.extend(std::iter::repeat_n(("test", id), repeats));
    }
    let n = shown.len();
    // Time order: a random permutation, so that tiers are interleaved over the session.
    shown.shuffle(rng);
    let state = behaviour_over_time(rng, n);
    // File order differs from time order, as in the real data.
    let mut time: Vec<usize> = (0..n).collect();
    time.shuffle(rng);
    time.into_iter()
        .map(|t| {
            let (tier, image_id) = shown[t];
            let s = &state[t];
            Trial {
                tier,
                image_id,
                trial_idx: t as i64,
                behavior: s.behavior,
                pupil_center: s.pupil,
                shared_gain: s.gain,
                rf_shift_px: [
                    EYE_SHIFT_PER_STD * (s.pupil[1] - PUPIL_MEAN[1]) / PUPIL_STD[1],
                    EYE_SHIFT_PER_STD * (s.pupil[0] - PUPIL_MEAN[0]) / PUPIL_STD[0],
                ],
            }
        })
        .collect()
}

struct State {
    behavior: [f64; 3],
    pupil: [f64; 2],
    gain: f64,
}

/// Slow AR(1) latent arousal and locomotion drive running speed, pupil size and the shared
/// gain; the eye wanders as an independent AR(1) process.
fn behaviour_over_time(rng: &mut impl Rng, n: usize) -> Vec<State> {
    let normal = Normal::new(0.0, 1.0).expect("valid normal");
    let (rho, innovation) = (0.95f64, (1.0 - 0.95f64 * 0.95).sqrt());
    let (mut arousal, mut run, mut ex, mut ey) = (0.0, 0.0, 0.0, 0.0);
    let mut prev_pupil = 60.0;
    (0..n)
        .map(|_| {
            let mut step = |x: &mut f64| *x = rho * *x + innovation * normal.sample(rng);
            step(&mut arousal);
            step(&mut run);
            step(&mut ex);
            step(&mut ey);
            let speed = (6.0 * (run + 0.5 * arousal) - 2.0).max(0.0);
            let pupil = 60.0 * (0.25 * arousal + 0.03 * normal.sample(rng)).exp();
            let derivative = pupil - prev_pupil;
            prev_pupil = pupil;
            let gain =
                (0.25 * (speed / 4.0).tanh() + 0.1 * arousal + 0.08 * normal.sample(rng)).exp();
            State {
                behavior: [pupil, derivative, speed],
                pupil: [
                    PUPIL_MEAN[0] + PUPIL_STD[0] * ex,
                    PUPIL_MEAN[1] + PUPIL_STD[1] * ey,
                ],
                gain,
            }
        })
        .collect()
}

/// The image as seen by RFs shifted by `shift` pixels: `out(q) = img(q + shift)` with
/// bilinear interpolation and edge clamping.
pub fn shift_image(img: &[f64], height: usize, width: usize, shift: [f64; 2]) -> Vec<f64> {
    let at = |r: isize, c: isize| {
        let r = r.clamp(0, height as isize - 1) as usize;
        let c = c.clamp(0, width as isize - 1) as usize;
        img[r * width + c]
    };
    let mut out = Vec::with_capacity(img.len());
    for r in 0..height {
        let y = r as f64 + shift[0];
        let (y0, ty) = (y.floor() as isize, y - y.floor());
        for c in 0..width {
            let x = c as f64 + shift[1];
            let (x0, tx) = (x.floor() as isize, x - x.floor());
            let top = at(y0, x0) * (1.0 - tx) + at(y0, x0 + 1) * tx;
            let bottom = at(y0 + 1, x0) * (1.0 - tx) + at(y0 + 1, x0 + 1) * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// A Poisson count with mean `rate` (0 for a non-positive rate).
pub fn poisson(rng: &mut impl Rng, rate: f64) -> f64 {
    if rate <= 0.0 {
        return 0.0;
    }
    rand_distr::Poisson::new(rate)
        .map(|p| p.sample(rng))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shifting_by_whole_pixels_moves_the_image() {
        let img: Vec<f64> = (0..20).map(|v| v as f64).collect(); // 4 × 5
        let out = shift_image(&img, 4, 5, [1.0, 2.0]);
        assert_eq!(out[0], img[5 + 2]); // out(0,0) = img(1,2)
        assert_eq!(out[19], img[19]); // clamped at the corner
        assert_eq!(shift_image(&img, 4, 5, [0.0, 0.0]), img);
    }

    #[test]
    fn tiers_repeats_and_behaviour_are_consistent() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let t = trials(&mut rng, 30, 5, 4, 3);
        assert_eq!(t.len(), 30 + 5 + 12);
        let mut idx: Vec<i64> = t.iter().map(|t| t.trial_idx).collect();
        idx.sort();
        assert_eq!(idx, (0..47).collect::<Vec<_>>());
        let test = t.iter().filter(|t| t.tier == "test").count();
        assert_eq!(test, 12);
        assert!(
            t.iter()
                .all(|t| t.behavior[0] > 0.0 && t.behavior[2] >= 0.0)
        );
        assert!(t.iter().any(|t| t.rf_shift_px != [0.0, 0.0]));
    }
}
