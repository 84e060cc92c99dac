//! `cortexfit predict`: a trained run's predictions for a tier, as .npy and as a Sensorium
//! submission CSV.

use std::path::{Path, PathBuf};

use anyhow::Context;
use npyz::WriterBuilder;

use crate::backend::DeviceKind;
use crate::data::Tier;
use crate::run::Run;

/// Arguments of `cortexfit predict`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run directory (written by `cortexfit train`).
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The dataset to predict (its data key must be one the run was trained on).
    #[arg(long, value_name = "DIR_OR_ZIP")]
    pub data: PathBuf,
    /// Which tier: test, final_test, validation or train.
    #[arg(long, default_value = "test")]
    pub tier: Tier,
    /// Output file: predictions as .npy (trials × neurons, f32, rows in trial-file order); the
    /// submission CSV is written next to it with the extension .csv.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
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
    let (key, set) = trained.load_data(&args.data)?;
    let (trials, predictions) = trained.predict_tier(key, &set, args.tier)?;
    let n = set.n_neurons();
    let npy_path = if args.out.extension().is_some_and(|e| e == "npy") {
        args.out.clone()
    } else {
        args.out.with_extension("npy")
    };
    write_npy(&npy_path, &predictions, trials.len(), n)?;
    let csv_path = npy_path.with_extension("csv");
    // Without meta/trials/trial_idx the file index is the trial index.
    let file_order: Vec<i64> = (0..set.n_trials() as i64).collect();
    let trial_idx = set
        .dataset
        .trials
        .trial_idx
        .as_deref()
        .unwrap_or(&file_order);
    let image_ids = &set.dataset.trials.frame_image_id;
    let unit_ids = &set.dataset.neurons.unit_ids;
    write_submission(
        &csv_path,
        &trials,
        trial_idx,
        image_ids,
        unit_ids,
        &predictions,
    )?;
    println!(
        "{} trials × {} neurons of {} ({} tier): {} and {}",
        trials.len(),
        n,
        set.data_key(),
        args.tier,
        npy_path.display(),
        csv_path.display()
    );
    Ok(())
}

/// Writes a C-order f32 .npy (trials × neurons) atomically.
pub fn write_npy(path: &Path, values: &[f32], rows: usize, cols: usize) -> anyhow::Result<()> {
    let mut bytes = Vec::new();
    {
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[rows as u64, cols as u64])
            .writer(&mut bytes)
            .begin_nd()
            .context("starting the .npy writer")?;
        writer.extend(values.iter().copied())?;
        writer.finish()?;
    }
    crate::io::atomic_write(path, &bytes)
}

/// The Sensorium submission format: one row per trial with its trial index, image id, the list
/// of predictions and the list of neuron ids (the same on every row).
fn write_submission(
    path: &Path,
    trials: &[usize],
    trial_idx: &[i64],
    image_ids: &[i64],
    unit_ids: &[i64],
    predictions: &[f32],
) -> anyhow::Result<()> {
    let n = unit_ids.len();
    let list = |values: &mut dyn Iterator<Item = String>| {
        format!("[{}]", values.collect::<Vec<_>>().join(", "))
    };
    let neuron_ids = list(&mut unit_ids.iter().map(|u| u.to_string()));
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["trial_indices", "image_ids", "prediction", "neuron_ids"])?;
    for (row, &t) in trials.iter().enumerate() {
        let pred = list(
            &mut predictions[row * n..(row + 1) * n]
                .iter()
                .map(|p| p.to_string()),
        );
        writer.write_record([
            trial_idx[t].to_string(),
            image_ids[t].to_string(),
            pred,
            neuron_ids.clone(),
        ])?;
    }
    let bytes = writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::io::atomic_write(path, &bytes)
}
