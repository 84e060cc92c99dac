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
    let mut model = Encoder::init(&config, &facts, args.seed, &device)
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
    let mut train_ms = Vec::with_capacity(args.steps);
    let (mut forward_ms, mut backward_ms, mut adam_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut losses = Vec::new();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    for step in 0..args.warmup + args.steps {
        let start = Instant::now();
        let batch = BatchTensors {
            images: x.clone(),
            responses: y.clone(),
            behavior: beh.clone(),
            pupil_center: pupil_t.clone(),
        };
        let out = batch_objective(&mut model, 0, batch, scale, &mut noise);
        // Reading values back waits for all queued work (asynchronous backends).
        let loss_value = scalar(&out.objective);
        let forward = ms(start);
        let t = Instant::now();
        let grads = GradientsParams::from_grads(out.objective.backward(), &model);
        let backward = ms(t);
        let t = Instant::now();
        model = optimizer_step(&mut optim, trainer.lr, model, grads);
        let _ = model.readout.regularizer(0).into_data();
        let adam = ms(t);
        if step >= args.warmup {
            train_ms.push(ms(start));
            forward_ms.push(forward);
            backward_ms.push(backward);
            adam_ms.push(adam);
        }
        losses.push(loss_value);
    }

    // Evaluation batches: running statistics, mean positions, no autodiff.
    let eval_model = model.valid();
    let (x, _, beh, pupil_t) = batch_on(&plain);
    let mut eval_ms = Vec::with_capacity(args.steps);
    for step in 0..args.warmup + args.steps {
        let start = Instant::now();
        let pred = eval_model.forward_eval(x.clone(), 0, beh.clone(), pupil_t.clone());
        let _ = pred.into_data();
        if step >= args.warmup {
            eval_ms.push(start.elapsed().as_secs_f64() * 1e3);
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
        "train_step_ms_median": median(train_ms.clone()),
        "train_step_ms_min": train_ms.iter().cloned().fold(f64::INFINITY, f64::min),
        "train_forward_ms_median": median(forward_ms),
        "train_backward_ms_median": median(backward_ms),
        "train_adam_ms_median": median(adam_ms),
        "eval_batch_ms_median": median(eval_ms.clone()),
        "eval_batch_ms_min": eval_ms.iter().cloned().fold(f64::INFINITY, f64::min),
        "loss_first": losses.first(),
        "loss_last": losses.last(),
    });
    println!("{report}");
    Ok(())
}
