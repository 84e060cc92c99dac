//! Micro-benchmark of the lurz2020 model's building blocks at training shapes (batch 64).
//!
//! Run: `RAYON_NUM_THREADS=2 cargo bench --bench kernels` (set 1 to measure one thread); add
//! `-- NAME` to time only the ops whose name contains NAME and `-- --isa avx2` (or `avx512`,
//! `portable`) to force the kernels' instruction set (default: the best this CPU has).
//! For each op it times burn's own flex implementation and cortexfit's kernel
//! (`cortexfit::kernels`), forward only (evaluation) and forward + backward (training step),
//! and prints one table with medians in milliseconds and, for the convolutions, the kernel's
//! training-step GFLOP/s and its share of the CPU's f32 peak.
//!
//! The peak assumed: threads × clock × 32 f32 FLOP per cycle per core = 2 FMA pipes × 8 lanes
//! (256 bits) × 2 FLOP per FMA. That is Zen 4's (and Zen 3's, Intel client cores') figure for
//! AVX2 *and* AVX-512: Zen 4 executes a 512-bit instruction as two 256-bit halves, so AVX-512
//! does not raise its peak (Intel server cores with two 512-bit FMA units would reach 64; set
//! `PEAK_FLOP_PER_CYCLE=64` there). The clock is the `cpu MHz` of `/proc/cpuinfo` (the base
//! clock a VM reports; boost raises the real peak), or `PEAK_GHZ` if set.

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
    /// FLOPs of the forward pass and of forward + backward (multiply-adds count 2; 0 where the op
    /// is bound by memory, not arithmetic).
    flops: [f64; 2],
}

/// FLOPs of a convolution `[batch, in, h, w]` → `[batch, out, oh, ow]` with `taps` multiply-adds
/// per output value: forward, and forward + backward (filter gradient, input gradient if asked).
fn conv_flops(
    batch: usize,
    out: usize,
    oh: usize,
    ow: usize,
    taps: usize,
    input_grad: bool,
) -> [f64; 2] {
    let forward = 2.0 * (batch * out * oh * ow * taps) as f64;
    [forward, forward * if input_grad { 3.0 } else { 2.0 }]
}

/// The f32 peak in GFLOP/s of `threads` cores (see the module docs) and how it was derived.
fn peak_gflops(threads: usize) -> (f64, String) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let ghz = env("PEAK_GHZ")
        .or_else(|| {
            field("cpu MHz")
                .and_then(|m| m.parse::<f64>().ok())
                .map(|m| m / 1e3)
        })
        .unwrap_or(f64::NAN);
    let per_cycle = env("PEAK_FLOP_PER_CYCLE").unwrap_or(32.0);
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let peak = threads as f64 * ghz * per_cycle;
    let how = format!(
        "{model}: peak {peak:.0} GFLOP/s = {threads} core(s) × {ghz:.2} GHz × {per_cycle} f32 FLOP/cycle"
    );
    (peak, how)
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
            flops: conv_flops(BATCH, CHANNELS, 22, 50, 15 * 15, false),
        },
        Op {
            name: "pointwise 1×1 64→64 (22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [CHANNELS, CHANNELS, 1, 1],
            input_grad: true,
            burn: burn_pointwise,
            kernel: kernel_pointwise,
            flops: conv_flops(BATCH, CHANNELS, 22, 50, CHANNELS, true),
        },
        Op {
            name: "depthwise 13×13 pad 6 (22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [CHANNELS, 1, 13, 13],
            input_grad: true,
            burn: burn_depthwise,
            kernel: kernel_depthwise,
            flops: conv_flops(BATCH, CHANNELS, 22, 50, 13 * 13, true),
        },
        Op {
            name: "batch norm (train) + ELU (64×22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [1, 1, 1, CHANNELS],
            input_grad: true,
            burn: burn_bn_elu,
            kernel: kernel_bn_elu,
            flops: [0.0; 2],
        },
        Op {
            name: "Gaussian readout 5335 neurons (22×50)",
            input: [BATCH, CHANNELS, 22, 50],
            weight: [1, 1, CHANNELS + 2, NEURONS],
            input_grad: true,
            burn: burn_readout,
            kernel: kernel_readout,
            flops: [0.0; 2],
        },
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let isa = match args.iter().position(|a| a == "--isa") {
        Some(i) => {
            let name = args.get(i + 1).map(String::as_str).unwrap_or("");
            kernels::Isa::from_name(name)
                .unwrap_or_else(|| panic!("--isa {name:?}: expected avx512, avx2 or portable"))
        }
        None => kernels::Isa::best(),
    };
    let _isa = kernels::use_isa(isa).unwrap_or_else(|e| panic!("--isa {isa}: {e}"));
    let (peak, peak_how) = peak_gflops(threads);
    println!(
        "cortexfit kernels micro-benchmark: batch {BATCH}, {threads} rayon thread(s), kernels on {isa} (this CPU: {}), median of 5, ms",
        kernels::Isa::supported()
            .iter()
            .map(|i| i.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{peak_how}");
    println!(
        "| {:<38} | {:>9} | {:>11} | {:>9} | {:>11} | {:>8} | {:>13} | {:>6} |",
        "op",
        "burn fwd",
        "burn fwd+bwd",
        "ours fwd",
        "ours fwd+bwd",
        "speed-up",
        "ours GFLOP/s",
        "% peak"
    );
    println!(
        "|{:-<40}|{:->11}|{:->13}|{:->11}|{:->13}|{:->10}|{:->15}|{:->8}|",
        "", "", "", "", "", "", "", ""
    );
    let only = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "--isa"))
        .map(|(_, a)| a.clone());
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
        // Forward and training-step rates, "fwd / fwd+bwd".
        let (rate, share) = if op.flops[1] > 0.0 {
            let fwd = op.flops[0] / ours_fwd / 1e6;
            let train = op.flops[1] / ours_train / 1e6;
            (
                format!("{fwd:.0} / {train:.0}"),
                format!("{:.0}/{:.0}", 100.0 * fwd / peak, 100.0 * train / peak),
            )
        } else {
            ("–".into(), "–".into())
        };
        println!(
            "| {:<38} | {:>9.1} | {:>11.1} | {:>9.1} | {:>11.1} | {:>7.2}× | {:>13} | {:>6} |",
            op.name,
            burn_fwd,
            burn_train,
            ours_fwd,
            ours_train,
            burn_train / ours_train,
            rate,
            share
        );
    }
}
