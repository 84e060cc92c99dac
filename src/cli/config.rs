//! `cortexfit config`.

/// Arguments of `cortexfit config`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit config` is not implemented yet")
}
