//! `cortexfit sweep`: plan, run, watch, cancel and retry many fits described by a sweep spec.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::backend::DeviceKind;
use crate::run::RunOptions;
use crate::sweep::engine::local::LocalEngine;
use crate::sweep::engine::slurm::{self, SlurmEngine};
use crate::sweep::engine::{Engine, job_alive};
use crate::sweep::plan::VERSION;
use crate::sweep::store::{self, Status};
use crate::sweep::{Outcome, Plan, SweepSpec};

use super::progress::TerminalProgress;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the fits of a sweep spec: content-hash id, axis values, state in the store.
    Plan(PlanArgs),
    /// Run every fit of the spec that is neither finished nor running (on this machine or SLURM).
    Run(RunArgs),
    /// The state of each fit (store and SLURM queue), with counts.
    Status(DirArgs),
    /// Stop the sweep's fits (`scancel` its SLURM job arrays; SIGTERM to its local run and
    /// workers) and record them as failed, "cancelled" (`sweep retry` continues them).
    Cancel(DirArgs),
    /// Submit the fits that failed (and those whose job vanished) again.
    Retry(RunArgs),
    /// Run one fit of a planned sweep and record it (what the engines start; not for daily use).
    Worker(WorkerArgs),
}

/// Where a sweep lives.
#[derive(clap::Args, Debug)]
pub struct Location {
    /// The sweep spec (TOML; see README "Running many fits"). `status` and `cancel` take
    /// `--dir DIR` instead (e.g. an `experiment data-efficiency --out` folder).
    #[arg(value_name = "SPEC", required_unless_present = "dir")]
    pub spec: Option<PathBuf>,
    /// The sweep folder (default: next to the spec, named after the sweep).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The results store: an SQLite file (`sqlite:PATH` or a path) or `postgres://…`
    /// (default: the one the sweep was run with, else DIR/results.sqlite).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub location: Location,
    /// Print the plan as JSON (ids, axis values, resolved configs) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub location: Location,
    /// Where the fits run: `local` (this machine, waits for the end) or `slurm` (one job array).
    #[arg(long, value_enum, default_value = "local")]
    pub engine: EngineKind,
    /// `--engine local`: fits at a time (default: one per thread, each fit one thread — the
    /// most fits per hour; fewer fits than threads share them out).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// `--engine local`: threads in all, split between the jobs (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct DirArgs {
    #[command(flatten)]
    pub location: Location,
}

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The sweep folder (holds plan.json).
    #[arg(long, value_name = "DIR")]
    pub sweep: PathBuf,
    /// The fit's id.
    #[arg(long, value_name = "ID")]
    pub fit: String,
    /// The results store (default: DIR/results.sqlite).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Worker threads for the CPU backend.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Local,
    Slurm,
}

impl Location {
    fn read(&self) -> anyhow::Result<(SweepSpec, PathBuf)> {
        let path = self
            .spec
            .as_ref()
            .context("give the sweep spec (SPEC): this command plans from it")?;
        let spec = SweepSpec::read(path)?;
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => path.parent().unwrap_or(Path::new("")).join(&spec.name),
        };
        let dir =
            std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))?;
        Ok((spec, dir))
    }

    /// The sweep folder: `--dir`, else the one the spec names.
    fn folder(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(d) => std::path::absolute(d).with_context(|| format!("resolving {}", d.display())),
            None => Ok(self.read()?.1),
        }
    }

    fn store_url(&self, dir: &Path) -> String {
        store_url(self.store.as_deref(), dir)
    }
}

/// `--store` if given, else the store the sweep was last run with (`DIR/store.txt`), else the
/// sweep's SQLite file.
pub fn store_url(given: Option<&str>, dir: &Path) -> String {
    if let Some(s) = given {
        return s.to_string();
    }
    std::fs::read_to_string(dir.join("store.txt"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| store::default_url(dir))
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Plan(args) => plan(args),
        Command::Run(args) => submit(args, false),
        Command::Retry(args) => submit(args, true),
        Command::Status(args) => status(args),
        Command::Cancel(args) => cancel(args),
        Command::Worker(args) => worker(args),
    }
}

fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let (spec, dir) = args.location.read()?;
    let plan = Plan::make(&spec)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let url = args.location.store_url(&dir);
    let sqlite_missing = url.starts_with("sqlite:")
        && !dir.join("results.sqlite").exists()
        && url == store::default_url(&dir);
    let mut store = if sqlite_missing {
        None
    } else {
        Some(store::open(&url)?)
    };
    let mut table = crate::report::Table::new(&["id", "kind", "fit", "state"]);
    for fit in &plan.fits {
        let state = match &fit.error {
            Some(e) => format!("config error: {}", e.lines().next().unwrap_or_default()),
            None => match store
                .as_mut()
                .map(|s| s.get(&fit.id))
                .transpose()?
                .flatten()
            {
                Some(r) if r.version != VERSION => {
                    format!("{} (made by cortexfit {})", r.status, r.version)
                }
                Some(r) => r.status.to_string(),
                None => "new".into(),
            },
        };
        let label = if fit.members.is_empty() {
            fit.label.clone()
        } else {
            format!("{} (members {})", fit.label, fit.members.join(", "))
        };
        table.row(vec![
            fit.id.clone(),
            fit.kind(&plan).to_string(),
            label,
            state,
        ]);
    }
    println!(
        "sweep `{}`: {} fits ({}), folder {}",
        plan.name,
        plan.fits.len(),
        plan.kind,
        dir.display()
    );
    print!("{}", table.render());
    Ok(())
}

fn submit(args: RunArgs, retry: bool) -> anyhow::Result<()> {
    let (spec, dir) = args.location.read()?;
    // The engine first: options it refuses are refused before anything is written.
    let mut engine: Box<dyn Engine> = match args.engine {
        EngineKind::Local => Box::new(LocalEngine::new(args.jobs, args.threads)?),
        EngineKind::Slurm => {
            anyhow::ensure!(
                args.jobs.is_none() && args.threads.is_none(),
                "--jobs and --threads are for --engine local; SLURM fits get `[resources]` of the spec"
            );
            Box::new(SlurmEngine {
                resources: (&spec.resources).into(),
                name: spec.name.clone(),
            })
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let url = args.location.store_url(&dir);
    crate::io::atomic_write(&dir.join("store.txt"), url.as_bytes())?;
    let exe = std::env::current_exe().context("finding the cortexfit executable")?;
    let report = crate::sweep::submit(&spec, &dir, &url, engine.as_mut(), &exe, retry)?;
    eprintln!(
        "sweep `{}`: {} fits; {} finished before, {} queued or running, {} failed before{}; \
         submitting {}",
        spec.name,
        report.planned,
        report.finished.len(),
        report.in_progress.len(),
        report.failed.len(),
        if retry || report.failed.is_empty() {
            String::new()
        } else {
            " (`cortexfit sweep retry` runs them again)".into()
        },
        report.submitted.len()
    );
    eprintln!("{}", report.message);
    if args.engine == EngineKind::Local && !report.submitted.is_empty() {
        let mut store = store::open(&url)?;
        let failed: Vec<String> = report
            .submitted
            .iter()
            .filter_map(|id| store.get(id).ok().flatten())
            .filter(|r| r.status == Status::Failed)
            .map(|r| format!("{} ({}): {}", r.id, r.label, r.error.unwrap_or_default()))
            .collect();
        if !failed.is_empty() {
            anyhow::bail!("{} fits failed:\n{}", failed.len(), failed.join("\n"));
        }
    }
    Ok(())
}

fn status(args: DirArgs) -> anyhow::Result<()> {
    let dir = args.location.folder()?;
    let plan = Plan::read(&dir)?;
    let mut store = store::open(&args.location.store_url(&dir))?;
    let mut table =
        crate::report::Table::new(&["id", "kind", "fit", "status", "job", "host", "note"]);
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for fit in &plan.fits {
        let record = store.get(&fit.id)?;
        let (status, job, host, mut note) = match &record {
            None => (
                "not submitted".to_string(),
                String::new(),
                String::new(),
                String::new(),
            ),
            Some(r) => {
                let mut note = String::new();
                let mut status = r.status.to_string();
                if matches!(r.status, Status::Submitted | Status::Running)
                    && let Some(job) = &r.job
                {
                    if let Some(id) = job.strip_prefix("slurm:") {
                        match slurm::task_state(id) {
                            Ok(Some(state)) => note = format!("SLURM: {state}"),
                            Ok(None) => status = format!("{status}, job gone"),
                            Err(e) => note = format!("{e:#}"),
                        }
                    } else if job_alive(job) == Some(false) {
                        status = format!("{status}, worker gone");
                    }
                }
                if let Some(e) = &r.error {
                    note = e.lines().next().unwrap_or_default().to_string();
                }
                (
                    status,
                    r.job.clone().unwrap_or_default(),
                    r.host.clone().unwrap_or_default(),
                    note,
                )
            }
        };
        if let Some(r) = &record
            && r.version != VERSION
        {
            note = format!("made by cortexfit {} (this is {VERSION}) {note}", r.version);
        }
        *counts.entry(status.clone()).or_default() += 1;
        table.row(vec![
            fit.id.clone(),
            fit.kind(&plan).to_string(),
            fit.label.clone(),
            status,
            job,
            host,
            note,
        ]);
    }
    print!("{}", table.render());
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{} fits: {}", plan.fits.len(), counts.join(", "));
    Ok(())
}

fn cancel(args: DirArgs) -> anyhow::Result<()> {
    let dir = args.location.folder()?;
    let report = crate::sweep::cancel::cancel(&dir, &args.location.store_url(&dir))?;
    if !report.slurm_jobs.is_empty() {
        eprintln!(
            "cancelled SLURM job arrays {}",
            report.slurm_jobs.join(", ")
        );
    }
    if !report.processes.is_empty() {
        let pids: Vec<String> = report.processes.iter().map(u32::to_string).collect();
        eprintln!("stopped processes {} on this machine", pids.join(", "));
    }
    for (id, job) in &report.out_of_reach {
        eprintln!("fit {id} runs as {job}, out of reach from here: cancel it there");
    }
    if report.fits.is_empty() {
        eprintln!("sweep in {}: no fit was queued or running", dir.display());
    } else {
        eprintln!(
            "{} fits cancelled (recorded as failed; they keep their checkpoints, `cortexfit \
             sweep retry` continues them): {}",
            report.fits.len(),
            report
                .fits
                .iter()
                .map(|(id, label)| format!("{id} ({label})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    crate::backend::init_threads(args.threads)?;
    let options = RunOptions {
        device: args.device.device()?,
    };
    let plan = Plan::read(&args.sweep)?;
    let url = store_url(args.store.as_deref(), &args.sweep);
    let mut store = store::open(&url)?;
    let mut progress = TerminalProgress::new(false);
    eprintln!(
        "fit {} of sweep `{}` on {}",
        args.fit,
        plan.name,
        crate::sweep::worker::host_name()
    );
    match crate::sweep::run_fit(
        &args.sweep,
        &plan,
        &args.fit,
        store.as_mut(),
        &options,
        &mut progress,
    )? {
        Outcome::AlreadyFinished => {
            eprintln!("fit {} was already finished: nothing to do", args.fit)
        }
        Outcome::Finished => eprintln!("fit {} finished", args.fit),
        Outcome::Failed => {
            let error = store
                .get(&args.fit)?
                .and_then(|r| r.error)
                .unwrap_or_default();
            anyhow::bail!("fit {} failed: {error}", args.fit);
        }
    }
    Ok(())
}
