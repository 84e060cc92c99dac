//! The local engine: `--jobs N` fits at a time on this machine, each a child process
//! (`cortexfit sweep worker`) with its share of the cores as threads.

use std::process::{Child, Command, Stdio};

use anyhow::Context;

use super::{Engine, Submission, WorkerContext};

/// Runs fits as child processes on this machine.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    /// Fits at a time (at least 1).
    pub jobs: usize,
    /// Threads per fit (the machine's cores split between the jobs when not given).
    pub threads_per_fit: usize,
}

impl LocalEngine {
    /// `jobs` fits at a time; `threads` in all (default: every core), split evenly.
    pub fn new(jobs: usize, threads: Option<usize>) -> anyhow::Result<Self> {
        anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
        let total = threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(Self {
            jobs,
            threads_per_fit: (total / jobs).max(1),
        })
    }

    fn spawn(&self, ctx: &WorkerContext<'_>, id: &str) -> anyhow::Result<Child> {
        let log_path = ctx.log_path(id);
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        Command::new(ctx.exe)
            .args(["sweep", "worker", "--sweep"])
            .arg(ctx.sweep_dir)
            .args(["--fit", id, "--store", ctx.store, "--threads"])
            .arg(self.threads_per_fit.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", ctx.exe.display()))
    }
}

impl Engine for LocalEngine {
    fn name(&self) -> &'static str {
        "local"
    }

    fn submit(&mut self, ctx: &WorkerContext<'_>, ids: &[String]) -> anyhow::Result<Submission> {
        let mut queue = ids.iter();
        let mut running: Vec<(String, Child)> = Vec::new();
        let mut failed_workers = Vec::new();
        loop {
            while running.len() < self.jobs {
                match queue.next() {
                    Some(id) => running.push((id.clone(), self.spawn(ctx, id)?)),
                    None => break,
                }
            }
            if running.is_empty() {
                break;
            }
            let mut still = Vec::new();
            for (id, mut child) in running {
                match child.try_wait()? {
                    Some(status) if !status.success() => failed_workers.push(id),
                    Some(_) => {}
                    None => still.push((id, child)),
                }
            }
            running = still;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let mut message = format!(
            "{} fits ran on this machine ({} at a time, {} threads each)",
            ids.len(),
            self.jobs,
            self.threads_per_fit
        );
        if !failed_workers.is_empty() {
            message.push_str(&format!(
                "; the worker of {} stopped with an error (see {}/logs/<id>.log)",
                failed_workers.join(", "),
                ctx.sweep_dir.display()
            ));
        }
        Ok(Submission {
            jobs: vec![None; ids.len()],
            message,
        })
    }
}
