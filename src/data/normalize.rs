//! NeuroNormalizer (REFERENCE.md §1.8): images z-scored with scalar statistics, responses scaled
//! by a per-neuron precision with a floor, behaviour divided by its std, pupil centre z-scored.
//! Everything is computed in f64 and is exactly invertible.

use super::Statistics;
use super::error::DataError;
use std::path::PathBuf;

/// Options of the normalizer (neuralpredictors' `exclude` / `subtract_behavior_mean`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeOptions {
    /// Leave images as on disk (the Lurz 2020 preset does this: `exclude=["images"]`).
    #[serde(default)]
    pub exclude_images: bool,
    /// Also subtract the behaviour mean (off in neuralpredictors by default).
    #[serde(default)]
    pub subtract_behavior_mean: bool,
}

/// The fitted transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    /// Scalar image mean and std; `None` when images are excluded.
    pub image_stats: Option<(f64, f64)>,
    /// 1/std per neuron, with std floored at 0.01·mean(std) (strictly above the floor kept).
    pub response_precision: Vec<f64>,
    /// Behaviour mean (zeros unless subtracted) and 1/std.
    pub behavior: Option<(Vec<f64>, Vec<f64>)>,
    /// Pupil centre mean and std.
    pub pupil_center: Option<(Vec<f64>, Vec<f64>)>,
}

fn missing(field: &str) -> DataError {
    DataError::Missing {
        path: PathBuf::from(format!("meta/statistics/{field}/all")),
        expected: "mean.npy and std.npy for normalization".into(),
    }
}

impl Normalizer {
    /// Build from `meta/statistics` (source `all`).
    pub fn from_statistics(
        stats: &Statistics,
        options: &NormalizeOptions,
    ) -> Result<Normalizer, DataError> {
        let image_stats = if options.exclude_images {
            None
        } else {
            let s = stats.field("images").ok_or_else(|| missing("images"))?;
            let (Some(&m), Some(&sd)) = (s.mean.first(), s.std.first()) else {
                return Err(missing("images"));
            };
            Some((m, sd))
        };
        let r = stats
            .field("responses")
            .ok_or_else(|| missing("responses"))?;
        let threshold = 0.01 * r.std.iter().sum::<f64>() / r.std.len().max(1) as f64;
        let response_precision = r
            .std
            .iter()
            .map(|&s| {
                if s > threshold {
                    1.0 / s
                } else {
                    1.0 / threshold
                }
            })
            .collect();
        let behavior = stats.field("behavior").map(|b| {
            let mean = if options.subtract_behavior_mean {
                b.mean.clone()
            } else {
                vec![0.0; b.std.len()]
            };
            (mean, b.std.iter().map(|s| 1.0 / s).collect())
        });
        let pupil_center = stats
            .field("pupil_center")
            .map(|p| (p.mean.clone(), p.std.clone()));
        Ok(Normalizer {
            image_stats,
            response_precision,
            behavior,
            pupil_center,
        })
    }

    /// The identity transform (`data.normalize = false`).
    pub fn identity(n_neurons: usize) -> Normalizer {
        Normalizer {
            image_stats: None,
            response_precision: vec![1.0; n_neurons],
            behavior: None,
            pupil_center: None,
        }
    }

    /// Normalize images (any number of values; scalar statistics).
    pub fn images(&self, x: &[f64]) -> Vec<f64> {
        match self.image_stats {
            Some((m, s)) => x.iter().map(|v| (v - m) / s).collect(),
            None => x.to_vec(),
        }
    }
    pub fn inverse_images(&self, x: &[f64]) -> Vec<f64> {
        match self.image_stats {
            Some((m, s)) => x.iter().map(|v| v * s + m).collect(),
            None => x.to_vec(),
        }
    }

    /// Normalize responses, row-major trials×neurons.
    pub fn responses(&self, x: &[f64]) -> Vec<f64> {
        let p = &self.response_precision;
        x.iter()
            .enumerate()
            .map(|(i, v)| v * p[i % p.len()])
            .collect()
    }
    pub fn inverse_responses(&self, x: &[f64]) -> Vec<f64> {
        let p = &self.response_precision;
        x.iter()
            .enumerate()
            .map(|(i, v)| v / p[i % p.len()])
            .collect()
    }

    /// Normalize behaviour, row-major trials×3 (identity if no statistics).
    pub fn behavior(&self, x: &[f64]) -> Vec<f64> {
        match &self.behavior {
            Some((m, p)) => x
                .iter()
                .enumerate()
                .map(|(i, v)| (v - m[i % m.len()]) * p[i % p.len()])
                .collect(),
            None => x.to_vec(),
        }
    }
    pub fn inverse_behavior(&self, x: &[f64]) -> Vec<f64> {
        match &self.behavior {
            Some((m, p)) => x
                .iter()
                .enumerate()
                .map(|(i, v)| v / p[i % p.len()] + m[i % m.len()])
                .collect(),
            None => x.to_vec(),
        }
    }

    /// Normalize pupil centre, row-major trials×2.
    pub fn pupil_center(&self, x: &[f64]) -> Vec<f64> {
        match &self.pupil_center {
            Some((m, s)) => x
                .iter()
                .enumerate()
                .map(|(i, v)| (v - m[i % m.len()]) / s[i % s.len()])
                .collect(),
            None => x.to_vec(),
        }
    }
    pub fn inverse_pupil_center(&self, x: &[f64]) -> Vec<f64> {
        match &self.pupil_center {
            Some((m, s)) => x
                .iter()
                .enumerate()
                .map(|(i, v)| v * s[i % s.len()] + m[i % m.len()])
                .collect(),
            None => x.to_vec(),
        }
    }

    /// z-score of trial_idx over arange(dataset_len) (population std), as neuralpredictors.
    pub fn trial_idx(x: &[f64], dataset_len: usize) -> Vec<f64> {
        let n = dataset_len as f64;
        let mean = (n - 1.0) / 2.0;
        let std = ((n * n - 1.0) / 12.0).sqrt();
        x.iter().map(|v| (v - mean) / std).collect()
    }
}
