//! Parity of the encoder (fixtures README §6) in float64: core (depth-separable) + Gaussian
//! readout + ELU+1, evaluation mode, Poisson loss, gradients, regularizers.

use burn::tensor::{DType, Device, Tensor};
use cortexfit::model::readout::{GaussianReadoutConfig, Readout, ReadoutConfig};
use cortexfit::model::{DatasetFacts, DatasetReadoutFacts};
use cortexfit::model::{Encoder, LossReduction, ModelConfig, StateDict, cast_module, poisson_loss};
use rand::SeedableRng;

use super::core::{fixture_config, state_dict, tensor, values};
use super::fixtures::{Fixture, assert_close};

const REL: f64 = 1e-10;
pub const KEY: &str = "scan";

pub fn fixture_model_config(f: &Fixture) -> ModelConfig {
    ModelConfig {
        core: fixture_config(true),
        readout: ReadoutConfig::Gaussian(GaussianReadoutConfig {
            feature_reg_weight: f.get("readout_feature_reg_weight").scalar(),
            grid_mean_predictor: None,
            ..GaussianReadoutConfig::default()
        }),
        ..ModelConfig::preset("lurz2020").unwrap()
    }
}

pub fn fixture_facts() -> DatasetFacts {
    DatasetFacts {
        in_shape: [1, 11, 17],
        n_behaviors: 0,
        datasets: vec![DatasetReadoutFacts {
            data_key: KEY.into(),
            n_neurons: 20,
            cell_motor_coordinates: None,
            match_ids: None,
            mean_activity: None,
            rf_centers_px: None,
        }],
    }
}

/// The fixture's weights under cortexfit's (= the reference's multi-readout) names.
pub fn fixture_state(f: &Fixture) -> StateDict {
    let mut sd = state_dict(f, "sd__");
    let mut put = |name: &str, key: &str, shape: Vec<usize>| {
        sd.insert(
            format!("readout.{KEY}.{name}"),
            shape,
            f.get(key).data.clone(),
        );
    };
    put("_mu", "readout_mu", vec![1, 20, 1, 2]);
    put("sigma", "readout_sigma", vec![1, 20, 2, 2]);
    put("_features", "readout_features", vec![1, 8, 1, 20]);
    put("bias", "readout_bias", vec![20]);
    sd
}

pub fn fixture_encoder(f: &Fixture, device: &Device) -> Encoder {
    let enc = Encoder::init(&fixture_model_config(f), &fixture_facts(), 7, device).unwrap();
    cast_module(enc, DType::F64)
        .import_state(&fixture_state(f))
        .unwrap()
}

#[test]
fn encoder_matches_reference_outputs_loss_gradients_and_regularizers() {
    let f = Fixture::load("encoder");
    let device = Device::flex().autodiff();
    let mut enc = fixture_encoder(&f, &device);
    let x: Tensor<4> = tensor(f.get("x"), &device);
    let targets: Tensor<2> = tensor(f.get("targets"), &device);

    let core_out = enc.core.forward_eval(x.clone());
    assert_close(
        "core_out",
        &values(core_out.clone()),
        &f.get("core_out").data,
        REL,
    );
    let readout_out = enc.readout.forward(0, core_out, None, None);
    assert_close(
        "readout_out",
        &values(readout_out),
        &f.get("readout_out").data,
        REL,
    );
    assert_close(
        "y (forward_eval)",
        &values(enc.forward_eval(x.clone(), 0, None, None)),
        &f.get("y").data,
        REL,
    );

    let y = enc.forward(x, 0, None, None, None);
    assert_close("y", &values(y.clone()), &f.get("y").data, REL);
    let eps = f.get("poisson_eps").scalar();
    let loss_mean = poisson_loss(y.clone(), targets.clone(), eps, LossReduction::Mean);
    assert_close(
        "loss_mean",
        &values(loss_mean),
        &[f.get("loss_mean").scalar()],
        REL,
    );
    let loss = poisson_loss(y, targets, eps, LossReduction::Sum);
    assert_close(
        "loss_sum",
        &values(loss.clone()),
        &[f.get("loss_sum").scalar()],
        REL,
    );

    let grads = loss.backward();
    let w0 = enc.core.data_driven().expect("data-driven core").blocks[0]
        .conv
        .as_ref()
        .unwrap()
        .weight
        .val();
    assert_close(
        "grad_core_layer0_conv_weight",
        &values(w0.grad(&grads).expect("core gradient")),
        &f.get("grad_core_layer0_conv_weight").data,
        REL,
    );
    let Readout::Gaussian(g) = &enc.readout.readouts[0] else {
        panic!("gaussian readout")
    };
    let feats = g.features.as_ref().unwrap().val();
    assert_close(
        "grad_readout_features",
        &values(feats.grad(&grads).expect("readout gradient")),
        &f.get("grad_readout_features").data,
        REL,
    );

    let core_reg = f.get("core_regularizer").scalar();
    let ro_reg = f.get("readout_regularizer").scalar();
    assert_close(
        "core_regularizer",
        &values(enc.core.regularizer()),
        &[core_reg],
        REL,
    );
    assert_close(
        "readout_regularizer",
        &values(enc.readout.regularizer(0)),
        &[ro_reg],
        REL,
    );
    assert_close(
        "regularizer",
        &values(enc.regularizer(0)),
        &[core_reg + ro_reg],
        REL,
    );
}

#[test]
fn detached_core_gets_no_gradient_and_no_regularizer() {
    let f = Fixture::load("encoder");
    let device = Device::flex().autodiff();
    let mut config = fixture_model_config(&f);
    config.detach_core = true;
    let enc = Encoder::init(&config, &fixture_facts(), 7, &device).unwrap();
    let mut enc = cast_module(enc, DType::F64)
        .import_state(&fixture_state(&f))
        .unwrap();
    let x: Tensor<4> = tensor(f.get("x"), &device);
    let y = enc.forward(x, 0, None, None, None);
    assert_close("y", &values(y.clone()), &f.get("y").data, REL);
    let grads = y.sum().backward();
    let w0 = enc.core.data_driven().expect("data-driven core").blocks[0]
        .conv
        .as_ref()
        .unwrap()
        .weight
        .val();
    assert!(
        w0.grad(&grads).is_none(),
        "a detached core must get no gradient"
    );
    assert_close(
        "regularizer",
        &values(enc.regularizer(0)),
        &[f.get("readout_regularizer").scalar()],
        REL,
    );
}

#[test]
fn training_mode_uses_batch_statistics_and_updates_running_statistics() {
    let f = Fixture::load("encoder");
    let device = Device::flex().autodiff();
    let mut enc = fixture_encoder(&f, &device);
    let x: Tensor<4> = tensor(f.get("x"), &device);
    let y_eval = values(enc.forward_eval(x.clone(), 0, None, None));
    let before = enc.export_state();
    let _ = enc.forward(
        x.clone(),
        0,
        None,
        None,
        Some(&mut cortexfit::model::SamplingRng::seed_from_u64(0)),
    );
    let after = enc.export_state();
    let name = "core.features.layer0.norm.running_mean";
    assert_ne!(before.entries[name], after.entries[name]);
    assert_eq!(
        after.entries["core.features.layer0.norm.num_batches_tracked"].data,
        vec![1.0]
    );
    // Running statistics changed, so evaluation output changes too.
    assert_ne!(values(enc.forward_eval(x, 0, None, None)), y_eval);
}

/// The factorized readout's penalty as training adds it (`Encoder::regularizer`: core Laplace
/// penalty + the readout's weighted L1) against a sum written out here from the fixture arrays:
/// Σ_n (Σ_hw |Ŝ_n|)(Σ_c |f_n|), the per-neuron paired form, not the reference's quirk.
#[test]
fn factorized_penalty_as_training_uses_it_matches_an_independent_sum() {
    use cortexfit::model::readout::{FactorizedReadoutConfig, Reduction};
    let fe = Fixture::load("encoder");
    let ff = Fixture::load("factorized_readout");
    let device = Device::flex();
    let (spatial, features) = (&ff.get("spatial").data, &ff.get("features").data);
    let (n, hw, c) = (20, 11 * 17, 8);
    for (normalize, reduction, weight) in [
        (false, Reduction::Sum, 0.3),
        (true, Reduction::Sum, 0.0076),
        (true, Reduction::Mean, 2.5),
    ] {
        let mut l1 = 0.0;
        for i in 0..n {
            let s = &spatial[i * hw..(i + 1) * hw];
            let norm = if normalize {
                s.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-6
            } else {
                1.0
            };
            let s_l1: f64 = s.iter().map(|v| (v / norm).abs()).sum();
            let f_l1: f64 = features[i * c..(i + 1) * c].iter().map(|v| v.abs()).sum();
            l1 += s_l1 * f_l1;
        }
        if reduction == Reduction::Mean {
            l1 /= (n * c * hw) as f64;
        }
        for detach_core in [false, true] {
            let config = ModelConfig {
                readout: ReadoutConfig::Factorized(FactorizedReadoutConfig {
                    normalize,
                    reduction,
                    feature_reg_weight: weight,
                    ..FactorizedReadoutConfig::default()
                }),
                detach_core,
                ..fixture_model_config(&fe)
            };
            let enc = Encoder::init(&config, &fixture_facts(), 7, &device).unwrap();
            let mut sd = state_dict(&fe, "sd__");
            for (name, key) in [
                ("spatial", "spatial"),
                ("features", "features"),
                ("bias", "bias"),
            ] {
                let a = ff.get(key);
                sd.insert(
                    format!("readout.{KEY}.{name}"),
                    a.shape.clone(),
                    a.data.clone(),
                );
            }
            let enc = cast_module(enc, DType::F64).import_state(&sd).unwrap();
            let core = if detach_core {
                0.0
            } else {
                fe.get("core_regularizer").scalar()
            };
            let what = format!("normalize {normalize}, {reduction:?}, detach {detach_core}");
            assert_close(
                &what,
                &values(enc.regularizer(0)),
                &[core + weight * l1],
                REL,
            );
            // The paired form differs from the reference's quirk (Σ|Ŝ|)·(Σ|f|) by far more
            // than the tolerance, so the check above tells them apart.
            let tag = if normalize {
                "normalized"
            } else {
                "unnormalized"
            };
            let mut quirk = ff.get(&format!("{tag}_l1_sum")).scalar();
            if reduction == Reduction::Mean {
                quirk /= (n * c * hw) as f64;
            }
            assert!((quirk - l1).abs() > 1e-3 * l1, "{what}: {quirk} vs {l1}");
        }
    }
}
