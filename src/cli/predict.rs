//! `cortexfit predict`.

/// Arguments of `cortexfit predict`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit predict` is not implemented yet")
}
