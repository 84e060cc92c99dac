//! Single-threaded matrix products on strided f32 slices, for kernels that run many of them in
//! parallel tasks: the `gemm` crate (the one burn's flex backend multiplies with, dispatching
//! AVX2 + FMA or SSE at run time) behind a bounds-checked safe call.

use std::mem::MaybeUninit;

/// A row-major matrix operand of [`matmul`]: pointer, row stride, column stride.
pub type Operand<'a> = (&'a [f32], usize, usize);

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` (`accumulate`: add to `dst`), `dst` row-major with row
/// stride `n`; operands given with their row and column strides. Single-threaded.
pub fn matmul(
    dims: (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
) {
    let (m, n, _) = dims;
    assert!(dst.len() >= m * n);
    // SAFETY: `dst` holds at least m·n initialised values.
    unsafe { gemm_into(dims, dst.as_mut_ptr(), accumulate, lhs, rhs) }
}

/// `dst[..m·n] = lhs[m×k] · rhs[k×n]` into values not yet written (a buffer from
/// [`super::memory::uninit`]): without `accumulate`, gemm writes every value of `dst` and reads
/// none of them. Single-threaded.
pub fn matmul_uninit(
    dims: (usize, usize, usize),
    dst: &mut [MaybeUninit<f32>],
    lhs: Operand<'_>,
    rhs: Operand<'_>,
) {
    let (m, n, k) = dims;
    assert!(dst.len() >= m * n);
    if k == 0 {
        dst[..m * n].fill(MaybeUninit::new(0.0));
        return;
    }
    // SAFETY: `dst` has room for m·n values, and gemm only writes them when it does not
    // accumulate (it scales the product by β and never loads `dst` when α is unused).
    unsafe { gemm_into(dims, dst.as_mut_ptr().cast::<f32>(), false, lhs, rhs) }
}

/// # Safety
/// `dst` must be valid for writes of m·n values, and for reads of them if `accumulate`.
unsafe fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    accumulate: bool,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
) {
    let (lhs, lhs_rs, lhs_cs) = lhs;
    let (rhs, rhs_rs, rhs_cs) = rhs;
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    if k > 0 {
        assert!(lhs.len() > last(m, lhs_rs, k, lhs_cs), "lhs out of bounds");
        assert!(rhs.len() > last(k, rhs_rs, n, rhs_cs), "rhs out of bounds");
    }
    // SAFETY: the asserts above bound every element gemm reads from the operands, the caller
    // vouches for `dst`; the three do not overlap (`dst` is borrowed mutably by the callers).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
