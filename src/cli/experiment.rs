//! `cortexfit experiment …`: families of fits.

/// Experiments.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Fraction oracle against the number of training images, per condition.
    DataEfficiency(DataEfficiencyArgs),
}

/// Arguments of `cortexfit experiment data-efficiency`.
#[derive(clap::Args, Debug)]
pub struct DataEfficiencyArgs {}

pub fn run(_cmd: Command) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit experiment` is not implemented yet")
}
