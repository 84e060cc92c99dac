//! Allocator settings for training on the CPU.
//!
//! A training step allocates and frees hundreds of activation-sized buffers (one lurz2020
//! feature map at batch 64 is 18 MB). glibc serves blocks above its mmap threshold with a fresh
//! `mmap` and returns them with `munmap`, and trims the heap top eagerly, so every step pays
//! page faults and zeroing for memory it just gave back; measured here, that was more than half
//! of the step time. Keeping freed memory in the heap for reuse removes that cost; the peak
//! memory is unchanged (it is set by the largest live set, which this does not alter).

/// Tells glibc to serve every tensor from the heap (no per-allocation `mmap`; the readout's
/// batch × channels × neurons intermediates are 87 MB, above the largest mmap threshold glibc
/// accepts) and to keep freed heap memory instead of returning it to the OS after every step.
///
/// Call once at program start, before the first tensor is allocated. Does nothing on other C
/// libraries (musl, macOS, Windows), whose allocators behave differently.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is called before the worker
    // threads exist and with values glibc documents as valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// A zero-filled buffer of `len` values, filled by all of rayon's threads.
///
/// The kernels' outputs are activation-sized (tens of MB) and `vec![0.0; len]` zeroes them on
/// the calling thread while the pool waits: with two threads that serial memset was the largest
/// single serial part of a training step (~4% of all samples in `perf record`), capping the
/// 2-thread speed-up.
pub fn zeroed(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = Vec::with_capacity(len);
    out.par_extend(rayon::iter::repeat_n(0.0f32, len));
    out
}
