//! How a run is executed, and how it ends when interrupted.

use std::path::PathBuf;

use burn::tensor::Device;

/// How a run is executed (not part of its configuration: it does not change the numbers).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where tensors live (`Device::flex()` for the CPU); autodiff is added for training.
    pub device: Device,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            device: Device::flex(),
        }
    }
}

/// A fit stopped on request ([`Progress::interrupted`], Ctrl-C) in the middle of an epoch; the run
/// keeps its last completed checkpoint and can be resumed.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted during epoch {epoch}; {} keeps its last completed epoch: continue it with \
     `cortexfit train --resume {}`",
    run_dir.display(),
    run_dir.display()
)]
pub struct Interrupted {
    pub run_dir: PathBuf,
    pub epoch: usize,
}
