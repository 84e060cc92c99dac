//! `cortexfit config`: print a complete, commented run configuration.

use crate::config::{PRESETS, RunConfig};

/// Arguments of `cortexfit config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The published model to start from.
    #[arg(long, default_value = "lurz2020", value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: String,
    /// Override a key before printing (`section.key=value`, value parsed as TOML); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = RunConfig::preset(&args.preset)?.with_overrides(&args.preset, &args.overrides)?;
    let header = format!(
        "cortexfit run configuration, preset `{}`.\n\
         Use it with `cortexfit train --config FILE --data DIR_OR_ZIP --out RUN`;\n\
         unknown keys and contradictory settings are rejected.",
        args.preset
    );
    print!("{}", config.to_commented_toml(&header));
    Ok(())
}
