//! `cortexfit info`.

/// Arguments of `cortexfit info`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit info` is not implemented yet")
}
