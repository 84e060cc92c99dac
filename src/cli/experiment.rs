//! `cortexfit experiment …`: families of fits.

use std::path::PathBuf;

use anyhow::Context;

use crate::experiment::fits::{Setup, config_source};
use crate::experiment::spec::{Condition, ImageCount, parse_list};
use crate::experiment::{DataEfficiency, run_data_efficiency};
use crate::sweep::engine::Engine;
use crate::sweep::engine::local::LocalEngine;
use crate::sweep::engine::slurm::SlurmEngine;
use crate::sweep::plan::ResourcesRecord;

use super::sweep::EngineKind;

/// Experiments.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Performance against the number of training images, per condition (direct training,
    /// transferred core, goal-directed core), over seeds: results.csv and a figure.
    DataEfficiency(DataEfficiencyArgs),
}

/// Arguments of `cortexfit experiment data-efficiency`.
#[derive(clap::Args, Debug)]
pub struct DataEfficiencyArgs {
    /// Run configuration of the direct condition: a preset name (`lurz2020`) or a TOML file.
    #[arg(long, value_name = "FILE_OR_PRESET")]
    pub config: String,
    /// The dataset all fits are trained and scored on (FileTree folder or Sensorium .zip).
    #[arg(long, value_name = "DIR_OR_ZIP")]
    pub data: PathBuf,
    /// Training-image counts, comma-separated; `all` = every training image.
    #[arg(long, value_name = "LIST", default_value = "250,500,1000,all")]
    pub images: String,
    /// Conditions, comma-separated: direct, transfer, goal-directed.
    #[arg(long, value_name = "LIST", default_value = "direct,transfer")]
    pub conditions: String,
    /// Trained run whose core the `transfer` condition freezes and reuses.
    #[arg(long, value_name = "RUN")]
    pub core: Option<PathBuf>,
    /// Run configuration (preset or TOML file) of the `goal-directed` condition: its `[model]`
    /// has a goal-directed core (see `model::goal_directed`).
    #[arg(long, value_name = "FILE_OR_PRESET")]
    pub goal_directed_config: Option<String>,
    /// Transfer condition: update the core's batch-norm running statistics on the new data
    /// (the reference's behaviour) instead of keeping them frozen.
    #[arg(long)]
    pub update_bn: bool,
    /// Seeds, comma-separated (model initialisation and training-image subset).
    #[arg(long, value_name = "LIST", default_value = "1")]
    pub seeds: String,
    /// Override a config key of every fit (`section.key=value`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Wall-clock budget per fit.
    #[arg(long, value_name = "M")]
    pub max_minutes: Option<f64>,
    /// Worker threads of each fit (default: all cores split between the fits running at once; with
    /// `--engine slurm` the CPUs of each array task, default 1).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where the fits run (as `cortexfit sweep run`): `local` (this machine, waits for the end)
    /// or `slurm` (one job array; run the command again once it ended to collect the results).
    #[arg(long, value_enum, default_value = "local")]
    pub engine: EngineKind,
    /// `--engine local`: fits at a time (default: one per core, or as many as `--threads` each
    /// fit on the cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// The results store of the fits: an SQLite file (`sqlite:PATH` or a path) or
    /// `postgres://…` (default: the one the experiment was run with, else OUT/results.sqlite).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Output folder: a sweep folder (plan.json, runs/<id>/, results.sqlite, logs/) with
    /// `results.csv`, the figure and a link `OUT/<condition>_<images>_s<seed>` to each fit.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::DataEfficiency(args) => data_efficiency(args),
    }
}

fn absolute(p: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

fn data_efficiency(args: DataEfficiencyArgs) -> anyhow::Result<()> {
    let conditions: Vec<Condition> =
        parse_list(&args.conditions, "--conditions").map_err(anyhow::Error::msg)?;
    let images: Vec<ImageCount> =
        parse_list(&args.images, "--images").map_err(anyhow::Error::msg)?;
    let seeds: Vec<u64> = parse_list(&args.seeds, "--seeds").map_err(anyhow::Error::msg)?;
    if conditions.contains(&Condition::Transfer) && args.core.is_none() {
        anyhow::bail!("--conditions includes `transfer`: give the source run with --core RUN");
    }
    if conditions.contains(&Condition::GoalDirected) && args.goal_directed_config.is_none() {
        anyhow::bail!(
            "--conditions includes `goal-directed`: give its run configuration with \
             --goal-directed-config FILE (a config whose [model] core is goal-directed)"
        );
    }
    let config = config_source(&args.config)?;
    let goal_directed_config = args
        .goal_directed_config
        .as_deref()
        .map(config_source)
        .transpose()?;
    let data = absolute(&args.data)?;
    let core = args.core.as_deref().map(absolute).transpose()?;
    let out = absolute(&args.out)?;
    let identity = serde_json::json!({
        "experiment": "data-efficiency",
        "data": data.display().to_string(),
        "config": format!("{config:?}"),
        "goal_directed_config": goal_directed_config.as_ref().map(|c| format!("{c:?}")),
        "core": core.as_ref().map(|c| c.display().to_string()),
        "update_bn": args.update_bn,
        "overrides": args.overrides,
        "max_minutes": args.max_minutes,
    });
    let resources = ResourcesRecord {
        cpus: args.threads.unwrap_or(1),
        memory: None,
        time: None,
        partition: None,
        gpus: 0,
    };
    let mut engine: Box<dyn Engine> = match args.engine {
        EngineKind::Local => {
            // `--threads` is per fit here; without `--jobs`, as many fits as fit on the cores.
            let jobs = match (args.jobs, args.threads) {
                (None, Some(t)) => Some(
                    (std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
                        / t.max(1))
                    .max(1),
                ),
                (jobs, _) => jobs,
            };
            Box::new(LocalEngine::new(
                jobs,
                args.threads.map(|t| t * jobs.unwrap_or(1)),
            )?)
        }
        EngineKind::Slurm => {
            anyhow::ensure!(
                args.jobs.is_none(),
                "--jobs is for --engine local; on SLURM every fit is an array task"
            );
            Box::new(SlurmEngine {
                resources: resources.clone(),
                name: "data-efficiency".into(),
            })
        }
    };
    let setup = Setup {
        data,
        config,
        goal_directed_config,
        core,
        update_bn: args.update_bn,
        overrides: args.overrides,
        max_minutes: args.max_minutes,
        resources,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let url = super::sweep::store_url(args.store.as_deref(), &out);
    crate::io::atomic_write(&out.join("store.txt"), url.as_bytes())?;
    let exe = std::env::current_exe().context("locating the cortexfit executable")?;
    let spec = DataEfficiency {
        conditions,
        images,
        seeds,
        out: out.clone(),
        identity,
    };
    run_data_efficiency(&spec, &setup, engine.as_mut(), &exe, &url, &mut |line| {
        eprintln!("{line}")
    })?;
    eprintln!(
        "results: {}  figure: {}",
        out.join("results.csv").display(),
        out.join("data_efficiency.png").display()
    );
    Ok(())
}
