//! `cortexfit train`: fit a model, or continue a killed run with `--resume`.

use std::path::PathBuf;

use anyhow::Context;

use crate::backend::DeviceKind;
use crate::config::{PRESETS, RunConfig};
use crate::run::{RunOptions, resume, train};

use super::progress::TerminalProgress;

/// Arguments of `cortexfit train`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("source").args(["preset", "config", "resume"]).required(true))]
pub struct Args {
    /// Start from a published configuration.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: Option<String>,
    /// Start from a run configuration file (see `cortexfit config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A dataset (FileTree folder or Sensorium .zip); repeat for several scans/animals.
    #[arg(long, value_name = "DIR_OR_ZIP", conflicts_with = "resume")]
    pub data: Vec<PathBuf>,
    /// The run directory to create.
    #[arg(
        long,
        value_name = "RUN",
        required_unless_present = "resume",
        conflicts_with = "resume"
    )]
    pub out: Option<PathBuf>,
    /// Continue a killed run from its last completed epoch.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<PathBuf>,
    /// Override a config key (`section.key=value`, value parsed as TOML); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", conflicts_with = "resume")]
    pub overrides: Vec<String>,
    /// Wall-clock budget: stop after the epoch that crosses it and keep the best state.
    #[arg(long, value_name = "M", conflicts_with = "resume")]
    pub max_minutes: Option<f64>,
    /// The run seed (same config + seed → same numbers).
    #[arg(long, conflicts_with_all = ["resume", "seeds"])]
    pub seed: Option<u64>,
    /// Train an ensemble: one run per seed in OUT/seed-<s>/, and OUT/ensemble.json. Running the
    /// same command again skips finished members and resumes killed ones.
    #[arg(
        long,
        value_name = "S1,S2,…",
        value_delimiter = ',',
        conflicts_with = "resume"
    )]
    pub seeds: Vec<u64>,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// No progress bar or per-epoch lines (the log file is still written).
    #[arg(long)]
    pub quiet: bool,
}

/// Resolves the run configuration of `cortexfit train`: preset or file, then `--set`, then the
/// dedicated flags, all through the same TOML validation.
pub fn resolve_config(args: &Args) -> anyhow::Result<RunConfig> {
    let mut overrides = args.overrides.clone();
    if let Some(seed) = args.seed {
        overrides.push(format!("seed={seed}"));
    }
    if let Some(m) = args.max_minutes {
        overrides.push(format!("trainer.max_minutes={m:?}"));
    }
    resolve(
        args.preset.as_deref(),
        args.config.as_deref(),
        overrides,
        &args.data,
    )
}

/// A run configuration from a preset or a file, `--set` overrides and the `--data` paths.
pub fn resolve(
    preset: Option<&str>,
    config: Option<&std::path::Path>,
    mut overrides: Vec<String>,
    data: &[PathBuf],
) -> anyhow::Result<RunConfig> {
    if !data.is_empty() {
        let paths = data
            .iter()
            .map(|p| {
                std::path::absolute(p)
                    .with_context(|| format!("resolving --data {}", p.display()))
                    .map(|p| toml::Value::String(p.display().to_string()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        overrides.push(format!("data.paths={}", toml::Value::Array(paths)));
    }
    let config = match (preset, config) {
        (Some(name), None) => {
            RunConfig::preset(name)?.with_overrides(&format!("preset {name}"), &overrides)?
        }
        (None, Some(file)) => RunConfig::from_file(file, &overrides)?,
        _ => anyhow::bail!("give exactly one of --preset NAME or --config FILE"),
    };
    Ok(config)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::backend::init_threads(args.threads)?;
    let options = RunOptions {
        device: args.device.device()?,
    };
    let mut progress = TerminalProgress::new(args.quiet);
    if !args.seeds.is_empty() {
        return train_ensemble(&args, &options, &mut progress);
    }
    let summary = if let Some(run_dir) = &args.resume {
        resume(run_dir, &options, &mut progress)?
    } else {
        let config = resolve_config(&args)?;
        let out = args.out.as_ref().context("--out RUN is required")?;
        train(config, out, &options, &mut progress)?
    };
    if !args.quiet {
        eprintln!(
            "best validation correlation {:.4} (epoch {} of {}); summary in summary.json",
            summary.best_validation_correlation, summary.best_epoch, summary.epochs
        );
    }
    Ok(())
}

/// `--seeds`: one member run per seed, then the ensemble file.
fn train_ensemble(
    args: &Args,
    options: &RunOptions,
    progress: &mut TerminalProgress,
) -> anyhow::Result<()> {
    let out = args.out.as_ref().context("--out DIR is required")?;
    let base = resolve_config(args)?;
    let mut members = Vec::new();
    for &seed in &args.seeds {
        let dir = out.join(format!("seed-{seed}"));
        let run = crate::run::RunDir::new(&dir);
        if run.summary().exists() {
            if !args.quiet {
                eprintln!("member seed {seed}: finished earlier ({})", dir.display());
            }
        } else if run.current_checkpoint()?.is_some() {
            resume(&dir, options, progress)?;
        } else {
            let mut config = base.clone();
            config.seed = seed;
            train(config, &dir, options, progress)
                .with_context(|| format!("ensemble member seed {seed}"))?;
        }
        members.push(dir);
    }
    crate::run::ensemble::create(out, &members, &options.device)?;
    if !args.quiet {
        eprintln!(
            "ensemble of {} runs in {} (evaluate, predict and transfer take it like a run)",
            members.len(),
            out.display()
        );
    }
    Ok(())
}
