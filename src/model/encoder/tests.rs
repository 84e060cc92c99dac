//! Unit tests of the encoder.

use super::*;
use crate::model::core::{PerLayer, Stack};
use crate::model::modulator::ModulatorConfig;
use crate::model::shifter::ShifterConfig;
use crate::model::{CoreConfig, DatasetReadoutFacts};
use burn::tensor::Distribution;
use rand::SeedableRng;

fn facts(n_behaviors: usize) -> DatasetFacts {
    let coords = |n: usize| {
        (0..n)
            .map(|i| [i as f64 * 10.0, (i * i) as f64, 0.0])
            .collect()
    };
    DatasetFacts {
        in_shape: [1, 18, 24],
        n_behaviors,
        datasets: vec![
            DatasetReadoutFacts {
                data_key: "a".into(),
                n_neurons: 7,
                cell_motor_coordinates: Some(coords(7)),
                match_ids: None,
                mean_activity: None,
                rf_centers_px: None,
            },
            DatasetReadoutFacts {
                data_key: "b".into(),
                n_neurons: 5,
                cell_motor_coordinates: Some(coords(5)),
                match_ids: None,
                mean_activity: Some(vec![0.5; 5]),
                rf_centers_px: None,
            },
        ],
    }
}

fn small(mut config: ModelConfig) -> ModelConfig {
    config.core = CoreConfig {
        layers: 2,
        hidden_channels: PerLayer::All(4),
        input_kern: 5,
        hidden_kern: PerLayer::All(3),
        stack: Stack::From(-1),
        ..config.core
    };
    config
}

#[test]
fn sensorium_plus_with_modulator_runs_on_behaviour_and_pupil_for_every_data_key() {
    let device = Device::flex().autodiff();
    let mut config = small(ModelConfig::preset("sensorium2022_plus").unwrap());
    config.pupil_as_channels = true;
    config.modulator = Some(ModulatorConfig::default());
    let mut enc = Encoder::init(&config, &facts(3), 1, &device).unwrap();
    assert_eq!(
        enc.core.data_driven().unwrap().blocks[0]
            .conv
            .as_ref()
            .unwrap()
            .weight
            .dims()[1],
        1 + 3 + 2
    );
    let x = Tensor::<4>::random([3, 1, 18, 24], Distribution::Normal(0.0, 1.0), &device);
    let beh = Tensor::<2>::random([3, 3], Distribution::Uniform(0.0, 1.0), &device);
    let pupil = Tensor::<2>::random([3, 2], Distribution::Normal(0.0, 1.0), &device);
    for (key, n) in [(0, 7), (1, 5)] {
        let y = enc.forward(
            x.clone(),
            key,
            Some(beh.clone()),
            Some(pupil.clone()),
            Some(&mut crate::model::SamplingRng::seed_from_u64(0)),
        );
        assert_eq!(y.dims(), [3, n]);
        let values: Vec<f32> = y.clone().into_data().iter::<f32>().collect();
        assert!(values.iter().all(|&v| v > 0.0), "ELU + 1 is positive");
        let grads = y.sum().add(enc.regularizer(key)).backward();
        let shifter_w = enc.shifter.as_ref().unwrap().networks[key].layers[0]
            .weight
            .val();
        assert!(shifter_w.grad(&grads).is_some(), "the shifter is trained");
        let y_eval = enc.forward_eval(x.clone(), key, Some(beh.clone()), Some(pupil.clone()));
        assert_eq!(y_eval.dims(), [3, n]);
    }
    // Different pupil positions move the readout, so predictions change.
    let a = enc.forward_eval(x.clone(), 0, Some(beh.clone()), Some(pupil.clone()));
    let b = enc.forward_eval(x, 0, Some(beh), Some(pupil.add_scalar(1.0)));
    assert!(a.sub(b).abs().sum().into_scalar::<f32>() > 0.0);
}

#[test]
fn configurations_the_data_cannot_serve_are_rejected() {
    let device = Device::flex();
    let config = small(ModelConfig::preset("sensorium2022_plus").unwrap());
    let err = Encoder::init(&config, &facts(0), 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("behavior_as_channels"), "{err}");
    let mut config = small(ModelConfig::preset("lurz2020_factorized").unwrap());
    config.shifter = Some(ShifterConfig::default());
    let err = Encoder::init(&config, &facts(0), 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shifter"), "{err}");
    let mut facts = facts(0);
    facts.datasets[0].cell_motor_coordinates = None;
    let config = small(ModelConfig::preset("lurz2020").unwrap());
    let err = Encoder::init(&config, &facts, 0, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cortical coordinates"), "{err}");
}

#[test]
fn every_preset_builds_on_a_small_image_and_exports_the_same_state_after_import() {
    let device = Device::flex();
    for name in crate::model::presets::PRESET_NAMES {
        let config = small(ModelConfig::preset(name).unwrap());
        let enc = Encoder::init(&config, &facts(3), 2, &device).unwrap();
        let sd = enc.export_state();
        let same = Encoder::init(&config, &facts(3), 2, &device).unwrap();
        assert_eq!(same.export_state(), sd, "{name}: same seed, same model");
        let other = Encoder::init(&config, &facts(3), 3, &device).unwrap();
        assert_ne!(other.export_state(), sd, "{name}: seeds differ");
        assert_eq!(
            other.import_state(&sd).unwrap().export_state(),
            sd,
            "{name}"
        );
    }
}

#[test]
fn options_that_would_be_ignored_are_rejected_naming_the_key() {
    let device = Device::flex();
    let build = |config: &ModelConfig| Encoder::init(config, &facts(3), 1, &device);
    let expect_error = |config: ModelConfig, key: &str, why: &str| {
        let err = build(&config).expect_err(key).to_string();
        assert!(err.contains(key), "{key}: {err}");
        assert!(err.contains(why), "{key}: {err}");
    };
    let base = small(ModelConfig::preset("lurz2020").unwrap());
    let with_shifter = |s: ShifterConfig| ModelConfig {
        shifter: Some(s),
        ..base.clone()
    };
    expect_error(
        with_shifter(ShifterConfig {
            gamma_shifter: 0.1,
            ..ShifterConfig::default()
        }),
        "shifter.gamma_shifter",
        "no regularizer",
    );
    expect_error(
        with_shifter(ShifterConfig {
            shift_layers: 0,
            ..ShifterConfig::default()
        }),
        "shifter.shift_layers",
        "at least 1",
    );
    expect_error(
        ModelConfig {
            modulator: Some(ModulatorConfig {
                layers: 0,
                ..ModulatorConfig::default()
            }),
            ..base.clone()
        },
        "modulator.layers",
        "at least 1",
    );
    let mut dense_penalty = base.clone();
    dense_penalty.core.depth_separable = true;
    dense_penalty.core.gamma_hidden = 0.5;
    expect_error(dense_penalty, "gamma_hidden", "depth_separable");
    // The accepted counterparts build.
    assert!(build(&with_shifter(ShifterConfig::default())).is_ok());
    let mut dense = base.clone();
    dense.core.depth_separable = false;
    dense.core.gamma_hidden = 0.5;
    assert!(build(&dense).is_ok());
}
