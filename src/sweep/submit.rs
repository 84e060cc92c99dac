//! `cortexfit sweep run`: plan the spec, leave alone what is finished or in progress, submit the
//! rest to an engine.

use std::path::Path;

use super::engine::{Engine, WorkerContext, job_alive};
use super::plan::Plan;
use super::spec::{FitKind, SweepSpec};
use super::store::{self, Status, record::now};
use super::worker::base_record;

/// What a submission found and did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Fits in the plan.
    pub planned: usize,
    /// Already finished (by this sweep or any other with the same fit): not submitted.
    pub finished: Vec<String>,
    /// Queued or running now: not submitted.
    pub in_progress: Vec<String>,
    /// Failed earlier: not submitted (`cortexfit sweep retry` submits them).
    pub failed: Vec<String>,
    /// Handed to the engine.
    pub submitted: Vec<String>,
    /// The engine's line.
    pub message: String,
}

/// Plans `spec` into `sweep_dir` (keeping fits of an earlier plan that the spec no longer has,
/// so their workers still find them) and submits every fit that is neither finished nor in
/// progress; failed fits too when `retry_failed`.
pub fn submit(
    spec: &SweepSpec,
    sweep_dir: &Path,
    store_url: &str,
    engine: &mut dyn Engine,
    exe: &Path,
    retry_failed: bool,
) -> anyhow::Result<SweepReport> {
    submit_plan(
        Plan::make(spec)?,
        sweep_dir,
        store_url,
        engine,
        exe,
        retry_failed,
    )
}

/// [`submit`] for a plan made otherwise (e.g. by `cortexfit experiment data-efficiency`).
pub fn submit_plan(
    mut plan: Plan,
    sweep_dir: &Path,
    store_url: &str,
    engine: &mut dyn Engine,
    exe: &Path,
    retry_failed: bool,
) -> anyhow::Result<SweepReport> {
    let new_ids: Vec<String> = plan.fits.iter().map(|f| f.id.clone()).collect();
    if sweep_dir.join("plan.json").exists() {
        let old = Plan::read(sweep_dir)?;
        for fit in old.fits {
            if !new_ids.contains(&fit.id) {
                plan.fits.push(fit);
            }
        }
    }
    plan.write(sweep_dir)?;
    let mut store = store::open(store_url)?;
    let mut report = SweepReport {
        planned: new_ids.len(),
        ..Default::default()
    };
    for id in &new_ids {
        match store.get(id)? {
            Some(r) if r.status == Status::Finished => report.finished.push(id.clone()),
            Some(r)
                if matches!(r.status, Status::Running | Status::Submitted)
                    && r.job.as_deref().map(job_alive) != Some(Some(false))
                    && r.job.is_some() =>
            {
                report.in_progress.push(id.clone())
            }
            Some(r) if r.status == Status::Failed && !retry_failed => {
                report.failed.push(id.clone())
            }
            _ => report.submitted.push(id.clone()),
        }
    }
    if report.submitted.is_empty() {
        report.message = "nothing to submit".into();
        return Ok(report);
    }
    let ctx = WorkerContext {
        exe,
        sweep_dir,
        store: store_url,
    };
    // Ensembles run after their members: a second round (local) or a second job array that
    // waits for the first and for members queued earlier (SLURM).
    let is_ensemble = |id: &String| {
        plan.fit(id)
            .is_ok_and(|f| f.kind(&plan) == FitKind::Ensemble.name())
    };
    let (ensembles, fits): (Vec<String>, Vec<String>) =
        report.submitted.iter().cloned().partition(is_ensemble);
    let mut messages = Vec::new();
    let mut after: Vec<String> = Vec::new();
    let mut earlier: Vec<String> = Vec::new();
    for id in &report.in_progress {
        if let Some(array) = store
            .get(id)?
            .and_then(|r| r.job)
            .as_deref()
            .and_then(slurm_job)
        {
            earlier.push(array);
        }
    }
    for round in [fits, ensembles] {
        if round.is_empty() {
            continue;
        }
        let submitted_at = now();
        let submission = engine.submit(&ctx, &round, &after)?;
        messages.push(submission.message.clone());
        for (id, job) in round.iter().zip(&submission.jobs) {
            let Some(job) = job else { continue };
            if let Some(array) = slurm_job(job)
                && !after.contains(&array)
            {
                after.push(array);
            }
            // A worker that already started (and maybe failed) since the submission wins.
            let touched = store
                .get(id)?
                .and_then(|r| r.started_at)
                .is_some_and(|t| t >= submitted_at);
            if touched {
                continue;
            }
            let fit = plan.fit(id)?;
            let mut record = base_record(sweep_dir, &plan, fit, Status::Submitted);
            record.job = Some(job.clone());
            record.submitted_at = Some(submitted_at);
            store.submitted(&record)?;
        }
        // Fits queued by an earlier submission: the ensembles wait for them too.
        for array in &earlier {
            if !after.contains(array) {
                after.push(array.clone());
            }
        }
    }
    report.message = messages.join("; ");
    Ok(report)
}

/// The SLURM job id of an engine job name `slurm:JOB_TASK`.
fn slurm_job(job: &str) -> Option<String> {
    let rest = job.strip_prefix("slurm:")?;
    Some(rest.split('_').next().unwrap_or(rest).to_string())
}
