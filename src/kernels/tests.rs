//! The fast kernels must give burn's own results, forward and backward.

use super::*;
use burn::tensor::{Device, Distribution, TensorData};

/// Output, input gradient and filter gradient of `conv` for `loss = Σ out · probe`.
fn run(
    conv: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    x: &TensorData,
    w: &TensorData,
    probe: &TensorData,
) -> (TensorData, TensorData, TensorData) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(x.clone(), &device).require_grad();
    let w = Tensor::<4>::from_data(w.clone(), &device).require_grad();
    let out = conv(x.clone(), w.clone());
    let probe = Tensor::<4>::from_data(probe.clone(), &device);
    let grads = (out.clone() * probe).sum().backward();
    (
        out.into_data(),
        x.grad(&grads).expect("input gradient").into_data(),
        w.grad(&grads).expect("filter gradient").into_data(),
    )
}

/// A random input (N(0, 1)) and filter (N(0, 0.04)) of these shapes, and the conv options.
fn random_conv(
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    padding: [usize; 2],
    groups: usize,
) -> (TensorData, TensorData, ConvOptions<2>) {
    let device = Device::flex();
    let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), &device).into_data();
    let w = Tensor::<4>::random(w_shape, Distribution::Normal(0.0, 0.2), &device).into_data();
    (x, w, ConvOptions::new([1, 1], padding, [1, 1], groups))
}

fn assert_matches_burn(
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    padding: [usize; 2],
    groups: usize,
) {
    let device = Device::flex();
    let (x, w, options) = random_conv(x_shape, w_shape, padding, groups);
    let out_shape = module::conv2d(
        Tensor::from_data(x.clone(), &device),
        Tensor::from_data(w.clone(), &device),
        None,
        options.clone(),
    )
    .dims();
    let probe = Tensor::<4>::random(out_shape, Distribution::Normal(0.0, 1.0), &device).into_data();

    let x_t = Tensor::<4>::from_data(x.clone(), &device);
    let w_t = Tensor::<4>::from_data(w.clone(), &device);
    assert!(
        uses_channelwise_kernel(&x_t, &w_t, padding, groups),
        "fast path not taken"
    );

    let ours = run(|x, w| conv2d(x, w, padding, groups), &x, &w, &probe);
    let burn = run(
        |x, w| module::conv2d(x, w, None, options.clone()),
        &x,
        &w,
        &probe,
    );
    let tolerance = burn::tensor::Tolerance::<f32>::rel_abs(1e-4, 1e-4);
    ours.0.assert_approx_eq(&burn.0, tolerance);
    ours.1.assert_approx_eq(&burn.1, tolerance);
    ours.2.assert_approx_eq(&burn.2, tolerance);
}

#[test]
fn depthwise_same_padding_matches_burn() {
    // The lurz2020 hidden layers' shape, scaled down: 13×13 filters, padding 6.
    assert_matches_burn([3, 5, 11, 17], [5, 1, 13, 13], [6, 6], 5);
}

#[test]
fn depthwise_asymmetric_kernel_and_padding_matches_burn() {
    assert_matches_burn([2, 4, 9, 7], [4, 1, 3, 5], [1, 0], 4);
}

#[test]
fn single_input_plane_valid_conv_matches_burn() {
    // The lurz2020 input layer's shape, scaled down: one image plane, 15×15, no padding.
    assert_matches_burn([3, 1, 20, 24], [6, 1, 15, 15], [0, 0], 1);
}

#[test]
fn pointwise_matches_burn() {
    let device = Device::flex();
    let x = Tensor::<4>::random([3, 5, 4, 6], Distribution::Normal(0.0, 1.0), &device).into_data();
    let w = Tensor::<4>::random([7, 5, 1, 1], Distribution::Normal(0.0, 0.3), &device).into_data();
    let probe =
        Tensor::<4>::random([3, 7, 4, 6], Distribution::Normal(0.0, 1.0), &device).into_data();
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let ours = run(|x, w| conv2d(x, w, [0, 0], 1), &x, &w, &probe);
    let burn = run(
        |x, w| module::conv2d(x, w, None, options.clone()),
        &x,
        &w,
        &probe,
    );
    let tolerance = burn::tensor::Tolerance::<f32>::rel_abs(1e-4, 1e-4);
    ours.0.assert_approx_eq(&burn.0, tolerance);
    ours.1.assert_approx_eq(&burn.1, tolerance);
    ours.2.assert_approx_eq(&burn.2, tolerance);
}

#[test]
fn other_convolutions_fall_back_to_burn() {
    let device = Device::flex();
    let x = Tensor::<4>::random([2, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random([6, 2, 3, 3], Distribution::Normal(0.0, 1.0), &device);
    assert!(!uses_channelwise_kernel(&x, &w, [1, 1], 2));
    let ours = conv2d(x.clone(), w.clone(), [1, 1], 2).into_data();
    let burn = module::conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 2)).into_data();
    ours.assert_eq(&burn, true);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let shape = channelwise::ChannelwiseShape {
        batch: 4,
        channels: 3,
        shared_input: false,
        in_h: 8,
        in_w: 9,
        kernel_h: 5,
        kernel_w: 5,
        pad_h: 2,
        pad_w: 2,
    };
    let x: Vec<f32> = (0..4 * 3 * 72)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    let w: Vec<f32> = (0..3 * 25)
        .map(|i| ((i * 13 % 29) as f32 - 14.0) / 9.0)
        .collect();
    let g: Vec<f32> = (0..4 * 3 * 72)
        .map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0)
        .collect();
    let compute = || {
        (
            channelwise::forward(&shape, &x, &w),
            channelwise::input_grad(&shape, &w, &g),
            channelwise::weight_grad(&shape, &x, &g),
        )
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(compute);
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(compute);
    assert_eq!(one, three);
}

#[test]
fn fused_elu_matches_burn_ops() {
    let device = Device::flex().autodiff();
    let data =
        Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 2.0), &device).into_data();
    let probe = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);
    let grads_of = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        let x = Tensor::<4>::from_data(data.clone(), &device).require_grad();
        let y = f(x.clone());
        let grads = (y.clone() * probe.clone()).sum().backward();
        (
            y.into_data(),
            x.grad(&grads).expect("input gradient").into_data(),
        )
    };
    let ours = grads_of(&|x| elu(x));
    let burn = grads_of(&|x| burn::tensor::activation::elu(x, 1.0));
    let tolerance = burn::tensor::Tolerance::<f32>::rel_abs(1e-5, 1e-6);
    ours.0.assert_approx_eq(&burn.0, tolerance);
    ours.1.assert_approx_eq(&burn.1, tolerance);
}

#[test]
fn tiled_transpose_moves_every_value_at_ragged_sizes() {
    for (isa, (rows, cols)) in Isa::supported().into_iter().flat_map(|isa| {
        [(1, 1), (3, 5), (16, 16), (17, 33), (64, 1100), (8, 1100)].map(|s| (isa, s))
    }) {
        let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let mut out = memory::uninit(rows * cols);
        readout::transpose_into(isa, &values, (rows, cols), &mut out);
        // SAFETY: `transpose_into` writes all rows · cols values (NaN in tests until written).
        let out = unsafe { memory::assume_init(out) };
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(
                    out[c * rows + r],
                    values[r * cols + c],
                    "{isa}: {rows}×{cols} at ({r}, {c})"
                );
            }
        }
    }
}

/// Output, input gradient and filter gradient of `conv` against burn's conv, each within 1e-5 of
/// the tensor's largest value: the FFT's rounding errors scale with a plane's largest values, not
/// with each value (and a filter gradient sums 3 × 1100 products: f32 sums of that length,
/// burn's included, err by ~1e-4 on their small entries).
fn compare_with_burn(
    conv: impl Fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    x_shape: [usize; 4],
    w_shape: [usize; 4],
    padding: [usize; 2],
    groups: usize,
) {
    let (x, w, options) = random_conv(x_shape, w_shape, padding, groups);
    let probe = fixed_probe(&x, &w, &options);
    let burn = run(
        |x, w| module::conv2d(x, w, None, options.clone()),
        &x,
        &w,
        &probe,
    );
    let ours = run(conv, &x, &w, &probe);
    for (name, ours, burn) in [
        ("output", &ours.0, &burn.0),
        ("input gradient", &ours.1, &burn.1),
        ("filter gradient", &ours.2, &burn.2),
    ] {
        let ours = ours.clone().try_to_vec::<f32>().expect("f32");
        let burn = burn.clone().try_to_vec::<f32>().expect("f32");
        let scale = burn.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = ours
            .iter()
            .zip(&burn)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{name}: error {worst} against largest value {scale}"
        );
    }
}

/// A fixed probe (the loss weights) of the conv's output shape.
fn fixed_probe(x: &TensorData, w: &TensorData, options: &ConvOptions<2>) -> TensorData {
    let device = Device::flex();
    let out = module::conv2d(
        Tensor::<4>::from_data(x.clone(), &device),
        Tensor::<4>::from_data(w.clone(), &device),
        None,
        options.clone(),
    );
    let n = out.shape().num_elements();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 53.0)
        .collect();
    TensorData::new(values, out.dims())
}

#[test]
fn training_convs_through_the_fft_match_burn() {
    // The lurz2020 depthwise and input convs (fewer channels, an odd batch): in training mode
    // they take the FFT path (two images per transform).
    for (x_shape, w_shape, padding, groups) in [
        ([3, 9, 22, 50], [9, 1, 13, 13], [6, 6], 9),
        ([3, 1, 36, 64], [9, 1, 15, 15], [0, 0], 1),
    ] {
        let shape = channelwise::ChannelwiseShape {
            batch: x_shape[0],
            channels: w_shape[0],
            shared_input: groups == 1,
            in_h: x_shape[2],
            in_w: x_shape[3],
            kernel_h: w_shape[2],
            kernel_w: w_shape[3],
            pad_h: padding[0],
            pad_w: padding[1],
        };
        assert!(
            fft_conv::pays(&shape),
            "{shape:?} would not take the FFT path"
        );
        let conv = |x, w| conv2d_training(x, w, padding, groups);
        compare_with_burn(conv, x_shape, w_shape, padding, groups);
    }
}

#[test]
fn evaluation_convs_do_not_depend_on_the_batch() {
    // In evaluation mode an image's output is the same bits alone or beside another image,
    // also where training mode would pair the two in one FFT.
    let device = Device::flex();
    for (x_shape, w_shape, padding, groups) in [
        ([2, 9, 22, 50], [9, 1, 13, 13], [6, 6], 9),
        ([2, 1, 36, 64], [9, 1, 15, 15], [0, 0], 1),
    ] {
        let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<4>::random(w_shape, Distribution::Normal(0.0, 0.2), &device);
        let first = x.clone().narrow(0, 0, 1);
        let alone = conv2d(first, w.clone(), padding, groups).into_data();
        let paired = conv2d(x.clone(), w.clone(), padding, groups)
            .narrow(0, 0, 1)
            .into_data();
        alone.assert_eq(&paired, true);
        let training = conv2d_training(x, w, padding, groups)
            .narrow(0, 0, 1)
            .into_data();
        training.assert_approx_eq(&alone, burn::tensor::Tolerance::<f32>::rel_abs(1e-4, 1e-4));
    }
}
