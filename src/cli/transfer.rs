//! `cortexfit transfer`: reuse the core of a trained run on new neurons or a new animal.

use std::path::PathBuf;

use crate::backend::DeviceKind;
use crate::run::RunOptions;
use crate::run::transfer::{TransferRequest, transfer};

use super::progress::TerminalProgress;

/// Arguments of `cortexfit transfer`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The core is frozen (no gradient, no core regularizer) and new readouts are \
fitted on the new data. By default the core's batch norm keeps the running statistics of the source \
data (a deliberate deviation from the reference, which lets them drift on the new data: --update-bn). \
The result is an ordinary run directory: evaluate it with `cortexfit evaluate --run RUN2 --data …`."
)]
pub struct Args {
    /// The trained run whose core is reused (its best state).
    #[arg(long, value_name = "RUN")]
    pub core: PathBuf,
    /// The new data (FileTree folder or Sensorium .zip); repeat for several datasets.
    #[arg(long, value_name = "DIR_OR_ZIP", required = true)]
    pub data: Vec<PathBuf>,
    /// The new run directory.
    #[arg(long, value_name = "RUN2")]
    pub out: PathBuf,
    /// Fit on a seeded random subset of this many unique training images.
    #[arg(long, value_name = "M")]
    pub train_images: Option<usize>,
    /// Batch norm of the core uses batch statistics and updates its running statistics on the new
    /// data while readouts are fitted (as the reference does).
    #[arg(long)]
    pub update_bn: bool,
    /// Afterwards, train the whole model (core and readouts) from the fitted readouts; the readout
    /// fit is kept in RUN2/readouts/.
    #[arg(long)]
    pub fine_tune: bool,
    /// Override a config key (`section.key=value`, value parsed as TOML); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Wall-clock budget of each training step.
    #[arg(long, value_name = "M")]
    pub max_minutes: Option<f64>,
    /// Seed of the readout initialisation, batches and the training-image subset (default: the
    /// source run's seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::backend::init_threads(args.threads)?;
    let options = RunOptions {
        device: args.device.device()?,
    };
    let request = TransferRequest {
        core_run: args.core,
        data: args.data,
        out: args.out.clone(),
        train_images: args.train_images,
        update_bn: args.update_bn,
        fine_tune: args.fine_tune,
        overrides: args.overrides,
        seed: args.seed,
        max_minutes: args.max_minutes,
    };
    let summary = transfer(&request, &options, &mut TerminalProgress::new(args.quiet))?;
    if !args.quiet {
        eprintln!(
            "best validation correlation {:.4} (epoch {} of {}); run in {}",
            summary.best_validation_correlation,
            summary.best_epoch,
            summary.epochs,
            args.out.display()
        );
    }
    Ok(())
}
