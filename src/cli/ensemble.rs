//! `cortexfit ensemble`: group finished runs of one configuration (different seeds) into an
//! ensemble that every command taking a run accepts.

use std::path::PathBuf;

use crate::backend::DeviceKind;

/// Arguments of `cortexfit ensemble`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The member runs (same configuration except the seed, same data).
    #[arg(long, value_name = "RUN", num_args = 1.., required = true)]
    pub runs: Vec<PathBuf>,
    /// The ensemble folder to write (`ensemble.json`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where to load the members to check them.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::run::ensemble::create(&args.out, &args.runs, &args.device.device()?)?;
    println!(
        "ensemble of {} runs: {}",
        args.runs.len(),
        args.out.join(crate::run::ensemble::ENSEMBLE_FILE).display()
    );
    Ok(())
}
