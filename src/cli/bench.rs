//! `cortexfit bench`: time training steps (forward + backward + Adam) and evaluation batches of a
//! preset on synthetic input, and print the figures as one JSON line.

use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson, Uniform};

use crate::backend::{DeviceKind, init_threads};
use crate::model::encoder::{DatasetFacts, DatasetReadoutFacts};
use crate::model::{Encoder, LossReduction, ModelConfig, poisson_loss};

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
    let config = ModelConfig::preset(&args.preset)?;
    let plain = args.device.device()?;
    let device = plain.clone().autodiff();
    // The Gaussian readout draws its training positions from the device's random generator.
    device.seed(args.seed);

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let needs_behavior = config.behavior_as_channels || config.modulator.is_some();
    let needs_pupil = config.pupil_as_channels || config.shifter.is_some();
    let n_behaviors = if needs_behavior { 3 } else { 0 };
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

    // Training steps: forward (batch statistics, sampled positions) + Poisson loss + regularizer,
    // backward, Adam (PyTorch's ε = 1e-8).
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let (x, y, beh, pupil_t) = batch_on(&device);
    let mut train_ms = Vec::with_capacity(args.steps);
    let (mut forward_ms, mut backward_ms, mut adam_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut losses = Vec::new();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    for step in 0..args.warmup + args.steps {
        let start = Instant::now();
        let pred = model.forward(x.clone(), 0, beh.clone(), pupil_t.clone(), true);
        let loss =
            poisson_loss(pred, y.clone(), 1e-12, LossReduction::Sum).add(model.regularizer(0));
        // Reading values back waits for all queued work (asynchronous backends).
        let loss_value: f64 = loss.to_data().iter::<f64>().next().unwrap_or(f64::NAN);
        let forward = ms(start);
        let t = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward = ms(t);
        let t = Instant::now();
        model = optim.step(0.005, model, grads).clamp_parameters();
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
