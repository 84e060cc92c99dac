//! Feature maps laid out for the read-out: channels-last, so the C-vector of every map point is
//! contiguous, with one zero row after each image's points, which taps outside the map read (and
//! whose gradient row is written and thrown away), so no reading branches on where its taps are.

use std::mem::MaybeUninit;

use super::super::isa::Isa;
use super::super::memory::{assume_init, uninit};
use super::super::vector::{LANES, Vector, vectorized};
use super::ReadoutShape;

impl ReadoutShape {
    /// Map points per image.
    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Values per image of the map `[channels, h, w]`.
    pub(super) fn image(&self) -> usize {
        self.channels * self.plane()
    }

    /// Values per image of the channels-last map: `[h · w + 1, channels]`, the last row zero.
    pub(super) fn padded_image(&self) -> usize {
        (self.plane() + 1) * self.channels
    }

    /// Offset of the zero row in a channels-last image.
    pub(super) fn zero_row(&self) -> usize {
        self.image()
    }
}

/// `[rows, cols]` → `[cols, rows]` into `out`: full 8 × 8 blocks as vector transposes (each
/// block's output rows are contiguous 8-float writes), the ragged edges value by value. Writes
/// every one of `out`'s first `rows · cols` values.
#[inline(always)]
fn transpose_body<V: Vector>(
    values: &[f32],
    (rows, cols): (usize, usize),
    out: &mut [MaybeUninit<f32>],
) {
    assert!(values.len() >= rows * cols && out.len() >= rows * cols);
    let out = out.as_mut_ptr().cast::<f32>();
    let put = |at: usize, v: f32| {
        debug_assert!(at < rows * cols);
        // SAFETY: every index written is `c · rows + r` with r < rows, c < cols (asserted size).
        unsafe { out.add(at).write(v) }
    };
    let (full_rows, full_cols) = (rows / LANES * LANES, cols / LANES * LANES);
    for c0 in (0..full_cols).step_by(LANES) {
        for r0 in (0..full_rows).step_by(LANES) {
            let m = std::array::from_fn(|l| V::from_slice(&values[(r0 + l) * cols + c0..]));
            for (j, v) in V::transpose(m).into_iter().enumerate() {
                let at = (c0 + j) * rows + r0;
                debug_assert!(at + LANES <= rows * cols);
                // SAFETY: `at + 8 ≤ (c0 + 8) · rows ≤ cols · rows` (r0 + 8 ≤ rows).
                unsafe { v.store(out.add(at)) };
            }
        }
        for r in full_rows..rows {
            for c in c0..c0 + LANES {
                put(c * rows + r, values[r * cols + c]);
            }
        }
    }
    for c in full_cols..cols {
        for r in 0..rows {
            put(c * rows + r, values[r * cols + c]);
        }
    }
}

vectorized!(
    /// [`transpose_body`] on the path `isa` (the same values on every path).
    pub(in crate::kernels) fn transpose_into => transpose_body(
        values: &[f32],
        size: (usize, usize),
        out: &mut [MaybeUninit<f32>],
    )
);

/// `[rows, cols]` → a new `[cols, rows]`.
pub(super) fn transpose(isa: Isa, values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert_eq!(values.len(), rows * cols);
    let mut out = uninit(values.len());
    transpose_into(isa, values, (rows, cols), &mut out);
    // SAFETY: `transpose_into` writes all rows · cols values of `out`.
    unsafe { assume_init(out) }
}

/// `values` as a slice to overwrite.
pub(super) fn as_uninit(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the slice's users write only
    // initialised values into it.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// One image `[channels, h, w]` channels-last into `out` (`[h · w + 1, channels]`, the last row
/// zero); writes every value of `out`.
pub(super) fn channels_last_image(
    isa: Isa,
    shape: &ReadoutShape,
    image: &[f32],
    out: &mut [MaybeUninit<f32>],
) {
    assert_eq!(out.len(), shape.padded_image());
    let (points, zero) = out.split_at_mut(shape.zero_row());
    transpose_into(isa, image, (shape.channels, shape.plane()), points);
    for v in zero {
        v.write(0.0);
    }
}
