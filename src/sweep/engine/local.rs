//! The local engine: `--jobs N` fits at a time on this machine, each a child process
//! (`cortexfit sweep worker`) with its share of the cores as threads.
//!
//! While it runs, `SWEEP/local-run.json` names the `cortexfit sweep run` process and the
//! workers it started, so `cortexfit sweep cancel` can stop them ([`stop`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{Engine, Submission, WorkerContext};
use crate::sweep::worker::host_name;

/// `SWEEP/local-run.json`: who runs the sweep's fits on this machine right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalRun {
    pub host: String,
    /// The `cortexfit sweep run` process.
    pub pid: u32,
    /// The workers it started (finished ones included).
    pub workers: Vec<u32>,
}

fn run_file(sweep_dir: &Path) -> PathBuf {
    sweep_dir.join("local-run.json")
}

impl LocalRun {
    fn write(&self, sweep_dir: &Path) -> anyhow::Result<()> {
        crate::io::atomic_write(
            &run_file(sweep_dir),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }
}

/// Whether process `pid` of this machine is alive (a zombie, dead but not yet waited for,
/// counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: `PID (NAME) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether process `pid` runs `… sweep …` (a `cortexfit sweep run` or `sweep worker`).
pub fn is_sweep_process(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).skip(1).any(|arg| arg == b"sweep"))
}

/// Asks process `pid` to stop (SIGTERM) and waits up to `wait` for it to be gone; whether it is.
pub fn terminate(pid: u32, wait: Duration) -> anyhow::Result<bool> {
    if !process_alive(pid) {
        return Ok(true);
    }
    #[cfg(unix)]
    {
        let pid_t = libc::pid_t::try_from(pid).context("a process id out of range")?;
        // SAFETY: kill(2) with a plain pid and signal number has no memory effects.
        unsafe {
            libc::kill(pid_t, libc::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    anyhow::bail!("stopping process {pid} is only supported on Unix");
    let start = Instant::now();
    while process_alive(pid) {
        if start.elapsed() > wait {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

/// Stops the local run of the sweep in `sweep_dir` (the `sweep run` process first, so it starts
/// no more workers, then its workers); returns the processes stopped. Nothing when the sweep
/// does not run on this machine.
pub fn stop(sweep_dir: &Path) -> anyhow::Result<Vec<u32>> {
    let path = run_file(sweep_dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    let run: LocalRun = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a local run record", path.display()))?;
    if run.host != host_name() {
        anyhow::bail!(
            "the sweep in {} runs on {} (its `cortexfit sweep run` is process {} there): cancel \
             it there",
            sweep_dir.display(),
            run.host,
            run.pid
        );
    }
    let mut stopped = Vec::new();
    for pid in std::iter::once(run.pid).chain(run.workers) {
        // A stale record's pid may belong to another process by now: only `cortexfit sweep …`.
        if process_alive(pid) && is_sweep_process(pid) {
            anyhow::ensure!(
                terminate(pid, Duration::from_secs(30))?,
                "process {pid} did not stop within 30 s of SIGTERM"
            );
            stopped.push(pid);
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(stopped)
}

/// Runs fits as child processes on this machine.
///
/// By default one fit per core, each with one thread: two lurz2020 fits side by side with one
/// thread each finished an epoch every 52 s each on a 2-core Zen 4 machine, against 29 s for one
/// fit with both threads, ~10 % more fits per hour (README, "Speed"). With fewer fits than
/// places, the threads are split between the fits there are.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    /// Fits at a time (`None`: one per thread of `threads`).
    pub jobs: Option<usize>,
    /// Threads in all, split between the fits that run at once.
    pub threads: usize,
}

impl LocalEngine {
    /// `jobs` fits at a time (default: one per thread); `threads` in all (default: every
    /// core), split evenly.
    pub fn new(jobs: Option<usize>, threads: Option<usize>) -> anyhow::Result<Self> {
        anyhow::ensure!(jobs != Some(0), "--jobs must be at least 1");
        anyhow::ensure!(threads != Some(0), "--threads must be at least 1");
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(Self { jobs, threads })
    }

    /// Fits at a time and threads per fit for `fits` fits.
    pub fn layout(&self, fits: usize) -> (usize, usize) {
        let jobs = self.jobs.unwrap_or(self.threads).min(fits).max(1);
        (jobs, (self.threads / jobs).max(1))
    }

    fn spawn(
        &self,
        ctx: &WorkerContext<'_>,
        id: &str,
        threads_per_fit: usize,
    ) -> anyhow::Result<Child> {
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
            .arg(threads_per_fit.to_string())
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

    fn submit(
        &mut self,
        ctx: &WorkerContext<'_>,
        ids: &[String],
        _after: &[String],
    ) -> anyhow::Result<Submission> {
        let mut record = LocalRun {
            host: host_name(),
            pid: std::process::id(),
            workers: Vec::new(),
        };
        record.write(ctx.sweep_dir)?;
        let (jobs, threads_per_fit) = self.layout(ids.len());
        let mut queue = ids.iter();
        let mut running: Vec<(String, Child)> = Vec::new();
        let mut failed_workers = Vec::new();
        loop {
            while running.len() < jobs {
                match queue.next() {
                    Some(id) => {
                        let child = self.spawn(ctx, id, threads_per_fit)?;
                        record.workers.push(child.id());
                        record.write(ctx.sweep_dir)?;
                        running.push((id.clone(), child));
                    }
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
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_file(run_file(ctx.sweep_dir));
        let mut message = format!(
            "{} fits ran on this machine ({} at a time, {} threads each)",
            ids.len(),
            jobs,
            threads_per_fit
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

#[cfg(test)]
mod tests {
    use super::LocalEngine;

    #[test]
    fn by_default_one_fit_per_thread_and_the_threads_split_between_fewer_fits() {
        let engine = LocalEngine::new(None, Some(4)).unwrap();
        assert_eq!(engine.layout(10), (4, 1));
        assert_eq!(engine.layout(2), (2, 2));
        assert_eq!(engine.layout(1), (1, 4));
        let engine = LocalEngine::new(Some(2), Some(4)).unwrap();
        assert_eq!(engine.layout(10), (2, 2));
        assert_eq!(engine.layout(1), (1, 4));
        let engine = LocalEngine::new(Some(3), Some(2)).unwrap();
        assert_eq!(
            engine.layout(5),
            (3, 1),
            "more jobs than threads: one thread each"
        );
        assert!(LocalEngine::new(Some(0), None).is_err());
        assert!(LocalEngine::new(None, Some(0)).is_err());
    }
}
