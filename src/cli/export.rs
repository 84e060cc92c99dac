//! `cortexfit export`: a run's weights for PyTorch, and the Python lines that load them.

use std::path::PathBuf;

use crate::backend::DeviceKind;

/// Arguments of `cortexfit export`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes the run's best model under neuralpredictors' state-dict names as float32 \
safetensors and prints the Python lines that build the matching neuralpredictors model and load \
it. PyTorch's .pth format is not written (no maintained Rust crate writes it); one line of Python \
turns the safetensors file into one."
)]
pub struct Args {
    /// The run (not an ensemble: export one member).
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The file to write (`.safetensors`).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where to load the model.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let report = crate::run::export::export(&args.run, &args.out, &args.device.device()?)?;
    eprintln!(
        "wrote {} tensors to {}",
        report.tensors,
        report.path.display()
    );
    match report.python {
        Ok(code) => {
            eprintln!("# Python (torch, safetensors, neuralpredictors 0.3.0):");
            println!("{code}");
        }
        Err(why) => eprintln!(
            "no Python lines for this model ({why}); the file holds its state dict under the \
             reference's names for `model.load_state_dict(safetensors.torch.load_file(...))`"
        ),
    }
    Ok(())
}
