//! Exporting a run for PyTorch: its weights under the reference's (neuralpredictors) state-dict
//! names as float32, in PyTorch's own format (`.pth` / `.pt` / `.pth.tar`, as `torch.save`
//! writes it) or as safetensors, and the Python lines that build the matching neuralpredictors
//! model and load them (`model::neuralpredictors`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::open::Run;
use crate::model::checkpoint::{ExportFormat, export_for_pytorch};
use crate::model::neuralpredictors::python_loader;

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The file written.
    pub path: PathBuf,
    /// Number of tensors written.
    pub tensors: usize,
    /// Python lines that build the neuralpredictors model and load the file, or why this model
    /// has no generated counterpart.
    pub python: Result<String, String>,
}

/// Writes the best model of the run `run_dir` to `out` (`.pth`, `.pt`, `.pth.tar` or
/// `.safetensors`, chosen by the name), atomically.
pub fn export(run_dir: &Path, out: &Path, device: &Device) -> anyhow::Result<ExportReport> {
    ExportFormat::from_path(out)?;
    export_run(&Run::open(run_dir, device)?, out)
}

/// [`export`] of an opened run.
pub fn export_run(run: &Run, out: &Path) -> anyhow::Result<ExportReport> {
    let format = ExportFormat::from_path(out)?;
    anyhow::ensure!(
        !run.is_ensemble(),
        "{} is an ensemble of {} runs; export one member (one of {})",
        run.dir.root().display(),
        run.models.len(),
        run.member_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let model = run.model();
    export_for_pytorch(model, out, format)?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        tensors: model.export_state().entries.len(),
        python: python_loader(model, &out.display().to_string(), format),
    })
}
