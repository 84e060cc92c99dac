//! The fixtures' intermediate arrays (clamped μ, shifted and unclamped positions, the steps of the
//! cortical-grid normalisation, the normalizer's floor and trial-index statistics), each checked
//! against cortexfit's own numbers or an independent recomputation here.

use burn::module::Param;
use burn::tensor::{DType, Device, Tensor, TensorData};
use cortexfit::data::{FieldStatistics, NormalizeOptions, Normalizer, Statistics};
use cortexfit::model::readout::Reduction;
use cortexfit::model::readout::gaussian::{GaussType, GaussianReadout, GaussianSettings};
use cortexfit::model::readout::retinotopy::normalize_cortex_coordinates;

use super::fixtures::{Array, Fixture, assert_close};

const REL: f64 = 1e-12;

fn t<const D: usize>(a: &Array, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = a.shape.clone().try_into().expect("rank");
    Tensor::from_data(TensorData::new(a.data.clone(), shape), (device, DType::F64))
}

fn v<const D: usize>(x: Tensor<D>) -> Vec<f64> {
    x.into_data().iter::<f64>().collect()
}

/// Bilinear sample of one (H, W) map at grid position (x, y), align_corners, zero padding
/// (fixtures README, "Grid / position conventions"), written out independently of cortexfit.
fn sample(map: &[f64], h: usize, w: usize, x: f64, y: f64) -> f64 {
    let ix = (x + 1.0) / 2.0 * (w - 1) as f64;
    let iy = (y + 1.0) / 2.0 * (h - 1) as f64;
    let (x0, y0) = (ix.floor(), iy.floor());
    let (wx, wy) = (ix - x0, iy - y0);
    let tap = |r: f64, c: f64| -> f64 {
        if r < 0.0 || c < 0.0 || r > (h - 1) as f64 || c > (w - 1) as f64 {
            0.0
        } else {
            map[r as usize * w + c as usize]
        }
    };
    (1.0 - wy) * (1.0 - wx) * tap(y0, x0)
        + (1.0 - wy) * wx * tap(y0, x0 + 1.0)
        + wy * (1.0 - wx) * tap(y0 + 1.0, x0)
        + wy * wx * tap(y0 + 1.0, x0 + 1.0)
}

#[test]
fn gaussian_clamped_mu_shifted_and_unclamped_positions() {
    let f = Fixture::load("gaussian_readout");
    let device = Device::flex();
    let features = f.get("features");
    let (c, n) = (features.shape[0], features.shape[1]);
    let readout = GaussianReadout {
        mu: Some(Param::from_tensor(t(f.get("mu_raw"), &device))),
        grid_predictor: None,
        sigma: Param::from_tensor(t(f.get("sigma"), &device)),
        features: Some(Param::from_tensor(t(features, &device))),
        feature_scales: None,
        bias: Some(Param::from_tensor(t(f.get("bias"), &device))),
        settings: GaussianSettings {
            gauss_type: GaussType::Full,
            feature_reg_weight: 1.0,
            reduction: Reduction::Sum,
            n_channels: c,
            n_neurons: n,
            sharing: None,
        },
    };
    // `mu`: the parameter after the reference's in-place clamp (cortexfit: `clamp_mu`, which the
    // trainer calls after every step), and what the forward pass reads.
    assert_close(
        "mean_positions",
        &v(readout.mean_positions()),
        &f.get("mu").data,
        REL,
    );
    let clamped = readout.clone().clamp_mu();
    assert_close(
        "mu (clamped parameter)",
        &v(clamped.mu.as_ref().unwrap().val()),
        &f.get("mu").data,
        REL,
    );

    // `positions_shift` = clip(μ) + shift[b]; sampling x there by hand gives y_shift, so the
    // shift is added after the clamp and taps beyond the map count 0.
    let x = f.get("x");
    let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3]);
    let mu = &f.get("mu").data;
    let shift = &f.get("shift").data;
    let positions_shift = &f.get("positions_shift").data;
    let mut expected = Vec::new();
    for bi in 0..b {
        for ni in 0..n {
            let k = (bi * n + ni) * 2;
            assert_close(
                "positions_shift",
                &positions_shift[k..k + 2],
                &[
                    mu[ni * 2] + shift[bi * 2],
                    mu[ni * 2 + 1] + shift[bi * 2 + 1],
                ],
                REL,
            );
            let mut y = f.get("bias").data[ni];
            for ci in 0..c {
                let map = &x.data[(bi * c + ci) * h * w..(bi * c + ci + 1) * h * w];
                y += sample(map, h, w, positions_shift[k], positions_shift[k + 1])
                    * features.data[ci * n + ni];
            }
            expected.push(y);
        }
    }
    assert!(
        positions_shift.iter().any(|p| p.abs() > 1.0),
        "some shifted positions lie beyond the map"
    );
    assert_close("y_shift (by hand)", &expected, &f.get("y_shift").data, REL);
    let y_shift = readout.forward(t(x, &device), Some(t(f.get("shift"), &device)), None, None);
    assert_close("y_shift", &v(y_shift), &expected, REL);

    // `positions_train_unclamped` = μ + Σz; cortexfit's sampled positions are its clamp, equal to
    // it wherever it lies inside the map.
    let unclamped = &f.get("positions_train_unclamped").data;
    let sampled = v(readout.sampled_positions(t(f.get("z"), &device)));
    let mut inside = 0;
    for (i, (&s, &u)) in sampled.iter().zip(unclamped).enumerate() {
        assert!(
            (s - u.clamp(-1.0, 1.0)).abs() <= REL,
            "[{i}] {s} vs clip({u})"
        );
        if u.abs() < 1.0 {
            inside += 1;
        }
    }
    assert_eq!(
        sampled.len() - inside,
        35,
        "35 of 160 coordinates are clamped"
    );
}

#[test]
fn grid_normalisation_steps() {
    let f = Fixture::load("grid_predictor");
    let coords = &f.get("coords_xyz").data;
    let n = f.get("coords_xyz").shape[0];
    let source: Vec<f64> = (0..n)
        .flat_map(|i| [coords[i * 3], coords[i * 3 + 1]])
        .collect();
    assert_eq!(
        source,
        f.get("source_grid").data,
        "source_grid = coords[:, :2]"
    );
    let triples: Vec<[f64; 3]> = coords.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let grid = normalize_cortex_coordinates(&triples, 2);
    // De-normalised with the reference's column mean and global max |·|, cortexfit's grid gives
    // back the source grid: same centring, same single (isotropic) scale.
    let mean = &f.get("column_mean").data;
    let max_abs = f.get("max_abs").scalar();
    let back: Vec<f64> = grid
        .iter()
        .enumerate()
        .map(|(i, g)| g * max_abs + mean[i % 2])
        .collect();
    assert_close("source_grid (round trip)", &back, &source, REL);
    let largest = grid.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    assert!((largest - 1.0).abs() < 1e-15, "max |grid| = {largest}");
    // The library keeps the grid in float32: within float32 rounding of cortexfit's.
    let lib32 = &f.get("source_grid_library_float32").data;
    for (i, (g, l)) in grid.iter().zip(lib32).enumerate() {
        assert!((g - l).abs() < 1e-6, "[{i}] {g} vs float32 {l}");
    }
}

#[test]
fn normalizer_floor_and_trial_index_statistics() {
    let f = Fixture::load("normalizer");
    let field = |m: &str, s: &str| FieldStatistics {
        mean: f.get(m).data.clone(),
        std: f.get(s).data.clone(),
        ..Default::default()
    };
    let mut stats = Statistics::default();
    for name in ["images", "responses", "behavior", "pupil_center"] {
        stats.all.insert(
            name.into(),
            field(&format!("{name}_mean"), &format!("{name}_std")),
        );
    }
    let norm = Normalizer::from_statistics(&stats, &NormalizeOptions::default()).unwrap();
    // Neurons whose std is at or below 0.01·mean(std) get 1/threshold, the others 1/std.
    let threshold = f.get("response_threshold").scalar();
    let std = &f.get("responses_std").data;
    let mut floored = 0;
    for (i, (&p, &s)) in norm.response_precision.iter().zip(std).enumerate() {
        let want = if s > threshold {
            1.0 / s
        } else {
            floored += 1;
            1.0 / threshold
        };
        assert!((p - want).abs() <= 1e-12 * want, "[{i}] {p} vs {want}");
    }
    assert_eq!(floored, 2, "std[3] and std[11] fall below the floor");

    // trial_idx is z-scored with the mean and population std of 0..dataset_len−1.
    let len = f.get("dataset_len").scalar() as usize;
    let (mean, sd) = (
        f.get("trial_idx_mean").scalar(),
        f.get("trial_idx_std").scalar(),
    );
    let z = Normalizer::trial_idx(&[mean, mean + sd, 0.0], len);
    assert_close("trial_idx z-scores", &z, &[0.0, 1.0, -mean / sd], REL);
    // `inv_trial_idx`: the inverse (x·std + mean) recovers the input; cortexfit never needs it
    // (trial_idx is only ever a model input), so it is checked here with the fixture's statistics.
    let out = &f.get("out_trial_idx").data;
    let inv: Vec<f64> = out.iter().map(|o| o * sd + mean).collect();
    assert_close("inv_trial_idx", &inv, &f.get("inv_trial_idx").data, REL);
    assert_close("in_trial_idx", &inv, &f.get("in_trial_idx").data, 1e-12);
}
