//! `cortexfit import`: a model trained in PyTorch (neuralpredictors) as a cortexfit run.

use std::path::PathBuf;

use crate::backend::DeviceKind;
use crate::config::PRESETS;
use crate::run::RunOptions;
use crate::run::import::{ImportRequest, import};

/// Arguments of `cortexfit import`.
#[derive(clap::Args, Debug)]
#[command(
    group = clap::ArgGroup::new("source").args(["preset", "config"]).required(true),
    after_help = "The checkpoint must fit the configured model exactly (names and shapes of every \
tensor); a checkpoint of another architecture is refused, naming the tensors that disagree. The \
data must be the recording(s) the model was trained on, with the same neurons in the same order, \
and its [data] settings must normalise as the PyTorch training did. The result is an ordinary run \
directory for evaluate, predict, transfer, ensemble and insilico."
)]
pub struct Args {
    /// The `torch.save` file (.pth, .pth.tar, .pt): a state dict, or a dict holding one.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The model's architecture: a published configuration.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: Option<String>,
    /// The model's architecture: a run configuration file (see `cortexfit config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data the model was trained on (FileTree folder or Sensorium .zip); one per readout.
    #[arg(long, value_name = "DIR_OR_ZIP", required = true)]
    pub data: Vec<PathBuf>,
    /// The run directory to create.
    #[arg(long, value_name = "RUN")]
    pub out: PathBuf,
    /// Override a config key (`section.key=value`, value parsed as TOML); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The top-level key the state dict is stored under (e.g. `model_state`); found
    /// automatically when the file holds one state dict.
    #[arg(long, value_name = "KEY")]
    pub state_key: Option<String>,
    /// Rename a readout of the checkpoint to a data key of --data (needed only with several
    /// readouts whose keys differ from the data's); repeatable.
    #[arg(long, value_name = "CHECKPOINT_KEY=DATA_KEY", value_parser = parse_key_pair)]
    pub readout_key: Vec<(String, String)>,
    /// Worker threads for the CPU backend (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to load the data and model.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

fn parse_key_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("expected CHECKPOINT_KEY=DATA_KEY, got `{s}`")),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::backend::init_threads(args.threads)?;
    let options = RunOptions {
        device: args.device.device()?,
    };
    let config = super::train::resolve(
        args.preset.as_deref(),
        args.config.as_deref(),
        args.overrides.clone(),
        &args.data,
    )?;
    let request = ImportRequest {
        checkpoint: args.checkpoint,
        state_key: args.state_key,
        config,
        readout_keys: args.readout_key,
        out: args.out.clone(),
    };
    let record = import(&request, &options)?;
    let nested = record
        .nested_key
        .as_ref()
        .map(|k| format!(" (nested under `{k}`)"))
        .unwrap_or_default();
    println!(
        "imported {} tensors{nested} from {} into {}",
        record.tensors,
        record.checkpoint,
        args.out.display()
    );
    for (from, to) in &record.renamed_readouts {
        println!("readout `{from}` of the checkpoint is data key `{to}`");
    }
    Ok(())
}
