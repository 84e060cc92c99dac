//! Most exciting inputs (MEIs; Walker et al. 2019, the Sinz lab `mei` package): gradient ascent
//! on the model input for the predicted response of one neuron (the ensemble mean when there are
//! several members), many neurons in one batch.
//!
//! As in `mei`: a seeded random start; each step the input gradient is blurred with a Gaussian
//! (preconditioning: it suppresses the high spatial frequencies a CNN's gradient is full of);
//! after each step the image is held at a fixed contrast (the L2 norm of its deviation from grey)
//! and clipped into the model's input range; the model runs in evaluation mode (running batch
//! norm statistics, Gaussian readout at μ) with behaviour and pupil position fixed (the input
//! context). One deviation, for a step size that means the same in every unit system: the
//! step is `step_size · norm` along the blurred gradient's direction (a normalized-gradient
//! ascent) instead of a raw SGD step.
//!
//! Stopping rule, per neuron: when its best response has not grown by more than `tolerance`
//! (relative) for `patience` steps, its step size halves; after `max_halvings` halvings (or
//! `max_steps` steps) it stops. The MEI is the best image seen.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::context::InputContext;
use super::ensemble::{EnsembleError, ModelEnsemble};
use super::objective::row_gradients;
use super::stimulus::{constrain, gaussian_blur, l2};

/// Settings of the MEI search.
#[derive(Debug, Clone, PartialEq)]
pub struct MeiConfig {
    /// Seed of the random starts (neuron i of the readout always starts from the same image,
    /// whatever the batch it is in).
    pub seed: u64,
    /// σ (pixels) of the Gaussian blur of the gradient; 0 turns preconditioning off.
    pub blur_sigma: f64,
    /// Step length as a fraction of the image norm.
    pub step_size: f64,
    /// Steps at most.
    pub max_steps: usize,
    /// Steps without relative improvement > `tolerance` before the step size halves.
    pub patience: usize,
    /// Relative improvement of the best response that counts as progress.
    pub tolerance: f64,
    /// Halvings of the step size before a neuron stops.
    pub max_halvings: usize,
    /// Neurons optimised together in one batch.
    pub batch_size: usize,
    /// Contrast (L2 norm of the deviation from grey, dataset units); `None` = the context's
    /// norm (the training images' mean).
    pub norm: Option<f64>,
}

impl Default for MeiConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            blur_sigma: 1.0,
            step_size: 0.1,
            max_steps: 300,
            patience: 10,
            tolerance: 1e-3,
            max_halvings: 3,
            batch_size: 100,
            norm: None,
        }
    }
}

/// Why an MEI search cannot run.
#[derive(Debug, thiserror::Error)]
pub enum MeiError {
    #[error(transparent)]
    Ensemble(#[from] EnsembleError),
    #[error("mei.{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("mei: neuron index {index} is out of range (the readout has {count} neurons)")]
    Neuron { index: usize, count: usize },
    #[error("mei: natural images: {0}")]
    Natural(String),
}

/// The MEIs of some neurons and how they compare with natural images.
#[derive(Debug, Clone, PartialEq)]
pub struct MeiResult {
    /// Readout indices, one per MEI, in the requested order.
    pub neurons: Vec<usize>,
    /// The MEIs, neurons × C·H·W, in dataset image units.
    pub images: Vec<f32>,
    /// (C, H, W).
    pub image_shape: [usize; 3],
    /// The contrast every MEI (and the rescaled natural image) has.
    pub norm: f64,
    /// Predicted response to its MEI (model units).
    pub mei_response: Vec<f64>,
    /// Predicted response to the best natural image rescaled to the same norm (model units);
    /// NaN when no natural images were given.
    pub natural_response: Vec<f64>,
    /// Row of that image among the natural images given (usize::MAX when none).
    pub natural_index: Vec<usize>,
    /// Steps taken.
    pub steps: Vec<usize>,
}

impl MeiResult {
    /// MEI response ÷ best rescaled natural image response.
    pub fn ratio(&self) -> Vec<f64> {
        self.mei_response
            .iter()
            .zip(&self.natural_response)
            .map(|(m, n)| m / n)
            .collect()
    }
}

fn check_config(config: &MeiConfig) -> Result<(), MeiError> {
    let bad = |field, message: String| Err(MeiError::Config { field, message });
    if !(config.blur_sigma.is_finite() && config.blur_sigma >= 0.0) {
        return bad(
            "blur_sigma",
            format!("expected ≥ 0, got {}", config.blur_sigma),
        );
    }
    if !(config.step_size.is_finite() && config.step_size > 0.0) {
        return bad(
            "step_size",
            format!("expected > 0, got {}", config.step_size),
        );
    }
    if config.max_steps == 0 || config.batch_size == 0 || config.patience == 0 {
        return bad(
            "max_steps / batch_size / patience",
            "expected at least 1".into(),
        );
    }
    if let Some(n) = config.norm
        && !(n.is_finite() && n > 0.0)
    {
        return bad("norm", format!("expected > 0, got {n}"));
    }
    Ok(())
}

/// The seeded random start of readout neuron `neuron` (deviation from grey, constrained).
fn start(config: &MeiConfig, neuron: usize, context: &InputContext, norm: f64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(neuron as u64);
    let mut d: Vec<f32> = (0..context.image_len())
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    constrain(&mut d, norm, context.grey, context.range);
    d
}

/// Computes the MEIs of `neurons` (readout indices of readout `key`). `natural` holds candidate
/// natural images (rows × C·H·W, dataset units; e.g. the training images, may be empty): each is
/// rescaled to the MEI's norm and the best one per neuron is reported beside the MEI.
pub fn most_exciting_inputs(
    ensemble: &ModelEnsemble,
    key: usize,
    context: &InputContext,
    neurons: &[usize],
    natural: &[f32],
    config: &MeiConfig,
) -> Result<MeiResult, MeiError> {
    check_config(config)?;
    ensemble.check(key, context)?;
    let n_neurons = ensemble.n_neurons(key)?;
    if let Some(&index) = neurons.iter().find(|&&i| i >= n_neurons) {
        return Err(MeiError::Neuron {
            index,
            count: n_neurons,
        });
    }
    let len = context.image_len();
    if !natural.len().is_multiple_of(len) {
        return Err(MeiError::Natural(format!(
            "{} values is not a whole number of {len}-value images",
            natural.len()
        )));
    }
    let norm = config.norm.unwrap_or(context.norm);
    let mut result = MeiResult {
        neurons: neurons.to_vec(),
        images: Vec::with_capacity(neurons.len() * len),
        image_shape: context.image_shape,
        norm,
        mei_response: Vec::with_capacity(neurons.len()),
        natural_response: vec![f64::NAN; neurons.len()],
        natural_index: vec![usize::MAX; neurons.len()],
        steps: Vec::with_capacity(neurons.len()),
    };
    for batch in neurons.chunks(config.batch_size) {
        let (images, responses, steps) =
            optimise_batch(ensemble, key, context, batch, n_neurons, norm, config);
        result.images.extend(images);
        result.mei_response.extend(responses);
        result.steps.extend(steps);
    }
    if !natural.is_empty() && !neurons.is_empty() {
        best_natural(ensemble, key, context, natural, norm, config, &mut result)?;
    }
    Ok(result)
}

/// Gradient ascent for one batch of neurons; returns the best images (dataset units), their
/// responses and the steps taken.
fn optimise_batch(
    ensemble: &ModelEnsemble,
    key: usize,
    context: &InputContext,
    batch: &[usize],
    n_neurons: usize,
    norm: f64,
    config: &MeiConfig,
) -> (Vec<f32>, Vec<f64>, Vec<usize>) {
    let len = context.image_len();
    let [_, h, w] = context.image_shape;
    let grey = context.grey as f32;
    let b = batch.len();
    let mut deviation: Vec<f32> = batch
        .iter()
        .flat_map(|&n| start(config, n, context, norm))
        .collect();
    let mut best = deviation.clone();
    let mut best_response = vec![f64::NEG_INFINITY; b];
    let mut step = vec![config.step_size; b];
    let mut since_progress = vec![0usize; b];
    let mut halvings = vec![0usize; b];
    let mut steps = vec![0usize; b];
    let mut active = vec![true; b];
    for _ in 0..=config.max_steps {
        if !active.iter().any(|&a| a) {
            break;
        }
        // Only the neurons still searching go through the model: a neuron's row does not
        // depend on the others in the batch (evaluation mode), so stopped ones drop out.
        let rows: Vec<usize> = (0..b).filter(|&row| active[row]).collect();
        let images: Vec<f32> = rows
            .iter()
            .flat_map(|&row| {
                deviation[row * len..(row + 1) * len]
                    .iter()
                    .map(|d| d + grey)
            })
            .collect();
        let probed: Vec<usize> = rows.iter().map(|&row| batch[row]).collect();
        let out = row_gradients(ensemble, key, context, &images, &probed, n_neurons);
        for (k, &row) in rows.iter().enumerate() {
            let r = out.responses[k] as f64;
            let progress = r - best_response[row] > config.tolerance * best_response[row].abs();
            if r > best_response[row] {
                best_response[row] = r;
                best[row * len..(row + 1) * len]
                    .copy_from_slice(&deviation[row * len..(row + 1) * len]);
            }
            if progress {
                since_progress[row] = 0;
            } else {
                since_progress[row] += 1;
                if since_progress[row] >= config.patience {
                    since_progress[row] = 0;
                    halvings[row] += 1;
                    step[row] /= 2.0;
                    // Restart the smaller steps from the best image.
                    deviation[row * len..(row + 1) * len]
                        .copy_from_slice(&best[row * len..(row + 1) * len]);
                    if halvings[row] > config.max_halvings {
                        active[row] = false;
                        continue;
                    }
                }
            }
            if steps[row] == config.max_steps {
                active[row] = false;
                continue;
            }
            let mut g = out.gradients[k * len..(k + 1) * len].to_vec();
            gaussian_blur(&mut g, h, w, config.blur_sigma);
            let g_norm = l2(&g);
            if g_norm == 0.0 || !g_norm.is_finite() {
                active[row] = false;
                continue;
            }
            let scale = (step[row] * norm / g_norm) as f32;
            let d = &mut deviation[row * len..(row + 1) * len];
            d.iter_mut().zip(&g).for_each(|(d, g)| *d += scale * g);
            constrain(d, norm, context.grey, context.range);
            steps[row] += 1;
        }
    }
    let images = best.iter().map(|d| d + grey).collect();
    (images, best_response, steps)
}

/// Fills in, per neuron, the best natural image rescaled to `norm` and its response.
fn best_natural(
    ensemble: &ModelEnsemble,
    key: usize,
    context: &InputContext,
    natural: &[f32],
    norm: f64,
    config: &MeiConfig,
    result: &mut MeiResult,
) -> Result<(), MeiError> {
    let len = context.image_len();
    let rescaled: Vec<f32> = natural
        .chunks_exact(len)
        .flat_map(|img| {
            let mut d: Vec<f32> = img.iter().map(|v| v - context.grey as f32).collect();
            constrain(&mut d, norm, context.grey, context.range);
            d.into_iter().map(|v| v + context.grey as f32)
        })
        .collect();
    // Only the chosen neurons are read out: column i is neuron `result.neurons[i]`.
    let columns = result.neurons.len();
    let predictions =
        ensemble.predict_neurons(&rescaled, key, context, config.batch_size, &result.neurons)?;
    for i in 0..columns {
        let (row, value) = predictions
            .chunks_exact(columns)
            .map(|p| p[i])
            .enumerate()
            .fold((usize::MAX, f64::NEG_INFINITY), |(bi, bv), (r, v)| {
                if (v as f64) > bv {
                    (r, v as f64)
                } else {
                    (bi, bv)
                }
            });
        result.natural_index[i] = row;
        result.natural_response[i] = value;
    }
    Ok(())
}
