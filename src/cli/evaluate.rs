//! `cortexfit evaluate`: metrics of a trained run on a tier of a dataset.

use std::path::PathBuf;

use crate::backend::DeviceKind;
use crate::data::Tier;
use crate::report::{Table, fmt3};
use crate::train::{TierEvaluation, TrainedRun, evaluate_tier};

/// Arguments of `cortexfit evaluate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run directory (written by `cortexfit train`).
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// Datasets to evaluate on (each must have a data key the run was trained on); repeatable.
    #[arg(long, value_name = "DIR_OR_ZIP", required = true)]
    pub data: Vec<PathBuf>,
    /// Which tier: test, validation, train or final_test.
    #[arg(long, default_value = "test")]
    pub tier: Tier,
    /// Print one JSON line (the summary per dataset) on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::backend::init_threads(args.threads)?;
    let device = args.device.device()?;
    let trained = TrainedRun::open(&args.run, &device)?;
    let mut summaries = Vec::new();
    let mut notes = Vec::new();
    for path in &args.data {
        let (key, set) = trained.load_data(path)?;
        let Some(evaluation) = evaluate_tier(
            &trained.model,
            key,
            &set,
            args.tier,
            trained.config.trainer.batch_size,
            &device,
        ) else {
            anyhow::bail!(
                "{} (data key {}) has no trials in tier `{}`",
                path.display(),
                set.data_key(),
                args.tier
            );
        };
        if evaluation.summary.repeated_images == 0 {
            notes.push(format!(
                "{}: tier `{}` has no repeated images, so correlation to average, oracle, \
                 fraction oracle and FEVE are not defined",
                set.data_key(),
                args.tier
            ));
        }
        let csv_path =
            trained
                .run
                .evaluation()
                .join(format!("{}_{}.csv", set.data_key(), args.tier));
        write_neuron_csv(&trained, key, &set, &evaluation, &csv_path)?;
        notes.push(format!("per-neuron metrics: {}", csv_path.display()));
        summaries.push(evaluation.summary);
    }
    if args.json {
        println!("{}", serde_json::to_string(&summaries)?);
        return Ok(());
    }
    let mut table = Table::new(&[
        "data key",
        "neurons",
        "trials",
        "single-trial corr",
        "corr to average",
        "oracle",
        "fraction oracle",
        "FEVE",
    ]);
    for s in &summaries {
        table.row(vec![
            s.data_key.clone(),
            s.neurons.to_string(),
            s.trials.to_string(),
            fmt3(Some(s.single_trial_correlation)),
            fmt3(s.correlation_to_average),
            fmt3(s.oracle),
            fmt3(s.fraction_oracle),
            fmt3(s.feve),
        ]);
    }
    println!("{} tier of {}", args.tier, args.run.display());
    print!("{}", table.render());
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

/// One row per neuron: every metric and, for Gaussian readouts, μ and Σ in grid coordinates.
fn write_neuron_csv(
    trained: &TrainedRun,
    key: usize,
    set: &crate::train::PreparedSet,
    evaluation: &TierEvaluation,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let n = set.n_neurons();
    let positions = crate::train::readout_positions(&trained.model, key);
    let sigma = crate::train::readout_sigma(&trained.model, key);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "data_key",
        "unit_id",
        "single_trial_correlation",
        "correlation_to_average",
        "oracle",
        "fev",
        "feve",
        "poisson_loss",
    ];
    if positions.is_some() {
        header.extend(["mu_x", "mu_y"]);
    }
    if sigma.is_some() {
        header.extend(["sigma_xx", "sigma_xy", "sigma_yx", "sigma_yy"]);
    }
    writer.write_record(&header)?;
    let opt =
        |v: &Option<Vec<f64>>, i: usize| v.as_ref().map_or(String::new(), |v| v[i].to_string());
    let m = &evaluation.neurons;
    for i in 0..n {
        let mut row = vec![
            set.data_key().to_string(),
            set.dataset.neurons.unit_ids[i].to_string(),
            m.single_trial_correlation[i].to_string(),
            opt(&m.correlation_to_average, i),
            opt(&m.oracle, i),
            opt(&m.fev, i),
            opt(&m.feve, i),
            m.poisson_loss[i].to_string(),
        ];
        if let Some(p) = &positions {
            row.push(p[i][0].to_string());
            row.push(p[i][1].to_string());
        }
        if let Some(s) = &sigma {
            row.extend(s[i].iter().map(|v| v.to_string()));
        }
        writer.write_record(&row)?;
    }
    let bytes = writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::io::atomic_write(path, &bytes)
}
