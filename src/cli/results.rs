//! `cortexfit results`: query the results database of sweeps (filter, group, table/CSV/JSON,
//! plot), or rebuild it from a sweep's run directories.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::sweep::plot::{Line, plot_lines};
use crate::sweep::query::{self, DEFAULT_METRICS, Filter};
use crate::sweep::store::{self, FitRecord, Status};

/// Arguments of `cortexfit results`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("source").args(["sweep", "store"]).required(true).multiple(true))]
pub struct Args {
    /// A sweep folder: its store (the one it was run with, else DIR/results.sqlite).
    #[arg(long, value_name = "DIR")]
    pub sweep: Option<PathBuf>,
    /// A results store: `sqlite:PATH`, a path, or `postgres://…`.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Keep fits whose KEY equals VALUE (a config key like `trainer.lr`, or `status`, `sweep`,
    /// `kind`, `host`, `version`); repeatable, all must hold.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<Filter>,
    /// One row per group of these config keys, with mean and std of each metric over its fits.
    #[arg(long, value_name = "KEY,…", value_delimiter = ',')]
    pub group_by: Vec<String>,
    /// Config keys to show as columns of the per-fit table (default: the sweeps' axes).
    #[arg(long, value_name = "KEY,…", value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Metrics: TIER.METRIC averaged over datasets (e.g. `test.fraction_oracle`,
    /// `validation.single_trial_correlation`) or best_validation_correlation, seconds, epochs.
    #[arg(long, value_name = "METRIC,…", value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also draw the first metric against `--x`, one line per `--group-by` group (.png or .svg).
    #[arg(long, value_name = "FILE", requires = "x")]
    pub plot: Option<PathBuf>,
    /// The plot's x axis: a numeric config key (e.g. `trainer.lr`, `data.image_n`).
    #[arg(long, value_name = "KEY")]
    pub x: Option<String>,
    /// Logarithmic x axis.
    #[arg(long, requires = "plot")]
    pub log_x: bool,
    /// Recreate the store's rows of `--sweep DIR` from its run directories first (each run
    /// directory is the source of truth).
    #[arg(long, requires = "sweep")]
    pub rebuild: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let url = match (&args.store, &args.sweep) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => super::sweep::store_url(None, dir),
        (None, None) => bail!("give --sweep DIR or --store URL"),
    };
    let mut store = store::open(&url)?;
    if args.rebuild {
        let dir = args.sweep.as_ref().context("--rebuild needs --sweep DIR")?;
        let n = crate::sweep::rebuild(dir, store.as_mut())?;
        eprintln!("rebuilt {n} fits of {} into {url}", dir.display());
    }
    let mut records = store.all()?;
    if let Some(dir) = &args.sweep {
        // Only this sweep's fits (a lab-wide store holds many sweeps).
        let plan = crate::sweep::Plan::read(dir)?;
        records.retain(|r| plan.fits.iter().any(|f| f.id == r.id));
    }
    let metrics: Vec<String> = if args.metrics.is_empty() {
        DEFAULT_METRICS.iter().map(|s| s.to_string()).collect()
    } else {
        args.metrics.clone()
    };
    query::check_metrics(&metrics)?;
    let picked = query::filter(&records, &args.filters);
    let table = if args.group_by.is_empty() {
        let keys = if args.keys.is_empty() {
            query::axis_keys(&picked)
        } else {
            args.keys.clone()
        };
        query::per_fit(&picked, &keys, &metrics)
    } else {
        let finished: Vec<&FitRecord> = picked
            .iter()
            .copied()
            .filter(|r| r.status == Status::Finished)
            .collect();
        query::grouped(&finished, &args.group_by, &metrics)
    };
    match args.format {
        Format::Table => print!("{}", table.render()),
        Format::Csv => print!("{}", table.to_csv()?),
        Format::Json => println!("{}", table.to_json()),
    }
    if let (Some(path), Some(x)) = (&args.plot, &args.x) {
        let metric = &metrics[0];
        let lines = plot_data(&picked, x, &args.group_by, metric)?;
        plot_lines(&lines, x, metric, args.log_x, path)?;
        eprintln!("figure in {}", path.display());
    }
    Ok(())
}

/// The lines of the figure: finished fits grouped by `group_by` (without `x`), then by `x`.
fn plot_data(
    records: &[&FitRecord],
    x: &str,
    group_by: &[String],
    metric: &str,
) -> anyhow::Result<Vec<Line>> {
    let finished: Vec<&FitRecord> = records
        .iter()
        .copied()
        .filter(|r| r.status == Status::Finished)
        .collect();
    let keys: Vec<String> = group_by.iter().filter(|k| *k != x).cloned().collect();
    let mut lines = Vec::new();
    for (values, members) in query::groups(&finished, &keys) {
        let mut by_x: Vec<(f64, f64)> = Vec::new();
        for r in members {
            let value = r.key(x);
            let xv = value
                .as_ref()
                .and_then(serde_json::Value::as_f64)
                .with_context(|| {
                    format!(
                        "--x {x}: fit {} has {} there, not a number",
                        r.id,
                        query::value_text(value.as_ref())
                    )
                })?;
            if let Some(y) = r.metric(metric) {
                by_x.push((xv, y));
            }
        }
        by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut points = Vec::new();
        for chunk in by_x.chunk_by(|a, b| a.0 == b.0) {
            let ys: Vec<f64> = chunk.iter().map(|p| p.1).collect();
            let (mean, std) = query::mean_std(&ys);
            points.push((chunk[0].0, mean.unwrap_or(f64::NAN), std.unwrap_or(0.0)));
        }
        let label = if keys.is_empty() {
            metric.to_string()
        } else {
            keys.iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        lines.push(Line { label, points });
    }
    Ok(lines)
}
