//! Tests of the fitting loop on a small simulated recording: determinism when two fits share a
//! process, resuming from a fit's state, interruption, and what an epoch record holds.

use burn::tensor::Device;
use rand::SeedableRng;

use super::fit::{Control, EpochObserver, Fit, Next, TrainerState, Unobserved};
use crate::config::RunConfig;
use crate::data::PreparedDataset;
use crate::sim::{SimulationConfig, simulate};

/// A small simulated recording and a small lurz2020-like configuration on it.
fn small_fit_inputs(seed: u64) -> (tempfile::TempDir, RunConfig) {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimulationConfig {
        neurons: 12,
        train_images: 48,
        validation_images: 16,
        test_images: 4,
        repeats: 2,
        seed: 5,
        height: 24,
        width: 32,
        ..SimulationConfig::default()
    };
    let data = dir.path().join("sim");
    simulate(&sim, &data).unwrap();
    let overrides: Vec<String> = [
        format!("seed={seed}"),
        format!(
            "data.paths=[{}]",
            toml::Value::String(data.display().to_string())
        ),
        "data.exclude_images=false".into(),
        "model.core.layers=2".into(),
        "model.core.hidden_channels=4".into(),
        "model.core.input_kern=5".into(),
        "model.core.hidden_kern=3".into(),
        "model.readout.grid_mean_predictor=".into(),
        "trainer.batch_size=16".into(),
        "trainer.max_epochs=3".into(),
    ]
    .to_vec();
    let config = RunConfig::preset("lurz2020")
        .unwrap()
        .with_overrides("test", &overrides)
        .unwrap();
    (dir, config)
}

fn start(config: &RunConfig) -> Fit {
    let sets = PreparedDataset::load_all(&config.data.paths, &config.data).unwrap();
    Fit::new(config.clone(), sets, &Device::flex()).unwrap().0
}

/// The numbers of an epoch record (times excluded).
fn numbers(next: &Next) -> Option<Vec<f64>> {
    match next {
        Next::Trained { record, next_lr } => Some(vec![
            record.epoch as f64,
            record.lr,
            record.train_loss.unwrap(),
            record.train_objective.unwrap(),
            record.val_corr.unwrap(),
            *next_lr,
        ]),
        _ => None,
    }
}

/// Runs a fit to its end; returns the epoch numbers and the final weights.
fn run_alone(config: &RunConfig) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut fit = start(config);
    let mut epochs = Vec::new();
    loop {
        let next = fit.advance(&mut Unobserved).unwrap();
        if let Some(n) = numbers(&next) {
            epochs.push(n);
        }
        if matches!(next, Next::Finished(_)) {
            break;
        }
    }
    (epochs, weights(&fit))
}

/// Every weight and buffer of the fit's current model, in state-dict order.
fn weights(fit: &Fit) -> Vec<f64> {
    fit.model()
        .export_state()
        .entries
        .into_values()
        .flat_map(|t| t.data)
        .collect()
}

#[test]
fn two_fits_interleaved_in_one_process_match_each_fit_alone() {
    let (_a_dir, a_config) = small_fit_inputs(1);
    let (_b_dir, b_config) = small_fit_inputs(2);
    let (a_alone, a_weights) = run_alone(&a_config);
    let (b_alone, b_weights) = run_alone(&b_config);
    assert_eq!(a_alone.len(), 3, "three epochs");
    assert_ne!(a_alone, b_alone, "different seeds give different fits");

    let (mut a, mut b) = (start(&a_config), start(&b_config));
    let (mut a_epochs, mut b_epochs) = (Vec::new(), Vec::new());
    let (mut a_done, mut b_done) = (false, false);
    while !(a_done && b_done) {
        for (fit, epochs, done) in [
            (&mut a, &mut a_epochs, &mut a_done),
            (&mut b, &mut b_epochs, &mut b_done),
        ] {
            if *done {
                continue;
            }
            let next = fit.advance(&mut Unobserved).unwrap();
            if let Some(n) = numbers(&next) {
                epochs.push(n);
            }
            *done = matches!(next, Next::Finished(_));
        }
    }
    assert_eq!(a_epochs, a_alone, "fit A interleaved with B");
    assert_eq!(b_epochs, b_alone, "fit B interleaved with A");
    assert_eq!(weights(&a), a_weights);
    assert_eq!(weights(&b), b_weights);
}

#[test]
fn a_fit_restored_from_its_state_continues_as_the_uninterrupted_fit() {
    let (_dir, config) = small_fit_inputs(3);
    let (alone, alone_weights) = run_alone(&config);
    let mut fit = start(&config);
    let first = numbers(&fit.advance(&mut Unobserved).unwrap()).unwrap();
    assert_eq!(first, alone[0]);
    // What a checkpoint holds, through its serialized forms.
    let state: TrainerState =
        serde_json::from_str(&serde_json::to_string(&fit.state()).unwrap()).unwrap();
    let device = Device::flex().autodiff();
    let dir = tempfile::tempdir().unwrap();
    let reload = |m: &crate::model::Encoder, name: &str| {
        let path = dir.path().join(name);
        crate::model::checkpoint::save(m, &path).unwrap();
        crate::model::checkpoint::load(&path, &device).unwrap()
    };
    let (model, best) = (reload(fit.model(), "model"), reload(fit.best(), "best"));
    let record = dir.path().join("optimizer.bpk");
    fit.optimizer().save(record.clone()).unwrap();
    let optimizer = Fit::optimizer_for(&config).load(&record).unwrap();
    let sets = PreparedDataset::load_all(&config.data.paths, &config.data).unwrap();
    let mut restored = Fit::restore(
        config.clone(),
        sets,
        &Device::flex(),
        model,
        best,
        Some(optimizer),
        state,
    )
    .unwrap();
    let mut rest = vec![first];
    loop {
        let next = restored.advance(&mut Unobserved).unwrap();
        if let Some(n) = numbers(&next) {
            rest.push(n);
        }
        if matches!(next, Next::Finished(_)) {
            break;
        }
    }
    assert_eq!(rest, alone);
    assert_eq!(weights(&restored), alone_weights);
}

/// Stops after `after` batches.
struct StopAfter {
    after: usize,
    seen: usize,
}

impl EpochObserver for StopAfter {
    fn batch_done(&mut self, loss: f64) -> Control {
        assert!(
            loss.is_finite() && loss > 0.0,
            "per-trial Poisson loss {loss}"
        );
        self.seen += 1;
        if self.seen >= self.after {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[test]
fn an_observer_can_interrupt_an_epoch_and_sees_every_batch() {
    let (_dir, config) = small_fit_inputs(4);
    let mut fit = start(&config);
    let mut observer = StopAfter { after: 2, seen: 0 };
    let next = fit.advance(&mut observer).unwrap();
    assert_eq!(next, Next::Interrupted { epoch: 1 });
    assert_eq!(observer.seen, 2);
    // 48 training trials in batches of 16: three batches in an uninterrupted epoch.
    let mut count = StopAfter {
        after: usize::MAX,
        seen: 0,
    };
    let mut fresh = start(&config);
    assert!(matches!(
        fresh.advance(&mut count).unwrap(),
        Next::Trained { .. }
    ));
    assert_eq!(count.seen, 3);
}

#[test]
fn the_training_objective_scales_the_poisson_sum_by_sqrt_all_trials_over_the_actual_batch() {
    use super::step::{batch_objective, loss_scale};
    use crate::model::tensor_util::scalar;
    let (_dir, config) = small_fit_inputs(6);
    let fit = start(&config);
    let set = &fit.datasets()[0];
    let m = set.n_trials();
    assert_eq!(m, 48 + 16 + 4 * 2, "all tiers count, not only training");
    let device = Device::flex().autodiff();
    // 48 training trials in batches of 16 … and a short batch of 5.
    for b in [16usize, 5] {
        let trials: Vec<usize> = set.tier(crate::data::Tier::Train)[..b].to_vec();
        let scale = loss_scale(m, b, config.trainer.scale_loss);
        assert_eq!(scale, (m as f64 / b as f64).sqrt());
        let mut model = fit.model().clone();
        let regularizer = scalar(&model.regularizer(0));
        let mut noise = crate::model::SamplingRng::seed_from_u64(0);
        let out = batch_objective(
            &mut model,
            0,
            set.batch_tensors(&trials, &device),
            scale,
            &mut noise,
        );
        let (objective, poisson) = (scalar(&out.objective), scalar(&out.poisson));
        let want = scale * poisson + regularizer;
        assert!(
            (objective - want).abs() <= 1e-4 * want.abs(),
            "B = {b}: {objective} vs √(M/B)·Σ Poisson + reg = {want}"
        );
        // An independent Poisson sum from the same noise draws: Σ ŷ − y·log(ŷ + ε).
        let mut noise = crate::model::SamplingRng::seed_from_u64(0);
        let batch = set.batch_tensors(&trials, &device);
        let y = batch
            .responses
            .clone()
            .into_data()
            .iter::<f64>()
            .collect::<Vec<_>>();
        let yhat = model
            .clone()
            .forward(
                batch.images,
                0,
                batch.behavior,
                batch.pupil_center,
                Some(&mut noise),
            )
            .into_data()
            .iter::<f64>()
            .collect::<Vec<_>>();
        assert_eq!(yhat.len(), y.len());
        let independent: f64 = yhat
            .iter()
            .zip(&y)
            .map(|(p, r)| p - r * (p + super::step::POISSON_EPS).ln())
            .sum();
        assert!(
            (independent - poisson).abs() <= 1e-4 * poisson.abs(),
            "B = {b}: Σ Poisson {poisson} vs independent {independent}"
        );
    }
    let mut unscaled = config.trainer.clone();
    unscaled.scale_loss = false;
    assert_eq!(loss_scale(m, 5, unscaled.scale_loss), 1.0);
}
