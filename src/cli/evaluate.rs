//! `cortexfit evaluate`: metrics of a trained run on a tier of a dataset.

use std::path::PathBuf;

use anyhow::Context;

use crate::backend::DeviceKind;
use crate::data::Tier;
use crate::report::{Table, fmt3};
use crate::run::Run;
use crate::run::evaluate::write_neuron_csv;

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
    let trained = Run::open(&args.run, &device)?;
    let mut summaries = Vec::new();
    // Ensembles: each member's summaries too (one list per member).
    let mut member_summaries = vec![Vec::new(); trained.models.len()];
    let mut notes = Vec::new();
    for path in &args.data {
        let (key, set) = trained.load_data(path)?;
        let Some(evaluation) = trained.evaluate(key, &set, args.tier) else {
            let present: Vec<&str> = Tier::ALL
                .into_iter()
                .filter(|&t| !set.tier(t).is_empty())
                .map(Tier::as_str)
                .collect();
            anyhow::bail!(
                "{} (data key {}) has no trials in tier `{}`; it has {} (choose one with --tier)",
                path.display(),
                set.data_key(),
                args.tier,
                present.join(", ")
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
                .dir
                .evaluation()
                .join(format!("{}_{}.csv", set.data_key(), args.tier));
        write_neuron_csv(trained.model(), key, &set, &evaluation, &csv_path)?;
        notes.push(format!("per-neuron metrics: {}", csv_path.display()));
        summaries.push(evaluation.summary);
        if trained.is_ensemble() {
            let members = trained
                .evaluate_members(key, &set, args.tier)
                .context("the tier has trials")?;
            for (list, member) in member_summaries.iter_mut().zip(members) {
                list.push(member.summary);
            }
        }
    }
    if args.json {
        if trained.is_ensemble() {
            let members: Vec<serde_json::Value> = member_summaries
                .iter()
                .zip(&trained.member_seeds)
                .zip(&trained.member_dirs)
                .map(|((s, seed), dir)| {
                    serde_json::json!({"seed": seed, "run": dir.display().to_string(), "summaries": s})
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"ensemble": summaries, "members": members})
            );
        } else {
            println!("{}", serde_json::to_string(&summaries)?);
        }
        return Ok(());
    }
    let mut rows: Vec<(String, &crate::run::TierSummary)> = Vec::new();
    let ensemble_label = format!("ensemble of {}", trained.models.len());
    for s in &summaries {
        rows.push((
            if trained.is_ensemble() {
                ensemble_label.clone()
            } else {
                "run".into()
            },
            s,
        ));
    }
    if trained.is_ensemble() {
        for (list, seed) in member_summaries.iter().zip(&trained.member_seeds) {
            for s in list {
                rows.push((format!("member seed {seed}"), s));
            }
        }
    }
    let mut table = Table::new(&[
        "model",
        "data key",
        "neurons",
        "trials",
        "single-trial corr",
        "corr to average",
        "oracle",
        "fraction oracle",
        "FEVE",
    ]);
    for (label, s) in rows {
        table.row(vec![
            label,
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
