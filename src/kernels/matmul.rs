//! Single-threaded matrix products on strided f32 slices, for kernels that run many of them in
//! parallel tasks: the `gemm` crate (the one burn's flex backend multiplies with, dispatching
//! AVX2 + FMA or SSE at run time) behind a bounds-checked safe call.

/// A row-major matrix operand of [`matmul`]: pointer, row stride, column stride.
pub type Operand<'a> = (&'a [f32], usize, usize);

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` (`accumulate`: add to `dst`), `dst` row-major with row
/// stride `n`; operands given with their row and column strides. Single-threaded.
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
) {
    let (lhs, lhs_rs, lhs_cs) = lhs;
    let (rhs, rhs_rs, rhs_cs) = rhs;
    assert!(dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    if k > 0 {
        assert!(lhs.len() > last(m, lhs_rs, k, lhs_cs), "lhs out of bounds");
        assert!(rhs.len() > last(k, rhs_rs, n, rhs_cs), "rhs out of bounds");
    }
    // SAFETY: the asserts above bound every element gemm reads or writes; the three slices do
    // not overlap (`dst` is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
