//! The training loop of the reference `standard_trainer` (REFERENCE.md §1.7, §4).
//!
//! Per batch: objective = √(M/B)·Σ Poisson(ŷ, y) + regularizers (M = trials of all tiers of that
//! dataset). Per epoch: training mode (BN batch statistics, sampled readout positions), the
//! LongCycler schedule with one Adam step per round of K batches, then the validation objective in
//! evaluation mode, fed to the early-stopping / LR state machine. Every epoch ends with a complete
//! resumable checkpoint.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::cycler::long_cycle;
use super::datasets::{PreparedSet, load_all};
use super::early_stopping::{Action, EarlyStopping, StopReason};
use super::evaluation::validation_objective;
use super::param_ids::{assign_param_ids, param_ids};
use super::progress::{EpochLog, EpochRecord, Progress};
use super::run_dir::{RunDir, link_or_copy};
use super::seeds::{Stream, derive, rng};
use super::summary::{Summary, summarize};
use crate::config::RunConfig;
use crate::model::loss::{LossReduction, poisson_loss};
use crate::model::readout::ReadoutInput;
use crate::model::{DatasetFacts, Encoder};

/// Version of the resumable trainer state; bumped when its meaning changes.
const STATE_FORMAT: u32 = 1;

/// ε inside the Poisson loss's logarithm (neuralpredictors v0.0.1, used by Lurz 2020).
const POISSON_EPS: f64 = 1e-12;

/// How a run is executed (not part of its configuration: it does not change the numbers).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where tensors live (`Device::flex()` or CUDA); the trainer adds autodiff.
    pub device: Device,
    /// No progress bar or per-epoch lines on the terminal.
    pub quiet: bool,
    /// Stop (as if the early stopper had) after this many epochs of *this process*; used by tests
    /// to simulate a killed run. `None` in normal use.
    pub stop_after_epochs: Option<usize>,
}

/// The trainer's resumable state (`trainer.json` in a checkpoint folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    format: u32,
    /// Epochs completed.
    epoch: usize,
    early_stopping: EarlyStopping,
    /// Wall-clock seconds spent so far (over all processes of this run).
    elapsed_seconds: f64,
    /// Parameter ids in visitation order (see `param_ids.rs`).
    param_ids: Vec<u64>,
    /// Data keys in readout order.
    data_keys: Vec<String>,
    /// Latest validation objective.
    last_val_corr: Option<f64>,
}

/// Everything alive during training.
struct Session {
    config: RunConfig,
    run: RunDir,
    sets: Vec<PreparedSet>,
    device: Device,
    model: Encoder,
    best: Encoder,
    optimizer: ModuleOptimizer,
    early_stopping: EarlyStopping,
    elapsed_before: f64,
    started: Instant,
    log: EpochLog,
    progress: Progress,
    last_val_corr: Option<f64>,
}

/// The facts about each dataset the model needs to build its readouts.
pub fn readout_inputs(sets: &[PreparedSet], bias: Option<Vec<Vec<f32>>>) -> Vec<ReadoutInput> {
    sets.iter()
        .enumerate()
        .map(|(k, set)| ReadoutInput {
            data_key: set.data_key().to_string(),
            n_neurons: set.n_neurons(),
            cell_motor_coordinates: set.dataset.neurons.cell_motor_coordinates.clone(),
            match_ids: set.dataset.neurons.multi_match_id.clone(),
            mean_activity: bias.as_ref().map(|b| b[k].clone()),
        })
        .collect()
}

/// Builds the model of `config` for `sets` on `device` (seeded); with `bias` the readout biases
/// start at these per-neuron values.
pub fn build_model(
    config: &RunConfig,
    sets: &[PreparedSet],
    bias: Option<Vec<Vec<f32>>>,
    device: &Device,
) -> anyhow::Result<Encoder> {
    let in_shape = sets[0].dataset.image_shape;
    for set in sets {
        anyhow::ensure!(
            set.dataset.image_shape == in_shape,
            "dataset {} has images of shape {:?} but {} has {:?}; one core needs one image size",
            set.data_key(),
            set.dataset.image_shape,
            sets[0].data_key(),
            in_shape
        );
    }
    let needs_pupil = config.model.shifter.is_some() || config.model.pupil_as_channels;
    for set in sets {
        anyhow::ensure!(
            !needs_pupil || set.has_pupil_center(),
            "model.{} needs the pupil position, but dataset {} has none",
            if config.model.shifter.is_some() {
                "shifter"
            } else {
                "pupil_as_channels"
            },
            set.data_key()
        );
    }
    // Behaviour variables: only when every dataset has them (the model checks what needs them).
    let n_behaviors = sets.iter().map(PreparedSet::n_behaviors).min().unwrap_or(0);
    let inputs = readout_inputs(sets, bias);
    let facts = DatasetFacts::new(in_shape, n_behaviors, &inputs);
    let seed = derive(config.seed, Stream::ModelInit, 0);
    let mut model =
        Encoder::init(&config.model, &facts, seed, device).context("building the model")?;
    if let Some(init) = &config.transfer {
        model = super::transfer::apply_init(model, init)?;
    }
    Ok(model)
}

/// The per-neuron mean response of each dataset's first training batch (Lurz 2020 bias init).
fn first_batch_means(config: &RunConfig, sets: &[PreparedSet]) -> Vec<Vec<f32>> {
    let mut rng = rng(config.seed, Stream::BiasBatch, 0);
    sets.iter()
        .map(|set| {
            let batches = set.train_batches(config.trainer.batch_size, &mut rng);
            match batches.first() {
                Some(first) => set.mean_response(first),
                None => vec![0.0; set.n_neurons()],
            }
        })
        .collect()
}

/// Saves a model (weights, BN statistics, model config, dataset facts) atomically.
pub fn save_model(model: &Encoder, path: &Path) -> anyhow::Result<()> {
    crate::model::checkpoint::save(model, path)
}

/// Loads a model saved by [`save_model`] onto `device`.
pub fn load_model(path: &Path, device: &Device) -> anyhow::Result<Encoder> {
    crate::model::checkpoint::load(path, device)
        .with_context(|| format!("reading the model checkpoint {}", path.display()))
}

fn adam(config: &RunConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_epsilon(config.trainer.adam_epsilon as f32)
        .init()
}

/// Trains a new run in `run_dir` (created; must not hold a run) and returns its summary.
pub fn train(config: RunConfig, run_dir: &Path, options: &TrainOptions) -> anyhow::Result<Summary> {
    config.validate()?;
    RunDir::check_fresh(run_dir)?;
    // Load the data and build the model before creating the run directory, so that a bad path
    // or a model that does not fit the data leaves nothing behind.
    let sets = load_all(&config.data.paths, &config.data)?;
    let device = options.device.clone().autodiff();
    let bias = config
        .trainer
        .init_bias_from_first_batch
        .then(|| first_batch_means(&config, &sets));
    let model = build_model(&config, &sets, bias, &device)?;
    let model = super::rf_mapping::init_positions_from_data(model, &sets, &device, &options.device);
    let run = RunDir::create(run_dir)?;
    crate::io::atomic_write(
        &run.config(),
        config
            .to_commented_toml(&format!(
                "Resolved configuration of the cortexfit run in {} (cortexfit {}).",
                run_dir.display(),
                env!("CARGO_PKG_VERSION")
            ))
            .as_bytes(),
    )?;
    super::trained_run::write_neurons(&run, &sets)?;
    let progress = Progress::new(options.quiet);
    progress.line(&format!(
        "training on {} ({} neurons) in {}",
        sets.iter()
            .map(|s| s.data_key().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        sets.iter().map(PreparedSet::n_neurons).sum::<usize>(),
        run_dir.display()
    ));
    let started = Instant::now();
    let eval_start = Instant::now();
    let initial = validation_objective(
        &model.valid(),
        &sets,
        config.trainer.batch_size,
        &device.clone().inner(),
    );
    let log = EpochLog::new(&run.log());
    log.truncate_after(0)?;
    let early_stopping = EarlyStopping::new(config.trainer.early_stopping(), initial);
    log.append(&EpochRecord {
        epoch: 0,
        round: 0,
        lr: config.trainer.lr,
        train_loss: None,
        train_objective: None,
        val_corr: Some(initial),
        improved: false,
        lr_cut: false,
        train_seconds: 0.0,
        eval_seconds: eval_start.elapsed().as_secs_f64(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })?;
    progress.line(&format!("epoch 0: validation correlation {initial:.4}"));
    let mut session = Session {
        optimizer: adam(&config),
        best: model.clone(),
        model,
        config,
        run,
        sets,
        device,
        early_stopping,
        elapsed_before: 0.0,
        started,
        log,
        progress,
        last_val_corr: Some(initial),
    };
    save_model(&session.best, &session.run.best_model())?;
    session.checkpoint(true)?;
    session.run_loop(options)
}

/// Continues a run from its last completed epoch; ends with the numbers an uninterrupted run
/// would have produced.
pub fn resume(run_dir: &Path, options: &TrainOptions) -> anyhow::Result<Summary> {
    let run = RunDir::new(run_dir);
    anyhow::ensure!(
        run.config().exists(),
        "{} is not a cortexfit run (no config.toml)",
        run_dir.display()
    );
    let config = RunConfig::from_file(&run.config(), &[])?;
    let Some((folder, epoch)) = run.current_checkpoint()? else {
        anyhow::bail!(
            "{} has no completed checkpoint yet (killed before the first evaluation); remove it \
             and start again with `cortexfit train`",
            run_dir.display()
        );
    };
    let state_path = folder.join("trainer.json");
    let state: TrainerState = serde_json::from_str(
        &std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?,
    )
    .with_context(|| format!("{}: not a trainer state", state_path.display()))?;
    anyhow::ensure!(
        state.format == STATE_FORMAT,
        "{}: trainer state format {} (this cortexfit reads {STATE_FORMAT})",
        state_path.display(),
        state.format
    );
    let sets = load_all(&config.data.paths, &config.data)?;
    let keys: Vec<String> = sets.iter().map(|s| s.data_key().to_string()).collect();
    anyhow::ensure!(
        keys == state.data_keys,
        "the run was trained on data keys {:?} but its data paths now give {:?}",
        state.data_keys,
        keys
    );
    let device = options.device.clone().autodiff();
    let model = load_model(&folder.join("model.safetensors"), &device)?;
    let best = load_model(&folder.join("best.safetensors"), &device)?;
    let model = assign_param_ids(model, &state.param_ids)?;
    let best = assign_param_ids(best, &state.param_ids)?;
    let optimizer_path = folder.join("optimizer.bpk");
    let optimizer = if optimizer_path.exists() {
        adam(&config).load(&optimizer_path).map_err(|e| {
            anyhow::anyhow!(
                "reading the optimizer state {}: {e:?}",
                optimizer_path.display()
            )
        })?
    } else {
        adam(&config)
    };
    let log = EpochLog::new(&run.log());
    log.truncate_after(epoch)?;
    let progress = Progress::new(options.quiet);
    progress.line(&format!(
        "resuming {} after epoch {epoch} ({:.1} min trained)",
        run_dir.display(),
        state.elapsed_seconds / 60.0
    ));
    let mut session = Session {
        config,
        run,
        sets,
        device,
        model,
        best,
        optimizer,
        early_stopping: state.early_stopping,
        elapsed_before: state.elapsed_seconds,
        started: Instant::now(),
        log,
        progress,
        last_val_corr: state.last_val_corr,
    };
    session.run_loop(options)
}

impl Session {
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    fn run_loop(&mut self, options: &TrainOptions) -> anyhow::Result<Summary> {
        let mut epochs_here = 0;
        let reason = loop {
            match self.early_stopping.next_action() {
                Action::TrainEpoch { epoch, lr } => {
                    if options.stop_after_epochs.is_some_and(|n| epochs_here >= n) {
                        anyhow::bail!(
                            "stopped after {epochs_here} epoch(s) as requested (simulated kill)"
                        );
                    }
                    self.epoch(epoch, lr)?;
                    epochs_here += 1;
                }
                Action::RestoreBest { finished_round } => {
                    self.model = self.best.clone();
                    self.progress.line(&format!(
                        "round {} ended: restored the best state (epoch {}, validation correlation {:.4})",
                        finished_round + 1,
                        self.early_stopping.best_epoch(),
                        self.early_stopping.best_objective()
                    ));
                }
                Action::Finish(reason) => break reason,
            }
        };
        self.model = self.best.clone();
        self.progress.line(&format!(
            "stopped ({}); best epoch {} with validation correlation {:.4}",
            reason_text(reason),
            self.early_stopping.best_epoch(),
            self.early_stopping.best_objective()
        ));
        let eval_model = self.model.valid();
        let summary = summarize(
            &eval_model,
            &self.sets,
            &self.config,
            &self.early_stopping,
            reason,
            self.elapsed(),
            &self.device.clone().inner(),
        );
        crate::io::atomic_write(
            &self.run.summary(),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        Ok(summary)
    }

    /// Trains one epoch, evaluates, updates the early stopper, logs and checkpoints.
    fn epoch(&mut self, epoch: usize, lr: f64) -> anyhow::Result<()> {
        let trainer = &self.config.trainer;
        let t0 = Instant::now();
        // Readout positions are sampled from burn's generator: seed it per epoch so that a resumed
        // run samples what the uninterrupted run samples.
        self.device
            .seed(derive(self.config.seed, Stream::Sampling, epoch));
        let mut shuffle = rng(self.config.seed, Stream::Shuffle, epoch);
        let batches: Vec<Vec<Vec<usize>>> = self
            .sets
            .iter()
            .map(|s| s.train_batches(trainer.batch_size, &mut shuffle))
            .collect();
        let schedule = long_cycle(
            &batches.iter().map(Vec::len).collect::<Vec<_>>(),
            trainer.loss_accum_batch_n,
        );
        let budget_left = trainer
            .max_minutes
            .map(|m| Duration::from_secs_f64((m * 60.0 - self.elapsed()).max(0.0)));
        self.progress.start_epoch(
            epoch,
            trainer.max_epochs,
            schedule.len(),
            lr,
            self.last_val_corr,
            budget_left,
        );
        let mut accumulator = GradientsAccumulator::<Encoder>::new();
        let (mut loss_sum, mut objective_sum, mut trials) = (0.0f64, 0.0f64, 0usize);
        for step in &schedule {
            let set = &self.sets[step.dataset];
            let trial_idx = &batches[step.dataset][step.batch];
            let batch = set.batch(trial_idx, &self.device);
            let b = trial_idx.len();
            let prediction = self.model.forward(
                batch.images,
                step.dataset,
                batch.behavior,
                batch.pupil_center,
                true,
            );
            let poisson =
                poisson_loss(prediction, batch.responses, POISSON_EPS, LossReduction::Sum);
            let scale = if trainer.scale_loss {
                (set.n_trials() as f64 / b as f64).sqrt()
            } else {
                1.0
            };
            let objective: Tensor<1> =
                poisson.clone().mul_scalar(scale) + self.model.regularizer(step.dataset);
            let poisson_value = scalar(&poisson);
            let objective_value = scalar(&objective);
            anyhow::ensure!(
                objective_value.is_finite(),
                "the training objective became {objective_value} in epoch {epoch} (dataset {}); \
                 lower trainer.lr or check the data",
                set.data_key()
            );
            loss_sum += poisson_value;
            objective_sum += objective_value;
            trials += b;
            let grads = GradientsParams::from_grads(objective.backward(), &self.model);
            accumulator.accumulate(&self.model, grads);
            if step.optimizer_step {
                let mut model = self
                    .optimizer
                    .step(lr, self.model.clone(), accumulator.grads());
                // The reference clamps μ (and point-pooled grids, factorized positivity) in place.
                model.readout = model.readout.clamp_parameters();
                self.model = model;
            }
            self.progress.batch(poisson_value / b as f64);
        }
        // Gradients of batches after the last optimizer step are dropped (reference: zero_grad).
        drop(accumulator);
        self.progress.finish_epoch();
        let train_seconds = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let objective = validation_objective(
            &self.model.valid(),
            &self.sets,
            trainer.batch_size,
            &self.device.clone().inner(),
        );
        let eval_seconds = t1.elapsed().as_secs_f64();
        let round = self.early_stopping.round();
        let evaluation = self.early_stopping.record(objective);
        self.last_val_corr = Some(objective);
        if evaluation.improved {
            self.best = self.model.clone();
        }
        let record = EpochRecord {
            epoch,
            round,
            lr,
            train_loss: Some(loss_sum / trials.max(1) as f64),
            train_objective: Some(objective_sum / schedule.len().max(1) as f64),
            val_corr: Some(objective),
            improved: evaluation.improved,
            lr_cut: evaluation.lr_cut,
            train_seconds,
            eval_seconds,
            elapsed_seconds: self.elapsed(),
        };
        self.log.append(&record)?;
        self.progress.line(&format!(
            "epoch {epoch:3}  lr {lr:.2e}  train loss {:.4}  val corr {objective:.4}{}{}  ({train_seconds:.1} s + {eval_seconds:.1} s)",
            record.train_loss.unwrap_or(f64::NAN),
            if evaluation.improved { "  *best*" } else { "" },
            if evaluation.lr_cut {
                format!("  lr → {:.2e}", evaluation.lr)
            } else {
                String::new()
            },
        ));
        if let Some(minutes) = trainer.max_minutes
            && self.elapsed() >= minutes * 60.0
        {
            self.early_stopping.stop(StopReason::TimeBudget);
        }
        self.checkpoint(evaluation.improved)
    }

    /// Writes the resumable checkpoint of the current state and the user-facing model files.
    fn checkpoint(&mut self, best_changed: bool) -> anyhow::Result<()> {
        let epoch = self.early_stopping.epoch();
        let previous = self.run.current_checkpoint()?;
        let folder = self.run.begin_checkpoint(epoch)?;
        save_model(&self.model, &folder.join("model.safetensors"))?;
        match previous {
            Some((prev, _)) if !best_changed && prev.join("best.safetensors").exists() => {
                link_or_copy(
                    &prev.join("best.safetensors"),
                    &folder.join("best.safetensors"),
                )?
            }
            _ => save_model(&self.best, &folder.join("best.safetensors"))?,
        }
        self.optimizer
            .save(folder.join("optimizer.bpk"))
            .map_err(|e| anyhow::anyhow!("writing the optimizer state: {e:?}"))?;
        let state = TrainerState {
            format: STATE_FORMAT,
            epoch,
            early_stopping: self.early_stopping.clone(),
            elapsed_seconds: self.elapsed(),
            param_ids: param_ids(&self.model),
            data_keys: self.sets.iter().map(|s| s.data_key().to_string()).collect(),
            last_val_corr: self.last_val_corr,
        };
        crate::io::atomic_write(
            &folder.join("trainer.json"),
            serde_json::to_string_pretty(&state)?.as_bytes(),
        )?;
        self.run.commit(&folder, epoch)?;
        if best_changed {
            save_model(&self.best, &self.run.best_model())?;
        }
        save_model(&self.model, &self.run.last_model())?;
        Ok(())
    }
}

fn scalar(t: &Tensor<1>) -> f64 {
    t.to_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

fn reason_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Converged => "early stopping: all LR-decay rounds ran out of patience",
        StopReason::MaxEpochs => "reached trainer.max_epochs",
        StopReason::NonFiniteObjective => "the validation objective was not finite",
        StopReason::TimeBudget => "the time budget (max_minutes) is spent",
    }
}
