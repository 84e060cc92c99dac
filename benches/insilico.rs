//! `cargo bench --bench insilico`: the speed targets of the in-silico experiments (issue #12,
//! item 7) on the lurz2020 model at the real data's size (1×36×64 images, a 5335-neuron
//! readout): MEIs for 100 neurons (target ≤ 60 s on 2 cores) and grating tuning for all 5335
//! neurons (target ≤ 5 min). The weights are the untrained initialisation (the cost does not
//! depend on them); the MEIs run a fixed number of steps (`--steps`, default 300 = the default
//! `max_steps`, the worst case of the stopping rule). Prints a table.
//! Options: `--threads N` (default 2), `--steps N`.

use std::time::Instant;

use burn::tensor::Device;
use cortexfit::insilico::{
    InputContext, MeiConfig, ModelEnsemble, TuningConfig, measure_tuning, most_exciting_inputs,
};
use cortexfit::model::{DatasetFacts, DatasetReadoutFacts, Encoder, ModelConfig};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let threads = arg("--threads", 2);
    let steps = arg("--steps", 300);
    cortexfit::backend::init_threads(Some(threads)).expect("thread pool");
    let n = 5335;
    let facts = DatasetFacts {
        in_shape: [1, 36, 64],
        n_behaviors: 0,
        datasets: vec![DatasetReadoutFacts {
            data_key: "bench".into(),
            n_neurons: n,
            cell_motor_coordinates: Some(
                (0..n)
                    .map(|i| [(i % 73) as f64 * 10.0, (i / 73) as f64 * 10.0, 250.0])
                    .collect(),
            ),
            match_ids: None,
            mean_activity: None,
            rf_centers_px: None,
        }],
    };
    let device = Device::flex();
    let model = Encoder::init(
        &ModelConfig::preset("lurz2020").unwrap(),
        &facts,
        1,
        &device,
    )
    .expect("lurz2020 model");
    let ensemble = ModelEnsemble::new(vec![model], &device).expect("ensemble");
    let context = InputContext {
        image_shape: [1, 36, 64],
        image_normalization: None,
        grey: 112.0,
        range: [0.0, 255.0],
        norm: 60.0 * 48.0,
        behavior: None,
        pupil_center: None,
        response_scale: None,
    };
    let neurons: Vec<usize> = (0..100).collect();
    let config = MeiConfig {
        max_steps: steps,
        // No early stop: every neuron runs all steps.
        patience: usize::MAX / 2,
        ..MeiConfig::default()
    };
    let t = Instant::now();
    let meis = most_exciting_inputs(&ensemble, 0, &context, &neurons, &[], &config).expect("MEIs");
    let mei_s = t.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..n).collect();
    let positions = ensemble.readout_centres_px(0).expect("positions");
    let tuning_config = TuningConfig::default();
    let stimuli =
        tuning_config.orientations * tuning_config.frequencies.len() * tuning_config.phases;
    let t = Instant::now();
    let tuning =
        measure_tuning(&ensemble, 0, &context, &all, &positions, &tuning_config).expect("tuning");
    let tuning_s = t.elapsed().as_secs_f64();
    println!("lurz2020, 1×36×64, {n}-neuron readout, {threads} threads (flex CPU backend)");
    println!("| experiment | work | seconds | target |");
    println!("|---|---|---|---|");
    println!(
        "| MEIs | 100 neurons × {} steps (one batch) | {mei_s:.1} | ≤ 60 |",
        meis.steps.iter().max().unwrap_or(&0)
    );
    println!(
        "| tuning | {} neurons × {stimuli} full-field gratings | {tuning_s:.1} | ≤ 300 |",
        tuning.neurons.len()
    );
}
