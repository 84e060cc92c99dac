//! Cell models of the simulated V1 population: simple cells (rectified Gabor), complex cells
//! (energy model of a quadrature Gabor pair) and simple cells with divisive normalization by
//! local contrast energy. Each neuron's output nonlinearity has its own threshold and gain.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The three kinds of simulated cell.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CellType {
    /// Half-wave rectified linear Gabor filter.
    Simple,
    /// Energy model: √(even² + odd²) of a quadrature Gabor pair (phase invariant).
    Complex,
    /// Simple cell divided by the local contrast energy (contrast saturation).
    Normalized,
}

impl CellType {
    /// Name written to `ground_truth/cell_types.npy`.
    pub fn name(self) -> &'static str {
        match self {
            CellType::Simple => "simple",
            CellType::Complex => "complex",
            CellType::Normalized => "normalized",
        }
    }
}

/// Everything that defines one neuron's noise-free response to an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NeuronParams {
    /// Cell model.
    pub cell_type: CellType,
    /// Receptive-field centre (row, column) in pixels.
    pub center_px: [f64; 2],
    /// Gabor envelope σ in pixels.
    pub sigma_px: f64,
    /// Envelope aspect ratio (σ across / σ along the stripes).
    pub aspect: f64,
    /// Spatial frequency in cycles per pixel.
    pub frequency: f64,
    /// Preferred orientation in radians.
    pub orientation: f64,
    /// Gabor phase in radians.
    pub phase: f64,
    /// Semi-saturation constant of the divisive normalization (only `Normalized`).
    pub semi_saturation: f64,
    /// Drive subtracted before rectification.
    pub threshold: f64,
    /// Output gain (responses per unit rectified drive).
    pub gain: f64,
}

/// Draws the tuning of a neuron whose RF centre is already known; threshold and gain are
/// calibrated later from its drive distribution.
pub fn random_tuning(rng: &mut impl Rng, center_px: [f64; 2]) -> NeuronParams {
    let u: f64 = rng.random();
    let cell_type = if u < 0.45 {
        CellType::Simple
    } else if u < 0.8 {
        CellType::Complex
    } else {
        CellType::Normalized
    };
    NeuronParams {
        cell_type,
        center_px,
        sigma_px: rng.random_range(2.0..4.0),
        aspect: rng.random_range(0.6..1.0),
        frequency: rng.random_range(0.08..0.2),
        orientation: rng.random_range(0.0..std::f64::consts::PI),
        phase: rng.random_range(0.0..std::f64::consts::TAU),
        semi_saturation: rng.random_range(0.3..1.0),
        threshold: 0.0,
        gain: 1.0,
    }
}

/// A neuron's filters, sampled once on the pixel grid over a window of ±3σ around its centre.
pub struct Filters {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    even: Vec<f64>,
    odd: Vec<f64>,
    pool: Vec<f64>,
}

impl Filters {
    /// Samples the Gabor pair (zero mean, unit norm) and the Gaussian normalization pool.
    pub fn new(p: &NeuronParams, height: usize, width: usize) -> Filters {
        let reach = 3.0 * p.sigma_px / p.aspect.min(1.0);
        let r0 = (p.center_px[0] - reach).floor().max(0.0) as usize;
        let r1 = ((p.center_px[0] + reach).ceil() as usize + 1).min(height);
        let c0 = (p.center_px[1] - reach).floor().max(0.0) as usize;
        let c1 = ((p.center_px[1] + reach).ceil() as usize + 1).min(width);
        let (s, c) = p.orientation.sin_cos();
        let (mut even, mut odd, mut pool) = (vec![], vec![], vec![]);
        for r in r0..r1 {
            for col in c0..c1 {
                let (dy, dx) = (r as f64 - p.center_px[0], col as f64 - p.center_px[1]);
                let along = c * dx + s * dy;
                let across = -s * dx + c * dy;
                let env = (-(along * along + (across * p.aspect).powi(2))
                    / (2.0 * p.sigma_px * p.sigma_px))
                    .exp();
                let arg = std::f64::consts::TAU * p.frequency * along + p.phase;
                even.push(env * arg.cos());
                odd.push(env * arg.sin());
                pool.push((-(dx * dx + dy * dy) / (8.0 * p.sigma_px * p.sigma_px)).exp());
            }
        }
        for f in [&mut even, &mut odd] {
            let m = f.iter().sum::<f64>() / f.len() as f64;
            f.iter_mut().for_each(|v| *v -= m);
            let n = f.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            f.iter_mut().for_each(|v| *v /= n);
        }
        let total: f64 = pool.iter().sum();
        pool.iter_mut().for_each(|v| *v /= total);
        Filters {
            rows: r0..r1,
            cols: c0..c1,
            even,
            odd,
            pool,
        }
    }

    /// The cell's drive (before threshold and gain) to a standardized image (zero-mean,
    /// unit-variance grey levels), row-major with `width` columns.
    pub fn drive(
        &self,
        cell_type: CellType,
        semi_saturation: f64,
        img: &[f64],
        width: usize,
    ) -> f64 {
        // Only the sums a cell type needs: the odd filter for complex cells, the pool for
        // normalized ones (the simulation's inner loop).
        let dot = |filter: &[f64], square: bool| {
            let mut acc = 0.0;
            let mut k = 0;
            for r in self.rows.clone() {
                let line = &img[r * width..(r + 1) * width];
                for &v in &line[self.cols.clone()] {
                    acc += filter[k] * if square { v * v } else { v };
                    k += 1;
                }
            }
            acc
        };
        let even = dot(&self.even, false);
        match cell_type {
            CellType::Simple => even,
            CellType::Complex => even.hypot(dot(&self.odd, false)),
            CellType::Normalized => even / (semi_saturation + dot(&self.pool, true).sqrt()),
        }
    }
}

/// Firing rate from drive: `gain · max(drive − threshold, 0)^1.5` (an expansive
/// rectification, as measured in V1).
pub fn rate(p: &NeuronParams, drive: f64) -> f64 {
    p.gain * (drive - p.threshold).max(0.0).powf(1.5)
}

/// Sets threshold (a quantile of the drive distribution on calibration images) and gain (so
/// that the mean rate equals `target_mean_rate`).
pub fn calibrate(p: &mut NeuronParams, drives: &mut [f64], quantile: f64, target_mean_rate: f64) {
    drives.sort_by(f64::total_cmp);
    let idx = ((drives.len() - 1) as f64 * quantile).round() as usize;
    p.threshold = drives[idx];
    p.gain = 1.0;
    let mean = drives.iter().map(|d| rate(p, *d)).sum::<f64>() / drives.len() as f64;
    p.gain = if mean > 0.0 {
        target_mean_rate / mean
    } else {
        0.0
    };
}
