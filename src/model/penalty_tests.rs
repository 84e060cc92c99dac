//! Penalties and activations checked with non-zero values computed independently here: the
//! modulator's gain and penalty (alone and as `Encoder::regularizer` adds it), the refused
//! shifter penalty, and the core's shifted ELU.

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::model::core::{PerLayer, ShiftedElu, Stack};
use crate::model::modulator::{MlpModulator, Modulator, ModulatorConfig};
use crate::model::readout::linear::TorchLinear;
use crate::model::shifter::ShifterConfig;
use crate::model::{CoreConfig, Encoder, ModelConfig, cast_module};
use crate::model::{DatasetFacts, DatasetReadoutFacts};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

fn elu(x: f64) -> f64 {
    if x > 0.0 { x } else { x.exp() - 1.0 }
}

fn relu(x: f64) -> f64 {
    x.max(0.0)
}

/// y = W·x + b for W row-major (out, in).
fn linear(w: &[f64], b: &[f64], x: &[f64]) -> Vec<f64> {
    b.iter()
        .enumerate()
        .map(|(o, bo)| bo + (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum::<f64>())
        .collect()
}

// A 3 → 2 → 4 modulator with hand-picked weights: some outputs are cut by the last ReLU (gain
// exactly 1), others pass (gain 1 + out).
const W0: [f64; 6] = [0.5, -1.0, 0.25, 1.5, 0.3, -0.7];
const B0: [f64; 2] = [0.1, -0.2];
const W1: [f64; 8] = [1.0, -0.5, -2.0, 0.4, 0.3, 0.9, -0.1, -0.6];
const B1: [f64; 4] = [0.05, -0.3, 0.2, 0.0];

fn modulator_network(device: &Device) -> MlpModulator {
    MlpModulator {
        layers: vec![
            TorchLinear::from_values(&W0, &B0, 3, 2, Some(DType::F64), device),
            TorchLinear::from_values(&W1, &B1, 2, 4, Some(DType::F64), device),
        ],
    }
}

#[test]
fn modulator_gain_and_penalty_match_a_hand_computation() {
    let device = Device::flex();
    let behavior = [[1.0, 0.5, -2.0], [-0.5, 2.0, 1.0], [0.0, 0.0, 0.0]];
    let net = modulator_network(&device);
    let x = Tensor::<2>::from_data(
        TensorData::new(behavior.concat(), [3, 3]),
        (&device, DType::F64),
    );
    let gain = values(net.forward(x));
    let mut expected = Vec::new();
    for b in &behavior {
        let h: Vec<f64> = linear(&W0, &B0, b).into_iter().map(relu).collect();
        let out: Vec<f64> = linear(&W1, &B1, &h).into_iter().map(relu).collect();
        expected.extend(out.into_iter().map(|o| elu(o) + 1.0));
    }
    assert!(expected.contains(&1.0) && expected.iter().any(|&g| g > 1.2));
    for (i, (g, e)) in gain.iter().zip(&expected).enumerate() {
        assert!((g - e).abs() < 1e-12, "gain[{i}] {g} vs {e}");
    }

    // gamma · mean |W_last|.
    let gamma = 0.7;
    let mean_abs = W1.iter().map(|w| w.abs()).sum::<f64>() / W1.len() as f64;
    let modulator = Modulator {
        networks: vec![modulator_network(&device), modulator_network(&device)],
        data_keys: vec!["a".into(), "b".into()],
        gamma_modulator: gamma,
    };
    for key in 0..2 {
        let reg = values(modulator.regularizer(key));
        assert_eq!(reg.len(), 1);
        assert!((reg[0] - gamma * mean_abs).abs() < 1e-12, "{reg:?}");
    }
}

fn facts() -> DatasetFacts {
    DatasetFacts {
        in_shape: [1, 12, 16],
        n_behaviors: 3,
        datasets: vec![DatasetReadoutFacts {
            data_key: "a".into(),
            n_neurons: 4,
            cell_motor_coordinates: Some(
                (0..4)
                    .map(|i| [i as f64 * 10.0, (i * i) as f64, 0.0])
                    .collect(),
            ),
            match_ids: None,
            mean_activity: None,
            rf_centers_px: None,
        }],
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
fn encoder_regularizer_adds_the_weighted_modulator_penalty() {
    let device = Device::flex();
    let mut config = small(ModelConfig::preset("sensorium2022").unwrap());
    let build = |gamma: f64, config: &mut ModelConfig| {
        config.modulator = Some(ModulatorConfig {
            hidden_features: 2,
            layers: 2,
            gamma_modulator: gamma,
        });
        let mut enc = cast_module(
            Encoder::init(config, &facts(), 3, &device).unwrap(),
            DType::F64,
        );
        enc.modulator.as_mut().unwrap().networks[0] = modulator_network(&device);
        values(enc.regularizer(0))[0]
    };
    let without = build(0.0, &mut config);
    let with = build(1.5, &mut config);
    let mean_abs = W1.iter().map(|w| w.abs()).sum::<f64>() / W1.len() as f64;
    assert!(
        (with - without - 1.5 * mean_abs).abs() < 1e-9,
        "{with} − {without} vs {}",
        1.5 * mean_abs
    );
}

#[test]
fn a_shifter_penalty_weight_is_refused_not_ignored() {
    // The MLP shifter has no penalty (the reference's regulariser is identically 0), so a
    // non-zero gamma_shifter would do nothing: refused, naming the key.
    let device = Device::flex();
    let mut config = small(ModelConfig::preset("sensorium2022").unwrap());
    config.shifter = Some(ShifterConfig {
        gamma_shifter: 0.1,
        ..ShifterConfig::default()
    });
    let err = Encoder::init(&config, &facts(), 0, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.shifter.gamma_shifter") && err.contains("0.1"),
        "{err}"
    );
    config.shifter = Some(ShifterConfig::default());
    let enc = Encoder::init(&config, &facts(), 0, &device).unwrap();
    let shifter = enc.shifter.as_ref().unwrap();
    assert_eq!(
        values(cast_module(shifter.clone(), DType::F64).regularizer(0)),
        [0.0]
    );
}

#[test]
fn shifted_elu_matches_its_formula() {
    let device = Device::flex();
    let x = [-3.0, -1.0, -0.25, 0.0, 0.5, 1.0, 1.5, 4.0];
    let input = Tensor::<4>::from_data(
        TensorData::new(x.to_vec(), [1, 2, 2, 2]),
        (&device, DType::F64),
    );
    for (xshift, yshift) in [(1.0, 2.0), (-0.5, -0.25), (0.0, 0.75), (0.3, 0.0)] {
        let act = ShiftedElu { xshift, yshift };
        let y = values(act.forward(input.clone()));
        for (i, (&xi, yi)) in x.iter().zip(&y).enumerate() {
            let want = elu(xi - xshift) + yshift;
            assert!(
                (yi - want).abs() < 1e-12,
                "ELU({xi} − {xshift}) + {yshift}: [{i}] {yi} vs {want}"
            );
        }
    }
}
