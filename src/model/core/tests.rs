//! Behaviour of the core's options (parity with the reference is in `tests/parity/core.rs`).

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Tensor};

use super::*;

fn small(layers: usize) -> CoreConfig {
    CoreConfig {
        layers,
        hidden_channels: PerLayer::All(4),
        input_kern: 5,
        hidden_kern: PerLayer::All(3),
        ..CoreConfig::default()
    }
}

fn input(b: usize, c: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
    Tensor::random([b, c, h, w], Distribution::Normal(0.0, 1.0), device)
}

fn running_mean(core: &Stacked2dCore, l: usize) -> Vec<f64> {
    crate::model::tensor_util::to_f64_vec(core.blocks[l].norm.as_ref().unwrap().running_mean.val())
}

#[test]
fn output_shape_follows_padding_dilation_skip_and_stack() {
    let device = Device::flex();
    let cases = [
        small(3),
        CoreConfig {
            pad_input: true,
            hidden_dilation: 2,
            hidden_channels: PerLayer::Each(vec![3, 5, 6]),
            stack: Stack::Layers(vec![0, -1]),
            depth_separable: false,
            ..small(3)
        },
        CoreConfig {
            skip: 2,
            hidden_channels: PerLayer::Each(vec![2, 3, 4, 5]),
            hidden_kern: PerLayer::Each(vec![3, 5, 7]),
            stack: Stack::From(0),
            ..small(4)
        },
        CoreConfig {
            hidden_padding: Some(0),
            depth_separable: false,
            ..small(2)
        },
    ];
    for config in cases {
        let expected = config.output_shape([1, 16, 20]).unwrap();
        let mut core = config.init(1, 0, &device).unwrap();
        let y = core.forward(input(2, 1, 16, 20, &device), BatchNormMode::Train);
        assert_eq!(y.dims()[1..], expected, "{config:?}");
        assert_eq!(core.out_channels(), expected[0]);
    }
    assert_eq!(small(3).output_shape([1, 16, 20]).unwrap(), [4, 12, 16]);
    let c = CoreConfig {
        hidden_padding: Some(0),
        ..small(2)
    };
    assert_eq!(c.output_shape([1, 16, 20]).unwrap(), [4, 10, 14]);
}

#[test]
fn invalid_configurations_name_the_field() {
    let bad = CoreConfig {
        hidden_channels: PerLayer::Each(vec![4, 4]),
        ..small(3)
    };
    let err = bad.init(1, 0, &Device::flex()).unwrap_err().to_string();
    assert!(
        err.contains("hidden_channels") && err.contains("expected 3"),
        "{err}"
    );
    let bad = CoreConfig {
        stack: Stack::Layers(vec![5]),
        ..small(3)
    };
    assert!(
        bad.output_shape([1, 16, 16])
            .unwrap_err()
            .to_string()
            .contains("stack")
    );
    let err = small(3).output_shape([1, 4, 4]).unwrap_err().to_string();
    assert!(err.contains("too small"), "{err}");
    let valid_hidden = CoreConfig {
        hidden_padding: Some(0),
        stack: Stack::From(0),
        ..small(3)
    };
    let err = valid_hidden
        .output_shape([1, 16, 16])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stack") && err.contains("different sizes"),
        "{err}"
    );
    let skipping = CoreConfig {
        hidden_padding: Some(0),
        skip: 2,
        ..small(3)
    };
    let err = skipping.output_shape([1, 16, 16]).unwrap_err().to_string();
    assert!(err.contains("skip"), "{err}");
}

#[test]
fn initialisation_is_seeded_xavier_normal_with_zero_biases() {
    let device = Device::flex();
    let config = CoreConfig {
        input_bias: true,
        hidden_bias: true,
        ..crate::model::presets::lurz2020_core()
    };
    let a = config.init(1, 11, &device).unwrap();
    let b = config.init(1, 11, &device).unwrap();
    let c = config.init(1, 12, &device).unwrap();
    let (mut sa, mut sb, mut sc) = (
        StateDict::default(),
        StateDict::default(),
        StateDict::default(),
    );
    a.export_state("", &mut sa);
    b.export_state("", &mut sb);
    c.export_state("", &mut sc);
    assert_eq!(sa, sb);
    assert_ne!(sa, sc);
    let w = &sa.entries["features.layer0.conv.weight"].data;
    let std = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
    let expected = (2.0f64 / (225.0 + 64.0 * 225.0)).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.05,
        "std {std} vs {expected}"
    );
    assert!(
        sa.entries["features.layer0.conv.bias"]
            .data
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        sa.entries["features.layer1.ds_conv.spatial_conv.bias"]
            .data
            .iter()
            .all(|&v| v == 0.0)
    );
    assert_eq!(
        sa.entries["features.layer1.ds_conv.spatial_conv.weight"].shape,
        vec![64, 1, 13, 13]
    );
}

#[test]
fn nonlinearity_options() {
    let device = Device::flex();
    let core = small(3).init(1, 0, &device).unwrap();
    assert!(core.blocks.iter().all(|b| b.activation.is_some()));
    let core = CoreConfig {
        final_nonlinearity: false,
        ..small(3)
    }
    .init(1, 0, &device)
    .unwrap();
    assert!(core.blocks[2].activation.is_none() && core.blocks[1].activation.is_some());

    // Linear mode: with running statistics the whole core is affine, f(2x) − f(x) = f(x) − f(0).
    let core = CoreConfig {
        linear: true,
        ..small(3)
    }
    .init(1, 0, &device)
    .unwrap();
    let x = input(2, 1, 12, 12, &device);
    let f = |x: Tensor<4>| crate::model::tensor_util::to_f64_vec(core.forward_eval(x));
    let (f0, f1, f2) = (
        f(x.clone().mul_scalar(0.0)),
        f(x.clone()),
        f(x.mul_scalar(2.0)),
    );
    for i in 0..f0.len() {
        assert!(((f2[i] - f1[i]) - (f1[i] - f0[i])).abs() < 1e-4);
    }

    // Shifted ELU: ELU(x − 1) + 2 ≥ 1.
    let act = ShiftedElu {
        xshift: 1.0,
        yshift: 2.0,
    };
    let y = crate::model::tensor_util::to_f64_vec(
        act.forward(input(1, 1, 4, 4, &device).mul_scalar(5.0)),
    );
    assert!(y.iter().all(|&v| v > 1.0));
}

#[test]
fn batch_norm_variants_export_reference_names() {
    let device = Device::flex();
    for (scale, bias, present, absent) in [
        (true, true, "norm.weight", "bias.bias"),
        (false, true, "bias.bias", "norm.weight"),
        (true, false, "scale.scale", "norm.bias"),
    ] {
        let config = CoreConfig {
            batch_norm_scale: scale,
            final_batch_norm_scale: scale,
            batch_norm_bias: bias,
            ..small(2)
        };
        let core = config.init(1, 0, &device).unwrap();
        let mut sd = StateDict::default();
        core.export_state("", &mut sd);
        assert!(
            sd.entries
                .contains_key(&format!("features.layer0.{present}"))
        );
        assert!(
            !sd.entries
                .contains_key(&format!("features.layer0.{absent}"))
        );
        let back = config
            .init(1, 5, &device)
            .unwrap()
            .import_state("", &sd)
            .unwrap();
        let mut sd2 = StateDict::default();
        back.export_state("", &mut sd2);
        assert_eq!(sd, sd2);
    }
    let none = CoreConfig {
        batch_norm: false,
        ..small(2)
    };
    let mut core = none.init(1, 0, &device).unwrap();
    let x = input(2, 1, 10, 10, &device);
    let a = crate::model::tensor_util::to_f64_vec(core.forward(x.clone(), BatchNormMode::Train));
    assert_eq!(
        a,
        crate::model::tensor_util::to_f64_vec(core.forward_eval(x))
    );
}

#[test]
fn evaluation_leaves_running_statistics_alone_and_clones_are_independent() {
    let device = Device::flex().autodiff();
    let mut core = small(2).init(1, 0, &device).unwrap();
    let x = input(4, 1, 10, 10, &device).add_scalar(3.0);
    let _ = core.forward(x.clone(), BatchNormMode::Eval);
    let _ = core.forward_eval(x.clone());
    assert_eq!(running_mean(&core, 0), vec![0.0; 4]);
    assert_eq!(core.blocks[0].norm.as_ref().unwrap().num_batches_tracked, 0);

    let snapshot = core.clone();
    let _ = core.forward(x, BatchNormMode::Train);
    assert_ne!(running_mean(&core, 0), vec![0.0; 4]);
    assert_eq!(
        running_mean(&snapshot, 0),
        vec![0.0; 4],
        "a clone must not share running statistics"
    );
    assert_eq!(core.blocks[0].norm.as_ref().unwrap().num_batches_tracked, 1);
}

#[test]
fn adam_trains_weights_but_never_the_running_statistics() {
    let device = Device::flex().autodiff();
    let mut core = small(2).init(1, 0, &device).unwrap();
    let x = input(4, 1, 10, 10, &device);
    let y = core.forward(x, BatchNormMode::Train);
    let stats = running_mean(&core, 1);
    let w_before =
        crate::model::tensor_util::to_f64_vec(core.blocks[0].conv.as_ref().unwrap().weight.val());
    let loss = y.powi_scalar(2).sum().add(core.regularizer());
    let grads = GradientsParams::from_grads(loss.backward(), &core);
    let mut optim = AdamConfig::new().init();
    let core = optim.step(0.01, core, grads);
    assert_eq!(running_mean(&core, 1), stats);
    assert_ne!(
        crate::model::tensor_util::to_f64_vec(core.blocks[0].conv.as_ref().unwrap().weight.val()),
        w_before
    );
    // The evaluation snapshot has no autodiff and still runs.
    let valid = core.valid();
    let out = valid.forward_eval(input(2, 1, 10, 10, &Device::flex()));
    assert_eq!(out.dims(), [2, 4, 6, 6]);
}
