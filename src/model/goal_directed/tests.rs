//! Tests of the goal-directed core on small networks whose weights the tests write themselves.

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::model::encoder_core::EncoderCore;

/// Writes `tensors` (name, shape, values) as an f32 safetensors file.
fn write_weights(path: &Path, tensors: &[(String, Vec<usize>, Vec<f64>)]) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            let b = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
            (n.clone(), s.clone(), b)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .expect("valid view");
            (n.clone(), view)
        })
        .collect();
    let out = safetensors::serialize(views, None::<HashMap<String, String>>).expect("serialize");
    std::fs::write(path, out).unwrap();
}

/// Random values rounded to f32 (so the file's f32 values equal our f64 copies).
fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(-1.0f32..1.0) as f64)
        .collect()
}

/// Direct convolution, "same" padding, (C,H,W) → (O,H,W).
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f64],
    c: usize,
    h: usize,
    w: usize,
    wt: &[f64],
    b: &[f64],
    o: usize,
    k: usize,
) -> Vec<f64> {
    let p = (k / 2) as isize;
    let mut y = vec![0.0; o * h * w];
    for oc in 0..o {
        for i in 0..h {
            for j in 0..w {
                let mut s = b[oc];
                for ic in 0..c {
                    for di in 0..k {
                        for dj in 0..k {
                            let (ii, jj) =
                                (i as isize + di as isize - p, j as isize + dj as isize - p);
                            if ii < 0 || jj < 0 || ii >= h as isize || jj >= w as isize {
                                continue;
                            }
                            s += wt[((oc * c + ic) * k + di) * k + dj]
                                * x[(ic * h + ii as usize) * w + jj as usize];
                        }
                    }
                }
                y[(oc * h + i) * w + j] = s;
            }
        }
    }
    y
}

fn pool_ref(x: &[f64], c: usize, h: usize, w: usize) -> Vec<f64> {
    let (h2, w2) = (h / 2, w / 2);
    let mut y = vec![0.0; c * h2 * w2];
    for ch in 0..c {
        for i in 0..h2 {
            for j in 0..w2 {
                let mut m = f64::NEG_INFINITY;
                for (di, dj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    m = m.max(x[(ch * h + 2 * i + di) * w + 2 * j + dj]);
                }
                y[(ch * h2 + i) * w2 + j] = m;
            }
        }
    }
    y
}

fn values(t: Tensor<4>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

fn custom_config(path: &Path, layers: usize) -> GoalDirectedCoreConfig {
    GoalDirectedCoreConfig {
        network: PretrainedNetwork::Custom,
        modules: vec![
            PretrainedModule::Conv,
            PretrainedModule::Relu,
            PretrainedModule::MaxPool,
            PretrainedModule::Conv,
            PretrainedModule::Relu,
        ],
        layers,
        final_batch_norm: false,
        ..GoalDirectedCoreConfig::vgg16(path)
    }
}

struct SmallNet {
    w0: Vec<f64>,
    b0: Vec<f64>,
    w3: Vec<f64>,
    b3: Vec<f64>,
}

fn small_net(path: &Path) -> SmallNet {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let net = SmallNet {
        w0: random(&mut rng, 4 * 3 * 9),
        b0: random(&mut rng, 4),
        w3: random(&mut rng, 2 * 4 * 9),
        b3: random(&mut rng, 2),
    };
    write_weights(
        path,
        &[
            ("features.0.weight".into(), vec![4, 3, 3, 3], net.w0.clone()),
            ("features.0.bias".into(), vec![4], net.b0.clone()),
            ("features.3.weight".into(), vec![2, 4, 3, 3], net.w3.clone()),
            ("features.3.bias".into(), vec![2], net.b3.clone()),
            // Something a real state_dict also has and the core must ignore.
            ("classifier.0.weight".into(), vec![1, 2], vec![0.5, 0.5]),
        ],
    );
    net
}

#[test]
fn forward_matches_direct_computation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let net = small_net(&path);
    let device = Device::flex();
    // conv, relu, pool, conv (truncated before the last ReLU) + the final ReLU of the core.
    let core = custom_config(&path, 4).init(&device).unwrap();
    let (b, h, w) = (2, 6, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let images = random(&mut rng, b * h * w);
    let x = Tensor::<4>::from_data(TensorData::new(images.clone(), [b, 1, h, w]), &device);
    let y = core.forward_eval(x);
    assert_eq!(y.dims(), [b, 2, 3, 4]);
    assert_eq!(core.output_shape([1, h, w]), [2, 3, 4]);
    let got = values(y);
    for n in 0..b {
        let grey = &images[n * h * w..(n + 1) * h * w];
        let rgb: Vec<f64> = (0..3).flat_map(|_| grey.iter().copied()).collect();
        let a = conv_ref(&rgb, 3, h, w, &net.w0, &net.b0, 4, 3);
        let a: Vec<f64> = a.into_iter().map(|v| v.max(0.0)).collect();
        let a = pool_ref(&a, 4, h, w);
        let a = conv_ref(&a, 4, h / 2, w / 2, &net.w3, &net.b3, 2, 3);
        let expected: Vec<f64> = a.into_iter().map(|v| v.max(0.0)).collect();
        let got_n = &got[n * 24..(n + 1) * 24];
        for (g, e) in got_n.iter().zip(&expected) {
            assert!(
                (g - e).abs() < 1e-4 * (1.0 + e.abs()),
                "got {g}, expected {e}"
            );
        }
        assert!(expected.iter().any(|v| *v > 0.0), "degenerate test network");
    }
}

#[test]
fn vgg16_truncation_follows_torchvision_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg.safetensors");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    write_weights(
        &path,
        &[
            (
                "features.0.weight".into(),
                vec![4, 3, 3, 3],
                random(&mut rng, 108),
            ),
            ("features.0.bias".into(), vec![4], random(&mut rng, 4)),
            (
                "features.2.weight".into(),
                vec![5, 4, 3, 3],
                random(&mut rng, 180),
            ),
            ("features.2.bias".into(), vec![5], random(&mut rng, 5)),
        ],
    );
    let device = Device::flex();
    let config = GoalDirectedCoreConfig::vgg16(&path);
    use PretrainedModule::*;
    assert_eq!(
        config.truncated_modules().unwrap(),
        vec![Conv, Relu, Conv, Relu]
    );
    let core = config.init(&device).unwrap();
    assert_eq!(core.output_shape([1, 36, 64]), [5, 36, 64]);
    let five = GoalDirectedCoreConfig {
        layers: 5,
        ..config.clone()
    };
    assert_eq!(
        five.init(&device).unwrap().output_shape([1, 36, 64]),
        [5, 18, 32]
    );
    // The sixth module is the conv `features.5`, which this file lacks: a clear error.
    let six = GoalDirectedCoreConfig {
        layers: 6,
        ..config.clone()
    };
    let err = format!("{:#}", six.init(&device).unwrap_err());
    assert!(err.contains("features.5.weight"), "{err}");
    let too_many = GoalDirectedCoreConfig {
        layers: 32,
        ..config
    };
    let err = format!("{:#}", too_many.init(&device).unwrap_err());
    assert!(err.contains("31 modules"), "{err}");
}

#[test]
fn wrong_shapes_and_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    write_weights(
        &path,
        &[
            ("features.0.weight".into(), vec![4, 3, 3, 3], vec![0.0; 108]),
            ("features.2.weight".into(), vec![5, 6, 3, 3], vec![0.0; 270]),
        ],
    );
    let device = Device::flex();
    let err = format!(
        "{:#}",
        GoalDirectedCoreConfig::vgg16(&path)
            .init(&device)
            .unwrap_err()
    );
    assert!(
        err.contains("features.2.weight") && err.contains("input channels"),
        "{err}"
    );
    let missing = GoalDirectedCoreConfig::vgg16(dir.path().join("none.safetensors"));
    let err = format!("{:#}", missing.init(&device).unwrap_err());
    assert!(err.contains("none.safetensors"), "{err}");
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = format!(
        "{:#}",
        GoalDirectedCoreConfig::vgg16(&path)
            .init(&device)
            .unwrap_err()
    );
    assert!(err.contains("not a safetensors file"), "{err}");
}

#[test]
fn pretrained_weights_are_frozen_unless_fine_tuned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    small_net(&path);
    let device = Device::flex().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = Tensor::<4>::from_data(
        TensorData::new(random(&mut rng, 2 * 48), [2, 1, 6, 8]),
        &device,
    );
    for fine_tune in [false, true] {
        let config = GoalDirectedCoreConfig {
            final_batch_norm: true,
            fine_tune,
            ..custom_config(&path, 4)
        };
        let mut core = config.init(&device).unwrap();
        let y = core.forward(x.clone(), BatchNormMode::Train);
        let grads = (y.clone() * y).sum().backward();
        let conv_grad = core.conv_weights[0].val().grad(&grads);
        assert_eq!(conv_grad.is_some(), fine_tune, "fine_tune = {fine_tune}");
        let bn = core.batch_norm.as_ref().unwrap();
        assert!(
            bn.scale.as_ref().unwrap().val().grad(&grads).is_some(),
            "the final batch norm is trainable"
        );
    }
}

#[test]
fn state_round_trip_reproduces_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    small_net(&path);
    let device = Device::flex();
    let config = GoalDirectedCoreConfig {
        final_batch_norm: true,
        ..custom_config(&path, 4)
    };
    let mut core = config.init(&device).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = Tensor::<4>::from_data(TensorData::new(random(&mut rng, 96), [2, 1, 6, 8]), &device);
    core.forward(x.clone(), BatchNormMode::Train); // moves the running statistics from their init
    let mut sd = StateDict::default();
    core.export_state("core.", &mut sd);
    assert!(
        sd.entries
            .contains_key("core.features.TransferLearning.3.weight")
    );
    assert!(
        sd.entries
            .contains_key("core.features.OutBatchNorm.running_var")
    );
    let fresh = config
        .init(&device)
        .unwrap()
        .import_state("core.", &sd)
        .unwrap();
    let before = values(core.forward_eval(x.clone()));
    assert_eq!(before, values(fresh.forward_eval(x.clone())));
    // A fresh core (running statistics at their init) computes something else.
    let untouched = config.init(&device).unwrap();
    assert_ne!(before, values(untouched.forward_eval(x)));
}

#[test]
fn encoder_with_a_goal_directed_core_trains_only_its_readout() {
    use crate::model::facts::DatasetReadoutFacts;
    use crate::model::{DatasetFacts, Encoder};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    small_net(&path);
    let mut config = crate::model::presets::lurz2020();
    config.goal_directed_core = Some(GoalDirectedCoreConfig {
        final_batch_norm: true,
        ..custom_config(&path, 4)
    });
    let n = 5;
    let coords: Vec<[f64; 3]> = (0..n)
        .map(|i| [i as f64 * 10.0, 50.0 - i as f64, 200.0])
        .collect();
    let facts = DatasetFacts::new(
        [1, 12, 16],
        0,
        &[DatasetReadoutFacts {
            data_key: "a".into(),
            n_neurons: n,
            cell_motor_coordinates: Some(coords),
            ..Default::default()
        }],
    );
    let device = Device::flex().autodiff();
    let mut enc = Encoder::init(&config, &facts, 1, &device).unwrap();
    assert!(matches!(enc.core, EncoderCore::GoalDirected(_)));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = Tensor::<4>::from_data(
        TensorData::new(random(&mut rng, 4 * 192), [4, 1, 12, 16]),
        &device,
    );
    let y = enc.forward(
        x.clone(),
        0,
        None,
        None,
        Some(&mut crate::model::SamplingRng::seed_from_u64(0)),
    );
    assert_eq!(y.dims(), [4, n]);
    let loss = y.sum() + enc.regularizer(0).sum();
    let grads = loss.backward();
    let EncoderCore::GoalDirected(core) = &enc.core else {
        unreachable!()
    };
    assert!(
        core.conv_weights[0].val().grad(&grads).is_none(),
        "pretrained weights are frozen"
    );
    assert!(
        core.batch_norm
            .as_ref()
            .unwrap()
            .scale
            .as_ref()
            .unwrap()
            .val()
            .grad(&grads)
            .is_some()
    );
    let sd = enc.export_state();
    assert!(
        sd.entries
            .contains_key("core.features.TransferLearning.0.weight")
    );
    assert!(sd.entries.keys().any(|k| k.starts_with("readout.a.")));
    // A checkpoint round trip rebuilds the goal-directed core and gives the same predictions.
    let ckpt = dir.path().join("model.safetensors");
    crate::model::checkpoint::save(&enc, &ckpt).unwrap();
    let back = crate::model::checkpoint::load(&ckpt, &Device::flex()).unwrap();
    let x = Tensor::<4>::from_data(x.into_data(), &Device::flex());
    let a: Vec<f64> = enc
        .valid()
        .forward_eval(x.clone(), 0, None, None)
        .into_data()
        .iter::<f64>()
        .collect();
    let b: Vec<f64> = back
        .forward_eval(x, 0, None, None)
        .into_data()
        .iter::<f64>()
        .collect();
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() < 1e-5, "{u} vs {v}");
    }
}
