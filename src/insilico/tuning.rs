//! Orientation, spatial-frequency and phase tuning from static gratings shown to the model.
//!
//! Gratings (see [`super::stimulus`] for the geometry) at the model's input contrast (the root-
//! mean-square contrast of the training images), every combination of `orientations` (evenly on
//! [0, π)), `frequencies` (cycles / pixel) and `phases` (evenly on [0, 2π)). Full-field
//! gratings are one stimulus set for all neurons (one forward pass per batch of stimuli, all
//! neurons read at once); disc gratings are centred on each neuron's position (its readout
//! position), one stimulus set per neuron.
//!
//! Per neuron, with R(θ, f, φ) the predicted responses and T(θ, f) = max over φ:
//! - preferred (θ, f): the grid maximum of T; the reported orientation is refined by the vector
//!   average of T(·, f_pref) − min (doubled angles) around the circle;
//! - orientation selectivity index: (T(θ_pref) − T(θ_pref + 90°)) / (T(θ_pref) + T(θ_pref + 90°))
//!   at f_pref (grid orientations; the orthogonal one is the nearest on the grid);
//! - phase modulation ratio F1/F0 of R(θ_pref, f_pref, ·): first-harmonic amplitude over the mean
//!   (simple cells > 1, complex cells < 1; responses as predicted, no baseline subtracted);
//! - preferred phase: the phase of the first harmonic, relative to the neuron's position.

use std::f64::consts::{PI, TAU};

use super::context::InputContext;
use super::ensemble::{EnsembleError, ModelEnsemble};
use super::stimulus::{Aperture, Grating, circular_grid, grating_image, log_grid};

/// The grating set.
#[derive(Debug, Clone, PartialEq)]
pub struct TuningConfig {
    /// Orientations, evenly spaced on [0, π) (at least 12).
    pub orientations: usize,
    /// Spatial frequencies in cycles per pixel (at least 6).
    pub frequencies: Vec<f64>,
    /// Phases, evenly spaced on [0, 2π) (at least 8).
    pub phases: usize,
    /// Full field, or a disc around each neuron's position.
    pub aperture: Aperture,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Default for TuningConfig {
    /// 16 orientations, 8 frequencies from 0.02 to 0.3 cycles / pixel (log spaced), 8 phases,
    /// full field.
    fn default() -> Self {
        Self {
            orientations: 16,
            frequencies: log_grid(8, 0.02, 0.3),
            phases: 8,
            aperture: Aperture::FullField,
            batch_size: 128,
        }
    }
}

/// Why tuning cannot be measured.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    #[error(transparent)]
    Ensemble(#[from] EnsembleError),
    #[error("tuning.{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("tuning: {given} neuron positions given for {expected} neurons")]
    Positions { given: usize, expected: usize },
}

/// Per-neuron tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronTuning {
    /// Readout index.
    pub neuron: usize,
    /// Preferred orientation (radians, [0, π), vector average).
    pub orientation: f64,
    /// Preferred spatial frequency (cycles / pixel, grid value).
    pub frequency: f64,
    /// Orientation selectivity index.
    pub osi: f64,
    /// Phase modulation ratio F1/F0 at the preferred grating.
    pub f1_f0: f64,
    /// Preferred phase (radians, [0, 2π)) relative to the neuron's position.
    pub phase: f64,
    /// Largest response over all gratings (model units).
    pub peak_response: f64,
    /// Response to the grey image (model units).
    pub grey_response: f64,
    /// Grid indices (orientation, frequency) of the preferred grating.
    pub grid_index: [usize; 2],
}

/// Tuning of several neurons with the responses behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct TuningResult {
    pub config: TuningConfig,
    /// Orientation grid (radians).
    pub orientations: Vec<f64>,
    /// Phase grid (radians, relative to each neuron's position for discs, to the image centre
    /// for full-field gratings).
    pub phases: Vec<f64>,
    /// Grating amplitude (dataset units).
    pub amplitude: f64,
    pub neurons: Vec<NeuronTuning>,
    /// Responses, neurons × orientations × frequencies × phases (model units).
    pub responses: Vec<f32>,
}

impl TuningResult {
    /// R(θ_i, f_j, φ_k) of the `n`-th neuron of the result.
    pub fn response(&self, n: usize, i: usize, j: usize, k: usize) -> f32 {
        let (nf, np) = (self.config.frequencies.len(), self.phases.len());
        let per = self.orientations.len() * nf * np;
        self.responses[n * per + (i * nf + j) * np + k]
    }

    /// T(θ_i, f_j) = max over phases.
    pub fn phase_max(&self, n: usize, i: usize, j: usize) -> f64 {
        (0..self.phases.len())
            .map(|k| self.response(n, i, j, k) as f64)
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

fn check(config: &TuningConfig) -> Result<(), TuningError> {
    let bad = |field, message: String| Err(TuningError::Config { field, message });
    if config.orientations < 12 {
        return bad(
            "orientations",
            format!("expected at least 12, got {}", config.orientations),
        );
    }
    if config.frequencies.len() < 6 {
        return bad(
            "frequencies",
            format!("expected at least 6, got {}", config.frequencies.len()),
        );
    }
    if let Some(f) = config
        .frequencies
        .iter()
        .find(|f| !(f.is_finite() && **f > 0.0 && **f <= 0.5))
    {
        return bad(
            "frequencies",
            format!("expected cycles / pixel in (0, 0.5], got {f}"),
        );
    }
    if config.phases < 8 {
        return bad(
            "phases",
            format!("expected at least 8, got {}", config.phases),
        );
    }
    if let Aperture::Disc { radius_px } = config.aperture
        && !(radius_px.is_finite() && radius_px > 0.0)
    {
        return bad(
            "aperture",
            format!("expected a radius > 0, got {radius_px}"),
        );
    }
    if config.batch_size == 0 {
        return bad("batch_size", "expected at least 1".into());
    }
    Ok(())
}

/// Measures the tuning of `neurons` (readout indices of readout `key`). `positions_px` gives
/// each chosen neuron's position (row, column) in pixels (e.g.
/// [`ModelEnsemble::readout_centres_px`] or RF centres): the centre of disc gratings and the
/// origin of the reported preferred phase.
pub fn measure_tuning(
    ensemble: &ModelEnsemble,
    key: usize,
    context: &InputContext,
    neurons: &[usize],
    positions_px: &[[f64; 2]],
    config: &TuningConfig,
) -> Result<TuningResult, TuningError> {
    check(config)?;
    ensemble.check(key, context)?;
    let n_neurons = ensemble.n_neurons(key)?;
    if positions_px.len() != neurons.len() {
        return Err(TuningError::Positions {
            given: positions_px.len(),
            expected: neurons.len(),
        });
    }
    if let Some(&n) = neurons.iter().find(|&&n| n >= n_neurons) {
        return Err(TuningError::Config {
            field: "neurons",
            message: format!("index {n} is out of range (the readout has {n_neurons})"),
        });
    }
    let [_, h, w] = context.image_shape;
    let orientations = circular_grid(config.orientations, PI);
    let phases = circular_grid(config.phases, TAU);
    let amplitude = std::f64::consts::SQRT_2 * context.rms_contrast();
    let centre = [(h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0];
    let stimuli = |origin: [f64; 2]| -> Vec<f32> {
        let mut images = Vec::new();
        for &orientation in &orientations {
            for &frequency in &config.frequencies {
                for &phase in &phases {
                    let g = Grating {
                        orientation,
                        frequency,
                        phase,
                        origin,
                    };
                    images.extend(grating_image(
                        context.image_shape,
                        &g,
                        config.aperture,
                        context.grey,
                        amplitude,
                        context.range,
                    ));
                }
            }
        }
        images
    };
    let per = orientations.len() * config.frequencies.len() * phases.len();
    let mut responses = Vec::with_capacity(neurons.len() * per);
    match config.aperture {
        Aperture::FullField => {
            let all = ensemble.predict(&stimuli(centre), key, context, config.batch_size)?;
            for &n in neurons {
                responses.extend(all.chunks_exact(n_neurons).map(|row| row[n]));
            }
        }
        Aperture::Disc { .. } => {
            for (&n, &p) in neurons.iter().zip(positions_px) {
                let r = ensemble.predict(&stimuli(p), key, context, config.batch_size)?;
                responses.extend(r.chunks_exact(n_neurons).map(|row| row[n]));
            }
        }
    }
    let grey = vec![context.grey as f32; context.image_len()];
    let grey_row = ensemble.predict(&grey, key, context, 1)?;
    let mut result = TuningResult {
        config: config.clone(),
        orientations,
        phases,
        amplitude,
        neurons: Vec::with_capacity(neurons.len()),
        responses,
    };
    for (i, (&n, &p)) in neurons.iter().zip(positions_px).enumerate() {
        let origin = match config.aperture {
            Aperture::FullField => centre,
            Aperture::Disc { .. } => p,
        };
        let mut t = summarize(&result, i, origin, p);
        t.neuron = n;
        t.grey_response = grey_row[n] as f64;
        result.neurons.push(t);
    }
    Ok(result)
}

/// Tuning numbers of the `i`-th neuron of `result` whose phases are relative to `origin` and
/// whose position is `position`.
fn summarize(
    result: &TuningResult,
    i: usize,
    origin: [f64; 2],
    position: [f64; 2],
) -> NeuronTuning {
    let (no, nf, np) = (
        result.orientations.len(),
        result.config.frequencies.len(),
        result.phases.len(),
    );
    let (mut bo, mut bf, mut peak) = (0, 0, f64::NEG_INFINITY);
    for o in 0..no {
        for f in 0..nf {
            let t = result.phase_max(i, o, f);
            if t > peak {
                (bo, bf, peak) = (o, f, t);
            }
        }
    }
    let curve: Vec<f64> = (0..no).map(|o| result.phase_max(i, o, bf)).collect();
    let floor = curve.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut re, mut im) = (0.0, 0.0);
    for (o, &t) in curve.iter().enumerate() {
        let angle = 2.0 * result.orientations[o];
        re += (t - floor) * angle.cos();
        im += (t - floor) * angle.sin();
    }
    let orientation = if re == 0.0 && im == 0.0 {
        result.orientations[bo]
    } else {
        (im.atan2(re) / 2.0).rem_euclid(PI)
    };
    let orth = (bo + (no as f64 / 2.0).round() as usize) % no;
    let osi = (curve[bo] - curve[orth]) / (curve[bo] + curve[orth]);
    let (mut re, mut im, mut mean) = (0.0, 0.0, 0.0);
    for (k, &phase) in result.phases.iter().enumerate() {
        let r = result.response(i, bo, bf, k) as f64;
        re += r * phase.cos();
        im += r * phase.sin();
        mean += r / np as f64;
    }
    let f1 = 2.0 * re.hypot(im) / np as f64;
    let frequency = result.config.frequencies[bf];
    // The grating's phase at the neuron's position when its phase at `origin` is φ.
    let (s, c) = result.orientations[bo].sin_cos();
    let along = (position[1] - origin[1]) * c + (position[0] - origin[0]) * s;
    let phase = (im.atan2(re) + TAU * frequency * along).rem_euclid(TAU);
    NeuronTuning {
        neuron: 0,
        orientation,
        frequency,
        osi,
        f1_f0: f1 / mean,
        phase,
        peak_response: peak,
        grey_response: f64::NAN,
        grid_index: [bo, bf],
    }
}
