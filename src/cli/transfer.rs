//! `cortexfit transfer`.

/// Arguments of `cortexfit transfer`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit transfer` is not implemented yet")
}
