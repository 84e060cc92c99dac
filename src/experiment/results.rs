//! The results of an experiment: one row per fit (`results.csv`) and the mean ± spread over seeds.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::spec::{Condition, Fit};

/// Which number scores a fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreMetric {
    /// Fraction oracle on the test tier (the paper's headline; needs repeated test images).
    #[serde(rename = "fraction_oracle_test")]
    FractionOracleTest,
    /// Mean single-trial correlation on the validation tier (when the test tier has no repeats).
    #[serde(rename = "validation_correlation")]
    ValidationCorrelation,
}

impl ScoreMetric {
    pub fn name(self) -> &'static str {
        match self {
            ScoreMetric::FractionOracleTest => "fraction_oracle_test",
            ScoreMetric::ValidationCorrelation => "validation_correlation",
        }
    }

    /// Axis label of the figure.
    pub fn label(self) -> &'static str {
        match self {
            ScoreMetric::FractionOracleTest => "fraction oracle (test)",
            ScoreMetric::ValidationCorrelation => "single-trial correlation (validation)",
        }
    }
}

/// The score of one finished fit (computed from its `summary.json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub metric: ScoreMetric,
    pub value: f64,
    /// Mean single-trial correlation on the tier the score comes from (always reported).
    pub single_trial_correlation: f64,
    /// Training images the fit actually used.
    pub train_images: usize,
}

/// The score of a finished run from its `summary.json`: the test tier's fraction oracle when the
/// test tier has repeated images, else the mean validation single-trial correlation.
pub fn score_from_summary(path: &Path, train_images: usize) -> anyhow::Result<Score> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let first = |tier: &str| summary.get(tier).and_then(|t| t.get(0)).cloned();
    let number = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_f64);
    if let Some(test) = first("test")
        && let Some(fo) = number(&test, "fraction_oracle")
    {
        let corr = number(&test, "single_trial_correlation").unwrap_or(f64::NAN);
        return Ok(Score {
            metric: ScoreMetric::FractionOracleTest,
            value: fo,
            single_trial_correlation: corr,
            train_images,
        });
    }
    let validation = first("validation")
        .with_context(|| format!("{}: no validation metrics", path.display()))?;
    let corr = number(&validation, "single_trial_correlation").with_context(|| {
        format!(
            "{}: validation has no single_trial_correlation",
            path.display()
        )
    })?;
    Ok(Score {
        metric: ScoreMetric::ValidationCorrelation,
        value: corr,
        single_trial_correlation: corr,
        train_images,
    })
}

/// One row of `results.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub condition: Condition,
    /// As requested (`250`, `all`).
    pub images: String,
    /// As used (a number; `all` resolved).
    pub train_images: usize,
    pub seed: u64,
    /// `fraction_oracle_test` or `validation_correlation`.
    pub metric: ScoreMetric,
    pub score: f64,
    pub single_trial_correlation: f64,
    /// Run directory, relative to the experiment folder.
    pub run: String,
}

impl ResultRow {
    pub fn new(fit: &Fit, score: &Score) -> Self {
        ResultRow {
            condition: fit.condition,
            images: fit.images.to_string(),
            train_images: score.train_images,
            seed: fit.seed,
            metric: score.metric,
            score: score.value,
            single_trial_correlation: score.single_trial_correlation,
            run: fit.name(),
        }
    }
}

/// Writes `results.csv` atomically.
pub fn write_csv(rows: &[ResultRow], path: &Path) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("formatting results.csv")?;
    crate::io::atomic_write(path, &bytes)
}

/// Reads a `results.csv` written by [`write_csv`].
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<ResultRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, r)| r.with_context(|| format!("{}: row {}", path.display(), i + 2)))
        .collect()
}

/// Mean and spread over seeds of one condition at one number of training images.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPoint {
    pub condition: Condition,
    pub train_images: usize,
    pub mean: f64,
    /// Sample standard deviation over seeds (0 with a single seed).
    pub std: f64,
    pub n_seeds: usize,
}

/// Groups rows by condition and training images (sorted), mean ± standard deviation over seeds.
pub fn summarize(rows: &[ResultRow]) -> Vec<SummaryPoint> {
    let mut keys: Vec<(Condition, usize)> =
        rows.iter().map(|r| (r.condition, r.train_images)).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(condition, train_images)| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.condition == condition && r.train_images == train_images)
                .map(|r| r.score)
                .collect();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = if v.len() > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            SummaryPoint {
                condition,
                train_images,
                mean,
                std,
                n_seeds: v.len(),
            }
        })
        .collect()
}

/// A plain-text table of the summary, one row per image count, one column per condition.
pub fn summary_table(points: &[SummaryPoint], metric: ScoreMetric) -> String {
    let mut conditions: Vec<Condition> = points.iter().map(|p| p.condition).collect();
    conditions.sort();
    conditions.dedup();
    let mut counts: Vec<usize> = points.iter().map(|p| p.train_images).collect();
    counts.sort();
    counts.dedup();
    let mut out = format!("{} (mean ± sd over seeds)\n{:>12}", metric.name(), "images");
    for c in &conditions {
        out.push_str(&format!("  {:>22}", c.name()));
    }
    out.push('\n');
    for n in counts {
        out.push_str(&format!("{n:>12}"));
        for c in &conditions {
            let cell = points
                .iter()
                .find(|p| p.condition == *c && p.train_images == n)
                .map(|p| format!("{:.3} ± {:.3} (n={})", p.mean, p.std, p.n_seeds))
                .unwrap_or_else(|| "–".to_string());
            out.push_str(&format!("  {cell:>22}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_prefers_test_fraction_oracle() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        std::fs::write(
            &p,
            r#"{"validation":[{"single_trial_correlation":0.3}],
                "test":[{"single_trial_correlation":0.35,"fraction_oracle":0.8}]}"#,
        )
        .unwrap();
        let s = score_from_summary(&p, 100).unwrap();
        assert_eq!(s.metric, ScoreMetric::FractionOracleTest);
        assert_eq!(
            (s.value, s.single_trial_correlation, s.train_images),
            (0.8, 0.35, 100)
        );
        std::fs::write(
            &p,
            r#"{"validation":[{"single_trial_correlation":0.3}],"test":[]}"#,
        )
        .unwrap();
        let s = score_from_summary(&p, 100).unwrap();
        assert_eq!(
            (s.metric, s.value),
            (ScoreMetric::ValidationCorrelation, 0.3)
        );
        std::fs::write(&p, r#"{"test":[]}"#).unwrap();
        let err = format!("{:#}", score_from_summary(&p, 1).unwrap_err());
        assert!(err.contains("no validation metrics"), "{err}");
    }

    fn row(condition: Condition, n: usize, seed: u64, score: f64) -> ResultRow {
        ResultRow {
            condition,
            images: n.to_string(),
            train_images: n,
            seed,
            metric: ScoreMetric::FractionOracleTest,
            score,
            single_trial_correlation: score / 2.0,
            run: format!("{condition}_{n}_s{seed}"),
        }
    }

    #[test]
    fn summary_is_mean_and_sample_sd_over_seeds() {
        let rows = vec![
            row(Condition::Direct, 250, 1, 0.2),
            row(Condition::Direct, 250, 2, 0.4),
            row(Condition::Transfer, 250, 1, 0.6),
            row(Condition::Direct, 500, 1, 0.5),
        ];
        let s = summarize(&rows);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].condition, s[0].train_images, s[0].n_seeds),
            (Condition::Direct, 250, 2)
        );
        assert!((s[0].mean - 0.3).abs() < 1e-12);
        assert!((s[0].std - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(s[2].std, 0.0);
        let table = summary_table(&s, ScoreMetric::FractionOracleTest);
        assert!(table.contains("0.300 ± 0.141 (n=2)"), "{table}");
    }

    #[test]
    fn csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        let rows = vec![
            row(Condition::GoalDirected, 250, 1, 0.25),
            row(Condition::Transfer, 4472, 3, 0.75),
        ];
        write_csv(&rows, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("condition,images,train_images,seed,metric,score"),
            "{text}"
        );
        assert!(
            text.contains("goal-directed,250,250,1,fraction_oracle_test,0.25"),
            "{text}"
        );
        assert_eq!(read_csv(&path).unwrap(), rows);
    }
}
