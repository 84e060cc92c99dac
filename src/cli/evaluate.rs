//! `cortexfit evaluate`.

/// Arguments of `cortexfit evaluate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit evaluate` is not implemented yet")
}
