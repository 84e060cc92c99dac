//! `cortexfit bench`.

/// Arguments of `cortexfit bench`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit bench` is not implemented yet")
}
