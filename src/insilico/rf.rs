//! Spatial receptive fields from the model's input gradients.
//!
//! Two maps per neuron, both computed batched across neurons ([`super::objective`]):
//! - the **linear RF**: the gradient of the response at the grey image (C·H·W; the model's
//!   linear approximation around blank; weak for complex cells, whose response is even in the
//!   stimulus);
//! - the **gradient-energy map** (H·W): the mean over `samples` seeded white-noise images at
//!   the model's input contrast of the squared gradient, summed over channels. It is where the
//!   stimulus changes the response, for simple and complex cells alike, and gives the RF centre
//!   and extent.
//!
//! Centre: the energy-weighted centroid of the map's pixels above `threshold` × its maximum
//! (the weights being the excess over that level); extent: √ of the mean of the two principal
//! variances of the same weights (pixels; for a Gaussian envelope of σ the energy map has σ/√2).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::context::InputContext;
use super::ensemble::{EnsembleError, ModelEnsemble};
use super::objective::row_gradients;
use super::stimulus::constrain;

/// Settings of the RF mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct RfConfig {
    /// White-noise images averaged for the energy map.
    pub samples: usize,
    /// Seed of the noise.
    pub seed: u64,
    /// Fraction of the maximum below which energy-map pixels do not count for centre and extent.
    pub threshold: f64,
    /// Neurons per batch.
    pub batch_size: usize,
}

impl Default for RfConfig {
    fn default() -> Self {
        Self {
            samples: 8,
            seed: 0,
            threshold: 0.2,
            batch_size: 100,
        }
    }
}

/// Why RFs cannot be mapped.
#[derive(Debug, thiserror::Error)]
pub enum RfError {
    #[error(transparent)]
    Ensemble(#[from] EnsembleError),
    #[error("rf.{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
}

/// RF maps and their summary.
#[derive(Debug, Clone, PartialEq)]
pub struct RfResult {
    /// Readout indices.
    pub neurons: Vec<usize>,
    /// (C, H, W).
    pub image_shape: [usize; 3],
    /// Gradient at the grey image, neurons × C·H·W (response per dataset image unit).
    pub linear: Vec<f32>,
    /// Mean squared gradient over noise images, neurons × H·W.
    pub energy: Vec<f32>,
    /// Centre (row, column) in pixels.
    pub centres: Vec<[f64; 2]>,
    /// Extent (pixels).
    pub extents: Vec<f64>,
}

/// Maps the RFs of `neurons` (readout indices of readout `key`).
pub fn receptive_fields(
    ensemble: &ModelEnsemble,
    key: usize,
    context: &InputContext,
    neurons: &[usize],
    config: &RfConfig,
) -> Result<RfResult, RfError> {
    if config.samples == 0 || config.batch_size == 0 {
        return Err(RfError::Config {
            field: "samples / batch_size",
            message: "expected at least 1".into(),
        });
    }
    if !(0.0..1.0).contains(&config.threshold) {
        return Err(RfError::Config {
            field: "threshold",
            message: format!("expected a fraction in [0, 1), got {}", config.threshold),
        });
    }
    ensemble.check(key, context)?;
    let n_neurons = ensemble.n_neurons(key)?;
    if let Some(&n) = neurons.iter().find(|&&n| n >= n_neurons) {
        return Err(RfError::Config {
            field: "neurons",
            message: format!("index {n} is out of range (the readout has {n_neurons})"),
        });
    }
    let [c, h, w] = context.image_shape;
    let len = c * h * w;
    let mut result = RfResult {
        neurons: neurons.to_vec(),
        image_shape: context.image_shape,
        linear: Vec::with_capacity(neurons.len() * len),
        energy: Vec::with_capacity(neurons.len() * h * w),
        centres: Vec::with_capacity(neurons.len()),
        extents: Vec::with_capacity(neurons.len()),
    };
    // The same noise images for every neuron (sample s is one image).
    let noise: Vec<Vec<f32>> = (0..config.samples)
        .map(|s| {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(s as u64);
            let mut d: Vec<f32> = (0..len).map(|_| StandardNormal.sample(&mut rng)).collect();
            constrain(&mut d, context.norm, context.grey, context.range);
            d.iter().map(|v| v + context.grey as f32).collect()
        })
        .collect();
    let grey = vec![context.grey as f32; len];
    for batch in neurons.chunks(config.batch_size) {
        let b = batch.len();
        let at_grey = row_gradients(ensemble, key, context, &grey.repeat(b), batch, n_neurons);
        result.linear.extend(&at_grey.gradients);
        let mut energy = vec![0f64; b * h * w];
        for image in &noise {
            let out = row_gradients(ensemble, key, context, &image.repeat(b), batch, n_neurons);
            for row in 0..b {
                let g = &out.gradients[row * len..(row + 1) * len];
                let e = &mut energy[row * h * w..(row + 1) * h * w];
                for channel in g.chunks_exact(h * w) {
                    for (e, &v) in e.iter_mut().zip(channel) {
                        *e += (v as f64).powi(2) / config.samples as f64;
                    }
                }
            }
        }
        for map in energy.chunks_exact(h * w) {
            let (centre, extent) = centre_and_extent(map, h, w, config.threshold);
            result.centres.push(centre);
            result.extents.push(extent);
            result.energy.extend(map.iter().map(|&v| v as f32));
        }
    }
    Ok(result)
}

/// Weighted centroid and extent of the part of `map` above `threshold` × max (see the module
/// docs); the image centre and NaN for an all-zero map.
pub fn centre_and_extent(map: &[f64], h: usize, w: usize, threshold: f64) -> ([f64; 2], f64) {
    let max = map.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 || !max.is_finite() {
        return ([(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0], f64::NAN);
    }
    let level = threshold * max;
    let (mut total, mut sr, mut sc) = (0.0, 0.0, 0.0);
    for (i, &v) in map.iter().enumerate() {
        let weight = (v - level).max(0.0);
        total += weight;
        sr += weight * (i / w) as f64;
        sc += weight * (i % w) as f64;
    }
    let (r0, c0) = (sr / total, sc / total);
    let (mut vrr, mut vcc) = (0.0, 0.0);
    for (i, &v) in map.iter().enumerate() {
        let weight = (v - level).max(0.0);
        vrr += weight * ((i / w) as f64 - r0).powi(2);
        vcc += weight * ((i % w) as f64 - c0).powi(2);
    }
    // The mean of the principal variances is half the trace.
    let extent = ((vrr + vcc) / total / 2.0).sqrt();
    ([r0, c0], extent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_and_extent_of_a_gaussian_blob() {
        let (h, w) = (30, 40);
        let (r0, c0, s) = (12.3, 25.6, 2.0);
        let map: Vec<f64> = (0..h * w)
            .map(|i| {
                let (r, c) = ((i / w) as f64, (i % w) as f64);
                (-((r - r0).powi(2) + (c - c0).powi(2)) / (2.0 * s * s)).exp()
            })
            .collect();
        let ([r, c], extent) = centre_and_extent(&map, h, w, 0.0);
        assert!((r - r0).abs() < 1e-3 && (c - c0).abs() < 1e-3, "{r} {c}");
        assert!((extent - s).abs() < 0.01, "{extent}");
        let ([r, c], _) = centre_and_extent(&map, h, w, 0.2);
        assert!((r - r0).abs() < 0.05 && (c - c0).abs() < 0.05, "{r} {c}");
        let ([r, _], e) = centre_and_extent(&vec![0.0; h * w], h, w, 0.2);
        assert!(e.is_nan() && r == 14.5);
    }
}
