//! Engines: where a sweep's fits run. Each one starts `cortexfit sweep worker` once per fit
//! ([`super::worker`]), which records the fit in the store; an engine only places the workers.
//!
//! - [`local`]: N fits at a time on this machine (child processes, threads split between them).
//! - [`slurm`]: one SLURM job array per submission (`sbatch`), one array task per fit,
//!   requeueable; state through `squeue`, cancelling through `scancel`.

pub mod local;
pub mod slurm;

use std::path::{Path, PathBuf};

/// Where the workers of a submission run, and what they need to find the sweep.
pub struct WorkerContext<'a> {
    /// The `cortexfit` executable the workers run (normally `std::env::current_exe()`).
    pub exe: &'a Path,
    /// The sweep folder (plan.json, runs/, logs/).
    pub sweep_dir: &'a Path,
    /// The results store's URL, passed to every worker.
    pub store: &'a str,
}

impl WorkerContext<'_> {
    /// The console log of a fit's worker (`SWEEP/logs/<id>.log`, appended to by every attempt).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.sweep_dir.join("logs").join(format!("{id}.log"))
    }
}

/// What an engine did with a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The engine's job name of each submitted fit, in the order given (`slurm:JOB_TASK`), or
    /// none when the engine ran them itself (the workers record their own).
    pub jobs: Vec<Option<String>>,
    /// One line for the user (`submitted job array 42 (6 tasks)`, `6 fits ran: 5 finished, …`).
    pub message: String,
}

/// A place to run workers.
pub trait Engine {
    /// `local` or `slurm`.
    fn name(&self) -> &'static str;
    /// Runs (local: to the end) or queues (slurm) one worker per fit id; the workers start
    /// once the SLURM jobs `after` ended (the local engine's earlier rounds have ended when it
    /// returns, so it has nothing to wait for).
    fn submit(
        &mut self,
        ctx: &WorkerContext<'_>,
        ids: &[String],
        after: &[String],
    ) -> anyhow::Result<Submission>;
}

/// Whether the job recorded with a fit is still queued or running, as far as this machine can
/// tell (`None` when it cannot: another host's local job, or SLURM unreachable).
pub fn job_alive(job: &str) -> Option<bool> {
    if let Some(rest) = job.strip_prefix("local:") {
        let (host, pid) = rest.rsplit_once(':')?;
        if host != super::worker::host_name() {
            return None;
        }
        return Some(Path::new("/proc").join(pid).exists());
    }
    if let Some(id) = job.strip_prefix("slurm:") {
        return slurm::task_state(id).ok().map(|s| s.is_some());
    }
    None
}
