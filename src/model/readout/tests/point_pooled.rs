//! The point-pooled readout against an independent f64 computation: the pyramid, the per-level
//! feature rows, the clamp, the shift and the bias; its regulariser, grid clamp and a zero
//! initial range.

use super::*;
use crate::model::readout::point_pooled::PointPooledSettings;
use crate::model::tensor_util::param_from_f64;
use rand_chacha::ChaCha8Rng;

const B: usize = 2;
const C: usize = 3;
const H: usize = 6;
const W: usize = 8;
const N: usize = 3;

fn map_value(b: usize, c: usize, h: usize, w: usize) -> f64 {
    (1.0 + b as f64 + 2.0 * c as f64 + 0.7 * h as f64 + 0.3 * (c + 1) as f64 * w as f64).sin()
}

/// `grid_sample(align_corners = True, padding = zeros)` of one plane at (gx, gy).
fn bilinear(plane: &[f64], h: usize, w: usize, gx: f64, gy: f64) -> f64 {
    let px = (gx + 1.0) / 2.0 * (w - 1) as f64;
    let py = (gy + 1.0) / 2.0 * (h - 1) as f64;
    let (x0, y0) = (px.floor(), py.floor());
    let mut v = 0.0;
    for (dy, wy) in [(0, 1.0 - (py - y0)), (1, py - y0)] {
        for (dx, wx) in [(0, 1.0 - (px - x0)), (1, px - x0)] {
            let (xi, yi) = (x0 as i64 + dx, y0 as i64 + dy);
            if (0..w as i64).contains(&xi) && (0..h as i64).contains(&yi) {
                v += wx * wy * plane[yi as usize * w + xi as usize];
            }
        }
    }
    v
}

fn readout(grid: &[f64], features: &[f64], bias: &[f64], device: &Device) -> PointPooledReadout {
    PointPooledReadout {
        grid: param_from_f64(grid, [N, 2], None, device),
        features: param_from_f64(features, [2 * C, N], None, device),
        bias: Some(param_from_f64(bias, [N], None, device)),
        settings: PointPooledSettings {
            pool_steps: 1,
            pool_kern: 2,
            feature_reg_weight: 0.37,
            reduction: Reduction::Sum,
        },
    }
}

#[test]
fn point_pooled_responses_equal_a_direct_pyramid_read_out() {
    let device = device();
    // The third point lies outside [−1, 1] and is read at the clamped corner.
    let grid = [0.3, -0.45, -0.8, 0.61, 1.7, -1.6];
    // Level-1 rows differ from level-0 rows, so reading the wrong rows shows.
    let features: Vec<f64> = (0..2 * C * N)
        .map(|i| 0.2 * (i as f64 + 1.0).cos() + if i >= C * N { 0.5 } else { 0.0 })
        .collect();
    let bias = [0.3, -0.2, 0.5];
    let shift = [[0.1, -0.05], [-0.22, 0.13]];
    let ro = readout(&grid, &features, &bias, &device);
    let x: Vec<f64> = (0..B * C * H * W)
        .map(|i| map_value(i / (C * H * W), i / (H * W) % C, i / W % H, i % W))
        .collect();
    let x_t = Tensor::<1>::from_floats(
        x.iter().map(|&v| v as f32).collect::<Vec<_>>().as_slice(),
        &device,
    )
    .reshape([B, C, H, W]);
    let shift_t = Tensor::<2>::from_floats(
        [
            [shift[0][0] as f32, shift[0][1] as f32],
            [shift[1][0] as f32, shift[1][1] as f32],
        ],
        &device,
    );
    let y = to_f64_vec(ro.forward(x_t, Some(shift_t)));

    // Level 1: 2×2 average pooling, stride 2 (3 × 4).
    let (h1, w1) = (H / 2, W / 2);
    for b in 0..B {
        for n in 0..N {
            let gx = grid[2 * n].clamp(-1.0, 1.0) + shift[b][0];
            let gy = grid[2 * n + 1].clamp(-1.0, 1.0) + shift[b][1];
            let mut expected = bias[n];
            for c in 0..C {
                let plane: Vec<f64> = (0..H * W).map(|i| map_value(b, c, i / W, i % W)).collect();
                let pooled: Vec<f64> = (0..h1 * w1)
                    .map(|i| {
                        let (r, q) = (2 * (i / w1), 2 * (i % w1));
                        (plane[r * W + q]
                            + plane[r * W + q + 1]
                            + plane[(r + 1) * W + q]
                            + plane[(r + 1) * W + q + 1])
                            / 4.0
                    })
                    .collect();
                expected += bilinear(&plane, H, W, gx, gy) * features[c * N + n];
                expected += bilinear(&pooled, h1, w1, gx, gy) * features[(C + c) * N + n];
            }
            let got = y[b * N + n];
            assert!(
                (got - expected).abs() < 1e-5,
                "image {b}, neuron {n}: {got} vs {expected}"
            );
        }
    }
}

#[test]
fn point_pooled_regularizer_grid_clamp_and_zero_init_range() {
    let device = device();
    let features: Vec<f64> = (0..2 * C * N).map(|i| i as f64 - 7.5).collect();
    let ro = readout(
        &[-1.7, 2.5, 0.3, -0.4, 0.9, -1.2],
        &features,
        &[0.0; N],
        &device,
    );
    let l1: f64 = features.iter().map(|f| f.abs()).sum();
    let reg = to_f64_vec(ro.regularizer())[0];
    assert!((reg - 0.37 * l1).abs() < 1e-5 * l1, "{reg} vs 0.37 · {l1}");
    let clamped = to_f64_vec(ro.clamp_grid().grid.val());
    let expected = [-1.0, 1.0, 0.3, -0.4, 0.9, -1.0];
    for (g, e) in clamped.iter().zip(expected) {
        assert!((g - e).abs() < 1e-7, "{clamped:?}");
    }
    let config = PointPooledReadoutConfig {
        init_range: 0.0,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ro = PointPooledReadout::init(&config, C, N, None, &mut rng, &device);
    assert!(to_f64_vec(ro.grid.val()).iter().all(|&g| g == 0.0));
}
