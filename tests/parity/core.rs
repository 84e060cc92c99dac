//! Parity of the stacked core (fixtures README §5) in float64: per-block outputs in evaluation
//! and training mode, running statistics after one training pass, regularizers.

use burn::tensor::{DType, Device, Tensor, TensorData};
use cortexfit::model::core::{BatchNormMode, CoreConfig, PerLayer, Stack};
use cortexfit::model::regularizers::InputRegularizer;
use cortexfit::model::{Stacked2dCore, StateDict, cast_module};

use super::fixtures::{Array, Fixture, assert_close};

const REL: f64 = 1e-10;

/// The fixture's configuration (layers 3, 8 channels, 5×5 input / 3×3 hidden, padded input,
/// conv bias on hidden layers only, affine BN with momentum 0.9, last block stacked).
pub fn fixture_config(depth_separable: bool) -> CoreConfig {
    CoreConfig {
        layers: 3,
        hidden_channels: PerLayer::All(8),
        input_kern: 5,
        hidden_kern: PerLayer::All(3),
        pad_input: true,
        depth_separable,
        input_bias: false,
        hidden_bias: true,
        stack: Stack::From(-1),
        gamma_input: 1.0,
        gamma_hidden: 0.0,
        input_regularizer: InputRegularizer::LaplaceL2Norm,
        laplace_padding: None,
        use_avg_reg: false,
        momentum: 0.9,
        ..CoreConfig::default()
    }
}

/// The `{prefix}*` arrays of a fixture as a state dict (prefix removed).
pub fn state_dict(f: &Fixture, prefix: &str) -> StateDict {
    let mut sd = StateDict::default();
    let names: Vec<String> = f.names().map(str::to_string).collect();
    for name in names {
        if let Some(key) = name.strip_prefix(prefix) {
            let a = f.get(&name);
            sd.insert(key, a.shape.clone(), a.data.clone());
        }
    }
    sd
}

pub fn tensor<const D: usize>(a: &Array, device: &Device) -> Tensor<D> {
    let shape: [usize; D] = a.shape.clone().try_into().expect("rank");
    Tensor::from_data(TensorData::new(a.data.clone(), shape), (device, DType::F64))
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// The fixture core in float64 with the fixture's weights.
pub fn fixture_core(f: &Fixture, depth_separable: bool, device: &Device) -> Stacked2dCore {
    let core = fixture_config(depth_separable).init(1, 0, device).unwrap();
    let core = cast_module(core, DType::F64);
    core.import_state("", &state_dict(f, "sd__")).unwrap()
}

fn check_variant(name: &str, depth_separable: bool) {
    let f = Fixture::load(name);
    let device = Device::flex();
    let x: Tensor<4> = tensor(f.get("x"), &device);

    let mut core = fixture_core(&f, depth_separable, &device);
    let eval = core.forward_layers(x.clone(), BatchNormMode::Eval);
    for (l, out) in eval.into_iter().enumerate() {
        let key = format!("eval_layer{l}_out");
        assert_close(
            &format!("{name}/{key}"),
            &values(out),
            &f.get(&key).data,
            REL,
        );
    }
    let y_eval = core.forward_eval(x.clone());
    assert_close(
        &format!("{name}/y_eval"),
        &values(y_eval),
        &f.get("y_eval").data,
        REL,
    );

    // Evaluation passes leave the running statistics untouched.
    let mut before = StateDict::default();
    core.export_state("", &mut before);
    assert_eq!(before, {
        let mut sd = StateDict::default();
        fixture_core(&f, depth_separable, &device).export_state("", &mut sd);
        sd
    });

    let train = core.forward_layers(x.clone(), BatchNormMode::Train);
    for (l, out) in train.into_iter().enumerate() {
        let key = format!("train_layer{l}_out");
        assert_close(
            &format!("{name}/{key}"),
            &values(out),
            &f.get(&key).data,
            REL,
        );
    }
    let mut after = StateDict::default();
    core.export_state("", &mut after);
    for l in 0..3 {
        for stat in ["running_mean", "running_var", "num_batches_tracked"] {
            let key = format!("features.layer{l}.norm.{stat}");
            let expected = f.get(&format!("after_train__{key}"));
            let actual = &after.entries[&key];
            assert_eq!(actual.shape, expected.shape, "{key}");
            assert_close(&format!("{name}/{key}"), &actual.data, &expected.data, REL);
        }
    }
    // A second core in training mode gives y_train directly.
    let mut fresh = fixture_core(&f, depth_separable, &device);
    let y_train = fresh.forward(x, BatchNormMode::Train);
    assert_close(
        &format!("{name}/y_train"),
        &values(y_train),
        &f.get("y_train").data,
        REL,
    );

    let scalar = |t: Tensor<1>| values(t)[0];
    assert_close(
        &format!("{name}/laplace"),
        &[scalar(core.laplace())],
        &[f.get("laplace").scalar()],
        REL,
    );
    assert_close(
        &format!("{name}/group_sparsity"),
        &[scalar(core.group_sparsity())],
        &[f.get("group_sparsity").scalar()],
        REL,
    );
    assert_close(
        &format!("{name}/regularizer"),
        &[scalar(core.regularizer())],
        &[f.get("regularizer").scalar()],
        REL,
    );
    let mut mean_cfg = fixture_config(depth_separable);
    mean_cfg.use_avg_reg = true;
    let mean_core = cast_module(mean_cfg.init(1, 0, &device).unwrap(), DType::F64)
        .import_state("", &state_dict(&f, "sd__"))
        .unwrap();
    assert_close(
        &format!("{name}/laplace_mean_agg"),
        &[scalar(mean_core.laplace())],
        &[f.get("laplace_mean_agg").scalar()],
        REL,
    );
}

#[test]
fn stacked2d_core_conv_matches_reference() {
    check_variant("stacked2d_core_conv", false);
}

#[test]
fn stacked2d_core_depth_separable_matches_reference() {
    check_variant("stacked2d_core_ds", true);
}

#[test]
fn group_sparsity_is_nonzero_for_plain_hidden_convolutions_and_weighted_by_gamma_hidden() {
    let f = Fixture::load("stacked2d_core_conv");
    let device = Device::flex();
    let mut cfg = fixture_config(false);
    cfg.gamma_hidden = 0.5;
    let core = cast_module(cfg.init(1, 0, &device).unwrap(), DType::F64)
        .import_state("", &state_dict(&f, "sd__"))
        .unwrap();
    let gs = f.get("group_sparsity").scalar();
    assert!(gs > 0.0);
    let reg = values(core.regularizer())[0];
    assert_close(
        "regularizer",
        &[reg],
        &[f.get("laplace").scalar() + 0.5 * gs],
        REL,
    );
}
