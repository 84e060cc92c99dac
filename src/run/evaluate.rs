//! Every metric of a trained model on one tier of one dataset (REFERENCE.md §1.6, §5).

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::open::{Run, readout_positions, readout_sigma};
use crate::data::{PreparedDataset, Tier};
use crate::model::Encoder;
use crate::train::evaluation::predict;

/// FEVE is averaged over neurons whose FEV reaches this (Sensorium convention).
pub const FEV_THRESHOLD: f64 = 0.15;

/// Per-neuron metrics of one dataset on one tier. Vectors have one entry per neuron; the
/// repeat-based ones are `None` when the tier has no image shown at least twice.
#[derive(Debug, Clone)]
pub struct NeuronReport {
    pub single_trial_correlation: Vec<f64>,
    pub correlation_to_average: Option<Vec<f64>>,
    pub oracle: Option<Vec<f64>>,
    pub fev: Option<Vec<f64>>,
    pub feve: Option<Vec<f64>>,
    pub poisson_loss: Vec<f64>,
}

/// Summary of one dataset on one tier (what `evaluate` prints and `summary.json` holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierSummary {
    pub data_key: String,
    pub tier: String,
    pub neurons: usize,
    pub trials: usize,
    /// Unique images shown at least twice in this tier.
    pub repeated_images: usize,
    /// Mean single-trial correlation over neurons (NaN → 0).
    pub single_trial_correlation: f64,
    /// Mean correlation to the repeat average (signal correlation).
    pub correlation_to_average: Option<f64>,
    /// Mean jackknife oracle correlation.
    pub oracle: Option<f64>,
    /// Slope through the origin of single-trial correlation vs oracle (Lurz 2020 headline).
    pub fraction_oracle: Option<f64>,
    /// Mean FEVE over neurons with FEV ≥ 0.15 (Sensorium).
    pub feve: Option<f64>,
    /// Neurons with FEV ≥ 0.15.
    pub neurons_fev_above_threshold: Option<usize>,
}

/// Predictions, responses and all metrics of a dataset on a tier.
pub struct TierEvaluation {
    pub trials: Vec<usize>,
    /// Predictions, trials × neurons (normalized response units).
    pub predictions: Vec<f32>,
    pub neurons: NeuronReport,
    pub summary: TierSummary,
}

fn nan_to_zero(v: Vec<f64>) -> Vec<f64> {
    v.into_iter()
        .map(|x| if x.is_nan() { 0.0 } else { x })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Evaluates `model` (in evaluation mode) on `tier` of dataset `key`. `None` when the tier is empty.
pub fn evaluate_tier(
    model: &Encoder,
    key: usize,
    set: &PreparedDataset,
    tier: Tier,
    batch_size: usize,
    device: &Device,
) -> Option<TierEvaluation> {
    let trials = set.tier(tier);
    if trials.is_empty() {
        return None;
    }
    let predictions = predict(model, key, set, &trials, batch_size, device);
    Some(tier_metrics(set, tier, trials, predictions))
}

/// Every metric of `predictions` (trials × neurons, normalized response units) of the trials
/// `trials` of `tier` against the recorded responses.
pub fn tier_metrics(
    set: &PreparedDataset,
    tier: Tier,
    trials: Vec<usize>,
    predictions: Vec<f32>,
) -> TierEvaluation {
    let n = set.n_neurons();
    let responses = set.responses_of(&trials);
    let pred64: Vec<f64> = predictions.iter().map(|&x| x as f64).collect();
    let resp64: Vec<f64> = responses.iter().map(|&x| x as f64).collect();
    let image_ids: Vec<i64> = trials
        .iter()
        .map(|&t| set.dataset.trials.frame_image_id[t])
        .collect();
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for id in &image_ids {
        *counts.entry(*id).or_default() += 1;
    }
    let repeated_images = counts.values().filter(|&&c| c >= 2).count();

    let single = nan_to_zero(crate::metrics::single_trial_correlation(
        &resp64, &pred64, n,
    ));
    let poisson = crate::metrics::poisson_loss(&resp64, &pred64, n);
    let (cta, oracle, fev, feve) = if repeated_images > 0 {
        (
            Some(nan_to_zero(crate::metrics::correlation_to_average(
                &resp64, &pred64, n, &image_ids,
            ))),
            Some(nan_to_zero(crate::metrics::oracle_jackknife(
                &resp64, n, &image_ids,
            ))),
            Some(crate::metrics::fev(&resp64, n, &image_ids)),
            Some(crate::metrics::feve(&resp64, &pred64, n, &image_ids)),
        )
    } else {
        (None, None, None, None)
    };
    let fraction_oracle = oracle
        .as_ref()
        .map(|o| crate::metrics::fraction_oracle(&single, o));
    let (feve_mean, above) = match (&fev, &feve) {
        (Some(fev), Some(feve)) => {
            let kept: Vec<f64> = fev
                .iter()
                .zip(feve)
                .filter(|(f, _)| **f >= FEV_THRESHOLD)
                .map(|(_, e)| *e)
                .collect();
            (Some(mean(&kept)), Some(kept.len()))
        }
        _ => (None, None),
    };
    let summary = TierSummary {
        data_key: set.data_key().to_string(),
        tier: tier.to_string(),
        neurons: n,
        trials: trials.len(),
        repeated_images,
        single_trial_correlation: mean(&single),
        correlation_to_average: cta.as_deref().map(mean),
        oracle: oracle.as_deref().map(mean),
        fraction_oracle,
        feve: feve_mean,
        neurons_fev_above_threshold: above,
    };
    TierEvaluation {
        trials,
        predictions,
        neurons: NeuronReport {
            single_trial_correlation: single,
            correlation_to_average: cta,
            oracle,
            fev,
            feve,
            poisson_loss: poisson,
        },
        summary,
    }
}

impl Run {
    /// Every metric of the run's prediction (the members' mean for an ensemble) on `tier` of a
    /// prepared dataset with readout `key`; `None` when the tier is empty.
    pub fn evaluate(
        &self,
        key: usize,
        set: &PreparedDataset,
        tier: Tier,
    ) -> Option<TierEvaluation> {
        let trials = set.tier(tier);
        if trials.is_empty() {
            return None;
        }
        let predictions = self.predict(key, set, &trials);
        Some(tier_metrics(set, tier, trials, predictions))
    }

    /// The metrics of each member alone (one entry for a single run); `None` when the tier is
    /// empty.
    pub fn evaluate_members(
        &self,
        key: usize,
        set: &PreparedDataset,
        tier: Tier,
    ) -> Option<Vec<TierEvaluation>> {
        let trials = set.tier(tier);
        if trials.is_empty() {
            return None;
        }
        Some(
            (0..self.models.len())
                .map(|m| {
                    let predictions = self.predict_member(m, key, set, &trials);
                    tier_metrics(set, tier, trials.clone(), predictions)
                })
                .collect(),
        )
    }
}

/// One row per neuron: every metric and, for Gaussian readouts, μ and Σ in grid coordinates.
pub fn write_neuron_csv(
    model: &Encoder,
    key: usize,
    set: &PreparedDataset,
    evaluation: &TierEvaluation,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let n = set.n_neurons();
    let positions = readout_positions(model, key);
    let sigma = readout_sigma(model, key);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "data_key",
        "unit_id",
        "single_trial_correlation",
        "correlation_to_average",
        "oracle",
        "fev",
        "feve",
        "poisson_loss",
    ];
    if positions.is_some() {
        header.extend(["mu_x", "mu_y"]);
    }
    if sigma.is_some() {
        header.extend(["sigma_xx", "sigma_xy", "sigma_yx", "sigma_yy"]);
    }
    writer.write_record(&header)?;
    let opt =
        |v: &Option<Vec<f64>>, i: usize| v.as_ref().map_or(String::new(), |v| v[i].to_string());
    let m = &evaluation.neurons;
    for i in 0..n {
        let mut row = vec![
            set.data_key().to_string(),
            set.dataset.neurons.unit_ids[i].to_string(),
            m.single_trial_correlation[i].to_string(),
            opt(&m.correlation_to_average, i),
            opt(&m.oracle, i),
            opt(&m.fev, i),
            opt(&m.feve, i),
            m.poisson_loss[i].to_string(),
        ];
        if let Some(p) = &positions {
            row.push(p[i][0].to_string());
            row.push(p[i][1].to_string());
        }
        if let Some(s) = &sigma {
            row.extend(s[i].iter().map(|v| v.to_string()));
        }
        writer.write_record(&row)?;
    }
    let bytes = writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::io::atomic_write(path, &bytes)
}
