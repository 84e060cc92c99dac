//! Feedback while a run trains: a progress bar on the terminal and a per-epoch JSON-lines log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

/// One line of `log.jsonl`: what an epoch did (epoch 0 is the evaluation before training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number (1-based; 0 = the untrained model).
    pub epoch: usize,
    /// Early-stopping round (0-based).
    pub round: usize,
    /// Learning rate used during this epoch.
    pub lr: f64,
    /// Mean Poisson loss per trial (summed over neurons) over the epoch's training batches.
    pub train_loss: Option<f64>,
    /// Mean of the optimized objective (scaled loss + regularizers) per batch.
    pub train_objective: Option<f64>,
    /// Mean validation single-trial correlation over all neurons of all datasets (eval mode).
    pub val_corr: Option<f64>,
    /// The validation correlation beat the best so far (this state is the new best).
    pub improved: bool,
    /// The plateau scheduler cut the LR after this evaluation.
    pub lr_cut: bool,
    /// Seconds spent training this epoch.
    pub train_seconds: f64,
    /// Seconds spent on the validation pass.
    pub eval_seconds: f64,
    /// Wall-clock seconds since the run started (over resumes).
    pub elapsed_seconds: f64,
}

/// Appends epoch records to `log.jsonl` (one JSON object per line, flushed per epoch).
pub struct EpochLog {
    path: PathBuf,
}

impl EpochLog {
    /// Opens (creating if needed) the log of a run directory.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Keeps only the records up to `epoch` (used on resume so that an epoch that was logged
    /// but not checkpointed before a crash is not listed twice).
    pub fn truncate_after(&self, epoch: usize) -> anyhow::Result<()> {
        let records = Self::read(&self.path).unwrap_or_default();
        let mut text = String::new();
        for r in records.iter().filter(|r| r.epoch <= epoch) {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        crate::io::atomic_write(&self.path, text.as_bytes())
    }

    /// Appends one record.
    pub fn append(&self, record: &EpochRecord) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening the epoch log {}", self.path.display()))?;
        let line = serde_json::to_string(record)?;
        writeln!(file, "{line}")
            .and_then(|_| file.sync_data())
            .with_context(|| format!("writing the epoch log {}", self.path.display()))
    }

    /// Reads every record of a log.
    pub fn read(path: &Path) -> anyhow::Result<Vec<EpochRecord>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the epoch log {}", path.display()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| {
                    format!("{} line {}: not an epoch record", path.display(), i + 1)
                })
            })
            .collect()
    }
}

/// The terminal side: a bar per epoch (batches), with loss, last validation correlation,
/// learning rate and time left; silent with `--quiet`.
pub struct Progress {
    quiet: bool,
    bar: Option<ProgressBar>,
    /// LR, last validation correlation and budget of the current epoch.
    base_message: String,
}

impl Progress {
    /// `quiet` turns off everything on the terminal (the log file is still written).
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: None,
            base_message: String::new(),
        }
    }

    /// Prints a line (above the bar when one is shown).
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    /// Starts the bar of one epoch.
    pub fn start_epoch(
        &mut self,
        epoch: usize,
        max_epochs: usize,
        batches: usize,
        lr: f64,
        last_val_corr: Option<f64>,
        budget_left: Option<Duration>,
    ) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} batches {msg} ({elapsed} / eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {epoch}/{max_epochs}"));
        let val = last_val_corr.map_or("–".to_string(), |v| format!("{v:.4}"));
        let budget = budget_left.map_or(String::new(), |d| {
            format!(" budget left {:.1} min", d.as_secs_f64() / 60.0)
        });
        self.bar = Some(bar);
        self.base_message = format!("lr {lr:.2e} val corr {val}{budget}");
        self.set_loss(None);
    }

    /// Advances the bar by one batch with its loss.
    pub fn batch(&mut self, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.set_loss(Some(loss));
    }

    fn set_loss(&self, loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            let loss = loss.map_or("–".to_string(), |l| format!("{l:.4}"));
            bar.set_message(format!("loss {loss} {}", self.base_message));
        }
    }

    /// Ends the epoch's bar.
    pub fn finish_epoch(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
