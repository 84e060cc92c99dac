//! `cortexfit demo`.

/// Arguments of `cortexfit demo`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`cortexfit demo` is not implemented yet")
}
