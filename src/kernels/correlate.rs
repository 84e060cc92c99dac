//! The inner loop of the channel-wise convolutions ([`super::channelwise`]): a 2-D
//! cross-correlation of a zero-padded plane with a small kernel, accumulated into an output
//! plane, on register blocks of the instruction set chosen at run time ([`Isa`]). Every output
//! meets its taps in the order (kernel row, kernel column) with fused multiply-adds from +0, so
//! the AVX-512 and AVX2 paths give the same bits; the portable path is the same sum unfused.

use super::isa::Isa;

/// Columns per chunk of the row layout (one AVX2 register; an AVX-512 register holds two).
pub(super) const LANES: usize = 8;

/// `out[r, c] += Σ_{i<kh, j<kw} kernel[i·kw + j] · src[r + i, c + j]` for `r < out_rows` and all
/// `c < out_stride` (a multiple of 8), with row strides `src_stride` and `out_stride`.
///
/// Rows of `src` outside `src_rows` must be zero (the padding of a zero-padded plane): the taps
/// that would only read such rows for a block are skipped. Their products are exact zeros, which
/// leave a sum unchanged (a sum that starts at +0 is never −0), so the result is bit for bit the
/// same as with every tap, for finite kernels; the padding rows cost nothing. At the lurz2020
/// input conv (36 × 64 images, 15 × 15 filters, no padding) that is 39 % of the input gradient's
/// work; at its depthwise 13 × 13 convs with padding 6, 15 % of each pass.
///
/// Works on blocks of `ROWS` rows × up to 4 registers of columns held in registers: 16-column
/// `zmm` registers with AVX-512 (an 8-column AVX2 block for a last odd chunk), 8-column ones
/// otherwise.
/// `isa` must be supported by this CPU.
#[allow(clippy::too_many_arguments)]
pub(super) fn correlate<const ROWS: usize>(
    isa: Isa,
    src: &[f32],
    src_stride: usize,
    src_rows: std::ops::Range<usize>,
    kernel: &[f32],
    kh: usize,
    kw: usize,
    out: &mut [f32],
    out_stride: usize,
    out_rows: usize,
) {
    assert!(isa.is_supported(), "{isa} kernels on a CPU without them");
    assert_eq!(out_stride % LANES, 0);
    assert_eq!(kernel.len(), kh * kw);
    assert!(out.len() >= out_rows * out_stride);
    // Every read is inside `src`: rows up to out_rows + kh − 1, columns up to out_stride + kw − 1.
    assert!(out_stride + kw - 1 <= src_stride);
    assert!(src.len() >= (out_rows + kh - 1) * src_stride);
    let total_chunks = out_stride / LANES;
    let mut r = 0;
    while r < out_rows {
        let rows = if out_rows - r >= ROWS { ROWS } else { 1 };
        // Kernel rows i whose source rows r + i … r + rows − 1 + i are not all padding.
        let first_tap = src_rows.start.saturating_sub(r + rows - 1).min(kh);
        let end_tap = src_rows.end.saturating_sub(r).min(kh);
        if first_tap >= end_tap {
            r += rows;
            continue;
        }
        let taps = &kernel[first_tap * kw..end_tap * kw];
        let mut chunk = 0;
        while chunk < total_chunks {
            let left = total_chunks - chunk;
            let src_at = (r + first_tap) * src_stride + chunk * LANES;
            let out_at = r * out_stride + chunk * LANES;
            let args = Block {
                src: &src[src_at..],
                src_stride,
                kernel: taps,
                kh: end_tap - first_tap,
                kw,
                out: &mut out[out_at..],
                out_stride,
            };
            // Chunks of 8 columns done by this block.
            chunk += match isa {
                Isa::Avx512 if left >= 2 => {
                    let registers = (left / 2).min(4);
                    block_avx512_dispatch::<ROWS>(args, rows == ROWS, registers);
                    2 * registers
                }
                // An AVX-512 CPU runs AVX2 blocks too (the odd last chunk).
                Isa::Avx512 | Isa::Avx2 => {
                    let n = left.min(4);
                    block_avx2_dispatch::<ROWS>(args, rows == ROWS, n);
                    n
                }
                Isa::Portable => {
                    let n = left.min(4);
                    block_portable(args, rows, n);
                    n
                }
            };
        }
        r += rows;
    }
}

/// Operands of one register block, positioned at its top-left corner.
struct Block<'a> {
    src: &'a [f32],
    src_stride: usize,
    kernel: &'a [f32],
    kh: usize,
    kw: usize,
    out: &'a mut [f32],
    out_stride: usize,
}

/// Plain-Rust block of `rows` rows × `n` chunks of 8 columns (same arithmetic, unfused).
fn block_portable(b: Block<'_>, rows: usize, n: usize) {
    for r in 0..rows {
        for c in 0..n * LANES {
            let mut acc = b.out[r * b.out_stride + c];
            for i in 0..b.kh {
                let row = &b.src[(r + i) * b.src_stride + c..];
                let taps = &b.kernel[i * b.kw..(i + 1) * b.kw];
                for (&w, &x) in taps.iter().zip(row) {
                    acc += w * x;
                }
            }
            b.out[r * b.out_stride + c] = acc;
        }
    }
}

/// Runs the AVX2 block of `ROWS` (`full`) or 1 rows × `n` chunks.
fn block_avx2_dispatch<const ROWS: usize>(args: Block<'_>, full: bool, n: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY (all arms): `correlate` checked that the CPU has AVX2 + FMA and bounded every
    // access of the block.
    unsafe {
        match (full, n) {
            (true, 4) => block_avx2::<ROWS, 4>(args),
            (true, 3) => block_avx2::<ROWS, 3>(args),
            (true, 2) => block_avx2::<ROWS, 2>(args),
            (true, _) => block_avx2::<ROWS, 1>(args),
            (false, 4) => block_avx2::<1, 4>(args),
            (false, 3) => block_avx2::<1, 3>(args),
            (false, 2) => block_avx2::<1, 2>(args),
            (false, _) => block_avx2::<1, 1>(args),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (args, full, n);
        unreachable!("AVX2 is never supported off x86-64")
    }
}

/// Runs the AVX-512 block of `ROWS` (`full`) or 1 rows × `n` registers of 16 columns.
fn block_avx512_dispatch<const ROWS: usize>(args: Block<'_>, full: bool, n: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY (all arms): `correlate` checked that the CPU has AVX-512 F/BW/VL and bounded every
    // access of the block.
    unsafe {
        match (full, n) {
            (true, 4) => block_avx512::<ROWS, 4>(args),
            (true, 3) => block_avx512::<ROWS, 3>(args),
            (true, 2) => block_avx512::<ROWS, 2>(args),
            (true, _) => block_avx512::<ROWS, 1>(args),
            (false, 4) => block_avx512::<1, 4>(args),
            (false, 3) => block_avx512::<1, 3>(args),
            (false, 2) => block_avx512::<1, 2>(args),
            (false, _) => block_avx512::<1, 1>(args),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (args, full, n);
        unreachable!("AVX-512 is never supported off x86-64")
    }
}

/// `R` rows × `N` chunks of 8 accumulators in AVX registers. The loop runs over the source rows
/// the block reads (s = r + i) and the kernel columns j: each loaded source vector serves every
/// block row it reaches (up to `R` fused multiply-adds, each with a broadcast of its tap), about
/// half the loads of a loop over the taps that reloads it for each row. Every output still meets
/// its taps in the order (i, j) of the plain sum, so the result is the same bit for bit.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b` must satisfy [`correlate`]'s bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const R: usize, const N: usize>(b: Block<'_>) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let src = b.src.as_ptr();
    let out = b.out.as_mut_ptr();
    let mut acc = [[_mm256_setzero_ps(); N]; R];
    // SAFETY: every offset below is within the bounds asserted by `correlate`: source rows
    // s < R + kh − 1, columns j + N·8 ≤ kw − 1 + out chunk width.
    unsafe {
        for (r, row) in acc.iter_mut().enumerate() {
            for (n, a) in row.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(out.add(r * b.out_stride + n * LANES));
            }
        }
        for s in 0..R + b.kh - 1 {
            // Block rows r with a tap i = s − r in 0..kh.
            let (first, last) = ((s + 1).saturating_sub(b.kh), s.min(R - 1));
            let line = src.add(s * b.src_stride);
            for j in 0..b.kw {
                let mut x = [_mm256_setzero_ps(); N];
                for (n, x) in x.iter_mut().enumerate() {
                    *x = _mm256_loadu_ps(line.add(j + n * LANES));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    if r < first || r > last {
                        continue;
                    }
                    let w = _mm256_set1_ps(*b.kernel.get_unchecked((s - r) * b.kw + j));
                    for (a, x) in row.iter_mut().zip(&x) {
                        *a = _mm256_fmadd_ps(w, *x, *a);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (n, a) in row.iter().enumerate() {
                _mm256_storeu_ps(out.add(r * b.out_stride + n * LANES), *a);
            }
        }
    }
}

/// [`block_avx2`] with 16-lane `zmm` registers: `R` rows × `N` chunks of 16 accumulators, the
/// same loop. Each output is accumulated in the same tap order with the same fused
/// multiply-adds, so the result equals the AVX2 block's bit for bit.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL, and `b` must satisfy [`correlate`]'s bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn block_avx512<const R: usize, const N: usize>(b: Block<'_>) {
    use std::arch::x86_64::*;
    const LANES: usize = 16;
    let src = b.src.as_ptr();
    let out = b.out.as_mut_ptr();
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    // SAFETY: every offset below is within the bounds asserted by `correlate`.
    unsafe {
        for (r, row) in acc.iter_mut().enumerate() {
            for (n, a) in row.iter_mut().enumerate() {
                *a = _mm512_loadu_ps(out.add(r * b.out_stride + n * LANES));
            }
        }
        for s in 0..R + b.kh - 1 {
            let (first, last) = ((s + 1).saturating_sub(b.kh), s.min(R - 1));
            let line = src.add(s * b.src_stride);
            for j in 0..b.kw {
                let mut x = [_mm512_setzero_ps(); N];
                for (n, x) in x.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(line.add(j + n * LANES));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    if r < first || r > last {
                        continue;
                    }
                    let w = _mm512_set1_ps(*b.kernel.get_unchecked((s - r) * b.kw + j));
                    for (a, x) in row.iter_mut().zip(&x) {
                        *a = _mm512_fmadd_ps(w, *x, *a);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (n, a) in row.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * b.out_stride + n * LANES), *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skipping the taps that read only zero padding rows gives the sum over every tap, bit for
    /// bit, on every path this CPU runs.
    #[test]
    fn skipping_padding_rows_changes_no_bit() {
        let (kh, kw, rows, stride) = (5, 4, 11, 8 + 3 + 8);
        let filled = 3..9;
        let value = |i: usize| ((i as f32) * 0.731).sin() * 3.0;
        let mut src = vec![0.0f32; (rows + kh - 1) * stride];
        for (i, v) in src.iter_mut().enumerate() {
            if filled.contains(&(i / stride)) && i % stride < 13 {
                *v = value(i);
            }
        }
        let kernel: Vec<f32> = (0..kh * kw).map(|i| value(i + 1000) - 0.5).collect();
        for isa in Isa::supported() {
            let run = |src_rows: std::ops::Range<usize>| {
                let mut out = vec![0.0f32; rows * 16];
                correlate::<2>(
                    isa, &src, stride, src_rows, &kernel, kh, kw, &mut out, 16, rows,
                );
                out
            };
            let all = run(0..rows + kh - 1);
            let skipped = run(filled.clone());
            assert!(all.iter().any(|&v| v != 0.0) && all.contains(&0.0));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&all), bits(&skipped), "{isa}");
        }
    }
}
