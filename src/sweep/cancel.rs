//! `cortexfit sweep cancel`: stop a sweep's fits wherever they run and record them.
//!
//! SLURM: every job array the sweep submitted is cancelled (`scancel`). This machine: the
//! `cortexfit sweep run` process and its workers get SIGTERM ([`super::engine::local::stop`]).
//! Every fit of the plan that was queued or running is then recorded as `failed` with the
//! message `cancelled by cortexfit sweep cancel (JOB)` (unless it finished meanwhile); its run
//! directory keeps its checkpoints. A later `cortexfit sweep run` leaves cancelled fits alone,
//! like other failed fits; `cortexfit sweep retry` runs them again, continuing each from its
//! last checkpoint.

use std::path::Path;
use std::time::Duration;

use super::engine::local::{self, process_alive, terminate};
use super::engine::slurm;
use super::plan::Plan;
use super::store::{self, Status, record::now};
use super::worker::{host_name, run_dir};

/// What a cancel did.
#[derive(Debug, Clone, Default)]
pub struct CancelReport {
    /// SLURM job arrays cancelled.
    pub slurm_jobs: Vec<String>,
    /// Processes of this machine stopped.
    pub processes: Vec<u32>,
    /// Fits recorded as cancelled: (id, label).
    pub fits: Vec<(String, String)>,
    /// Fits left queued or running because their job is out of reach (another machine's
    /// local run): (id, job).
    pub out_of_reach: Vec<(String, String)>,
}

/// The message of a cancelled fit.
pub fn cancelled_message(job: &str) -> String {
    format!("cancelled by `cortexfit sweep cancel` ({job})")
}

/// Cancels the sweep in `sweep_dir` whose store is `store_url`.
pub fn cancel(sweep_dir: &Path, store_url: &str) -> anyhow::Result<CancelReport> {
    let plan = Plan::read(sweep_dir)?;
    let mut report = CancelReport {
        slurm_jobs: slurm::cancel(sweep_dir)?,
        processes: local::stop(sweep_dir)?,
        ..Default::default()
    };
    let mut store = store::open(store_url)?;
    let here = format!("local:{}:", host_name());
    for fit in &plan.fits {
        let Some(mut record) = store.get(&fit.id)? else {
            continue;
        };
        if !matches!(record.status, Status::Submitted | Status::Running) {
            continue;
        }
        let job = record.job.clone().unwrap_or_default();
        if let Some(pid) = job.strip_prefix(&here).and_then(|p| p.parse::<u32>().ok()) {
            // A worker `stop` did not know (started by another `sweep run` of this sweep).
            if process_alive(pid) && local::is_sweep_process(pid) {
                anyhow::ensure!(
                    terminate(pid, Duration::from_secs(30))?,
                    "the worker of fit {} (process {pid}) did not stop within 30 s",
                    fit.id
                );
                report.processes.push(pid);
            }
        } else if let Some(task) = job.strip_prefix("slurm:") {
            let array = task.split('_').next().unwrap_or(task);
            if !report.slurm_jobs.iter().any(|j| j == array) {
                report.out_of_reach.push((fit.id.clone(), job));
                continue;
            }
        } else if !job.is_empty() {
            report.out_of_reach.push((fit.id.clone(), job));
            continue;
        }
        let message = cancelled_message(if job.is_empty() { "not started" } else { &job });
        record.status = Status::Failed;
        record.error = Some(message.clone());
        record.finished_at = Some(now());
        if store.put_unless(&record, &[Status::Finished])? {
            let dir = run_dir(sweep_dir, &fit.id);
            if dir.is_dir() {
                crate::io::atomic_write(&dir.join("error.txt"), message.as_bytes())?;
            }
            report.fits.push((fit.id.clone(), fit.label.clone()));
        }
    }
    Ok(report)
}
