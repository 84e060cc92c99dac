//! Evaluation metrics, per neuron, across trials (REFERENCE.md §1.6): correlation, correlation
//! to the repeat average, jackknife and conservative oracle, fraction oracle, FEV / FEVE,
//! Poisson loss.
//!
//! Conventions shared by every function here:
//! - `responses` and `predictions` are row-major `trials × neurons` in f64 (`n_neurons` columns);
//! - `image_ids` holds one image id per trial; trials showing the same id are repeats;
//! - metrics that need repeats (oracles, FEV, FEVE, correlation to average) use only images
//!   shown at least twice (an image seen once carries no information about trial-to-trial noise);
//! - everything is computed in f64 with the same formulas as the reference numpy code, so the
//!   results agree with `tests/fixtures/metrics.npz` to ~1e-15.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Added to each column's standard deviation in [`corr`] (the reference's `eps`), so that a
/// constant prediction gives a correlation of exactly 0 instead of 0/0.
pub const CORR_EPS: f64 = 1e-8;

/// Sensorium's FEV threshold: FEVE is averaged only over neurons with FEV ≥ this value.
pub const FEV_THRESHOLD: f64 = 0.15;

/// Errors from [`evaluate`] when the arrays do not fit together.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("{name} has {len} values, expected trials × neurons = {trials} × {neurons}")]
    Shape {
        name: &'static str,
        len: usize,
        trials: usize,
        neurons: usize,
    },
    #[error("image_ids has {len} entries, expected one per trial ({trials})")]
    ImageIds { len: usize, trials: usize },
    #[error("n_neurons must be at least 1")]
    NoNeurons,
}

/// Per-column Pearson correlation as the reference computes it: standardise each column by its
/// mean and population std (ddof 0) **plus [`CORR_EPS`]**, then average the products.
///
/// Returns the raw value per neuron; NaN inputs give NaN. The metric functions below
/// ([`single_trial_correlation`], [`correlation_to_average`], [`oracle_jackknife`]) are the
/// "callers" of the reference and map NaN to 0.
///
/// # Panics
/// If `a` and `b` differ in length or are not a multiple of `n_neurons` (a programming error;
/// [`evaluate`] validates user data first).
pub fn corr(a: &[f64], b: &[f64], n_neurons: usize) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "corr: arrays differ in length");
    assert!(
        n_neurons > 0 && a.len().is_multiple_of(n_neurons),
        "corr: not trials × neurons"
    );
    let rows = a.len() / n_neurons;
    let (mean_a, std_a) = column_mean_std(a, n_neurons);
    let (mean_b, std_b) = column_mean_std(b, n_neurons);
    let mut acc = vec![0.0; n_neurons];
    for (ra, rb) in a.chunks_exact(n_neurons).zip(b.chunks_exact(n_neurons)) {
        for j in 0..n_neurons {
            let za = (ra[j] - mean_a[j]) / (std_a[j] + CORR_EPS);
            let zb = (rb[j] - mean_b[j]) / (std_b[j] + CORR_EPS);
            acc[j] += za * zb;
        }
    }
    acc.iter().map(|s| s / rows as f64).collect()
}

/// Correlation between predictions and responses over all trials, per neuron (NaN → 0).
pub fn single_trial_correlation(
    responses: &[f64],
    predictions: &[f64],
    n_neurons: usize,
) -> Vec<f64> {
    nan_to_zero(corr(responses, predictions, n_neurons))
}

/// Signal correlation: responses and predictions are averaged over the repeats of each image,
/// then correlated across images (NaN → 0). Images shown once are skipped.
pub fn correlation_to_average(
    responses: &[f64],
    predictions: &[f64],
    n_neurons: usize,
    image_ids: &[i64],
) -> Vec<f64> {
    let groups = repeat_groups(image_ids);
    let mean_r = per_image_means(responses, n_neurons, &groups);
    let mean_p = per_image_means(predictions, n_neurons, &groups);
    if groups.is_empty() {
        return vec![f64::NAN; n_neurons];
    }
    nan_to_zero(corr(&mean_r, &mean_p, n_neurons))
}

/// Jackknife oracle correlation (Lurz et al. 2020): each repeat trial is predicted by the mean
/// of the *other* repeats of its image, `(Σ − yᵢ)/(r − 1)`, and correlated with the response.
/// A lower bound on the best correlation any model can reach. NaN → 0; all-NaN when no image
/// has repeats.
pub fn oracle_jackknife(responses: &[f64], n_neurons: usize, image_ids: &[i64]) -> Vec<f64> {
    let groups = repeat_groups(image_ids);
    if groups.is_empty() {
        return vec![f64::NAN; n_neurons];
    }
    let mut stacked = Vec::new();
    let mut oracle = Vec::new();
    for trials in &groups {
        let r = trials.len() as f64;
        let mut sum = vec![0.0; n_neurons];
        for &t in trials {
            add_row(&mut sum, row(responses, n_neurons, t));
        }
        for &t in trials {
            let y = row(responses, n_neurons, t);
            stacked.extend_from_slice(y);
            oracle.extend(y.iter().zip(&sum).map(|(yi, s)| (s - yi) / (r - 1.0)));
        }
    }
    nan_to_zero(corr(&stacked, &oracle, n_neurons))
}

/// Conservative ("corrected") oracle: `var_mean / √(var_mean · (var_mean + var_noise))` with
/// `var_noise` the mean over images of the across-repeat variance and `var_mean` the variance
/// over images of the repeat means (both ddof 0). Overestimates the ceiling. NaN (0/0) is kept
/// for a neuron whose image means are all equal, so that it is visibly undefined.
pub fn oracle_conservative(responses: &[f64], n_neurons: usize, image_ids: &[i64]) -> Vec<f64> {
    let groups = repeat_groups(image_ids);
    if groups.is_empty() {
        return vec![f64::NAN; n_neurons];
    }
    let means = per_image_means(responses, n_neurons, &groups);
    let mut noise = vec![0.0; n_neurons];
    for (g, trials) in groups.iter().enumerate() {
        let m = &means[g * n_neurons..(g + 1) * n_neurons];
        let mut var = vec![0.0; n_neurons];
        for &t in trials {
            for (j, y) in row(responses, n_neurons, t).iter().enumerate() {
                var[j] += (y - m[j]).powi(2);
            }
        }
        for j in 0..n_neurons {
            noise[j] += var[j] / trials.len() as f64;
        }
    }
    let (_, std_means) = column_mean_std(&means, n_neurons);
    (0..n_neurons)
        .map(|j| {
            let var_noise = noise[j] / groups.len() as f64;
            let var_mean = std_means[j] * std_means[j];
            var_mean / (var_mean * (var_mean + var_noise)).sqrt()
        })
        .collect()
}

/// Fraction oracle (the paper's headline number): least-squares slope through the origin of the
/// per-neuron test correlation on the per-neuron jackknife oracle, `Σ oᵢcᵢ / Σ oᵢ²`.
/// Neurons with a non-finite value in either are left out.
pub fn fraction_oracle(test_correlation: &[f64], oracle: &[f64]) -> f64 {
    let (num, den) = test_correlation
        .iter()
        .zip(oracle)
        .filter(|(c, o)| c.is_finite() && o.is_finite())
        .fold((0.0, 0.0), |(n, d), (c, o)| (n + o * c, d + o * o));
    num / den
}

/// Fraction of explainable variance (Sensorium): `(T − N)/T` with `T` the total variance over
/// all repeat trials and `N` the mean over images of the within-image variance (both ddof 1).
pub fn fev(responses: &[f64], n_neurons: usize, image_ids: &[i64]) -> Vec<f64> {
    let v = variance_split(responses, n_neurons, image_ids);
    (0..n_neurons)
        .map(|j| (v.total[j] - v.noise[j]) / v.total[j])
        .collect()
}

/// Fraction of explainable variance explained: `1 − (MSE − N)/(T − N)` over the repeat trials.
pub fn feve(
    responses: &[f64],
    predictions: &[f64],
    n_neurons: usize,
    image_ids: &[i64],
) -> Vec<f64> {
    let v = variance_split(responses, n_neurons, image_ids);
    let mut mse = vec![0.0; n_neurons];
    let mut count = 0usize;
    for trials in repeat_groups(image_ids) {
        for t in trials {
            let y = row(responses, n_neurons, t);
            let p = row(predictions, n_neurons, t);
            for j in 0..n_neurons {
                mse[j] += (y[j] - p[j]).powi(2);
            }
            count += 1;
        }
    }
    (0..n_neurons)
        .map(|j| 1.0 - (mse[j] / count as f64 - v.noise[j]) / (v.total[j] - v.noise[j]))
        .collect()
}

/// Poisson negative log-likelihood (up to the constant log y!), summed over trials per neuron:
/// `Σ ŷ − y·ln(ŷ + 1e-12)`.
pub fn poisson_loss(responses: &[f64], predictions: &[f64], n_neurons: usize) -> Vec<f64> {
    assert_eq!(
        responses.len(),
        predictions.len(),
        "poisson_loss: lengths differ"
    );
    let mut loss = vec![0.0; n_neurons];
    for (y, p) in responses
        .chunks_exact(n_neurons)
        .zip(predictions.chunks_exact(n_neurons))
    {
        for j in 0..n_neurons {
            loss[j] += p[j] - y[j] * (p[j] + 1e-12).ln();
        }
    }
    loss
}

/// Every metric of one tier, per neuron, plus the summaries reported in papers.
/// Repeat-based fields are NaN when the tier has no repeated images (e.g. validation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronMetrics {
    /// Single-trial correlation per neuron.
    pub single_trial_correlation: Vec<f64>,
    /// Correlation of repeat-averaged prediction and response across images, per neuron.
    pub correlation_to_average: Vec<f64>,
    /// Jackknife oracle correlation per neuron.
    pub oracle_jackknife: Vec<f64>,
    /// Conservative oracle per neuron (NaN where undefined).
    pub oracle_conservative: Vec<f64>,
    /// Fraction of explainable variance per neuron.
    pub fev: Vec<f64>,
    /// Fraction of explainable variance explained per neuron.
    pub feve: Vec<f64>,
    /// Poisson loss summed over trials, per neuron.
    pub poisson_loss: Vec<f64>,
    /// Mean single-trial correlation over neurons.
    pub mean_single_trial_correlation: f64,
    /// Mean correlation to average over neurons.
    pub mean_correlation_to_average: f64,
    /// Mean jackknife oracle over neurons.
    pub mean_oracle_jackknife: f64,
    /// Slope through the origin of single-trial correlation on jackknife oracle.
    pub fraction_oracle: f64,
    /// Which neurons pass the FEV threshold.
    pub fev_mask: Vec<bool>,
    /// Mean FEVE over neurons with FEV ≥ [`FEV_THRESHOLD`] (the Sensorium score).
    pub feve_mean_above_threshold: f64,
}

/// Computes all metrics of one tier at once after checking that the shapes fit.
pub fn evaluate(
    responses: &[f64],
    predictions: &[f64],
    n_neurons: usize,
    image_ids: &[i64],
) -> Result<NeuronMetrics, MetricsError> {
    if n_neurons == 0 {
        return Err(MetricsError::NoNeurons);
    }
    let trials = image_ids.len();
    for (name, a) in [("responses", responses), ("predictions", predictions)] {
        if a.len() != trials * n_neurons {
            return Err(MetricsError::Shape {
                name,
                len: a.len(),
                trials,
                neurons: n_neurons,
            });
        }
    }
    if trials == 0 {
        return Err(MetricsError::ImageIds { len: 0, trials });
    }
    let single = single_trial_correlation(responses, predictions, n_neurons);
    let to_average = correlation_to_average(responses, predictions, n_neurons, image_ids);
    let oracle = oracle_jackknife(responses, n_neurons, image_ids);
    let fev_values = fev(responses, n_neurons, image_ids);
    let feve_values = feve(responses, predictions, n_neurons, image_ids);
    let fev_mask: Vec<bool> = fev_values.iter().map(|f| *f >= FEV_THRESHOLD).collect();
    let above: Vec<f64> = feve_values
        .iter()
        .zip(&fev_mask)
        .filter(|(_, m)| **m)
        .map(|(f, _)| *f)
        .collect();
    Ok(NeuronMetrics {
        mean_single_trial_correlation: mean(&single),
        mean_correlation_to_average: mean(&to_average),
        mean_oracle_jackknife: mean(&oracle),
        fraction_oracle: fraction_oracle(&single, &oracle),
        feve_mean_above_threshold: mean(&above),
        oracle_conservative: oracle_conservative(responses, n_neurons, image_ids),
        poisson_loss: poisson_loss(responses, predictions, n_neurons),
        single_trial_correlation: single,
        correlation_to_average: to_average,
        oracle_jackknife: oracle,
        fev: fev_values,
        feve: feve_values,
        fev_mask,
    })
}

/// Mean of a slice (NaN for an empty one).
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn nan_to_zero(mut v: Vec<f64>) -> Vec<f64> {
    v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = 0.0);
    v
}

fn row(a: &[f64], n_neurons: usize, t: usize) -> &[f64] {
    &a[t * n_neurons..(t + 1) * n_neurons]
}

fn add_row(acc: &mut [f64], r: &[f64]) {
    acc.iter_mut().zip(r).for_each(|(a, x)| *a += x);
}

/// Trial indices of each image shown at least twice, in sorted-id order.
fn repeat_groups(image_ids: &[i64]) -> Vec<Vec<usize>> {
    let mut by_id: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (t, id) in image_ids.iter().enumerate() {
        by_id.entry(*id).or_default().push(t);
    }
    by_id.into_values().filter(|t| t.len() >= 2).collect()
}

/// Row-major `images × neurons` means over the repeats of each group.
fn per_image_means(a: &[f64], n_neurons: usize, groups: &[Vec<usize>]) -> Vec<f64> {
    let mut out = Vec::with_capacity(groups.len() * n_neurons);
    for trials in groups {
        let mut sum = vec![0.0; n_neurons];
        for &t in trials {
            add_row(&mut sum, row(a, n_neurons, t));
        }
        out.extend(sum.iter().map(|s| s / trials.len() as f64));
    }
    out
}

/// Column means and population standard deviations (ddof 0), two-pass like numpy.
fn column_mean_std(a: &[f64], n_neurons: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = (a.len() / n_neurons) as f64;
    let mut mean = vec![0.0; n_neurons];
    for r in a.chunks_exact(n_neurons) {
        add_row(&mut mean, r);
    }
    mean.iter_mut().for_each(|m| *m /= rows);
    let mut var = vec![0.0; n_neurons];
    for r in a.chunks_exact(n_neurons) {
        for j in 0..n_neurons {
            var[j] += (r[j] - mean[j]).powi(2);
        }
    }
    let std = var.iter().map(|v| (v / rows).sqrt()).collect();
    (mean, std)
}

/// Total (T) and noise (N) variance of the repeat trials, both ddof 1, per neuron.
struct VarianceSplit {
    total: Vec<f64>,
    noise: Vec<f64>,
}

fn variance_split(responses: &[f64], n_neurons: usize, image_ids: &[i64]) -> VarianceSplit {
    let groups = repeat_groups(image_ids);
    let mut stacked = Vec::new();
    let mut noise = vec![0.0; n_neurons];
    for trials in &groups {
        let rows: Vec<f64> = trials
            .iter()
            .flat_map(|&t| row(responses, n_neurons, t).iter().copied())
            .collect();
        let (_, std) = column_mean_std(&rows, n_neurons);
        let r = trials.len() as f64;
        for j in 0..n_neurons {
            noise[j] += std[j] * std[j] * r / (r - 1.0);
        }
        stacked.extend(rows);
    }
    noise.iter_mut().for_each(|v| *v /= groups.len() as f64);
    let n = (stacked.len() / n_neurons) as f64;
    let (_, std) = if stacked.is_empty() {
        (vec![], vec![f64::NAN; n_neurons])
    } else {
        column_mean_std(&stacked, n_neurons)
    };
    let total = std.iter().map(|s| s * s * n / (n - 1.0)).collect();
    VarianceSplit { total, noise }
}

#[cfg(test)]
mod tests;
