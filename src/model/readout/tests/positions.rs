//! Positions: sampling around μ, free vs predicted positions, retinotopy (the grid predictor) and
//! feature sharing between matched neurons of several scans.

use super::*;

#[test]
fn sampling_moves_positions_and_zero_sigma_reads_at_mu() {
    let device = device();
    let mut mr =
        MultiReadout::init(&ReadoutConfig::default(), [4, 6, 9], &inputs(), 1, &device).unwrap();
    let x = feature_map(3, &device);
    let eval = to_f64_vec(mr.forward(0, x.clone(), None, None));
    let train = to_f64_vec(mr.forward(
        0,
        x.clone(),
        None,
        Some(&mut crate::model::SamplingRng::seed_from_u64(0)),
    ));
    assert!(eval.iter().zip(&train).any(|(e, t)| (e - t).abs() > 1e-6));
    if let Readout::Gaussian(g) = &mut mr.readouts[0] {
        g.sigma = g.sigma.clone().map(|s| s.zeros_like());
    }
    let train0 = to_f64_vec(mr.forward(
        0,
        x,
        None,
        Some(&mut crate::model::SamplingRng::seed_from_u64(0)),
    ));
    for (e, t) in eval.iter().zip(&train0) {
        assert!((e - t).abs() < 1e-6, "Σ = 0 must read at μ: {e} vs {t}");
    }
    // init_sigma = 0 (allowed: ≥ 0) starts a full Σ at exactly 0 rather than drawing from an
    // empty range.
    let config = gaussian_config("type = \"gaussian\"\ninit_sigma = 0.0");
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 1, &device).unwrap();
    let Readout::Gaussian(g) = &mr.readouts[0] else {
        panic!("gaussian expected")
    };
    assert_eq!(g.sigma().dims(), [5, 2, 2]);
    assert!(to_f64_vec(g.sigma()).iter().all(|&s| s == 0.0));
}

#[test]
fn shared_features_are_identical_for_matched_neurons_and_only_the_owner_is_regularized() {
    let device = device();
    let config = gaussian_config("type = \"gaussian\"\nshare_features = true\ninit_noise = 0.1");
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 3, &device).unwrap();
    assert_eq!(mr.shared_match_ids, Some(vec![4, 7, 9, 11, 20]));
    let fa = mr.gaussian_features(0).unwrap();
    let fb = mr.gaussian_features(1).unwrap();
    let bank = to_f64_vec(mr.feature_bank.as_ref().unwrap().val());
    let scales = |k: usize| match &mr.readouts[k] {
        Readout::Gaussian(g) => to_f64_vec(g.feature_scales.as_ref().unwrap().val()),
        _ => unreachable!(),
    };
    let (sa, sb) = (scales(0), scales(1));
    let (fa, fb) = (to_f64_vec(fa), to_f64_vec(fb));
    // Neuron 2 of a and neuron 0 of b share id 7 (bank column 1): same vector up to their scales.
    for c in 0..4 {
        let unscaled_a = fa[c * 5 + 2] / sa[2];
        let unscaled_b = fb[c * 3] / sb[0];
        assert!((unscaled_a - bank[c * 5 + 1]).abs() < 1e-6);
        assert!((unscaled_a - unscaled_b).abs() < 1e-6);
    }
    assert!(to_f64_vec(mr.regularizer(0))[0] > 0.0);
    assert_eq!(to_f64_vec(mr.regularizer(1)), vec![0.0]);
    // With unit scales (neuralpredictors init) the matched features are exactly identical.
    let config =
        gaussian_config("type = \"gaussian\"\nshare_features = true\ninit = \"neuralpredictors\"");
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 3, &device).unwrap();
    let fa = to_f64_vec(mr.gaussian_features(0).unwrap());
    let fb = to_f64_vec(mr.gaussian_features(1).unwrap());
    for c in 0..4 {
        assert_eq!(fa[c * 5], fb[c * 3 + 1], "id 11");
        assert_eq!(fa[c * 5 + 4], fb[c * 3 + 2], "id 9");
    }
}

#[test]
fn unmatched_neurons_of_two_scans_do_not_share_features() {
    // Match id −1 = unmatched: each such neuron reads its own bank column, while matched neurons
    // of the two scans share theirs (before, all −1 neurons read one common column).
    let device = device();
    let mut mixed = inputs();
    mixed[0].match_ids = Some(vec![11, -1, 7, -1, 9]);
    mixed[1].match_ids = Some(vec![7, -1, 9]);
    let config = gaussian_config("type = \"gaussian\"\nshare_features = true\ninit_noise = 0.1");
    let mr = MultiReadout::init(&config, [4, 6, 9], &mixed, 3, &device).unwrap();
    assert_eq!(mr.shared_match_ids, Some(vec![7, 9, 11, -1, -1, -1]));
    let scales = |k: usize| match &mr.readouts[k] {
        Readout::Gaussian(g) => to_f64_vec(g.feature_scales.as_ref().unwrap().val()),
        _ => unreachable!(),
    };
    let (sa, sb) = (scales(0), scales(1));
    let fa = to_f64_vec(mr.gaussian_features(0).unwrap());
    let fb = to_f64_vec(mr.gaussian_features(1).unwrap());
    // Unscaled feature vector (4 channels) of neuron j of a dataset with n neurons.
    let unscaled = |f: &[f64], s: &[f64], n: usize, j: usize| -> Vec<f64> {
        (0..4).map(|c| f[c * n + j] / s[j]).collect()
    };
    let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-6);
    // Matched: a's neuron 2 and b's neuron 0 (id 7) share.
    assert!(close(&unscaled(&fa, &sa, 5, 2), &unscaled(&fb, &sb, 3, 0)));
    // Unmatched: a's neurons 1 and 3 and b's neuron 1 all differ from each other.
    let un = [
        unscaled(&fa, &sa, 5, 1),
        unscaled(&fa, &sa, 5, 3),
        unscaled(&fb, &sb, 3, 1),
    ];
    for i in 0..3 {
        for j in i + 1..3 {
            assert!(
                !close(&un[i], &un[j]),
                "unmatched {i} and {j} share features"
            );
        }
    }
}

#[test]
fn free_positions_can_be_set_but_predicted_ones_cannot() {
    let device = device();
    let mut free = MultiReadout::init(
        &gaussian_config("type = \"gaussian\""),
        [4, 6, 9],
        &inputs(),
        0,
        &device,
    )
    .unwrap();
    let mu = Tensor::<2>::from_floats([[0.5, -0.25], [0.0, 1.0], [-1.0, 0.1]], &device);
    assert!(free.set_positions(1, mu));
    let got = to_f64_vec(free.positions(1).unwrap());
    let want = [0.5, -0.25, 0.0, 1.0, -1.0, 0.1];
    assert!(
        got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{got:?}"
    );
    let config = gaussian_config("type = \"gaussian\"\n[grid_mean_predictor]\n");
    let mut predicted = MultiReadout::init(&config, [4, 6, 9], &inputs(), 0, &device).unwrap();
    let before = to_f64_vec(predicted.positions(0).unwrap());
    assert!(!predicted.set_positions(0, Tensor::zeros([5, 2], &device)));
    assert_eq!(to_f64_vec(predicted.positions(0).unwrap()), before);
}

#[test]
fn retinotopy_lurz_init_is_a_scaled_orthogonal_map() {
    let device = device();
    let config = gaussian_config("type = \"gaussian\"\n[grid_mean_predictor]\nhidden_layers = 0");
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 5, &device).unwrap();
    let Readout::Gaussian(g) = &mr.readouts[0] else {
        unreachable!()
    };
    assert!(g.mu.is_none());
    assert_eq!(g.grid_predictor.as_ref().unwrap().n_neurons(), 5);
    // WᵀW = 0.04·I for every seed; rotations (det > 0) and reflections (det < 0) both occur.
    let mut determinants = Vec::new();
    for seed in 0..8 {
        let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), seed, &device).unwrap();
        for readout in &mr.readouts {
            let Readout::Gaussian(g) = readout else {
                unreachable!()
            };
            let w = to_f64_vec(g.grid_predictor.as_ref().unwrap().layers[0].weight.val());
            let (a, b, c, d) = (w[0], w[1], w[2], w[3]);
            assert!((a * a + c * c - 0.04).abs() < 1e-6 && (b * b + d * d - 0.04).abs() < 1e-6);
            assert!((a * b + c * d).abs() < 1e-6, "seed {seed}: {w:?}");
            determinants.push(a * d - b * c);
        }
    }
    assert!(determinants.iter().all(|d| (d.abs() - 0.04).abs() < 1e-6));
    assert!(determinants.iter().any(|&d| d > 0.0) && determinants.iter().any(|&d| d < 0.0));
    let mut sd = StateDict::default();
    mr.export_state(&mut sd);
    assert_eq!(
        sd.entries["readout.scan-a.mu_transform.0.weight"].shape,
        vec![2, 2]
    );
    assert_eq!(sd.entries["readout.scan-b.source_grid"].shape, vec![3, 2]);
}

#[test]
fn sampled_positions_are_mu_plus_sigma_times_the_draws_for_every_gauss_type() {
    let device = device();
    // Draws that are not ±1, so that Σ·z and Σ/z differ.
    let z = [2.0, -0.5];
    for (toml_text, sigma_len) in [
        (
            "type = \"gaussian\"\ngauss_type = \"uncorrelated\"\ninit_sigma = 0.25",
            6,
        ),
        (
            "type = \"gaussian\"\ngauss_type = \"isotropic\"\ninit_sigma = 0.25",
            3,
        ),
        ("type = \"gaussian\"\ninit_sigma = 0.25", 12),
    ] {
        let mr = MultiReadout::init(
            &gaussian_config(toml_text),
            [4, 6, 9],
            &inputs(),
            2,
            &device,
        )
        .unwrap();
        let Readout::Gaussian(g) = &mr.readouts[1] else {
            unreachable!()
        };
        let mut sigma = to_f64_vec(g.sigma());
        assert_eq!(sigma.len(), sigma_len, "{toml_text}");
        if sigma_len == 6 {
            // uncorrelated: make σ_y = 2·σ_x to see both axes.
            for n in 0..3 {
                sigma[2 * n + 1] = 0.5;
            }
        }
        if sigma_len != 12 {
            assert!(
                to_f64_vec(g.sigma()).iter().all(|&s| s == 0.25),
                "{toml_text}: these types start at init_sigma"
            );
        }
        let g = GaussianReadout {
            sigma: g.sigma.clone().map(|s| {
                let dims = s.dims();
                crate::model::tensor_util::tensor_from_f64(&sigma, dims, None, &device)
            }),
            ..g.clone()
        };
        let draws = Tensor::<3>::from_floats([[z, z, z]], &device);
        let mu = to_f64_vec(g.mean_positions());
        let p = to_f64_vec(g.sampled_positions(draws));
        for n in 0..3 {
            // offset[d] = Σ_e Σ[n][d][e]·z[e] (full), σ[n][d]·z[d] (uncorrelated), σ[n]·z[d].
            let offset = |d: usize| match sigma_len {
                12 => sigma[4 * n + 2 * d] * z[0] + sigma[4 * n + 2 * d + 1] * z[1],
                6 => sigma[2 * n + d] * z[d],
                _ => sigma[n] * z[d],
            };
            for d in 0..2 {
                let want = (mu[2 * n + d] + offset(d)).clamp(-1.0, 1.0);
                assert!(
                    (p[2 * n + d] - want).abs() < 1e-6,
                    "{toml_text}: neuron {n} axis {d}: {} vs {want}",
                    p[2 * n + d]
                );
            }
        }
    }
}

#[test]
fn retinotopy_can_use_cortical_depth_too() {
    let device = device();
    let config = gaussian_config(
        "type = \"gaussian\"\n[grid_mean_predictor]\ninput_dimensions = 3\nhidden_layers = 1\nhidden_features = 4\nfinal_tanh = true",
    );
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 5, &device).unwrap();
    let mut sd = StateDict::default();
    mr.export_state(&mut sd);
    assert_eq!(sd.entries["readout.scan-a.source_grid"].shape, vec![5, 3]);
    assert_eq!(
        sd.entries["readout.scan-a.mu_transform.0.weight"].shape,
        vec![4, 3]
    );
    assert_eq!(
        sd.entries["readout.scan-a.mu_transform.2.weight"].shape,
        vec![2, 4]
    );
    let p = to_f64_vec(mr.positions(0).unwrap());
    assert!(
        p.iter().all(|v| v.abs() < 1.0),
        "tanh keeps μ inside: {p:?}"
    );
    let bad = gaussian_config("type = \"gaussian\"\n[grid_mean_predictor]\ninput_dimensions = 4");
    let err = MultiReadout::init(&bad, [4, 6, 9], &inputs(), 5, &device).unwrap_err();
    assert!(err.to_string().contains("input_dimensions"), "{err}");
}

/// A hidden layer without a width gets the documented default of 30 units.
#[test]
fn retinotopy_hidden_layer_width_defaults_to_30() {
    let device = device();
    let config = gaussian_config("type = \"gaussian\"\n[grid_mean_predictor]\nhidden_layers = 1");
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 5, &device).unwrap();
    let mut sd = StateDict::default();
    mr.export_state(&mut sd);
    assert_eq!(
        sd.entries["readout.scan-a.mu_transform.0.weight"].shape,
        vec![30, 2]
    );
}

#[test]
fn clamped_positions_pass_the_gradient_through_unchanged() {
    let device = Device::flex().autodiff();
    let p = Tensor::<2>::from_floats([[-1.7, 0.3], [0.95, 2.5]], &device).require_grad();
    let weights = Tensor::<2>::from_floats([[2.0, -3.0], [0.5, 7.0]], &device);
    let clamped = bilinear::clamp_straight_through(p.clone());
    assert_eq!(
        to_f64_vec(clamped.clone()),
        [-1.0, 0.3f32 as f64, 0.95f32 as f64, 1.0]
    );
    let grads = (clamped * weights).sum().backward();
    // The gradient of the identity, inside and outside [−1, 1] alike.
    assert_eq!(to_f64_vec(p.grad(&grads).unwrap()), [2.0, -3.0, 0.5, 7.0]);
}

#[test]
fn cortical_coordinates_are_centred_and_scaled_by_the_largest_offset() {
    // Means (2, 10); offsets (−2, −4), (0, 2), (2, 2): the largest |offset| is 4.
    let coords = [[0.0, 6.0, 9.0], [2.0, 12.0, -3.0], [4.0, 12.0, 0.0]];
    let grid = retinotopy::normalize_cortex_coordinates(&coords, 2);
    assert_eq!(grid, [-0.5, -1.0, 0.0, 0.5, 0.5, 0.5]);
    // With depth: mean 2, offsets 7, −5, −2 raise the largest |offset| to 7.
    let grid = retinotopy::normalize_cortex_coordinates(&coords, 3);
    assert_eq!(grid[2], 1.0);
    assert_eq!(grid[0], -2.0 / 7.0);
    // All neurons at one point: centred only (zeros), not 0/0.
    let same = [[3.0, 4.0, 5.0]; 4];
    assert_eq!(retinotopy::normalize_cortex_coordinates(&same, 2), [0.0; 8]);
}
