//! Choosing where tensors live: the pure-Rust `flex` CPU backend (default), a GPU through burn's
//! wgpu backend on Vulkan (cargo feature `gpu`), or burn's native CUDA backend (cargo feature
//! `cuda`, which needs internet at build time, see docs/gpu.md). Model code is the same for all;
//! only the [`burn::tensor::Device`] differs, and cortexfit's fused CPU kernels
//! ([`crate::kernels`]) fall back to burn's ops on any device that is not flex.

use serde::{Deserialize, Serialize};

/// Where to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust `flex` backend on the CPU (multi-threaded through rayon).
    #[default]
    Cpu,
    /// The first high-performance GPU through wgpu on Vulkan (needs a build with `--features gpu`
    /// and a Vulkan driver).
    Gpu,
    /// The first NVIDIA GPU through burn's CUDA backend (needs a build with `--features cuda`,
    /// which downloads LLVM at build time).
    Cuda,
}

/// The backends this binary was built with, e.g. `cpu (flex), gpu (wgpu/Vulkan)`.
pub const COMPILED_BACKENDS: &str = compiled_backends();

/// `cortexfit --version`: the package version and [`COMPILED_BACKENDS`].
pub const VERSION: &str = version();

const fn compiled_backends() -> &'static str {
    match (cfg!(feature = "gpu"), cfg!(feature = "cuda")) {
        (false, false) => "cpu (flex)",
        (true, false) => "cpu (flex), gpu (wgpu/Vulkan)",
        (false, true) => "cpu (flex), cuda",
        (true, true) => "cpu (flex), gpu (wgpu/Vulkan), cuda",
    }
}

const fn version() -> &'static str {
    match (cfg!(feature = "gpu"), cfg!(feature = "cuda")) {
        (false, false) => concat!(env!("CARGO_PKG_VERSION"), " (backends: cpu (flex))"),
        (true, false) => concat!(
            env!("CARGO_PKG_VERSION"),
            " (backends: cpu (flex), gpu (wgpu/Vulkan))"
        ),
        (false, true) => concat!(env!("CARGO_PKG_VERSION"), " (backends: cpu (flex), cuda)"),
        (true, true) => concat!(
            env!("CARGO_PKG_VERSION"),
            " (backends: cpu (flex), gpu (wgpu/Vulkan), cuda)"
        ),
    }
}

/// Why a device could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "device `{device}` needs cortexfit built with the cargo feature `{feature}` \
         (`cargo build --release --features {feature}`); this binary has: {COMPILED_BACKENDS}{hint}"
    )]
    NotCompiled {
        device: &'static str,
        feature: &'static str,
        hint: &'static str,
    },
    #[error(
        "device `gpu`: no usable Vulkan GPU: {message}. A Vulkan driver (ICD) must be installed: \
         on NVIDIA the driver's Vulkan part (libnvidia-gl / nvidia_icd.json; in a container, \
         NVIDIA_DRIVER_CAPABILITIES must include `graphics`), see docs/gpu.md"
    )]
    GpuUnavailable { message: String },
    #[error("could not set the number of CPU threads to {threads}: {message}")]
    Threads { threads: usize, message: String },
}

impl DeviceKind {
    /// The burn device (without autodiff; call `.autodiff()` on it for training).
    pub fn device(self) -> Result<burn::tensor::Device, BackendError> {
        match self {
            DeviceKind::Cpu => Ok(burn::tensor::Device::flex()),
            DeviceKind::Gpu => gpu_device(),
            DeviceKind::Cuda => cuda_device(),
        }
    }
}

#[cfg(feature = "gpu")]
fn gpu_device() -> Result<burn::tensor::Device, BackendError> {
    use burn::tensor::wgpu::WgpuBackend;
    use std::sync::OnceLock;
    // The wgpu runtime can be initialised once per process: keep the answer (device or error).
    static DEVICE: OnceLock<Result<burn::tensor::Device, String>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            burn::tensor::Device::wgpu_options()
                .graphics_api(WgpuBackend::Vulkan)
                .init()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| BackendError::GpuUnavailable { message })
}

#[cfg(not(feature = "gpu"))]
fn gpu_device() -> Result<burn::tensor::Device, BackendError> {
    Err(BackendError::NotCompiled {
        device: "gpu",
        feature: "gpu",
        hint: "",
    })
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<burn::tensor::Device, BackendError> {
    Ok(burn::tensor::Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<burn::tensor::Device, BackendError> {
    Err(BackendError::NotCompiled {
        device: "cuda",
        feature: "cuda",
        hint: ". The `cuda` feature's build downloads an LLVM bundle (it fails offline); \
               `--features gpu` with `--device gpu` runs on NVIDIA GPUs through Vulkan instead",
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_lists_the_compiled_backends() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.contains("cpu (flex)"), "{VERSION}");
        assert_eq!(VERSION.contains("gpu (wgpu/Vulkan)"), cfg!(feature = "gpu"));
        assert_eq!(VERSION.contains("cuda"), cfg!(feature = "cuda"));
        assert!(VERSION.contains(COMPILED_BACKENDS));
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn device_gpu_without_the_feature_names_the_feature() {
        let err = DeviceKind::Gpu.device().unwrap_err().to_string();
        assert!(err.contains("--features gpu"), "{err}");
        assert!(err.contains("device `gpu`"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn device_cuda_without_the_feature_names_the_feature_and_the_alternative() {
        let err = DeviceKind::Cuda.device().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
        assert!(err.contains("--device gpu"), "{err}");
    }
}
