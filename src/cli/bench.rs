//! `cortexfit bench`: time training steps (forward + backward + Adam) and evaluation batches of a
//! preset on synthetic input, and print the figures as one JSON line. The training step is the
//! trainer's own (`train::step`: objective, Adam with the preset's `[trainer]` settings, clamping).

use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson, Uniform};

use crate::backend::{DeviceKind, init_threads};
use crate::config::RunConfig;
use crate::data::BatchTensors;
use crate::kernels::{Isa, Kernels};
use crate::model::tensor_util::scalar;
use crate::model::{DatasetFacts, DatasetReadoutFacts, Encoder, SamplingRng};
use crate::train::step::{adam, batch_objective, loss_scale, optimizer_step};

/// Arguments of `cortexfit bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model preset to time (see `cortexfit config --help` for the list).
    #[arg(long, default_value = "lurz2020")]
    pub preset: String,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Number of neurons (the real dataset has 5335).
    #[arg(long, default_value_t = 5335)]
    pub neurons: usize,
    /// Timed steps (after warm-up); the median is reported.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// CPU threads for the flex backend (default: all logical CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Image height and width (the Lurz / Sensorium input is 36×64).
    #[arg(long, num_args = 2, value_names = ["HEIGHT", "WIDTH"], default_values_t = [36, 64])]
    pub image_size: Vec<usize>,
    /// Seed of the synthetic data and the model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which implementation computes the hot operations (`burn`: burn's own ops, the "before").
    #[arg(long, value_enum, default_value = "fused")]
    pub kernels: KernelsArg,
    /// Instruction set of the fused CPU kernels: `avx512`, `avx2` or `portable` (default: the
    /// best this CPU has; reported as `isa` in the output).
    #[arg(long, value_parser = parse_isa)]
    pub isa: Option<Isa>,
    /// Also time every step with this many threads, alternating step by step with `--threads`
    /// so that both settings see the same machine (a VM's speed drifts by tens of percent
    /// within minutes), and report the speed-up of `--threads` over it as the median of the
    /// per-step time ratios (`--threads 2 --versus-threads 1`: the 2-thread scaling). Both
    /// settings then run on pools of their own (`threads` reports the first).
    #[arg(long)]
    pub versus_threads: Option<usize>,
}

fn parse_isa(name: &str) -> Result<Isa, String> {
    Isa::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Isa::ALL.iter().map(|i| i.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// `--kernels` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KernelsArg {
    Fused,
    Burn,
}

/// The CPU's model name from `/proc/cpuinfo` (null where it cannot be read).
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Step `i` with `--threads`, and with `--versus-threads` where `pools` are given (a pool of
/// each size; both settings then run their steps on a worker of their own pool, the same way).
/// The two run back to back, in turn first and second, so that neither always finds the state
/// the other leaves (freed memory, warm caches): always second, a 1-thread step measured ~6 %
/// faster than the same step first.
fn alternate<S, V>(
    i: usize,
    step: &mut S,
    pools: Option<&[rayon::ThreadPool; 2]>,
    in_pool: &V,
) -> (Timing, Option<Timing>)
where
    S: FnMut() -> Timing + Send,
    V: Fn(&rayon::ThreadPool, &mut (dyn FnMut() -> Timing + Send)) -> Timing,
{
    match pools {
        None => (step(), None),
        Some([main, versus]) if i.is_multiple_of(2) => {
            let first = in_pool(main, step);
            (first, Some(in_pool(versus, step)))
        }
        Some([main, versus]) => {
            let first = in_pool(versus, step);
            (in_pool(main, step), Some(first))
        }
    }
}

/// The median over steps of `numerator[i] / denominator[i]` (each pair timed back to back).
fn median_ratio(numerator: &[f64], denominator: &[f64]) -> f64 {
    median(
        numerator
            .iter()
            .zip(denominator)
            .map(|(a, b)| a / b)
            .collect(),
    )
}

/// One timed step: milliseconds in all, per part (training: forward, backward, Adam), its loss.
#[derive(Default)]
struct Timing {
    total: f64,
    parts: [f64; 3],
    loss: f64,
}

/// The timed steps of one setting.
#[derive(Default)]
struct Timings {
    total: Vec<f64>,
    parts: [Vec<f64>; 3],
}

impl Timings {
    fn push(&mut self, t: Timing) {
        self.total.push(t.total);
        for (all, part) in self.parts.iter_mut().zip(t.parts) {
            all.push(part);
        }
    }
}

fn host_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The rayon pool must be sized before the first tensor operation.
    let threads = init_threads(args.threads)?;
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    anyhow::ensure!(
        args.batch >= 2,
        "--batch must be at least 2 (batch norm needs 2 images)"
    );
    anyhow::ensure!(args.neurons >= 1, "--neurons must be at least 1");
    anyhow::ensure!(
        args.versus_threads != Some(0),
        "--versus-threads must be at least 1"
    );
    let [h, w]: [usize; 2] = args
        .image_size
        .clone()
        .try_into()
        .expect("clap gives 2 values");
    let kernels = match args.kernels {
        KernelsArg::Fused => Kernels::Fused,
        KernelsArg::Burn => Kernels::Burn,
    };
    let _kernels = crate::kernels::use_kernels(kernels);
    let isa = args.isa.unwrap_or_else(Isa::best);
    let _isa = crate::kernels::use_isa(isa).with_context(|| format!("--isa {isa}"))?;
    let run_config = RunConfig::preset(&args.preset)?;
    let config = run_config.model.clone();
    let plain = args.device.device()?;
    let device = plain.clone().autodiff();

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let needs_behavior = config.behavior_as_channels || config.modulator.is_some();
    let needs_pupil = config.pupil_as_channels || config.shifter.is_some();
    let n_behaviors = if needs_behavior { 3 } else { 0 };
    // Whether the built model agrees (it decides what `forward` needs).
    let coords = Uniform::new(-500.0, 500.0).expect("valid range");
    let facts = DatasetFacts {
        in_shape: [1, h, w],
        n_behaviors,
        datasets: vec![DatasetReadoutFacts {
            data_key: "synthetic".into(),
            n_neurons: args.neurons,
            cell_motor_coordinates: Some(
                (0..args.neurons)
                    .map(|_| [coords.sample(&mut rng), coords.sample(&mut rng), 0.0])
                    .collect(),
            ),
            match_ids: None,
            mean_activity: Some(vec![1.0; args.neurons]),
            rf_centers_px: None,
        }],
    };
    let model = Encoder::init(&config, &facts, args.seed, &device)
        .with_context(|| format!("building preset `{}`", args.preset))?;
    let n_params = model.num_params();

    let normal = Normal::new(0.0f32, 1.0).expect("valid");
    let b = args.batch;
    let images: Vec<f32> = (0..b * h * w).map(|_| normal.sample(&mut rng)).collect();
    let poisson = Poisson::new(1.0f64).expect("valid");
    let targets: Vec<f32> = (0..b * args.neurons)
        .map(|_| poisson.sample(&mut rng) as f32)
        .collect();
    let behavior: Vec<f32> = (0..b * 3).map(|_| normal.sample(&mut rng).abs()).collect();
    let pupil: Vec<f32> = (0..b * 2).map(|_| normal.sample(&mut rng)).collect();
    let batch_on = |device: &Device| {
        (
            host_tensor(images.clone(), [b, 1, h, w], device),
            host_tensor(targets.clone(), [b, args.neurons], device),
            needs_behavior.then(|| host_tensor(behavior.clone(), [b, 3], device)),
            needs_pupil.then(|| host_tensor(pupil.clone(), [b, 2], device)),
        )
    };

    anyhow::ensure!(
        model.needs_behavior() == needs_behavior && model.needs_pupil_center() == needs_pupil,
        "preset `{}`: the synthetic batch does not match what the model needs",
        args.preset
    );

    // Training steps: the trainer's own step (forward with batch statistics and sampled
    // positions, √(M/B)-scaled Poisson loss + regularizers, backward, Adam with the preset's
    // `[trainer]` settings, clamping). M = B here: one synthetic batch is the whole "dataset".
    let trainer = &run_config.trainer;
    let mut optim = adam(trainer);
    let mut noise = SamplingRng::seed_from_u64(args.seed);
    let (x, y, beh, pupil_t) = batch_on(&device);
    let scale = loss_scale(b, b, trainer.scale_loss);
    let pool = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .with_context(|| format!("building a pool of {n} threads"))
    };
    let pools = match args.versus_threads {
        Some(n) => Some([pool(threads)?, pool(n)?]),
        None => None,
    };
    // Runs `f` on a worker of `pool`, with this thread's kernel and ISA choices (both are per
    // thread; the CPU already accepted `isa` above).
    let in_pool = |pool: &rayon::ThreadPool, f: &mut (dyn FnMut() -> Timing + Send)| {
        pool.install(|| {
            let _kernels = crate::kernels::use_kernels(kernels);
            let _isa = crate::kernels::use_isa(isa).ok();
            f()
        })
    };
    let mut train = Timings::default();
    let mut versus_train = Timings::default();
    let mut losses = Vec::new();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let mut model = Some(model);
    {
        let mut step = || {
            let start = Instant::now();
            let mut m = model.take().expect("put back after every step");
            let batch = BatchTensors {
                images: x.clone(),
                responses: y.clone(),
                behavior: beh.clone(),
                pupil_center: pupil_t.clone(),
            };
            let out = batch_objective(&mut m, 0, batch, scale, &mut noise);
            // Reading values back waits for all queued work (asynchronous backends).
            let loss = scalar(&out.objective);
            let forward = ms(start);
            let t = Instant::now();
            let grads = GradientsParams::from_grads(out.objective.backward(), &m);
            let backward = ms(t);
            let t = Instant::now();
            let m = optimizer_step(&mut optim, trainer.lr, m, grads);
            let _ = m.readout.regularizer(0).into_data();
            let adam = ms(t);
            model = Some(m);
            Timing {
                total: ms(start),
                parts: [forward, backward, adam],
                loss,
            }
        };
        for i in 0..args.warmup + args.steps {
            let (main, other) = alternate(i, &mut step, pools.as_ref(), &in_pool);
            losses.push(main.loss);
            if i >= args.warmup {
                train.push(main);
                if let Some(other) = other {
                    versus_train.push(other);
                }
            }
        }
    }

    // Evaluation batches: running statistics, mean positions, no autodiff.
    let eval_model = model.expect("put back after every step").valid();
    let (x, _, beh, pupil_t) = batch_on(&plain);
    let mut eval = Timings::default();
    let mut versus_eval = Timings::default();
    let mut step = || {
        let start = Instant::now();
        let pred = eval_model.forward_eval(x.clone(), 0, beh.clone(), pupil_t.clone());
        let _ = pred.into_data();
        Timing {
            total: ms(start),
            ..Timing::default()
        }
    };
    for i in 0..args.warmup + args.steps {
        let (main, other) = alternate(i, &mut step, pools.as_ref(), &in_pool);
        if i >= args.warmup {
            eval.push(main);
            if let Some(other) = other {
                versus_eval.push(other);
            }
        }
    }

    let report = serde_json::json!({
        "preset": args.preset,
        "device": format!("{:?}", args.device).to_lowercase(),
        "kernels": format!("{kernels:?}").to_lowercase(),
        "isa": isa.name(),
        "isa_supported": Isa::supported().iter().map(|i| i.name()).collect::<Vec<_>>(),
        "cpu": cpu_model(),
        "threads": threads,
        "batch": b,
        "neurons": args.neurons,
        "image": [1, h, w],
        "parameters": n_params,
        "warmup": args.warmup,
        "steps": args.steps,
        "train_step_ms_median": median(train.total.clone()),
        "train_step_ms_min": train.total.iter().cloned().fold(f64::INFINITY, f64::min),
        "train_forward_ms_median": median(train.parts[0].clone()),
        "train_backward_ms_median": median(train.parts[1].clone()),
        "train_adam_ms_median": median(train.parts[2].clone()),
        "eval_batch_ms_median": median(eval.total.clone()),
        "eval_batch_ms_min": eval.total.iter().cloned().fold(f64::INFINITY, f64::min),
        "loss_first": losses.first(),
        "loss_last": losses.last(),
    });
    let mut report = report;
    if let Some(n) = args.versus_threads {
        let extra = serde_json::json!({
            "versus_threads": n,
            "versus_train_step_ms_median": median(versus_train.total.clone()),
            "versus_eval_batch_ms_median": median(versus_eval.total.clone()),
            "speedup_train": median_ratio(&versus_train.total, &train.total),
            "speedup_eval": median_ratio(&versus_eval.total, &eval.total),
        });
        for (key, value) in extra.as_object().expect("an object") {
            report[key] = value.clone();
        }
    }
    println!("{report}");
    Ok(())
}
