//! One fit's row in the results database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a fit is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Handed to an engine (queued on SLURM); no worker has started it yet.
    Submitted,
    /// A worker is training it.
    Running,
    /// `summary.json` is written; metrics are in the store.
    Finished,
    /// The worker stopped with an error (in `error`).
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Submitted => "submitted",
            Status::Running => "running",
            Status::Finished => "finished",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Status {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "submitted" => Status::Submitted,
            "running" => Status::Running,
            "finished" => Status::Finished,
            "failed" => Status::Failed,
            other => anyhow::bail!(
                "unknown fit status `{other}` (expected submitted, running, finished or failed)"
            ),
        })
    }
}

/// One summary metric of one tier of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    pub tier: String,
    pub data_key: String,
    pub metric: String,
    pub value: f64,
}

/// A fit as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitRecord {
    pub id: String,
    pub sweep: String,
    pub label: String,
    pub kind: String,
    /// The canonical JSON hashed into the id (config without paths, dataset fingerprints).
    pub config: String,
    /// Axis values (JSON object text).
    pub point: String,
    pub status: Status,
    pub run_dir: String,
    pub host: Option<String>,
    pub job: Option<String>,
    pub version: String,
    pub submitted_at: Option<f64>,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub seconds: Option<f64>,
    pub epochs: Option<i64>,
    pub best_epoch: Option<i64>,
    pub best_validation_correlation: Option<f64>,
    pub error: Option<String>,
    pub metrics: Vec<MetricValue>,
}

impl FitRecord {
    /// The mean over datasets of `tier.metric` (e.g. `test.fraction_oracle`), or a fit column
    /// (`best_validation_correlation`, `seconds`, `epochs`, `best_epoch`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "best_validation_correlation" => return self.best_validation_correlation,
            "seconds" => return self.seconds,
            "epochs" => return self.epochs.map(|e| e as f64),
            "best_epoch" => return self.best_epoch.map(|e| e as f64),
            _ => {}
        }
        let (tier, metric) = name.split_once('.')?;
        let values: Vec<f64> = self
            .metrics
            .iter()
            .filter(|m| m.tier == tier && m.metric == metric)
            .map(|m| m.value)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// The value of a dotted config key (`trainer.lr`, `seed`, `data.image_n`) in the hashed
    /// config, or of a column (`id`, `status`, `sweep`, `kind`, `host`, `version`, `label`), or
    /// else of an axis of the fit's point that is no config key (an experiment's `condition`).
    pub fn key(&self, key: &str) -> Option<serde_json::Value> {
        let column = match key {
            "id" => Some(self.id.clone()),
            "status" => Some(self.status.name().to_string()),
            "sweep" => Some(self.sweep.clone()),
            "kind" => Some(self.kind.clone()),
            "host" => self.host.clone(),
            "version" => Some(self.version.clone()),
            "label" => Some(self.label.clone()),
            "error" => self.error.clone(),
            _ => None,
        };
        if let Some(c) = column {
            return Some(serde_json::Value::String(c));
        }
        let doc: serde_json::Value = serde_json::from_str(&self.config).ok()?;
        let in_config = doc.get("config").and_then(|mut node| {
            for part in key.split('.') {
                node = node.get(part)?;
            }
            Some(node.clone())
        });
        in_config.or_else(|| {
            let point: serde_json::Value = serde_json::from_str(&self.point).ok()?;
            point.get(key).cloned()
        })
    }
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
