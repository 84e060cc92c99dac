//! The filter gradient of a channel-wise convolution ([`super::channelwise`]):
//!
//! `∂L/∂w[c, i, j] = Σ_b Σ_{y, x} g[b, c, y, x] · x_pad[b, c|0, y + i, x + j]`
//!
//! where `g` is the output gradient and `x_pad` the zero-padded input plane (its own channel, or
//! the single shared image plane of the 1→C input conv).
//!
//! The sum runs in vectors along the output columns `x`: accumulator (i, j) holds 8 partial sums,
//! lane `l` summing the columns `x ≡ l (mod 8)` over the batch, the rows and the column chunks (in
//! that order), and the 8 lanes are added in lane order at the end. A register block of 2 filter
//! rows × up to 6 filter columns runs over the input rows: per 8-column chunk of an input row it
//! loads the 2 output-gradient chunks that meet that row (output rows `s − i`) and one input chunk
//! per filter column, each input chunk feeding 2 fused multiply-adds. That is about 0.7 loads per
//! multiply-add and every lane does work. (Run as a correlation with the output gradient as the
//! "filter", every multiply-add needed its own broadcast tap, and a 13-column result kept 13 of
//! 16 lanes busy: about 1.8× the forward pass's time for the same multiply-adds.)
//!
//! Input rows that are zero padding are skipped: their products are exact zeros, which leave a
//! sum unchanged (a sum that starts at +0 is never −0). One task per filter sums over the whole
//! batch, so the result does not depend on the thread count. The AVX2 kernel serves AVX-512 CPUs
//! too (same bits on both); the portable path is the same sum with separately rounded products.

use rayon::prelude::*;
use std::ops::Range;

use super::channelwise::{ChannelwiseShape, Padded};
use super::isa::Isa;

/// Lanes of one partial-sum vector (one AVX2 register).
const LANES: usize = 8;

/// Filter rows of a register block (2, or 1 for the last of an odd count).
const BLOCK_ROWS: usize = 2;

/// Most filter columns of a register block: 2 × 6 accumulators, 2 gradient chunks and an input
/// chunk fill 15 of the 16 AVX2 registers.
const MAX_BLOCK_COLUMNS: usize = 6;

/// `[channels, 1, kernel_h, kernel_w]` filter gradient of `shape` for input `x`
/// (`[batch, in_channels, in_h, in_w]`) and output gradient `grad_out`
/// (`[batch, channels, out_h, out_w]`), on path `isa` (which this CPU must run).
pub(super) fn filter_grad(
    isa: Isa,
    shape: &ChannelwiseShape,
    x: &[f32],
    grad_out: &[f32],
) -> Vec<f32> {
    assert!(isa.is_supported(), "{isa} kernels on a CPU without them");
    let (in_plane, out_plane) = (shape.in_plane(), shape.out_plane());
    assert_eq!(x.len(), shape.batch * shape.in_channels() * in_plane);
    assert_eq!(grad_out.len(), shape.batch * shape.channels * out_plane);
    let layout = Layout::new(shape);
    let taps = shape.taps();
    let mut grad_w = vec![0.0f32; shape.channels * taps];
    grad_w
        .par_chunks_mut(taps)
        .enumerate()
        .for_each(|(c, grad_w)| {
            let (mut x_pad, mut g_pad) = (Vec::new(), Vec::new());
            let mut acc = vec![0.0f32; taps * LANES];
            for b in 0..shape.batch {
                let plane = shape.input_plane_index(b, c);
                let src = &x[plane * in_plane..(plane + 1) * in_plane];
                layout.input.fill(src, shape.in_h, shape.in_w, &mut x_pad);
                let g0 = (b * shape.channels + c) * out_plane;
                let g = &grad_out[g0..g0 + out_plane];
                layout
                    .grad
                    .fill(g, shape.out_h(), shape.out_w(), &mut g_pad);
                accumulate(isa, shape, &layout, &x_pad, &g_pad, &mut acc);
            }
            for (w, lanes) in grad_w.iter_mut().zip(acc.chunks_exact(LANES)) {
                *w = lanes.iter().fold(0.0, |sum, &v| sum + v);
            }
        });
    grad_w
}

/// Where the padded planes of one image lie in their scratch buffers.
struct Layout {
    /// The input plane with the convolution's zero padding, wide enough for every chunk read.
    input: Padded,
    /// The output gradient, `chunks·8` columns wide (zeros past `out_w`), with one zero row above
    /// and below so that a block's two filter rows can read "output row −1 / out_h" as zeros.
    grad: Padded,
    /// Column chunks of an output-gradient row.
    chunks: usize,
}

impl Layout {
    fn new(shape: &ChannelwiseShape) -> Layout {
        let chunks = shape.out_w().div_ceil(LANES);
        Layout {
            input: Padded {
                rows: shape.in_h + 2 * shape.pad_h,
                stride: chunks * LANES + shape.kernel_w - 1,
                top: shape.pad_h,
                left: shape.pad_w,
            },
            grad: Padded {
                rows: shape.out_h() + 2,
                stride: chunks * LANES,
                top: 1,
                left: 0,
            },
            chunks,
        }
    }
}

/// Adds one image's products to the lane sums `acc` (`[kernel_h, kernel_w, 8]`), block by block.
fn accumulate(
    isa: Isa,
    shape: &ChannelwiseShape,
    layout: &Layout,
    x_pad: &[f32],
    g_pad: &[f32],
    acc: &mut [f32],
) {
    let (kh, kw, out_h) = (shape.kernel_h, shape.kernel_w, shape.out_h());
    let filled = layout.input.filled_rows(shape.in_h);
    // Filter columns in blocks of nearly equal width, at most MAX_BLOCK_COLUMNS each (13 → 5, 4,
    // 4): every block keeps at least 8 independent multiply-add chains.
    let column_blocks = kw.div_ceil(MAX_BLOCK_COLUMNS);
    let mut i0 = 0;
    while i0 < kh {
        let rows = BLOCK_ROWS.min(kh - i0);
        // Input rows s meeting filter row i0 + k at output row s − i0 − k, for some k < rows,
        // that are not padding.
        let s_rows = i0.max(filled.start)..(i0 + rows - 1 + out_h).min(filled.end);
        let mut j0 = 0;
        for block in 0..column_blocks {
            let columns = (kw - j0).div_ceil(column_blocks - block);
            let args = Block {
                x: x_pad,
                x_stride: layout.input.stride,
                g: g_pad,
                g_stride: layout.grad.stride,
                chunks: layout.chunks,
                s_rows: s_rows.clone(),
                i0,
                j0,
                kw,
                acc: &mut *acc,
            };
            match isa {
                Isa::Avx512 | Isa::Avx2 => block_avx2_dispatch(args, rows, columns),
                Isa::Portable => block_portable(args, rows, columns),
            }
            j0 += columns;
        }
        i0 += rows;
    }
}

/// Operands of one register block: filter rows `i0..i0 + rows`, columns `j0..j0 + columns`.
struct Block<'a> {
    x: &'a [f32],
    x_stride: usize,
    /// The output gradient with a zero row above: output row `r` is row `r + 1`.
    g: &'a [f32],
    g_stride: usize,
    chunks: usize,
    s_rows: Range<usize>,
    i0: usize,
    j0: usize,
    kw: usize,
    acc: &'a mut [f32],
}

impl Block<'_> {
    /// Checks that every read of a block of `rows` × `columns` is inside the buffers.
    fn check(&self, rows: usize, columns: usize) {
        assert!((1..=BLOCK_ROWS).contains(&rows) && (1..=MAX_BLOCK_COLUMNS).contains(&columns));
        assert!(self.j0 + columns <= self.kw);
        assert!(self.acc.len() >= ((self.i0 + rows - 1) * self.kw + self.j0 + columns) * LANES);
        assert!(self.x_stride >= self.chunks * LANES + self.kw - 1);
        assert!(self.s_rows.end * self.x_stride <= self.x.len());
        assert!(self.g_stride >= self.chunks * LANES);
        if !self.s_rows.is_empty() {
            // Gradient rows s + 1 − i0 − k for k < rows, all within the padded plane.
            assert!(self.s_rows.start >= self.i0);
            assert!((self.s_rows.end - self.i0 + 1) * self.g_stride <= self.g.len());
        }
    }
}

/// Plain-Rust block (the same sums, each product rounded before it is added).
fn block_portable(b: Block<'_>, rows: usize, columns: usize) {
    b.check(rows, columns);
    for k in 0..rows {
        for j in 0..columns {
            let at = ((b.i0 + k) * b.kw + b.j0 + j) * LANES;
            let acc = &mut b.acc[at..at + LANES];
            for s in b.s_rows.clone() {
                let g_row = &b.g[(s + 1 - b.i0 - k) * b.g_stride..];
                let x_row = &b.x[s * b.x_stride + b.j0 + j..];
                for chunk in 0..b.chunks {
                    for (l, a) in acc.iter_mut().enumerate() {
                        let col = chunk * LANES + l;
                        *a += g_row[col] * x_row[col];
                    }
                }
            }
        }
    }
}

/// Runs the AVX2 block of `rows` × `columns`.
fn block_avx2_dispatch(args: Block<'_>, rows: usize, columns: usize) {
    args.check(rows, columns);
    #[cfg(target_arch = "x86_64")]
    // SAFETY (all arms): `filter_grad` checked that the CPU has AVX2 + FMA (an AVX-512 CPU has
    // both), and `check` bounded every access of the block.
    unsafe {
        match (rows, columns) {
            (2, 6) => block_avx2::<2, 6>(args),
            (2, 5) => block_avx2::<2, 5>(args),
            (2, 4) => block_avx2::<2, 4>(args),
            (2, 3) => block_avx2::<2, 3>(args),
            (2, 2) => block_avx2::<2, 2>(args),
            (2, _) => block_avx2::<2, 1>(args),
            (_, 6) => block_avx2::<1, 6>(args),
            (_, 5) => block_avx2::<1, 5>(args),
            (_, 4) => block_avx2::<1, 4>(args),
            (_, 3) => block_avx2::<1, 3>(args),
            (_, 2) => block_avx2::<1, 2>(args),
            (_, _) => block_avx2::<1, 1>(args),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (args, rows, columns);
        unreachable!("AVX2 is never supported off x86-64")
    }
}

/// `R` filter rows × `J` filter columns of 8-lane sums in AVX registers, over the block's input
/// rows and column chunks.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `b` must pass [`Block::check`] for `R` × `J`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // (k, j) index the register block
unsafe fn block_avx2<const R: usize, const J: usize>(b: Block<'_>) {
    use std::arch::x86_64::*;
    let acc_ptr = b.acc.as_mut_ptr();
    let at = |k: usize, j: usize| ((b.i0 + k) * b.kw + b.j0 + j) * LANES;
    // SAFETY: `Block::check` bounded the accumulators, the input rows s < s_rows.end with
    // columns up to chunks·8 + kw − 1, and the gradient rows s + 1 − i0 − k ≤ s_rows.end − i0.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); J]; R];
        for (k, row) in acc.iter_mut().enumerate() {
            for (j, a) in row.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(acc_ptr.add(at(k, j)));
            }
        }
        for s in b.s_rows.clone() {
            let x_row = b.x.as_ptr().add(s * b.x_stride + b.j0);
            let g_rows: [*const f32; R] =
                std::array::from_fn(|k| b.g.as_ptr().add((s + 1 - b.i0 - k) * b.g_stride));
            for chunk in 0..b.chunks {
                let col = chunk * LANES;
                let g: [__m256; R] = std::array::from_fn(|k| _mm256_loadu_ps(g_rows[k].add(col)));
                for j in 0..J {
                    let x = _mm256_loadu_ps(x_row.add(col + j));
                    for k in 0..R {
                        acc[k][j] = _mm256_fmadd_ps(g[k], x, acc[k][j]);
                    }
                }
            }
        }
        for (k, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                _mm256_storeu_ps(acc_ptr.add(at(k, j)), *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook sum in f64.
    fn direct(shape: &ChannelwiseShape, x: &[f32], g: &[f32]) -> Vec<f64> {
        let (oh, ow) = (shape.out_h(), shape.out_w());
        let (kh, kw) = (shape.kernel_h, shape.kernel_w);
        let mut out = vec![0.0f64; shape.channels * kh * kw];
        for b in 0..shape.batch {
            for c in 0..shape.channels {
                let plane = if shape.shared_input {
                    b
                } else {
                    b * shape.channels + c
                };
                for i in 0..kh {
                    for j in 0..kw {
                        for y in 0..oh {
                            for q in 0..ow {
                                let (r, col) = (y + i, q + j);
                                if r < shape.pad_h
                                    || col < shape.pad_w
                                    || r >= shape.pad_h + shape.in_h
                                    || col >= shape.pad_w + shape.in_w
                                {
                                    continue;
                                }
                                let xv = x[(plane * shape.in_h + r - shape.pad_h) * shape.in_w
                                    + col
                                    - shape.pad_w];
                                let gv = g[((b * shape.channels + c) * oh + y) * ow + q];
                                out[(c * kh + i) * kw + j] += xv as f64 * gv as f64;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Every path this CPU runs equals the direct sum within float rounding, for filters of 1 to
    /// 14 columns (every register-block width), odd and even row counts (a last one-row block),
    /// padding rows and columns, ragged output widths and a shared input plane; AVX-512 and AVX2
    /// give the same bits.
    #[test]
    fn filter_gradient_is_the_direct_sum_on_every_path() {
        let value = |i: usize, salt: usize| (((i * 37 + salt * 11) % 101) as f32 - 50.0) / 17.0;
        for kernel_w in 1..=14 {
            let kernel_h = [3, 4, 5, 13][kernel_w % 4];
            for (shared_input, pad) in [(false, (kernel_h / 2, kernel_w / 2)), (true, (0, 0))] {
                let shape = ChannelwiseShape {
                    batch: 2,
                    channels: 3,
                    shared_input,
                    in_h: kernel_h + 6,
                    in_w: kernel_w + 11,
                    kernel_h,
                    kernel_w,
                    pad_h: pad.0,
                    pad_w: pad.1,
                };
                let x: Vec<f32> = (0..shape.batch * shape.in_channels() * shape.in_h * shape.in_w)
                    .map(|i| value(i, 1))
                    .collect();
                let g: Vec<f32> = (0..shape.batch * shape.channels * shape.out_h() * shape.out_w())
                    .map(|i| value(i, 2))
                    .collect();
                let want = direct(&shape, &x, &g);
                let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let mut fused = Vec::new();
                for isa in Isa::supported() {
                    let got = filter_grad(isa, &shape, &x, &g);
                    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (*a as f64 - b).abs() <= 1e-5 * scale,
                            "{isa} {shape:?} [{k}]: {a} vs {b}"
                        );
                    }
                    if isa != Isa::Portable {
                        fused.push(got);
                    }
                }
                for pair in fused.windows(2) {
                    assert_eq!(pair[0], pair[1], "{shape:?}");
                }
            }
        }
    }
}
