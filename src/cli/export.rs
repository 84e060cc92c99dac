//! `cortexfit export`: a run's weights for PyTorch, and the Python lines that load them.

use std::path::PathBuf;

use crate::backend::DeviceKind;

/// Arguments of `cortexfit export`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Writes the run's best model under neuralpredictors' state-dict names as float32, \
in PyTorch's own format (.pth, .pt, .pth.tar: what torch.save writes; torch.load reads it, also \
with weights_only=True) or as .safetensors, and prints the Python lines that build the matching \
neuralpredictors model and load it."
)]
pub struct Args {
    /// The run (not an ensemble: export one member).
    #[arg(long, value_name = "RUN")]
    pub run: PathBuf,
    /// The file to write: `.pth`, `.pt`, `.pth.tar` (PyTorch) or `.safetensors`.
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
            eprintln!(
                "# Python (torch, neuralpredictors 0.3.0; safetensors for a .safetensors file):"
            );
            println!("{code}");
        }
        Err(why) => eprintln!(
            "no Python lines for this model ({why}); the file holds its state dict under the \
             reference's names, for `model.load_state_dict(...)` after `torch.load` (.pth) or \
             `safetensors.torch.load_file` (.safetensors)"
        ),
    }
    Ok(())
}
