//! The `[trainer]` section: the reference `standard_trainer` settings (REFERENCE.md §3.5).

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// Optimisation settings. Defaults are the Lurz 2020 `standard_trainer` values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    /// Initial Adam learning rate.
    pub lr: f64,
    /// Trials per training and evaluation batch.
    pub batch_size: usize,
    /// Maximum number of training epochs over all LR-decay rounds.
    pub max_epochs: usize,
    /// Evaluations without improvement of the validation correlation before a round ends.
    pub patience: usize,
    /// Absolute improvement of the validation correlation that counts as better.
    pub tolerance: f64,
    /// Early-stopping rounds; between rounds the best state is restored and the LR cut.
    pub lr_decay_steps: usize,
    /// Factor of each LR cut.
    pub lr_decay_factor: f64,
    /// The LR is never cut below this.
    pub min_lr: f64,
    /// Wall-clock budget in minutes: stop after the epoch that crosses it, restore the best state.
    pub max_minutes: Option<f64>,
    /// Batches per optimizer step (gradient accumulation); default: the number of datasets.
    pub loss_accum_batch_n: Option<usize>,
    /// Scale the summed Poisson loss by √(M/B), M = trials of all tiers of the dataset.
    pub scale_loss: bool,
    /// Set each readout's bias to the mean response of its first training batch before training
    /// (Lurz 2020); otherwise the bias keeps its initial value.
    pub init_bias_from_first_batch: bool,
    /// Adam's ε (PyTorch's default 1e-8; burn's own default is 1e-5).
    pub adam_epsilon: f64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            lr: 0.005,
            batch_size: 64,
            max_epochs: 200,
            patience: 5,
            tolerance: 1e-6,
            lr_decay_steps: 3,
            lr_decay_factor: 0.3,
            min_lr: 1e-4,
            max_minutes: None,
            loss_accum_batch_n: None,
            scale_loss: true,
            init_bias_from_first_batch: true,
            adam_epsilon: 1e-8,
        }
    }
}

impl TrainerConfig {
    /// The Sensorium 2022 baseline trainer: lr 0.009, batch 128, 4 decay rounds.
    pub fn sensorium2022() -> Self {
        Self {
            lr: 0.009,
            batch_size: 128,
            lr_decay_steps: 4,
            ..Self::default()
        }
    }

    /// Rejects values outside their domain and settings that contradict each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::invalid(
                    key,
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        positive("trainer.lr", self.lr)?;
        positive("trainer.min_lr", self.min_lr)?;
        positive("trainer.adam_epsilon", self.adam_epsilon)?;
        if self.min_lr > self.lr {
            return Err(ConfigError::invalid(
                "trainer.min_lr",
                format!(
                    "the LR floor ({}) is above the initial LR trainer.lr ({})",
                    self.min_lr, self.lr
                ),
            ));
        }
        if !(self.lr_decay_factor > 0.0 && self.lr_decay_factor < 1.0) {
            return Err(ConfigError::invalid(
                "trainer.lr_decay_factor",
                format!(
                    "must lie strictly between 0 and 1, got {}",
                    self.lr_decay_factor
                ),
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(ConfigError::invalid(
                "trainer.tolerance",
                format!("must be ≥ 0, got {}", self.tolerance),
            ));
        }
        for (key, v) in [
            ("trainer.batch_size", self.batch_size),
            ("trainer.max_epochs", self.max_epochs),
            ("trainer.patience", self.patience),
            ("trainer.lr_decay_steps", self.lr_decay_steps),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.loss_accum_batch_n == Some(0) {
            return Err(ConfigError::invalid(
                "trainer.loss_accum_batch_n",
                "must be at least 1 (leave it out for one step per round over the datasets)",
            ));
        }
        if let Some(m) = self.max_minutes
            && !(m.is_finite() && m > 0.0)
        {
            return Err(ConfigError::invalid(
                "trainer.max_minutes",
                format!("must be a positive number of minutes, got {m}"),
            ));
        }
        Ok(())
    }
}
