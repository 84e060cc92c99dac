//! The fused readout and batch-norm kernels must give the results of the burn-op compositions
//! they replace, forward and backward (gradients of every input), and not depend on the thread
//! count.

use super::*;
use crate::model::readout::bilinear::bilinear_readout_ops;
use burn::tensor::{Device, Distribution, TensorData, Tolerance};

fn random<const D: usize>(shape: [usize; D], std: f64) -> TensorData {
    Tensor::<D>::random(shape, Distribution::Normal(0.0, std), &Device::flex()).into_data()
}

fn within_one_thread_and_three<R: PartialEq + std::fmt::Debug + Send>(f: impl Fn() -> R + Sync) {
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(&f)
    };
    assert_eq!(run(1), run(3));
}

// ---------------------------------------------------------------------------------------------
// Bilinear readout

/// Output and gradients (map, positions, features) of `readout` for `loss = Σ y · probe`.
type ReadoutRun = (TensorData, TensorData, TensorData, TensorData);

fn run_readout(
    readout: impl Fn(Tensor<4>, Tensor<3>, Tensor<2>) -> Tensor<2>,
    map: &TensorData,
    positions: &TensorData,
    features: &TensorData,
    probe: &TensorData,
) -> ReadoutRun {
    let device = Device::flex().autodiff();
    let map = Tensor::<4>::from_data(map.clone(), &device).require_grad();
    let positions = Tensor::<3>::from_data(positions.clone(), &device).require_grad();
    let features = Tensor::<2>::from_data(features.clone(), &device).require_grad();
    let y = readout(map.clone(), positions.clone(), features.clone());
    let grads = (y.clone() * Tensor::from_data(probe.clone(), &device))
        .sum()
        .backward();
    (
        y.into_data(),
        map.grad(&grads).expect("map gradient").into_data(),
        positions
            .grad(&grads)
            .expect("position gradient")
            .into_data(),
        features.grad(&grads).expect("feature gradient").into_data(),
    )
}

/// Positions that hit every case: random inside and outside the map, exactly on the border and
/// on pixel centres (integer tap coordinates), and far outside.
fn test_positions(batch: usize, neurons: usize, h: usize, w: usize) -> TensorData {
    let special = [
        -1.0f32,
        1.0,
        0.0,
        -1.0 + 2.0 / (w - 1).max(1) as f32,
        1.0 - 2.0 / (h - 1).max(1) as f32,
        -1.05,
        1.05,
        3.0,
        -7.5,
    ];
    let mut values = random([batch, neurons, 2], 0.7)
        .try_to_vec::<f32>()
        .unwrap();
    for (i, v) in values.iter_mut().enumerate() {
        if i % 3 == 0 {
            *v = special[(i / 3) % special.len()];
        }
    }
    TensorData::new(values, [batch, neurons, 2])
}

fn assert_readout_matches_ops(batch: usize, channels: usize, h: usize, w: usize, neurons: usize) {
    let map = random([batch, channels, h, w], 1.0);
    let positions = test_positions(batch, neurons, h, w);
    let features = random([channels, neurons], 0.5);
    let probe = random([batch, neurons], 1.0);
    let x = Tensor::<4>::from_data(map.clone(), &Device::flex());
    let p = Tensor::<3>::from_data(positions.clone(), &Device::flex());
    let f = Tensor::<2>::from_data(features.clone(), &Device::flex());
    assert!(uses_readout_kernel(&x, &p, &f), "fast path not taken");

    let ours = run_readout(bilinear_readout, &map, &positions, &features, &probe);
    let plain = run_readout(bilinear_readout_ops, &map, &positions, &features, &probe);
    let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-5);
    ours.0.assert_approx_eq(&plain.0, tolerance);
    ours.1.assert_approx_eq(&plain.1, tolerance);
    ours.2.assert_approx_eq(&plain.2, tolerance);
    ours.3.assert_approx_eq(&plain.3, tolerance);
}

#[test]
fn readout_matches_burn_ops() {
    // Channels not a multiple of the 8 lanes, to cover the tails of the dot products.
    assert_readout_matches_ops(3, 11, 6, 9, 40);
}

#[test]
fn readout_matches_burn_ops_when_the_backward_pass_splits_the_batch() {
    // 19 images: the backward pass's groups of 8, 8 and 3, whose feature gradients are added.
    assert_readout_matches_ops(19, 24, 5, 8, 33);
}

#[test]
fn readout_matches_burn_ops_for_one_image() {
    assert_readout_matches_ops(1, 16, 5, 7, 70);
}

#[test]
fn readout_matches_burn_ops_on_a_one_pixel_wide_map() {
    assert_readout_matches_ops(2, 8, 4, 1, 30);
}

#[test]
fn readout_without_gradients_matches_burn_ops() {
    // Evaluation: plain device, positions broadcast from one set (a strided view).
    let device = Device::flex();
    let map = Tensor::<4>::random([2, 5, 4, 6], Distribution::Normal(0.0, 1.0), &device);
    let positions = Tensor::<3>::from_data(test_positions(1, 25, 4, 6), &device).expand([2, 25, 2]);
    let features = Tensor::<2>::random([5, 25], Distribution::Normal(0.0, 1.0), &device);
    let ours = bilinear_readout(map.clone(), positions.clone(), features.clone());
    let plain = bilinear_readout_ops(map, positions, features);
    ours.into_data()
        .assert_approx_eq(&plain.into_data(), Tolerance::<f32>::rel_abs(1e-4, 1e-5));
}

#[test]
fn readout_gradient_reaches_only_what_needs_it() {
    // A frozen map and frozen features (transfer): only the positions ask for a gradient.
    let device = Device::flex().autodiff();
    let map = Tensor::<4>::random([2, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let features = Tensor::<2>::random([4, 6], Distribution::Normal(0.0, 1.0), &device);
    let data = test_positions(2, 6, 5, 5);
    let grad_of = |f: fn(Tensor<4>, Tensor<3>, Tensor<2>) -> Tensor<2>| {
        let positions = Tensor::<3>::from_data(data.clone(), &device).require_grad();
        let grads = f(map.clone(), positions.clone(), features.clone())
            .sum()
            .backward();
        positions
            .grad(&grads)
            .expect("position gradient")
            .into_data()
    };
    grad_of(bilinear_readout).assert_approx_eq(
        &grad_of(bilinear_readout_ops),
        Tolerance::<f32>::rel_abs(1e-4, 1e-5),
    );
}

#[test]
fn readout_results_do_not_depend_on_the_thread_count() {
    // 21 images: three groups in the backward pass.
    let shape = readout::ReadoutShape {
        batch: 21,
        channels: 9,
        height: 6,
        width: 7,
        neurons: 70,
    };
    let map = random([21, 9, 6, 7], 1.0).try_to_vec::<f32>().unwrap();
    let positions = test_positions(21, 70, 6, 7).try_to_vec::<f32>().unwrap();
    let features = random([9, 70], 1.0).try_to_vec::<f32>().unwrap();
    let grad = random([21, 70], 1.0).try_to_vec::<f32>().unwrap();
    let wanted = readout::Wanted {
        map: true,
        positions: true,
        features: true,
    };
    within_one_thread_and_three(|| {
        (
            readout::forward(&shape, &map, &positions, &features),
            readout::backward(&shape, &map, &positions, &features, &grad, wanted),
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Batch norm (training mode)

/// Output, mean, variance and gradients (input, scale, shift) for `loss = Σ out · probe`.
type NormRun = [TensorData; 6];

fn run_norm<const D: usize>(
    norm: impl Fn(Tensor<D>, Tensor<1>, Tensor<1>) -> BatchNormTrainOutput<D>,
    x: &TensorData,
    scale: &TensorData,
    shift: &TensorData,
    probe: &TensorData,
) -> NormRun {
    let device = Device::flex().autodiff();
    let x = Tensor::<D>::from_data(x.clone(), &device).require_grad();
    let scale = Tensor::<1>::from_data(scale.clone(), &device).require_grad();
    let shift = Tensor::<1>::from_data(shift.clone(), &device).require_grad();
    let out = norm(x.clone(), scale.clone(), shift.clone());
    let grads = (out.output.clone() * Tensor::from_data(probe.clone(), &device))
        .sum()
        .backward();
    [
        out.output.into_data(),
        out.mean.into_data(),
        out.variance.into_data(),
        x.grad(&grads).expect("input gradient").into_data(),
        scale.grad(&grads).expect("scale gradient").into_data(),
        shift.grad(&grads).expect("shift gradient").into_data(),
    ]
}

fn assert_norm_matches_burn<const D: usize>(shape: [usize; D], offset: f32) {
    let channels = shape[1];
    let x = random(shape, 2.0);
    let x = TensorData::new(
        x.try_to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v + offset)
            .collect(),
        shape,
    );
    let scale = random([channels], 1.0);
    let shift = random([channels], 1.0);
    let probe = random(shape, 1.0);
    let eps = 1e-5;
    let ours = run_norm(
        |x: Tensor<D>, s, b| batch_norm_train(x, s, b, eps),
        &x,
        &scale,
        &shift,
        &probe,
    );
    let burn = run_norm(
        |x: Tensor<D>, s, b| module::batch_norm_train(x, s, b, eps),
        &x,
        &scale,
        &shift,
        &probe,
    );
    let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-4);
    for (what, (ours, burn)) in ["output", "mean", "variance", "dx", "dscale", "dshift"]
        .iter()
        .zip(ours.iter().zip(&burn))
    {
        eprintln!("checking {what}");
        ours.assert_approx_eq(burn, tolerance);
    }
}

#[test]
fn batch_norm_matches_burn() {
    assert_norm_matches_burn([4, 3, 5, 7], 0.0);
}

#[test]
fn batch_norm_matches_burn_for_one_image() {
    assert_norm_matches_burn([1, 5, 6, 4], 0.5);
}

#[test]
fn batch_norm_matches_burn_far_from_zero() {
    // A large common offset: the kernel works on centred values, so nothing cancels.
    assert_norm_matches_burn([3, 2, 9, 9], 30.0);
}

#[test]
fn batch_norm_matches_burn_on_three_dimensional_input() {
    assert_norm_matches_burn([6, 4, 13], -1.0);
}

#[test]
fn batch_norm_elu_gives_the_bits_of_the_two_ops_and_burns_numbers() {
    let eps = 1e-5;
    for (shape, offset) in [
        ([4, 3, 5, 7], 0.0),
        ([1, 5, 6, 4], 0.5),
        ([3, 2, 9, 9], -0.8),
    ] {
        let x = random(shape, 2.0).try_to_vec::<f32>().unwrap();
        let x = TensorData::new(x.iter().map(|v| v + offset).collect(), shape);
        let (scale, shift) = (random([shape[1]], 1.0), random([shape[1]], 1.0));
        let probe = random(shape, 1.0);
        let run = |norm: &dyn Fn(Tensor<4>, Tensor<1>, Tensor<1>) -> BatchNormTrainOutput<4>| {
            run_norm(norm, &x, &scale, &shift, &probe)
        };
        let fused = run(&|x, s, b| batch_norm_elu_train(x, s, b, eps));
        let two_ops = run(&|x, s, b| {
            let norm = batch_norm_train(x, s, b, eps);
            BatchNormTrainOutput {
                output: elu(norm.output),
                ..norm
            }
        });
        let burn = run(&|x, s, b| {
            let norm = module::batch_norm_train(x, s, b, eps);
            let z = norm.output.clone();
            let negative = z.clone().lower_equal_scalar(0.0);
            let output = z
                .clone()
                .mask_where(negative, z.clamp_max(0.0).exp().sub_scalar(1.0));
            BatchNormTrainOutput { output, ..norm }
        });
        let what = ["output", "mean", "variance", "dx", "dscale", "dshift"];
        for (what, ((fused, two_ops), burn)) in
            what.iter().zip(fused.iter().zip(&two_ops).zip(&burn))
        {
            let bits = |d: &TensorData| -> Vec<u32> { d.iter::<f32>().map(f32::to_bits).collect() };
            assert_eq!(bits(fused), bits(two_ops), "{what} of {shape:?}");
            fused.assert_approx_eq::<f32>(burn, Tolerance::rel_abs(1e-4, 1e-4));
        }
    }
}

#[test]
fn batch_norm_results_do_not_depend_on_the_thread_count() {
    let shape = batch_norm::NormShape {
        batch: 3,
        channels: 5,
        plane: 37,
    };
    let x = random([3, 5, 37], 1.0).try_to_vec::<f32>().unwrap();
    let grad = random([3, 5, 37], 1.0).try_to_vec::<f32>().unwrap();
    let scale = random([5], 1.0).try_to_vec::<f32>().unwrap();
    let shift = random([5], 1.0).try_to_vec::<f32>().unwrap();
    within_one_thread_and_three(|| {
        let out = batch_norm::forward(&shape, &x, &scale, &shift, 1e-5);
        let grads =
            batch_norm::backward(&shape, &x, &scale, (&out.mean, &out.variance), 1e-5, &grad);
        let isa = Isa::active();
        let elu = batch_norm::forward_elu_on(isa, &shape, &x, &scale, &shift, 1e-5);
        let stats = (&elu.mean[..], &elu.variance[..]);
        let inputs = (&x[..], &elu.output[..]);
        let elu_grads =
            batch_norm::backward_elu_on(isa, &shape, inputs, &scale, stats, 1e-5, &grad);
        (out, grads, elu, elu_grads)
    });
}

// ---------------------------------------------------------------------------------------------
// Factorized readout

/// Output and gradients (map, masks, features) of `readout` for `loss = Σ y · probe`.
fn run_factorized(
    readout: impl Fn(Tensor<4>, Tensor<3>, Tensor<2>) -> Tensor<2>,
    operands: [&TensorData; 3],
    probe: &TensorData,
) -> [TensorData; 4] {
    let device = Device::flex().autodiff();
    let [map, masks, features] = operands;
    let map = Tensor::<4>::from_data(map.clone(), &device).require_grad();
    let masks = Tensor::<3>::from_data(masks.clone(), &device).require_grad();
    let features = Tensor::<2>::from_data(features.clone(), &device).require_grad();
    let y = readout(map.clone(), masks.clone(), features.clone());
    let grads = (y.clone() * Tensor::from_data(probe.clone(), &device))
        .sum()
        .backward();
    [
        y.into_data(),
        map.grad(&grads).expect("map gradient").into_data(),
        masks.grad(&grads).expect("mask gradient").into_data(),
        features.grad(&grads).expect("feature gradient").into_data(),
    ]
}

#[test]
fn factorized_readout_matches_burn_ops() {
    use crate::model::readout::factorized::FactorizedReadout;
    let (batch, channels, h, w, neurons) = (3, 6, 5, 7, 70);
    let map = random([batch, channels, h, w], 1.0);
    let masks = random([neurons, h, w], 0.5);
    let features = random([neurons, channels], 0.5);
    let probe = random([batch, neurons], 1.0);
    let flex = Device::flex();
    assert!(
        uses_factorized_kernel(
            &Tensor::<4>::from_data(map.clone(), &flex),
            &Tensor::<3>::from_data(masks.clone(), &flex),
            &Tensor::<2>::from_data(features.clone(), &flex),
        ),
        "fast path not taken"
    );
    let operands = [&map, &masks, &features];
    let ours = run_factorized(factorized_readout, operands, &probe);
    let plain = run_factorized(FactorizedReadout::read_ops, operands, &probe);
    let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-5);
    for (ours, plain) in ours.iter().zip(&plain) {
        ours.assert_approx_eq(plain, tolerance);
    }
}

#[test]
fn factorized_readout_results_do_not_depend_on_the_thread_count() {
    let shape = factorized::FactorizedShape {
        batch: 5,
        channels: 9,
        plane: 42,
        neurons: 150,
    };
    let x = random([5, 9, 42], 1.0).try_to_vec::<f32>().unwrap();
    let masks = random([150, 42], 1.0).try_to_vec::<f32>().unwrap();
    let features = random([150, 9], 1.0).try_to_vec::<f32>().unwrap();
    let grad = random([5, 150], 1.0).try_to_vec::<f32>().unwrap();
    within_one_thread_and_three(|| {
        (
            factorized::forward(&shape, &x, &masks, &features),
            factorized::backward(&shape, (&x, &masks, &features), &grad),
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Evaluation batch norm + ELU

#[test]
fn fused_affine_elu_equals_the_burn_ops() {
    let x = Tensor::<4>::from_data(random([3, 4, 5, 6], 2.0), &Device::flex());
    let gain = Tensor::<1>::from_data(
        TensorData::new(vec![0.5f32, 1.0, 2.0, -1.5], [4]),
        &Device::flex(),
    );
    let offset = Tensor::<1>::from_data(
        TensorData::new(vec![0.1f32, -0.3, 0.0, 0.7], [4]),
        &Device::flex(),
    );
    let fused = affine_elu(x.clone(), gain.clone(), offset.clone()).into_data();
    let plain = {
        let _burn = use_kernels(Kernels::Burn);
        affine_elu(x, gain, offset).into_data()
    };
    let (fused, plain) = (
        fused.try_to_vec::<f32>().unwrap(),
        plain.try_to_vec::<f32>().unwrap(),
    );
    assert!(fused.iter().any(|&v| v < 0.0) && fused.iter().any(|&v| v > 0.0));
    // The multiply and the add are rounded separately in both; only ELU's exp differs (burn's
    // libm exp against the kernel's polynomial).
    for (a, b) in fused.iter().zip(&plain) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn fused_affine_elu_gradients_equal_the_burn_ops() {
    let x = random([3, 4, 5, 6], 2.0);
    let probe = random([3, 4, 5, 6], 1.0);
    let gain = TensorData::new(vec![0.5f32, 1.0, 2.0, -1.5], [4]);
    let offset = TensorData::new(vec![0.1f32, -0.3, 0.0, 0.7], [4]);
    // Output and gradients (input, gain, offset), the gain and offset tracked or not.
    let run = |kernels: Kernels, parameters_tracked: bool| {
        let _kernels = use_kernels(kernels);
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
        let (mut gain, mut offset) = (
            Tensor::<1>::from_data(gain.clone(), &device),
            Tensor::<1>::from_data(offset.clone(), &device),
        );
        if parameters_tracked {
            (gain, offset) = (gain.require_grad(), offset.require_grad());
        }
        let y = affine_elu(x.clone(), gain.clone(), offset.clone());
        let grads = (y.clone() * Tensor::from_data(probe.clone(), &device))
            .sum()
            .backward();
        let values = |t: Option<Tensor<4>>| t.map(|t| t.into_data().try_to_vec::<f32>().unwrap());
        let values1 = |t: Option<Tensor<1>>| t.map(|t| t.into_data().try_to_vec::<f32>().unwrap());
        (
            y.into_data().try_to_vec::<f32>().unwrap(),
            values(x.grad(&grads)).expect("input gradient"),
            values1(gain.grad(&grads)),
            values1(offset.grad(&grads)),
        )
    };
    for tracked in [false, true] {
        let (fused, burn) = (run(Kernels::Fused, tracked), run(Kernels::Burn, tracked));
        let close = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(b) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        };
        close(&fused.0, &burn.0);
        close(&fused.1, &burn.1);
        assert_eq!(fused.2.is_some(), tracked);
        if tracked {
            close(&fused.2.unwrap(), &burn.2.unwrap());
            close(&fused.3.unwrap(), &burn.3.unwrap());
        }
    }
    // With the burn ops' ELU (only the exp differs), the input gradient is the same bits: the
    // fused backward rounds d·gain like the graph of a multiply, an add and an ELU.
    let elu_only = |x: &Tensor<4>| {
        let _fused = use_kernels(Kernels::Fused);
        let [_, c, _, _] = x.dims();
        let g = Tensor::<1>::from_data(gain.clone(), &x.device()).reshape([1, c, 1, 1]);
        let o = Tensor::<1>::from_data(offset.clone(), &x.device()).reshape([1, c, 1, 1]);
        elu(x.clone() * g + o)
    };
    let device = Device::flex().autodiff();
    let xt = Tensor::<4>::from_data(x.clone(), &device).require_grad();
    let grads = (elu_only(&xt) * Tensor::from_data(probe.clone(), &device))
        .sum()
        .backward();
    let two_step = xt
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(run(Kernels::Fused, false).1, two_step);
}

// ---------------------------------------------------------------------------------------------
// 1×1 convolution

#[test]
fn pointwise_conv_matches_burn_matmul_forward_and_backward() {
    let x = random([3, 5, 4, 7], 1.0);
    let w = random([6, 5, 1, 1], 0.5);
    let probe = random([3, 6, 4, 7], 1.0);
    let run = |conv: fn(Tensor<4>, Tensor<4>) -> Tensor<4>| {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
        let w = Tensor::<4>::from_data(w.clone(), &device).require_grad();
        let y = conv(x.clone(), w.clone());
        let grads = (y.clone() * Tensor::from_data(probe.clone(), &device))
            .sum()
            .backward();
        [
            y.into_data(),
            x.grad(&grads).expect("input gradient").into_data(),
            w.grad(&grads).expect("filter gradient").into_data(),
        ]
    };
    let ours = run(pointwise_conv2d);
    let plain = run(pointwise_matmul);
    let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-5);
    for (ours, plain) in ours.iter().zip(&plain) {
        ours.assert_approx_eq(plain, tolerance);
    }
}

#[test]
fn pointwise_conv_results_do_not_depend_on_the_thread_count() {
    let shape = pointwise::PointwiseShape {
        batch: 5,
        in_channels: 7,
        out_channels: 9,
        plane: 33,
    };
    let x = random([5, 7, 33], 1.0).try_to_vec::<f32>().unwrap();
    let w = random([9, 7], 1.0).try_to_vec::<f32>().unwrap();
    let g = random([5, 9, 33], 1.0).try_to_vec::<f32>().unwrap();
    within_one_thread_and_three(|| {
        (
            pointwise::forward(&shape, &x, &w),
            pointwise::backward(&shape, &x, &w, &g, [true, true]),
        )
    });
}

/// The evaluation-mode depth-separable block, image by image, gives the bits of its ops one
/// after the other (1×1 conv, depthwise conv, 1×1 conv, batch norm + ELU), without and with
/// autodiff (input gradient too), and burn's numbers within float tolerance; with "same"
/// padding and without.
#[test]
fn depth_separable_eval_gives_the_bits_of_its_ops() {
    for (pad, h, w) in [(2, 7, 9), (0, 8, 6)] {
        let (i, c, k) = (3, 5, 5);
        let x = random([3, i, h, w], 1.0);
        let filters = [
            random([c, i, 1, 1], 0.7),
            random([c, 1, k, k], 0.3),
            random([c, c, 1, 1], 0.6),
        ];
        let gain = TensorData::new(vec![0.5f32, 1.0, 2.0, -1.5, 0.8], [c]);
        let offset = TensorData::new(vec![0.1f32, -0.3, 0.0, 0.7, -1.0], [c]);
        let (out_h, out_w) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
        let probe = random([3, c, out_h, out_w], 1.0);
        let run = |device: &Device, fused_block: bool, kernels: Kernels| {
            let _kernels = use_kernels(kernels);
            let x = Tensor::<4>::from_data(x.clone(), device);
            let x = if device.is_autodiff() {
                x.require_grad()
            } else {
                x
            };
            let [w_in, w_dw, w_out] = filters.clone().map(|f| Tensor::<4>::from_data(f, device));
            let (g, o) = (
                Tensor::<1>::from_data(gain.clone(), device),
                Tensor::<1>::from_data(offset.clone(), device),
            );
            let y = if fused_block {
                depth_separable_eval(x.clone(), [w_in, w_dw, w_out], g, o, pad)
            } else {
                let y = conv2d(x.clone(), w_in, [0, 0], 1);
                let y = conv2d(y, w_dw, [pad, pad], c);
                affine_elu(conv2d(y, w_out, [0, 0], 1), g, o)
            };
            let grad = device.is_autodiff().then(|| {
                let grads = (y.clone() * Tensor::from_data(probe.clone(), device))
                    .sum()
                    .backward();
                x.grad(&grads).expect("input gradient").into_data()
            });
            (y.into_data(), grad)
        };
        for device in [Device::flex(), Device::flex().autodiff()] {
            let fused = run(&device, true, Kernels::Fused);
            let ops = run(&device, false, Kernels::Fused);
            assert_eq!(fused, ops, "pad {pad}, autodiff: {}", device.is_autodiff());
            assert_eq!(fused.0.shape().to_vec(), vec![3, c, out_h, out_w]);
            let values = fused.0.try_to_vec::<f32>().unwrap();
            assert!(values.iter().any(|&v| v < 0.0) && values.iter().any(|&v| v > 1.0));
            let burn = run(&device, true, Kernels::Burn);
            let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-5);
            fused.0.assert_approx_eq(&burn.0, tolerance);
            if let (Some(a), Some(b)) = (&fused.1, &burn.1) {
                a.assert_approx_eq(b, tolerance);
            }
        }
    }
}

/// The block's results do not depend on the thread count (one image per task).
#[test]
fn depth_separable_eval_does_not_depend_on_the_thread_count() {
    let shape = depth_separable::DepthSeparableShape {
        batch: 5,
        in_channels: 4,
        channels: 6,
        h: 9,
        w: 11,
        kernel: 3,
        pad: 1,
    };
    let x = random([5, 4, 9, 11], 1.0).try_to_vec::<f32>().unwrap();
    let w_in = random([6, 4], 1.0).try_to_vec::<f32>().unwrap();
    let w_dw = random([6, 3, 3], 1.0).try_to_vec::<f32>().unwrap();
    let w_out = random([6, 6], 1.0).try_to_vec::<f32>().unwrap();
    let (gain, offset) = (vec![0.7f32; 6], vec![-0.2f32; 6]);
    within_one_thread_and_three(|| {
        depth_separable::forward_eval(&shape, &x, [&w_in, &w_dw, &w_out], &gain, &offset)
    });
}
