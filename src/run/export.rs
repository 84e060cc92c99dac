//! Exporting a run for PyTorch: its weights under the reference's (neuralpredictors) state-dict
//! names as a float32 safetensors file, and the Python lines that build the matching
//! neuralpredictors model and load them (`model::neuralpredictors`).
//!
//! PyTorch's own `.pth` format (a zip holding a pickle) is not written: no maintained Rust crate
//! writes it (burn's `pytorch-reader` only reads), and cortexfit writes no pickles by hand. The
//! safetensors file loads with `safetensors.torch.load_file`, and `torch.save` turns the loaded
//! dict into a `.pth` in one more Python line.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::open::Run;
use crate::model::checkpoint::export_for_pytorch;
use crate::model::neuralpredictors::python_loader;

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The safetensors file.
    pub path: PathBuf,
    /// Number of tensors written.
    pub tensors: usize,
    /// Python lines that build the neuralpredictors model and load the file, or why this model
    /// has no generated counterpart.
    pub python: Result<String, String>,
}

/// Writes the best model of the run `run_dir` to `out` (`.safetensors`), atomically.
pub fn export(run_dir: &Path, out: &Path, device: &Device) -> anyhow::Result<ExportReport> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => {}
        "pth" | "pt" | "tar" | "bin" | "ckpt" => anyhow::bail!(
            "{}: cortexfit cannot write PyTorch's .{ext} format (a zip holding a pickle): no \
             maintained Rust crate writes it. Export to a .safetensors file instead; the Python \
             lines printed with it load it into neuralpredictors, and \
             `torch.save(load_file(\"model.safetensors\"), \"model.pth\")` makes a .pth of it",
            out.display()
        ),
        _ => anyhow::bail!(
            "{}: expected a file name ending in .safetensors",
            out.display()
        ),
    }
    let run = Run::open(run_dir, device)?;
    anyhow::ensure!(
        !run.is_ensemble(),
        "{} is an ensemble of {} runs; export one member (one of {})",
        run_dir.display(),
        run.models.len(),
        run.member_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let model = run.model();
    export_for_pytorch(model, out)?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        tensors: model.export_state().entries.len(),
        python: python_loader(model, &out.display().to_string()),
    })
}
