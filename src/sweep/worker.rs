//! Running one fit of a sweep where an engine placed it (a local child process or a SLURM array
//! task): mark it running, train it (or continue it from its last checkpoint), record the
//! outcome in the store.
//!
//! Each fit's run directory is `SWEEP/runs/<id>/`, an ordinary run or ensemble (every command
//! that takes `--run` reads it; an ensemble fit's metrics are in `ensemble_summary.json`, see
//! [`super::ensemble`]) plus `fit.json` (the fit's record as it started) and, for a failed fit,
//! `error.txt`. These files make the run directories the source of truth: [`rebuild`] recreates
//! the store from them.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::ensemble::{self, EnsembleSummary};
use super::plan::{Plan, PlannedFit, VERSION};
use super::spec::FitKind;
use super::store::{FitRecord, MetricValue, Status, Store};
use crate::run::evaluate::TierSummary;
use crate::run::{Progress, RunDir, RunOptions, Summary};

/// What a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The fit was already finished (by anyone): nothing was done.
    AlreadyFinished,
    /// The fit was trained (or continued) to its end.
    Finished,
    /// The fit failed; its error is in the store.
    Failed,
}

/// The run directory of a fit.
pub fn run_dir(sweep_dir: &Path, id: &str) -> PathBuf {
    sweep_dir.join("runs").join(id)
}

/// The record of a planned fit before it runs.
pub fn base_record(sweep_dir: &Path, plan: &Plan, fit: &PlannedFit, status: Status) -> FitRecord {
    FitRecord {
        id: fit.id.clone(),
        sweep: plan.name.clone(),
        label: fit.label.clone(),
        kind: fit.kind(plan).to_string(),
        config: fit.canonical.clone(),
        point: serde_json::Value::Object(fit.point.clone()).to_string(),
        status,
        run_dir: run_dir(sweep_dir, &fit.id).display().to_string(),
        host: None,
        job: None,
        version: VERSION.to_string(),
        submitted_at: None,
        started_at: None,
        finished_at: None,
        seconds: None,
        epochs: None,
        best_epoch: None,
        best_validation_correlation: None,
        error: None,
        metrics: Vec::new(),
    }
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// How this process is known to its engine: `slurm:JOB_TASK` inside a SLURM array task, else
/// `local:HOST:PID`.
pub fn job_name() -> String {
    match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(job), Ok(task)) => format!("slurm:{job}_{task}"),
        _ => format!("local:{}:{}", host_name(), std::process::id()),
    }
}

/// Runs the fit `id` of the sweep in `sweep_dir` and records it in `store`.
pub fn run_fit(
    sweep_dir: &Path,
    plan: &Plan,
    id: &str,
    store: &mut dyn Store,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Outcome> {
    let fit = plan.fit(id)?;
    let dir = run_dir(sweep_dir, id);
    let previous = store.get(id)?;
    let mut record = base_record(sweep_dir, plan, fit, Status::Running);
    record.host = Some(host_name());
    record.job = Some(job_name());
    record.submitted_at = previous.as_ref().and_then(|p| p.submitted_at);
    record.started_at = Some(super::store::record::now());
    if !store.start(&record)? {
        return Ok(Outcome::AlreadyFinished);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic_write(
        &dir.join("fit.json"),
        serde_json::to_string_pretty(&record)?.as_bytes(),
    )?;
    let _ = std::fs::remove_file(dir.join("error.txt"));
    let result = match &fit.error {
        Some(message) => Err(anyhow::anyhow!("{message}")),
        None if fit.kind(plan) == FitKind::Ensemble.name() => {
            ensemble::form_and_evaluate(plan, fit, &dir, store, options)
                .map(|s| fill_from_ensemble(&mut record, &s))
        }
        None => train_or_continue(plan, fit, &dir, options, progress)
            .map(|s| fill_from_summary(&mut record, &s)),
    };
    record.finished_at = Some(super::store::record::now());
    match result {
        Ok(()) => {
            record.status = Status::Finished;
            store.put(&record)?;
            Ok(Outcome::Finished)
        }
        Err(e) => {
            let message = format!("{e:#}");
            crate::io::atomic_write(&dir.join("error.txt"), message.as_bytes())?;
            record.status = Status::Failed;
            record.error = Some(message);
            store.put(&record)?;
            Ok(Outcome::Failed)
        }
    }
}

/// Trains the fit, continues it from its last checkpoint, or reads its finished summary.
fn train_or_continue(
    plan: &Plan,
    fit: &PlannedFit,
    dir: &Path,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    let run = RunDir::new(dir);
    if run.summary().exists() {
        return read_summary(&run.summary());
    }
    if run.current_checkpoint()?.is_some() {
        return crate::run::resume(dir, options, progress);
    }
    // Killed before its first checkpoint (or never started): start from scratch, keeping only
    // the sweep's own files.
    for name in [
        "config.toml",
        "log.jsonl",
        "state",
        "transferred_core.safetensors",
        "neurons",
    ] {
        let path = dir.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        } else if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    match plan.transfer_request(fit, dir) {
        Some(request) => crate::run::transfer::transfer(&request, options, progress),
        None => {
            let config = fit
                .config
                .clone()
                .context("the fit's configuration was resolved when planned")?;
            crate::run::train(config, dir, options, progress)
        }
    }
}

fn read_summary(path: &Path) -> anyhow::Result<Summary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run summary", path.display()))
}

/// Copies a finished run's numbers into its record.
pub fn fill_from_summary(record: &mut FitRecord, summary: &Summary) {
    record.seconds = Some(summary.seconds);
    record.epochs = Some(summary.epochs as i64);
    record.best_epoch = Some(summary.best_epoch as i64);
    record.best_validation_correlation = Some(summary.best_validation_correlation);
    fill_metrics(record, &summary.validation, &summary.test);
}

/// Copies a formed ensemble's metrics into its record (no training columns: its members have
/// them).
pub fn fill_from_ensemble(record: &mut FitRecord, summary: &EnsembleSummary) {
    fill_metrics(record, &summary.validation, &summary.test);
}

fn fill_metrics(record: &mut FitRecord, validation: &[TierSummary], test: &[TierSummary]) {
    record.error = None;
    record.metrics.clear();
    for t in validation.iter().chain(test) {
        let values = [
            ("single_trial_correlation", Some(t.single_trial_correlation)),
            ("correlation_to_average", t.correlation_to_average),
            ("oracle", t.oracle),
            ("fraction_oracle", t.fraction_oracle),
            ("feve", t.feve),
        ];
        for (metric, value) in values {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                record.metrics.push(MetricValue {
                    tier: t.tier.clone(),
                    data_key: t.data_key.clone(),
                    metric: metric.into(),
                    value: v,
                });
            }
        }
    }
}

/// Recreates the store's rows from the run directories of `sweep_dir` (`runs/*/fit.json`,
/// `summary.json`, `error.txt`); returns how many fits were recorded.
pub fn rebuild(sweep_dir: &Path, store: &mut dyn Store) -> anyhow::Result<usize> {
    let runs = sweep_dir.join("runs");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .with_context(|| format!("listing {}", runs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("fit.json").is_file())
        .collect();
    dirs.sort();
    let mut records = Vec::new();
    for dir in dirs {
        let path = dir.join("fit.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut record: FitRecord = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a fit record", path.display()))?;
        record.run_dir = dir.display().to_string();
        let summary = RunDir::new(&dir).summary();
        let ensemble_summary = dir.join(ensemble::SUMMARY_FILE);
        if ensemble_summary.exists() {
            fill_from_ensemble(&mut record, &ensemble::read(&ensemble_summary)?);
            record.status = Status::Finished;
        } else if summary.exists() {
            fill_from_summary(&mut record, &read_summary(&summary)?);
            record.status = Status::Finished;
        } else if let Ok(error) = std::fs::read_to_string(dir.join("error.txt")) {
            record.status = Status::Failed;
            record.error = Some(error);
        }
        records.push(record);
    }
    for r in &records {
        store.put(r)?;
    }
    Ok(records.len())
}
