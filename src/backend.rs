//! Choosing where tensors live: the pure-Rust `flex` CPU backend (default) or CUDA
//! (cargo feature `cuda`). Model code is the same for both; only the [`burn::tensor::Device`]
//! differs.

use serde::{Deserialize, Serialize};

/// Where to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust `flex` backend on the CPU (multi-threaded through rayon).
    #[default]
    Cpu,
    /// The first NVIDIA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Why a device could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "device `cuda` needs cortexfit built with CUDA support: `cargo build --release --features cuda`"
    )]
    CudaNotCompiled,
    #[error("could not set the number of CPU threads to {threads}: {message}")]
    Threads { threads: usize, message: String },
}

impl DeviceKind {
    /// The burn device (without autodiff; call `.autodiff()` on it for training).
    pub fn device(self) -> Result<burn::tensor::Device, BackendError> {
        match self {
            DeviceKind::Cpu => Ok(burn::tensor::Device::flex()),
            DeviceKind::Cuda => cuda_device(),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<burn::tensor::Device, BackendError> {
    Ok(burn::tensor::Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<burn::tensor::Device, BackendError> {
    Err(BackendError::CudaNotCompiled)
}

/// Sets the size of rayon's global thread pool, which the `flex` backend computes on. Call it
/// before any tensor operation: the pool is created on first use and cannot be resized. `None`
/// keeps rayon's default (one thread per logical CPU, or `RAYON_NUM_THREADS`). Returns the number
/// of threads in use.
pub fn init_threads(threads: Option<usize>) -> Result<usize, BackendError> {
    if let Some(n) = threads {
        if n == 0 {
            return Err(BackendError::Threads {
                threads: n,
                message: "must be at least 1".into(),
            });
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            // Already initialised: fine if it has the requested size.
            if rayon::current_num_threads() != n {
                return Err(BackendError::Threads {
                    threads: n,
                    message: format!(
                        "{e} (the pool already has {})",
                        rayon::current_num_threads()
                    ),
                });
            }
        }
    }
    Ok(rayon::current_num_threads())
}
