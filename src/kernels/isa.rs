//! Runtime choice of the instruction set the hot kernels run on: AVX-512 where the CPU has it
//! and runs it at full width, AVX2 + FMA otherwise, plain Rust last.
//!
//! The release build targets baseline x86-64 (SSE2), so the kernels carry one copy per
//! instruction set, compiled with `#[target_feature]`, and pick one when they are called
//! ([`multiversion!`](crate::kernels::isa) below). The choice is read once per kernel call on the
//! calling thread ([`Isa::active`]) and passed down to the worker tasks, so a test or a benchmark
//! can force any path the CPU supports on one thread ([`use_isa`]) without affecting others.
//!
//! What differs between the paths:
//! - the channel-wise convolutions ([`super::channelwise`]) have hand-written register blocks
//!   per path (16-lane `zmm`, 8-lane `ymm` with fused multiply-add, scalar; the filter gradient
//!   has 8-lane sums, and AVX-512 CPUs run its AVX2 block); AVX-512 and AVX2 accumulate every
//!   output in the same order with fused multiply-adds and agree bit for bit, the portable path
//!   rounds products separately (differences at float rounding level);
//! - ELU, batch norm and the readouts' gathers are written once with fixed 8-lane summation
//!   orders and compiled per path, so every path gives the same numbers and the wider vectors
//!   only change the speed.
//!
//! On Zen 4 (AMD family 19h, the EPYC machines this project runs on) 512-bit instructions execute
//! as two 256-bit halves, so AVX-512 does not raise the peak FLOP rate, and an unaligned 512-bit
//! load splits a cache line far more often than a 256-bit one. Measured there (process CPU time,
//! one thread, `cargo bench --bench isa`), the AVX-512 blocks ran the 13×13
//! depthwise conv 10–13 % slower than the AVX2 ones (forward 45.8 against 51.5 GFLOP/s), so
//! [`Isa::best`] picks AVX2 on family 19h; `use_isa(Isa::Avx512)` (`cortexfit bench --isa
//! avx512`) still runs it. The two paths give the same bits, so the choice changes only speed.

use std::cell::Cell;

/// One instruction-set path of the hot kernels, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isa {
    /// AVX-512 F/BW/VL with AVX2 and FMA (16 f32 lanes, 32 vector registers).
    Avx512,
    /// AVX2 with FMA (8 f32 lanes, 16 vector registers).
    Avx2,
    /// Plain Rust compiled for the build target (no fused multiply-add).
    Portable,
}

impl Isa {
    /// Every path, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The lower-case name (`avx512`, `avx2`, `portable`), as `cortexfit bench` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Parses [`Isa::name`].
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// f32 values per vector register of this path.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 | Isa::Portable => 8,
        }
    }

    /// Whether this CPU can run the path (the feature test is cached by the standard library,
    /// so this is cheap enough to call per kernel call).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU supports: AVX-512 unless the CPU runs 512-bit instructions as
    /// two 256-bit halves ([`splits_512_bit_ops`]), then AVX2 + FMA, then portable.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .filter(|&isa| isa != Isa::Avx512 || !splits_512_bit_ops())
            .find(|isa| isa.is_supported())
            .unwrap_or(Isa::Portable)
    }

    /// The paths this CPU supports, best first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// The path the kernels called on this thread use: the one set with [`use_isa`], else
    /// [`Isa::best`].
    pub fn active() -> Isa {
        FORCED.with(|f| f.get()).unwrap_or_else(Isa::best)
    }
}

/// Whether the CPU executes 512-bit vector instructions as two 256-bit halves: AMD family 19h
/// (Zen 3 and Zen 4; of these only Zen 4 has AVX-512). Zen 5 (family 1Ah) and Intel cores with
/// AVX-512 run them at full width.
pub fn splits_512_bit_ops() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // SAFETY: CPUID exists on every x86-64 CPU (leaves 0 and 1 always).
        #[allow(unused_unsafe)]
        let (vendor, leaf1) = unsafe { (__cpuid(0), __cpuid(1)) };
        // "AuthenticAMD" in EBX, EDX, ECX.
        let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6E65, 0x444D_4163);
        let base = (leaf1.eax >> 8) & 0xF;
        let family = if base == 0xF {
            base + ((leaf1.eax >> 20) & 0xFF)
        } else {
            base
        };
        amd && family == 0x19
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

thread_local! {
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Restores the previous path of this thread when dropped.
#[must_use = "the choice holds only while the guard lives"]
pub struct IsaGuard(Option<Isa>);

impl Drop for IsaGuard {
    fn drop(&mut self) {
        FORCED.with(|f| f.set(self.0));
    }
}

/// The error of [`use_isa`] for a path this CPU cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this CPU cannot run the {isa} kernels (it supports: {})",
    Isa::supported().iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
)]
pub struct UnsupportedIsa {
    pub isa: Isa,
}

/// Runs the kernels called on this thread on `isa` until the guard is dropped (for tests and
/// benchmarks; the default is [`Isa::best`]). Refuses a path this CPU cannot run.
pub fn use_isa(isa: Isa) -> Result<IsaGuard, UnsupportedIsa> {
    if !isa.is_supported() {
        return Err(UnsupportedIsa { isa });
    }
    Ok(IsaGuard(FORCED.with(|f| f.replace(Some(isa)))))
}

/// Defines `fn $name(isa: Isa, args…)` that runs `$body(args…)` (an `#[inline(always)]` fn)
/// compiled for `isa`: for AVX-512 with `avx512f,avx512bw,avx512vl,avx2,fma`, for AVX2 with
/// `avx2,fma`, else for the build target. A path the CPU lacks falls back to the portable one
/// (callers get `isa` from [`Isa::active`], which never returns one).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident => $body:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::kernels::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v4($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v3($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match isa {
                    // SAFETY: the CPU supports the enabled features (checked in the guard).
                    $crate::kernels::isa::Isa::Avx512 if isa.is_supported() => {
                        return unsafe { v4($($arg),*) };
                    }
                    // SAFETY: as above.
                    $crate::kernels::isa::Isa::Avx2 if isa.is_supported() => {
                        return unsafe { v3($($arg),*) };
                    }
                    _ => {}
                }
            }
            let _ = isa;
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_best_is_supported() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("sse"), None);
        assert!(Isa::best().is_supported());
        assert!(Isa::Portable.is_supported());
        // The best path is the first supported one, skipping AVX-512 where it runs at half width.
        let expected = Isa::supported()
            .into_iter()
            .find(|&isa| isa != Isa::Avx512 || !splits_512_bit_ops())
            .expect("portable is always supported");
        assert_eq!(Isa::best(), expected);
    }

    #[test]
    fn forcing_a_path_holds_for_the_guard_on_this_thread_only() {
        let before = Isa::active();
        {
            let _guard = use_isa(Isa::Portable).expect("always supported");
            assert_eq!(Isa::active(), Isa::Portable);
            let other = std::thread::spawn(Isa::active).join().expect("thread");
            assert_eq!(other, Isa::best());
        }
        assert_eq!(Isa::active(), before);
    }

    #[test]
    fn an_unsupported_path_is_refused_with_its_name() {
        for isa in Isa::ALL.into_iter().filter(|i| !i.is_supported()) {
            let err = use_isa(isa).err().expect("refused");
            assert!(err.to_string().contains(isa.name()), "{err}");
        }
    }
}
