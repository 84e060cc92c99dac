//! The channel-wise convolution kernels (13×13 depthwise, 15×15 input conv; forward, input
//! gradient, filter gradient) at the lurz2020 training shapes, on every instruction-set path this
//! CPU has, and the 1×1 pointwise conv (the `gemm` crate, which picks its own instruction set),
//! timed in **process CPU time** (best of 7) rather than wall time, so that other processes on a
//! shared machine disturb the figures less (cache sharing still does). The pointwise conv is
//! timed twice with the same FLOPs: on a batch of 64 (operands in memory, as in training) and on
//! one image 64 times (operands in cache), which separates the products' speed from the memory
//! traffic around them.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench isa` (one thread: CPU time = the kernel's time).
//! Prints GFLOP/s per busy core (FLOPs ÷ CPU seconds) and its share of one core's f32 peak (clock × 32 FLOP per cycle; see
//! `benches/kernels.rs` for the peak and `PEAK_GHZ` / `PEAK_FLOP_PER_CYCLE`).

use cortexfit::kernels::Isa;
use cortexfit::kernels::channelwise::{
    ChannelwiseShape, fft_backward_on, fft_forward_on, forward_on, input_grad_on, weight_grad_on,
};
use cortexfit::kernels::pointwise::{self, PointwiseShape};

/// CPU time of this process in seconds.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Smallest CPU time of 7 runs of `f`, after one warm-up run.
fn best_of_7(mut f: impl FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let start = cpu_seconds();
            f();
            cpu_seconds() - start
        })
        .fold(f64::INFINITY, f64::min)
}

/// One core's f32 peak in GFLOP/s: clock (`PEAK_GHZ`, else `cpu MHz` of /proc/cpuinfo) × FLOP per
/// cycle (`PEAK_FLOP_PER_CYCLE`, default 32).
fn core_peak() -> f64 {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    let mhz = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("cpu MHz"))
                .and_then(|l| l.split_once(':'))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        });
    let ghz = env("PEAK_GHZ").or(mhz.map(|m| m / 1e3)).unwrap_or(f64::NAN);
    ghz * env("PEAK_FLOP_PER_CYCLE").unwrap_or(32.0)
}

/// One table cell: time, rate and share of `peak` for `flops` done in `seconds` of CPU time
/// (CPU time sums over threads: the rate is per busy core).
fn cell(flops: f64, seconds: f64, peak: f64) -> String {
    let rate = flops / seconds / 1e9;
    format!(
        "{:.1} ms {:.0} GF/s {:.0}%",
        seconds * 1e3,
        rate,
        100.0 * rate / peak
    )
}

fn values(n: usize, period: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i % period) as f32 / period as f32)
        .collect()
}

fn main() {
    let peak = core_peak();
    println!(
        "channel-wise conv kernels, batch 64, {} rayon thread(s), best of 7, process CPU time; best path here: {}; one core's peak {peak:.0} GFLOP/s",
        rayon::current_num_threads(),
        Isa::best()
    );
    println!(
        "| {:<16} | {:<8} | {:>20} | {:>20} | {:>20} |",
        "conv", "path", "forward", "input gradient", "filter gradient"
    );
    println!(
        "|{:-<18}|{:-<10}|{:->22}|{:->22}|{:->22}|",
        "", "", "", "", ""
    );
    let shape = |channels, shared_input, in_h, in_w, k, pad| ChannelwiseShape {
        batch: 64,
        channels,
        shared_input,
        in_h,
        in_w,
        kernel_h: k,
        kernel_w: k,
        pad_h: pad,
        pad_w: pad,
    };
    let convs = [
        ("depthwise 13×13", shape(64, false, 22, 50, 13, 6)),
        ("input 15×15", shape(64, true, 36, 64, 15, 0)),
    ];
    for (name, s) in convs {
        let x = values(s.batch * s.in_channels() * s.in_h * s.in_w, 97);
        let w = values(s.channels * s.kernel_h * s.kernel_w, 13);
        let g = values(s.batch * s.channels * s.out_h() * s.out_w(), 31);
        let taps = s.kernel_h * s.kernel_w;
        let flops = 2.0 * (s.batch * s.channels * s.out_h() * s.out_w() * taps) as f64;
        let cell = |seconds: f64| cell(flops, seconds, peak);
        for isa in Isa::supported() {
            let forward = best_of_7(|| drop(std::hint::black_box(forward_on(isa, &s, &x, &w))));
            let input = best_of_7(|| drop(std::hint::black_box(input_grad_on(isa, &s, &w, &g))));
            let filter = best_of_7(|| drop(std::hint::black_box(weight_grad_on(isa, &s, &x, &g))));
            println!(
                "| {name:<16} | {:<8} | {:>20} | {:>20} | {:>20} |",
                isa.name(),
                cell(forward),
                cell(input),
                cell(filter)
            );
        }
        // The FFT path (rates are the direct sum's FLOPs over the time taken), and both
        // gradients in one call as training asks for them (the shared-input conv has no input
        // gradient on it: training does not ask for one).
        for isa in Isa::supported() {
            let backward = |want: [bool; 2]| {
                best_of_7(|| {
                    drop(std::hint::black_box(fft_backward_on(
                        isa,
                        &s,
                        (&x, &w, &g),
                        want[0],
                        want[1],
                    )))
                })
            };
            let forward = best_of_7(|| drop(std::hint::black_box(fft_forward_on(isa, &s, &x, &w))));
            let filter = backward([false, true]);
            let input = (!s.shared_input).then(|| backward([true, false]));
            println!(
                "| {name:<16} | {:<8} | {:>20} | {:>20} | {:>20} |",
                format!("fft {}", isa.name()),
                cell(forward),
                input.map_or("-".to_string(), cell),
                cell(filter)
            );
            if s.shared_input {
                continue;
            }
            let both = backward([true, true]);
            println!(
                "| {name:<16} | {:<8} | {:>20} | {:>43} |",
                format!("fft {}", isa.name()),
                "",
                format!("both gradients in one call: {}", cell(both)),
            );
        }
    }
    // 1×1 conv 64 → 64 on the 22×50 maps: a batch of 64, then one image 64 times.
    for (name, batch, repeats) in [("pointwise b64", 64, 1), ("pointwise 1 ×64", 1, 64)] {
        let s = PointwiseShape {
            batch,
            in_channels: 64,
            out_channels: 64,
            plane: 22 * 50,
        };
        let x = values(batch * 64 * s.plane, 97);
        let w = values(64 * 64, 13);
        let g = values(batch * 64 * s.plane, 31);
        let flops = 2.0 * (64 * 64 * 64 * s.plane) as f64;
        let cell = |seconds: f64| cell(flops, seconds, peak);
        let times = |wanted: Option<[bool; 2]>| {
            best_of_7(|| {
                for _ in 0..repeats {
                    match wanted {
                        None => drop(std::hint::black_box(pointwise::forward(&s, &x, &w))),
                        Some(wanted) => drop(std::hint::black_box(pointwise::backward(
                            &s, &x, &w, &g, wanted,
                        ))),
                    }
                }
            })
        };
        println!(
            "| {name:<16} | {:<8} | {:>20} | {:>20} | {:>20} |",
            "gemm",
            cell(times(None)),
            cell(times(Some([true, false]))),
            cell(times(Some([false, true])))
        );
    }
}
