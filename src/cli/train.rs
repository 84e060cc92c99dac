//! `cortexfit train`.

/// Arguments of `cortexfit train`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit train` is not implemented yet")
}
