//! `cortexfit simulate`.

/// Arguments of `cortexfit simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit simulate` is not implemented yet")
}
