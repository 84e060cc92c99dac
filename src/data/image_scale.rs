//! Image rescaling (`data.image_scale`), equal to neuralpredictors' `ScaleInputs(scale)` as the
//! Sensorium starter kit uses it (`scale = 0.25`: 144×256 → 36×64).
//!
//! `ScaleInputs` calls `skimage.transform.rescale(img, scale, mode="reflect",
//! anti_aliasing=False, preserve_range=True, clip=True, channel_axis=0)` with the default
//! interpolation order 1. That is, per channel:
//!
//! - output size `round_half_even(scale · H) × round_half_even(scale · W)` (at least 1);
//! - output pixel `(i, j)` samples the input at `y = (i + ½)·H/H' − ½`, `x = (j + ½)·W/W' − ½`
//!   (`scipy.ndimage.zoom(..., grid_mode=True)`) by bilinear interpolation of the four nearest
//!   pixels; indices outside the image are mirrored about the edge pixel (skimage "reflect" =
//!   ndimage "mirror": −1 → 1, H → H−2);
//! - no smoothing before sampling (no anti-aliasing), so with `scale = 0.25` each output pixel is
//!   the mean of the 2×2 pixels at rows 4i+1, 4i+2 and columns 4j+1, 4j+2;
//! - the result is clipped to the input image's [min, max] (a no-op for bilinear up to rounding).
//!
//! It is computed in f64 and rounded to f32. The general-purpose resizers (`image`,
//! `fast_image_resize`) use area-weighted filters whose support widens when downscaling, i.e.
//! anti-aliasing, so they do not give these numbers; `tests/fixtures/image_scale/` holds skimage's
//! own output for this function to match.

/// Output (height, width) for `scale` (numpy's round-half-to-even, at least 1).
pub fn scaled_size(h: usize, w: usize, scale: f64) -> (usize, usize) {
    let side = |n: usize| ((n as f64 * scale).round_ties_even() as usize).max(1);
    (side(h), side(w))
}

/// Index into `0..n` with out-of-range indices mirrored about the edge pixels.
fn mirror(i: i64, n: usize) -> usize {
    let n = n as i64;
    if n == 1 {
        return 0;
    }
    let period = 2 * n - 2;
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// For each output position along an axis of `n_in` → `n_out`: the two input indices and the
/// weight of the second.
fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    let ratio = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let x = (o as f64 + 0.5) * ratio - 0.5;
            let x0 = x.floor();
            let t = x - x0;
            let x0 = x0 as i64;
            (mirror(x0, n_in), mirror(x0 + 1, n_in), t)
        })
        .collect()
}

/// Rescales `image` (C·H·W, row-major) to C·`out_h`·`out_w` as described in the module docs.
pub fn rescale_image(
    image: &[f32],
    [c, h, w]: [usize; 3],
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    debug_assert_eq!(image.len(), c * h * w);
    if (out_h, out_w) == (h, w) {
        return image.to_vec();
    }
    let (lo, hi) = image
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v as f64), hi.max(v as f64))
        });
    let (rows, cols) = (taps(h, out_h), taps(w, out_w));
    let mut out = Vec::with_capacity(c * out_h * out_w);
    for ch in image.chunks_exact(h * w) {
        let px = |y: usize, x: usize| ch[y * w + x] as f64;
        for &(y0, y1, ty) in &rows {
            for &(x0, x1, tx) in &cols {
                let v = (1.0 - ty) * ((1.0 - tx) * px(y0, x0) + tx * px(y0, x1))
                    + ty * ((1.0 - tx) * px(y1, x0) + tx * px(y1, x1));
                out.push(v.clamp(lo, hi) as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_scale_averages_the_middle_two_by_two() {
        let (h, w) = (8, 8);
        let img: Vec<f32> = (0..h * w).map(|i| (i * i % 17) as f32).collect();
        assert_eq!(scaled_size(h, w, 0.25), (2, 2));
        let out = rescale_image(&img, [1, h, w], (2, 2));
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let p = |y: usize, x: usize| img[y * w + x] as f64;
            let (y, x) = (4 * i + 1, 4 * j + 1);
            let mean = (p(y, x) + p(y, x + 1) + p(y + 1, x) + p(y + 1, x + 1)) / 4.0;
            assert!((out[i * 2 + j] as f64 - mean).abs() < 1e-5);
        }
    }

    #[test]
    fn sizes_round_half_to_even_and_edges_mirror() {
        assert_eq!(scaled_size(144, 256, 0.25), (36, 64));
        assert_eq!(scaled_size(5, 7, 0.5), (2, 4)); // 2.5 → 2, 3.5 → 4
        assert_eq!(scaled_size(3, 3, 0.01), (1, 1));
        assert_eq!(
            (0..8).map(|i| mirror(i - 2, 3)).collect::<Vec<_>>(),
            vec![2, 1, 0, 1, 2, 1, 0, 1]
        );
    }
}
