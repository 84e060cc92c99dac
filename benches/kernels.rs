//! Micro-benchmark of the lurz2020 model's building blocks at training shapes (batch 64).
//!
//! Run: `RAYON_NUM_THREADS=2 cargo bench --bench kernels` (set 1 to measure one thread).
//! For each op it times burn's own flex implementation and cortexfit's kernel
//! (`cortexfit::kernels`), forward only (evaluation) and forward + backward (training step),
//! and prints one table with medians in milliseconds. `bench/torch_kernels.py` times the same
//! ops in PyTorch for the side-by-side comparison.

use burn::tensor::module::{batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, activation};
use cortexfit::kernels;
use cortexfit::model::readout::bilinear::bilinear_readout_ops;
use std::time::Instant;

const BATCH: usize = 64;
const CHANNELS: usize = 64;
/// Neurons of the real dataset's scan.
const NEURONS: usize = 5335;

/// Median wall time of `reps` runs of `f`, after one warm-up run.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One benchmarked op: a forward function taking (input, weight) on any device.
struct Op {
    name: &'static str,
    input: [usize; 4],
    weight: [usize; 4],
    /// Whether the input needs a gradient (false for the image fed to the first layer).
    input_grad: bool,
    burn: fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
    kernel: fn(Tensor<4>, Tensor<4>) -> Tensor<4>,
}

fn time_forward(op: &Op, device: &Device, f: fn(Tensor<4>, Tensor<4>) -> Tensor<4>) -> f64 {
    let x = Tensor::<4>::random(op.input, Distribution::Normal(0.0, 1.0), device);
    let w = Tensor::<4>::random(op.weight, Distribution::Normal(0.0, 0.1), device);
    median_ms(5, || {
        let out = f(x.clone(), w.clone());
        let _ = out.sum().into_scalar::<f32>();
    })
}

fn time_training(op: &Op, device: &Device, f: fn(Tensor<4>, Tensor<4>) -> Tensor<4>) -> f64 {
    let device = device.clone().autodiff();
    let x = Tensor::<4>::random(op.input, Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<4>::random(op.weight, Distribution::Normal(0.0, 0.1), &device);
    let x = if op.input_grad { x.require_grad() } else { x };
    let w = w.require_grad();
    median_ms(5, || {
        let out = f(x.clone(), w.clone());
        let grads = out.sum().backward();
        let gw = w.grad(&grads).expect("weight gradient");
        let _ = gw.sum().into_scalar::<f32>();
    })
}

fn burn_input_conv(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    conv2d(x, w, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
}
fn burn_pointwise(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    conv2d(x, w, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
}
fn burn_depthwise(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    conv2d(
        x,
        w,
        None,
        ConvOptions::new([1, 1], [6, 6], [1, 1], CHANNELS),
    )
}
/// Batch norm (training statistics) + ELU; the "weight" tensor only supplies gamma.
fn burn_bn_elu(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    let gamma = w.reshape([CHANNELS]);
    let beta = gamma.zeros_like();
    activation::elu(batch_norm_train(x, gamma, beta, 1e-5).output, 1.0)
}

fn kernel_input_conv(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    kernels::conv2d(x, w, [0, 0], 1)
}
fn kernel_pointwise(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    kernels::conv2d(x, w, [0, 0], 1)
}
fn kernel_depthwise(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    kernels::conv2d(x, w, [6, 6], CHANNELS)
}
fn kernel_bn_elu(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    let gamma = w.reshape([CHANNELS]);
    let beta = gamma.zeros_like();
    kernels::elu(kernels::batch_norm_train(x, gamma, beta, 1e-5).output)
}

/// The Gaussian readout's read: the "weight" `[1, 1, channels + 2, neurons]` holds the features
/// and, in its last two rows, each neuron's position (read at the same place in every image).
fn readout_operands(x: &Tensor<4>, w: Tensor<4>) -> (Tensor<3>, Tensor<2>) {
    let [batch, ..] = x.dims();
    let [_, _, rows, neurons] = w.dims();
    let w = w.reshape([rows, neurons]);
    let features = w.clone().narrow(0, 0, CHANNELS);
    let positions = w.narrow(0, CHANNELS, 2).tanh().transpose();
    (
        positions.unsqueeze_dim::<3>(0).expand([batch, neurons, 2]),
        features,
    )
}
fn burn_readout(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    let (positions, features) = readout_operands(&x, w);
    bilinear_readout_ops(x, positions, features).unsqueeze()
}
fn kernel_readout(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    let (positions, features) = readout_operands(&x, w);
    kernels::bilinear_readout(x, positions, features).unsqueeze()
}

fn main() {
    let device = Device::flex();
    let threads = rayon::current_num_threads();
    let ops = [
        Op {
            name: "input conv 1→64 15×15 valid (36×64)",
            input: [BATCH, 1, 36, 64],
            weight: [CHANNELS, 1, 15, 15],
            input_grad: false,
            burn: burn_input_conv,
            kernel: kernel_input_conv,
        },
        Op {
            name: "pointwise 1×1 64→64 (22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [CHANNELS, CHANNELS, 1, 1],
            input_grad: true,
            burn: burn_pointwise,
            kernel: kernel_pointwise,
        },
        Op {
            name: "depthwise 13×13 pad 6 (22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [CHANNELS, 1, 13, 13],
            input_grad: true,
            burn: burn_depthwise,
            kernel: kernel_depthwise,
        },
        Op {
            name: "batch norm (train) + ELU (64×22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [1, 1, 1, CHANNELS],
            input_grad: true,
            burn: burn_bn_elu,
            kernel: kernel_bn_elu,
        },
        Op {
            name: "Gaussian readout 5335 neurons (22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [1, 1, CHANNELS + 2, NEURONS],
            input_grad: true,
            burn: burn_readout,
            kernel: kernel_readout,
        },
    ];
    println!(
        "cortexfit kernels micro-benchmark: batch {BATCH}, {threads} rayon thread(s), median of 5, ms"
    );
    println!(
        "| {:<38} | {:>9} | {:>11} | {:>9} | {:>11} | {:>8} |",
        "op", "burn fwd", "burn fwd+bwd", "ours fwd", "ours fwd+bwd", "speed-up"
    );
    println!(
        "|{:-<40}|{:->11}|{:->13}|{:->11}|{:->13}|{:->10}|",
        "", "", "", "", "", ""
    );
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    for op in &ops {
        if only
            .as_ref()
            .is_some_and(|filter| !op.name.contains(filter.as_str()))
        {
            continue;
        }
        let burn_fwd = time_forward(op, &device, op.burn);
        let burn_train = time_training(op, &device, op.burn);
        let ours_fwd = time_forward(op, &device, op.kernel);
        let ours_train = time_training(op, &device, op.kernel);
        println!(
            "| {:<38} | {:>9.1} | {:>11.1} | {:>9.1} | {:>11.1} | {:>7.2}× |",
            op.name,
            burn_fwd,
            burn_train,
            ours_fwd,
            ours_train,
            burn_train / ours_train
        );
    }
}
