//! Building readouts: configs, one readout per dataset, named errors, initialisation schemes,
//! state-dict round trips and training updates.

use super::*;

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
fn each_bound_of_the_readout_settings_is_checked_on_its_own() {
    let device = device();
    let refused = |toml_text: &str, in_shape: [usize; 3], field: &str| {
        let config: ReadoutConfig = toml::from_str(toml_text).unwrap();
        let err = MultiReadout::init(&config, in_shape, &inputs(), 0, &device)
            .err()
            .unwrap_or_else(|| panic!("{toml_text:?} on {in_shape:?} was accepted"));
        assert!(err.to_string().contains(field), "{toml_text:?}: {err}");
    };
    let accepted = |toml_text: &str, in_shape: [usize; 3]| {
        let config: ReadoutConfig = toml::from_str(toml_text).unwrap();
        if let Err(err) = MultiReadout::init(&config, in_shape, &inputs(), 0, &device) {
            panic!("{toml_text:?} on {in_shape:?}: {err}");
        }
    };
    // Finite but negative, and non-finite: both refused.
    for bad in ["-0.1", "inf", "nan"] {
        refused(
            &format!("type = \"gaussian\"\ninit_sigma = {bad}"),
            [4, 6, 9],
            "init_sigma",
        );
        refused(
            &format!("type = \"gaussian\"\ngamma_readout = {bad}"),
            [4, 6, 9],
            "feature_reg_weight",
        );
    }
    accepted(
        "type = \"gaussian\"\ninit_sigma = 0.0\ngamma_readout = 0.0",
        [4, 6, 9],
    );
    // Pooling empties the height alone, then the width alone: either is refused.
    let pooled = "type = \"point_pooled\"\npool_steps = 2\npool_kern = 3";
    refused(pooled, [4, 6, 27], "pool_steps");
    refused(pooled, [4, 27, 6], "pool_steps");
    accepted(pooled, [4, 9, 27]);
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
    // Without mean activity (scan-b) the lurz2020 bias is N(0, 1e-3), not 0.
    let Readout::Gaussian(g) = &mr.readouts[1] else {
        unreachable!()
    };
    let bias = to_f64_vec(g.bias.as_ref().unwrap().val());
    assert!(
        bias.iter().all(|b| b.abs() < 5e-3) && bias.iter().filter(|&&b| b != 0.0).count() == 3,
        "{bias:?}"
    );
    // Both schemes: a full Σ starts ~ U(±init_sigma) entry by entry (the other types start at
    // init_sigma, see `sampled_positions_are_mu_plus_sigma_times_the_draws_for_every_gauss_type`).
    for config in [&np, &lurz] {
        let mr = MultiReadout::init(config, [4, 6, 9], &inputs(), 0, &device).unwrap();
        let sigma = to_f64_vec(mr.sigma(0).unwrap());
        assert_eq!(sigma.len(), 5 * 4);
        assert!(sigma.iter().all(|s| s.abs() < 0.1), "{sigma:?}");
        assert!(
            sigma.iter().any(|&s| s < 0.0) && sigma.iter().any(|&s| s > 0.0),
            "{sigma:?}"
        );
    }
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
    for (k, config) in configs.into_iter().enumerate() {
        let source = MultiReadout::init(&config, [4, 6, 9], &inputs(), 1, &device).unwrap();
        assert_eq!(
            [source.n_neurons(0), source.n_neurons(1)],
            [5, 3],
            "{config:?}"
        );
        // Only a Gaussian readout samples positions in training.
        let gaussian = k < 2;
        assert_eq!(
            source.sampled_neurons(1),
            gaussian.then_some(3),
            "{config:?}"
        );
        let mut sd = StateDict::default();
        source.export_state(&mut sd);
        if k == 0 {
            // The shared feature bank under the reference's name: the first scan's `_features`.
            assert_eq!(sd.entries["readout.scan-a._features"].shape[0], 1);
        }
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
    let mu = [1.7, -1.7, 0.25, -0.5, 0.0, 1.0, -1.0, 3.0, -0.99, 0.6];
    if let Readout::Gaussian(g) = &mut mr.readouts[0] {
        g.mu = g.mu.clone().map(|m| {
            m.map(|t| crate::model::tensor_util::tensor_from_f64(&mu, t.dims(), None, &device))
        });
    }
    let mr = mr.clamp_parameters();
    let Readout::Gaussian(g) = &mr.readouts[0] else {
        unreachable!()
    };
    // Out of range to ±1, in range unchanged.
    let clamped = to_f64_vec(g.mu.as_ref().unwrap().val());
    let expected = [1.0, -1.0, 0.25, -0.5, 0.0, 1.0, -1.0, 1.0, -0.99, 0.6];
    for (c, e) in clamped.iter().zip(expected) {
        assert!((c - e).abs() < 1e-6, "{clamped:?}");
    }
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

/// A readout table with only its type takes the reference builders' defaults (REFERENCE.md
/// §3.1–3.2: Lurz/nnsysident Gaussian init 0.3 / 0.1, gamma_readout 0.0076, init_noise 1e-3, a
/// bias; point-pooled pool_steps 2, pool_kern 3, init_range 0.2, gamma_readout 0.0207; the grid
/// predictor reads (x, y) with hidden layers 30 wide and no final tanh unless set, the paper's
/// setting), and the same values as `Default`.
#[test]
fn an_empty_readout_table_takes_the_reference_builders_defaults() {
    let ReadoutConfig::Gaussian(g) = gaussian_config("type = \"gaussian\"") else {
        panic!("gaussian expected")
    };
    assert_eq!(
        (
            g.init_mu_range,
            g.init_sigma,
            g.feature_reg_weight,
            g.init_noise
        ),
        (0.3, 0.1, 0.0076, 1e-3)
    );
    assert!(g.bias && !g.share_features && !g.init_mu_from_data);
    assert_eq!(
        (g.gauss_type, g.reduction),
        (GaussType::Full, Reduction::Sum)
    );
    assert!(g.grid_mean_predictor.is_none());
    assert_eq!(g, GaussianReadoutConfig::default());

    let ReadoutConfig::PointPooled(p) = gaussian_config("type = \"point_pooled\"") else {
        panic!("point_pooled expected")
    };
    assert_eq!(
        (
            p.pool_steps,
            p.pool_kern,
            p.init_range,
            p.feature_reg_weight
        ),
        (2, 3, 0.2, 0.0207)
    );
    assert!(p.bias);
    assert_eq!(p, PointPooledReadoutConfig::default());

    let ReadoutConfig::Gaussian(g) =
        gaussian_config("type = \"gaussian\"\n[grid_mean_predictor]\nhidden_layers = 1")
    else {
        panic!("gaussian expected")
    };
    let grid = g.grid_mean_predictor.expect("grid predictor");
    assert_eq!((grid.input_dimensions, grid.hidden_features), (2, 30));
    assert!(!grid.final_tanh);
}

/// Reading out only some neurons (repeats allowed) gives the columns of the whole evaluation
/// read-out, with a shift and a non-zero bias; the shift moves both the same way; the
/// regulariser is feature_reg_weight · Σ|features|.
#[test]
fn selected_neurons_and_the_regularizer_match_independent_computations() {
    let device = device();
    let config = gaussian_config("type = \"gaussian\"\ngamma_readout = 0.37\ninit_noise = 0.1");
    let mr = MultiReadout::init(&config, [4, 6, 9], &inputs(), 2, &device).unwrap();
    let x = feature_map(3, &device);
    let shift = Tensor::<2>::from_floats([[0.1, -0.2], [0.3, 0.05], [-0.15, 0.25]], &device);
    let all = to_f64_vec(mr.forward(0, x.clone(), Some(shift.clone()), None));
    let picked = [3, 0, 3];
    let some = to_f64_vec(mr.forward_eval_neurons(0, x.clone(), Some(shift), &picked));
    for b in 0..3 {
        for (k, &n) in picked.iter().enumerate() {
            let (s, a) = (some[b * 3 + k], all[b * 5 + n]);
            assert!((s - a).abs() < 1e-6, "image {b}, neuron {n}: {s} vs {a}");
        }
    }
    let unshifted = to_f64_vec(mr.forward_eval_neurons(0, x.clone(), None, &picked));
    let plain = to_f64_vec(mr.forward(0, x, None, None));
    assert!(
        some.iter()
            .zip(&unshifted)
            .any(|(a, b)| (a - b).abs() > 1e-4)
    );
    for b in 0..3 {
        for (k, &n) in picked.iter().enumerate() {
            assert!((unshifted[b * 3 + k] - plain[b * 5 + n]).abs() < 1e-6);
        }
    }
    let l1: f64 = to_f64_vec(mr.gaussian_features(0).unwrap())
        .iter()
        .map(|f| f.abs())
        .sum();
    let reg = to_f64_vec(mr.regularizer(0))[0];
    assert!(
        (reg - 0.37 * l1).abs() < 1e-6 * (1.0 + l1),
        "{reg} vs 0.37 · {l1}"
    );
}
