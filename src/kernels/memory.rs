//! Allocator settings for training on the CPU, and the kernels' output buffers ([`zeroed`] for
//! outputs that are summed into, [`uninit`] for outputs written value by value).
//!
//! A training step allocates and frees hundreds of activation-sized buffers (one lurz2020
//! feature map at batch 64 is 18 MB). glibc serves blocks above its mmap threshold with a fresh
//! `mmap` and returns them with `munmap`, and trims the heap top eagerly, so every step pays
//! page faults and zeroing for memory it just gave back; measured here, that was more than half
//! of the step time. Keeping freed memory in the heap for reuse removes that cost; the peak
//! memory is unchanged (it is set by the largest live set, which this does not alter).

use std::mem::MaybeUninit;

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
/// 2-thread speed-up. Each thread clears whole blocks of [`ZERO_BLOCK`] values with one `memset`
/// (an element-by-element parallel fill cost as much again: ~4% of a 1-thread step).
pub fn zeroed(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(ZERO_BLOCK)
        .for_each(|block| block.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the loop above initialised all `len` values (`with_capacity` reserved at least
    // `len`, and `par_chunks_mut` covers the whole slice).
    unsafe { out.set_len(len) };
    out
}

/// A buffer of `len` values for a kernel output that is written completely before anything
/// reads it, without the pass [`zeroed`] spends clearing it: clearing an activation-sized output
/// and then overwriting it moves it through memory twice (~8 % of a training step on one thread,
/// measured with `perf record`). Turn it into values with [`assume_init`] once every value is
/// written.
///
/// In the crate's unit tests the values start as NaN instead, so a value that a kernel forgets to
/// write shows up in the kernel's tests against burn.
pub fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut out = Vec::with_capacity(len);
    #[cfg(test)]
    out.resize(len, MaybeUninit::new(f32::NAN));
    #[cfg(not(test))]
    // SAFETY: `MaybeUninit` values need no initialisation, and the capacity is `len`.
    unsafe {
        out.set_len(len)
    };
    out
}

/// The values of a buffer from [`uninit`] once they are all written.
///
/// # Safety
/// Every value of `buffer` must have been written.
pub unsafe fn assume_init(buffer: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut buffer = std::mem::ManuallyDrop::new(buffer);
    let (ptr, len, capacity) = (buffer.as_mut_ptr(), buffer.len(), buffer.capacity());
    // SAFETY: `MaybeUninit<f32>` has the size and alignment of `f32`; the allocation is handed
    // over whole (pointer, length and capacity of a `Vec` that is not dropped), and the caller
    // guarantees that every value is initialised.
    unsafe { Vec::from_raw_parts(ptr.cast::<f32>(), len, capacity) }
}

/// Values one task of [`zeroed`] clears: 64 KiB, large enough that a task's overhead is noise
/// beside its `memset`, small enough that an 18 MB feature map splits evenly over the threads.
const ZERO_BLOCK: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uninit_buffers_are_nan_in_tests_and_keep_their_values_once_written() {
        let mut buffer = uninit(5);
        assert!(buffer.iter().all(|v| unsafe { v.assume_init() }.is_nan()));
        for (i, v) in buffer.iter_mut().enumerate() {
            v.write(i as f32);
        }
        // SAFETY: all five values were written just above.
        let values = unsafe { assume_init(buffer) };
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn zeroed_is_all_zero_at_every_length_and_reuses_dirty_memory() {
        for len in [
            0,
            1,
            7,
            ZERO_BLOCK - 1,
            ZERO_BLOCK,
            ZERO_BLOCK + 1,
            3 * ZERO_BLOCK + 5,
        ] {
            // Dirty freed memory first, so an unwritten value would show.
            drop(vec![f32::NAN; len.max(1)]);
            let z = zeroed(len);
            assert_eq!(z.len(), len);
            assert!(z.iter().all(|&v| v.to_bits() == 0), "len {len}");
        }
    }
}
