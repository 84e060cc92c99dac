//! Eight f32 lanes as one value, for kernels written once and compiled twice: on AVX registers
//! (`Avx2`) and on plain arrays (`Portable`, CPUs without AVX2). The operations are plain
//! multiplies and adds (no fused multiply-add) and every reduction has a fixed order, so the two
//! give the same bits. [`vectorized!`] defines the run-time dispatch between them.

/// Lanes of one [`Vector`].
pub(super) const LANES: usize = 8;

/// 8 f32 lanes with the operations the kernels need.
///
/// # Safety
/// `load` / `store` read and write 8 floats at the pointer, which must be valid for them.
pub(super) trait Vector: Copy {
    /// # Safety
    /// `p` is valid for reading 8 floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` is valid for writing 8 floats.
    unsafe fn store(self, p: *mut f32);
    fn splat(v: f32) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// The transpose of 8 vectors as the rows of an 8 × 8 block.
    fn transpose(m: [Self; 8]) -> [Self; 8];

    #[inline(always)]
    fn from_slice(s: &[f32]) -> Self {
        assert!(s.len() >= LANES);
        // SAFETY: 8 floats in bounds (asserted).
        unsafe { Self::load(s.as_ptr()) }
    }
    #[inline(always)]
    fn to_slice(self, s: &mut [f32]) {
        assert!(s.len() >= LANES);
        // SAFETY: 8 floats in bounds (asserted).
        unsafe { self.store(s.as_mut_ptr()) }
    }
    #[inline(always)]
    fn zero() -> Self {
        Self::splat(0.0)
    }
    /// The sum of the lanes, `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))` on every path.
    #[inline(always)]
    fn sum(self) -> f32 {
        let mut l = [0.0f32; LANES];
        self.to_slice(&mut l);
        ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
    }
}

/// 8 floats in an array: CPUs without AVX2.
#[derive(Clone, Copy)]
pub(super) struct Portable([f32; LANES]);

impl Vector for Portable {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's guarantee.
        Portable(unsafe { p.cast::<[f32; LANES]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's guarantee.
        unsafe { p.cast::<[f32; LANES]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Portable([v; LANES])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] + o.0[l]))
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] - o.0[l]))
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] * o.0[l]))
    }
    #[inline(always)]
    fn transpose(m: [Self; 8]) -> [Self; 8] {
        std::array::from_fn(|j| Portable(std::array::from_fn(|l| m[l].0[j])))
    }
}

/// One AVX `ymm` register. Values of this type exist only inside the `#[target_feature(enable =
/// "avx2,fma")]` entry points that [`vectorized!`] defines, which run only on CPUs that have AVX2
/// (checked there): that is what makes its safe methods sound.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx2(std::arch::x86_64::__m256);

#[cfg(target_arch = "x86_64")]
impl Vector for Avx2 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's guarantee; AVX present (see the type).
        Avx2(unsafe { std::arch::x86_64::_mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: as in `load`.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: AVX present (see the type).
        Avx2(unsafe { std::arch::x86_64::_mm256_set1_ps(v) })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: AVX present (see the type).
        Avx2(unsafe { std::arch::x86_64::_mm256_add_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: AVX present (see the type).
        Avx2(unsafe { std::arch::x86_64::_mm256_sub_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: AVX present (see the type).
        Avx2(unsafe { std::arch::x86_64::_mm256_mul_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn transpose(m: [Self; 8]) -> [Self; 8] {
        use std::arch::x86_64::*;
        // SAFETY: AVX present (see the type).
        unsafe {
            let [r0, r1, r2, r3, r4, r5, r6, r7] = m.map(|v| v.0);
            let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
            let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
            let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
            let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(s0, s4),
                _mm256_permute2f128_ps::<0x20>(s1, s5),
                _mm256_permute2f128_ps::<0x20>(s2, s6),
                _mm256_permute2f128_ps::<0x20>(s3, s7),
                _mm256_permute2f128_ps::<0x31>(s0, s4),
                _mm256_permute2f128_ps::<0x31>(s1, s5),
                _mm256_permute2f128_ps::<0x31>(s2, s6),
                _mm256_permute2f128_ps::<0x31>(s3, s7),
            ]
            .map(Avx2)
        }
    }
}

/// Defines `fn $name(isa: Isa, args…)` that runs the generic `$body::<V>(args…)` with
/// `V = Avx2`, compiled with `avx2,fma`, where `isa` is not the portable path and the CPU has AVX2
/// (AVX-512 CPUs included), else with `V = Portable`.
macro_rules! vectorized {
    ($(#[$meta:meta])* $vis:vis fn $name:ident => $body:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::kernels::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body::<$crate::kernels::vector::Avx2>($($arg),*)
                }
                if isa != $crate::kernels::isa::Isa::Portable
                    && $crate::kernels::isa::Isa::Avx2.is_supported()
                {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            let _ = isa;
            $body::<$crate::kernels::vector::Portable>($($arg),*)
        }
    };
}
pub(super) use vectorized;
