//! Behaviour tests of the readout family that have no reference fixture: configs, building one
//! readout per dataset, feature sharing, sampling, initialisation schemes, state-dict round trips.

use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;

use super::gaussian::GaussType;
use super::*;
use crate::model::facts::DatasetReadoutFacts;
use crate::model::state_dict::StateDict;
use crate::model::tensor_util::to_f64_vec;

fn device() -> Device {
    Device::flex()
}

fn inputs() -> Vec<DatasetReadoutFacts> {
    let coords = |n: usize, off: f64| -> Vec<[f64; 3]> {
        (0..n)
            .map(|i| [off + 10.0 * i as f64, 5.0 * (i % 3) as f64, 0.0])
            .collect()
    };
    vec![
        DatasetReadoutFacts {
            data_key: "scan-a".into(),
            n_neurons: 5,
            cell_motor_coordinates: Some(coords(5, 0.0)),
            match_ids: Some(vec![11, 4, 7, 20, 9]),
            mean_activity: Some(vec![0.5, 1.0, 1.5, 2.0, 2.5]),
            rf_centers_px: None,
        },
        DatasetReadoutFacts {
            data_key: "scan-b".into(),
            n_neurons: 3,
            cell_motor_coordinates: Some(coords(3, 100.0)),
            match_ids: Some(vec![7, 11, 9]),
            mean_activity: None,
            rf_centers_px: None,
        },
    ]
}

fn gaussian_config(toml_text: &str) -> ReadoutConfig {
    toml::from_str(toml_text).expect("valid readout config")
}

fn feature_map(b: usize, device: &Device) -> Tensor<4> {
    device.seed(3);
    Tensor::random([b, 4, 6, 9], Distribution::Normal(0.0, 1.0), device)
}

#[test]
fn config_parses_types_aliases_and_rejects_unknown_fields() {
    let c = gaussian_config(
        "type = \"gaussian\"\ngamma_readout = 2.439\ninit_mu_range = 0.55\ninit_sigma = 0.4\n\
         init = \"neuralpredictors\"\n[grid_mean_predictor]\nhidden_layers = 0\n",
    );
    let ReadoutConfig::Gaussian(g) = &c else {
        panic!("gaussian expected")
    };
    assert_eq!(g.feature_reg_weight, 2.439);
    assert_eq!(g.init, InitScheme::Neuralpredictors);
    assert_eq!(g.gauss_type, GaussType::Full);
    assert!(!g.grid_mean_predictor.as_ref().unwrap().final_tanh);
    let pp: ReadoutConfig = toml::from_str("type = \"point_pooled\"\npool_steps = 1").unwrap();
    assert!(matches!(pp, ReadoutConfig::PointPooled(p) if p.pool_steps == 1 && p.pool_kern == 3));
    let err =
        toml::from_str::<ReadoutConfig>("type = \"gaussian\"\ninit_mu_rnage = 0.2").unwrap_err();
    assert!(err.to_string().contains("init_mu_rnage"), "{err}");
    let err = toml::from_str::<ReadoutConfig>("type = \"gaussian\"\ngauss_type = \"diagonal\"")
        .unwrap_err();
    assert!(err.to_string().contains("diagonal"), "{err}");
}

#[test]
fn one_gaussian_readout_per_dataset_with_shapes_and_mean_activity_bias() {
    let device = device();
    let config = ReadoutConfig::default();
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 7, &device).unwrap();
    assert_eq!(mr.data_keys, vec!["scan-a", "scan-b"]);
    let x = feature_map(2, &device);
    assert_eq!(mr.forward(0, x.clone(), None, None).dims(), [2, 5]);
    assert_eq!(
        mr.forward(
            1,
            x.clone(),
            None,
            Some(&mut crate::model::SamplingRng::seed_from_u64(0))
        )
        .dims(),
        [2, 3]
    );
    assert_eq!(mr.positions(0).unwrap().dims(), [5, 2]);
    assert_eq!(mr.sigma(1).unwrap().dims(), [3, 2, 2]);
    let Readout::Gaussian(g) = &mr.readouts[0] else {
        unreachable!()
    };
    let bias = to_f64_vec(g.bias.as_ref().unwrap().val());
    assert_eq!(bias, vec![0.5, 1.0, 1.5, 2.0, 2.5]);
    let mu = to_f64_vec(g.mu.as_ref().unwrap().val());
    assert!(mu.iter().all(|m| m.abs() <= 0.3), "μ ~ U(±0.3): {mu:?}");
    // Same seed, same parameters.
    let again = MultiReadout::init(&config, [4, 6, 9], &inputs(), 7, &device).unwrap();
    let (mut a, mut b) = (StateDict::default(), StateDict::default());
    mr.export_state(&mut a);
    again.export_state(&mut b);
    assert_eq!(a, b);
}

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
fn missing_inputs_give_named_errors() {
    let device = device();
    let mut no_coords = inputs();
    no_coords[1].cell_motor_coordinates = None;
    let config = gaussian_config("type = \"gaussian\"\n[grid_mean_predictor]\n");
    let err = MultiReadout::init(&config, [4, 6, 9], &no_coords, 0, &device).unwrap_err();
    assert!(err.to_string().contains("scan-b"), "{err}");
    let config = gaussian_config("type = \"gaussian\"\ninit_mu_range = 0.0");
    let err = MultiReadout::init(&config, [4, 6, 9], &inputs(), 0, &device).unwrap_err();
    assert!(err.to_string().contains("init_mu_range"), "{err}");
    let config =
        gaussian_config("type = \"gaussian\"\ninit_mu_from_data = true\n[grid_mean_predictor]\n");
    let err = MultiReadout::init(&config, [4, 6, 9], &inputs(), 0, &device).unwrap_err();
    assert!(err.to_string().contains("init_mu_from_data"), "{err}");
    let mut no_ids = inputs();
    no_ids[0].match_ids = None;
    let config = gaussian_config("type = \"gaussian\"\nshare_features = true");
    let err = MultiReadout::init(&config, [4, 6, 9], &no_ids, 0, &device).unwrap_err();
    assert!(err.to_string().contains("scan-a"), "{err}");
    let config: ReadoutConfig = toml::from_str("type = \"point_pooled\"\npool_steps = 3").unwrap();
    let err = MultiReadout::init(&config, [4, 6, 9], &inputs(), 0, &device).unwrap_err();
    assert!(err.to_string().contains("pool_steps"), "{err}");
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
    let w = to_f64_vec(g.grid_predictor.as_ref().unwrap().layers[0].weight.val());
    // WᵀW = 0.04·I
    let (a, b, c, d) = (w[0], w[1], w[2], w[3]);
    assert!((a * a + c * c - 0.04).abs() < 1e-6 && (b * b + d * d - 0.04).abs() < 1e-6);
    assert!((a * b + c * d).abs() < 1e-6);
    let mut sd = StateDict::default();
    mr.export_state(&mut sd);
    assert_eq!(
        sd.entries["readout.scan-a.mu_transform.0.weight"].shape,
        vec![2, 2]
    );
    assert_eq!(sd.entries["readout.scan-b.source_grid"].shape, vec![3, 2]);
}

#[test]
fn init_schemes_differ_as_documented() {
    let device = device();
    let np = gaussian_config("type = \"gaussian\"\ninit = \"neuralpredictors\"");
    let mr = MultiReadout::init(&np, [4, 6, 9], &inputs(), 0, &device).unwrap();
    let f = to_f64_vec(mr.gaussian_features(1).unwrap());
    assert!(f.iter().all(|&v| (v - 0.25).abs() < 1e-7));
    let Readout::Gaussian(g) = &mr.readouts[1] else {
        unreachable!()
    };
    assert_eq!(to_f64_vec(g.bias.as_ref().unwrap().val()), vec![0.0; 3]);
    let lurz = gaussian_config("type = \"gaussian\"\ninit_noise = 0.001");
    let mr = MultiReadout::init(&lurz, [4, 6, 9], &inputs(), 0, &device).unwrap();
    let f = to_f64_vec(mr.gaussian_features(1).unwrap());
    assert!(f.iter().all(|&v| v.abs() < 0.01) && f.iter().any(|&v| v != 0.0));
}

#[test]
fn state_dict_round_trip_for_every_readout_type() {
    let device = device();
    let configs = [
        gaussian_config(
            "type = \"gaussian\"\nshare_features = true\n[grid_mean_predictor]\nhidden_layers = 1\nfinal_tanh = true",
        ),
        gaussian_config("type = \"gaussian\"\ngauss_type = \"isotropic\""),
        toml::from_str("type = \"factorized\"").unwrap(),
        toml::from_str("type = \"point_pooled\"\npool_steps = 1").unwrap(),
    ];
    let x = feature_map(2, &device);
    for config in configs {
        let source = MultiReadout::init(&config, [4, 6, 9], &inputs(), 1, &device).unwrap();
        let mut sd = StateDict::default();
        source.export_state(&mut sd);
        let target = MultiReadout::init(&config, [4, 6, 9], &inputs(), 2, &device).unwrap();
        let before = to_f64_vec(target.forward(1, x.clone(), None, None));
        let target = target.import_state(&sd).unwrap();
        let mut sd2 = StateDict::default();
        target.export_state(&mut sd2);
        assert_eq!(sd, sd2, "{config:?}");
        let y_source = to_f64_vec(source.forward(1, x.clone(), None, None));
        let y_target = to_f64_vec(target.forward(1, x.clone(), None, None));
        assert_eq!(y_source, y_target);
        assert_ne!(before, y_target);
    }
    // Names and shapes of the reference.
    let mr =
        MultiReadout::init(&ReadoutConfig::default(), [4, 6, 9], &inputs(), 1, &device).unwrap();
    let mut sd = StateDict::default();
    mr.export_state(&mut sd);
    assert_eq!(sd.entries["readout.scan-a._mu"].shape, vec![1, 5, 1, 2]);
    assert_eq!(sd.entries["readout.scan-a.sigma"].shape, vec![1, 5, 2, 2]);
    assert_eq!(
        sd.entries["readout.scan-a._features"].shape,
        vec![1, 4, 1, 5]
    );
    assert_eq!(sd.entries["readout.scan-b.bias"].shape, vec![3]);
    // A wrong shape is a named error.
    sd.insert("readout.scan-b.bias", vec![4], vec![0.0; 4]);
    let err = mr.import_state(&sd).unwrap_err();
    assert!(err.to_string().contains("readout.scan-b.bias"), "{err}");
}

#[test]
fn gradients_reach_mu_sigma_features_and_bias_when_training() {
    let device = device().autodiff();
    let mr =
        MultiReadout::init(&ReadoutConfig::default(), [4, 6, 9], &inputs(), 1, &device).unwrap();
    let x = feature_map(2, &device);
    let loss = mr
        .forward(
            0,
            x,
            None,
            Some(&mut crate::model::SamplingRng::seed_from_u64(0)),
        )
        .sum()
        + mr.regularizer(0).sum();
    let grads = loss.backward();
    let Readout::Gaussian(g) = &mr.readouts[0] else {
        unreachable!()
    };
    let nonzero = |v: Vec<f64>| v.iter().any(|x| *x != 0.0);
    assert!(nonzero(to_f64_vec(
        g.mu.as_ref().unwrap().val().grad(&grads).unwrap()
    )));
    assert!(nonzero(to_f64_vec(g.sigma.val().grad(&grads).unwrap())));
    assert!(nonzero(to_f64_vec(
        g.features.as_ref().unwrap().val().grad(&grads).unwrap()
    )));
    assert!(nonzero(to_f64_vec(
        g.bias.as_ref().unwrap().val().grad(&grads).unwrap()
    )));
}

#[test]
fn bias_setting_and_clamping_keep_parameters_trainable() {
    let device = device().autodiff();
    // The bias is set from the mean activity at init (the only way a readout's bias is set).
    let mut facts = inputs();
    facts[1].mean_activity = Some(vec![3.0, 4.0, 5.0]);
    let mut mr =
        MultiReadout::init(&ReadoutConfig::default(), [4, 6, 9], &facts, 1, &device).unwrap();
    if let Readout::Gaussian(g) = &mut mr.readouts[0] {
        g.mu = g.mu.clone().map(|m| m.map(|t| t.zeros_like() + 1.7));
    }
    let mr = mr.clamp_parameters();
    let Readout::Gaussian(g) = &mr.readouts[0] else {
        unreachable!()
    };
    assert!(
        to_f64_vec(g.mu.as_ref().unwrap().val())
            .iter()
            .all(|&m| m == 1.0)
    );
    let Readout::Gaussian(g1) = &mr.readouts[1] else {
        unreachable!()
    };
    assert_eq!(
        to_f64_vec(g1.bias.as_ref().unwrap().val()),
        vec![3.0, 4.0, 5.0]
    );
    let grads = mr
        .forward(1, feature_map(2, &device), None, None)
        .sum()
        .backward();
    assert!(g1.bias.as_ref().unwrap().val().grad(&grads).is_some());
}

#[test]
fn uncorrelated_and_isotropic_sigma_scale_the_draws_per_axis() {
    let device = device();
    for (toml_text, expected) in [
        (
            "type = \"gaussian\"\ngauss_type = \"uncorrelated\"\ninit_sigma = 0.25",
            [0.25, -0.5],
        ),
        (
            "type = \"gaussian\"\ngauss_type = \"isotropic\"\ninit_sigma = 0.25",
            [0.25, -0.25],
        ),
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
        if sigma.len() == 6 {
            // uncorrelated: make σ_y = 2·σ_x to see both axes.
            for n in 0..3 {
                sigma[2 * n + 1] = 0.5;
            }
        }
        let g = GaussianReadout {
            sigma: g.sigma.clone().map(|s| {
                let dims = s.dims();
                crate::model::tensor_util::tensor_from_f64(&sigma, dims, None, &device)
            }),
            ..g.clone()
        };
        let z = Tensor::<3>::from_floats([[[1.0, -1.0], [1.0, -1.0], [1.0, -1.0]]], &device);
        let mu = to_f64_vec(g.mean_positions());
        let p = to_f64_vec(g.sampled_positions(z));
        for n in 0..3 {
            for d in 0..2 {
                let want = (mu[2 * n + d] + expected[d]).clamp(-1.0, 1.0);
                assert!((p[2 * n + d] - want).abs() < 1e-6, "{toml_text}: {p:?}");
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

/// The readouts are ordinary burn modules: Adam updates every parameter kind (free μ, Σ,
/// features, bias, retinotopy layers, the shared bank) and keeps the fixed settings.
#[test]
fn adam_steps_update_readout_parameters_and_keep_settings() {
    use burn::optim::{AdamConfig, GradientsParams};
    let device = device().autodiff();
    for toml_text in [
        "type = \"gaussian\"",
        "type = \"gaussian\"\nshare_features = true\n[grid_mean_predictor]\n",
        "type = \"point_pooled\"\npool_steps = 1",
        "type = \"factorized\"\ninit_noise = 0.1",
    ] {
        let config = gaussian_config(toml_text);
        let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 1, &device).unwrap();
        let mut before = StateDict::default();
        mr.export_state(&mut before);
        let mut optim = AdamConfig::new().init();
        let x = feature_map(2, &device);
        let loss = mr
            .forward(
                1,
                x.clone(),
                None,
                Some(&mut crate::model::SamplingRng::seed_from_u64(0)),
            )
            .sum()
            + mr.regularizer(0).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &mr);
        let mr = optim.step(0.01, mr, grads).clamp_parameters();
        let mut after = StateDict::default();
        mr.export_state(&mut after);
        assert_eq!(mr.data_keys, vec!["scan-a", "scan-b"]);
        let changed: Vec<&String> = after
            .entries
            .iter()
            .filter(|(k, v)| before.entries[*k] != **v)
            .map(|(k, _)| k)
            .collect();
        assert!(
            changed.iter().any(|k| k.starts_with("readout.scan-b.")),
            "{toml_text}: {changed:?}"
        );
        assert_eq!(mr.forward(1, x, None, None).dims(), [2, 3]);
    }
}

/// The factorized readout's defaults (neuralpredictors' SpatialXFeatureLinear: init_noise 1e-3,
/// the Lurz penalty weight 0.0076, summed, with bias) and its initialisation: masks and features
/// ~ N(0, init_noise), bias = the mean activity when given, else 0.
#[test]
fn factorized_defaults_and_initialisation() {
    use rand::SeedableRng;
    let from_toml: FactorizedReadoutConfig = toml::from_str("").unwrap();
    let config = FactorizedReadoutConfig::default();
    assert_eq!(from_toml, config);
    assert_eq!(
        (
            config.init_noise,
            config.feature_reg_weight,
            config.reduction
        ),
        (1e-3, 0.0076, Reduction::Sum)
    );
    assert!(config.bias && !config.normalize && !config.constrain_pos);
    let device = device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let r = FactorizedReadout::init(&config, [8, 11, 17], 50, None, &mut rng, &device);
    for (name, v) in [
        ("spatial", to_f64_vec(r.spatial.val())),
        ("features", to_f64_vec(r.features.val())),
    ] {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 2e-4, "{name}: mean {mean}");
        assert!((sd / 1e-3 - 1.0).abs() < 0.1, "{name}: sd {sd}");
    }
    assert_eq!(to_f64_vec(r.bias.as_ref().unwrap().val()), vec![0.0; 50]);
    let activity: Vec<f32> = (0..50).map(|i| i as f32 / 10.0).collect();
    let r = FactorizedReadout::init(&config, [8, 11, 17], 50, Some(&activity), &mut rng, &device);
    let bias = to_f64_vec(r.bias.as_ref().unwrap().val());
    for (b, a) in bias.iter().zip(&activity) {
        assert!((b - *a as f64).abs() < 1e-6, "{b} vs {a}");
    }
}

/// positive_weights alone clamps the features (not the masks); constrain_pos clamps both.
#[test]
fn factorized_positivity_settings() {
    use rand::SeedableRng;
    let device = device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (positive_weights, constrain_pos) in [(true, false), (false, true), (false, false)] {
        let config = FactorizedReadoutConfig {
            positive_weights,
            constrain_pos,
            ..FactorizedReadoutConfig::default()
        };
        let r = FactorizedReadout::init(&config, [3, 4, 5], 6, None, &mut rng, &device);
        let raw_f = to_f64_vec(r.features.val());
        let f = to_f64_vec(r.effective_features());
        let s = to_f64_vec(r.normalized_spatial());
        assert!(raw_f.iter().any(|&v| v < 0.0));
        let clamp_features = positive_weights || constrain_pos;
        for (e, raw) in f.iter().zip(&raw_f) {
            let want = if clamp_features { raw.max(0.0) } else { *raw };
            assert_eq!(*e, want, "{positive_weights} {constrain_pos}");
        }
        assert_eq!(s.iter().any(|&v| v < 0.0), !constrain_pos);
    }
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
