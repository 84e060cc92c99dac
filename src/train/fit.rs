//! The fitting loop of the reference `standard_trainer` (REFERENCE.md §1.7, §4), one action at
//! a time and without any files: the caller (the run layer) decides what to write after each.
//!
//! Per epoch: training mode (BN batch statistics, readout positions sampled from the epoch's own
//! seeded stream), the LongCycler schedule with one Adam step per round of K batches, then the
//! validation objective in evaluation mode, fed to the early-stopping / LR state machine.
//! [`Fit::advance`] runs the next action of that state machine (train an epoch, restore the best
//! state, finish) and says what happened; [`Fit::state`] and the model / optimizer accessors give
//! everything a resumable checkpoint needs, and [`Fit::restore`] continues from one.

use std::time::{Duration, Instant};

use anyhow::Context;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::build::{build_model, first_batch_means};
use super::cycler::long_cycle;
use super::early_stopping::{Action, EarlyStopping, EarlyStoppingConfig, StopReason};
use super::evaluation::validation_objective;
use super::param_ids::{assign_param_ids, param_ids};
use super::record::EpochRecord;
use super::seeds::{Stream, rng};
use super::step::{adam, batch_objective, loss_scale, optimizer_step};
use crate::config::RunConfig;
use crate::data::PreparedDataset;
use crate::model::Encoder;
use crate::model::tensor_util::scalar;

/// Version of the resumable trainer state; bumped when its meaning changes.
pub const STATE_FORMAT: u32 = 1;

/// The trainer's resumable state (beside the model, best model and optimizer of a checkpoint).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: u32,
    /// Epochs completed.
    pub epoch: usize,
    pub early_stopping: EarlyStopping,
    /// Wall-clock seconds spent so far (over all processes of this fit).
    pub elapsed_seconds: f64,
    /// Parameter ids in visitation order (see `param_ids.rs`).
    pub param_ids: Vec<u64>,
    /// Data keys in readout order.
    pub data_keys: Vec<String>,
    /// Latest validation objective.
    pub last_val_corr: Option<f64>,
}

/// What [`Fit::advance`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// An epoch was trained and evaluated; `next_lr` is the learning rate from now on.
    Trained { record: EpochRecord, next_lr: f64 },
    /// A round of early stopping ended and the best state was restored.
    RestoredBest {
        finished_round: usize,
        best_epoch: usize,
        best_objective: f64,
    },
    /// Training is over; the model is the best state.
    Finished(StopReason),
    /// The observer asked to stop in the middle of an epoch: that epoch is lost, the fit must not
    /// be checkpointed again (the last checkpoint stays the newest consistent state).
    Interrupted { epoch: usize },
}

/// What an epoch is about to do (for progress displays).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStart {
    pub epoch: usize,
    pub max_epochs: usize,
    /// Batches in this epoch (over all datasets).
    pub batches: usize,
    pub lr: f64,
    /// Validation correlation after the previous epoch.
    pub last_val_corr: Option<f64>,
    /// Time left of `trainer.max_minutes`, if set.
    pub budget_left: Option<Duration>,
}

/// Whether the fit goes on after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Sees the inside of an epoch: progress bars, and the place to interrupt (Ctrl-C).
pub trait EpochObserver {
    /// An epoch starts.
    fn epoch_started(&mut self, _start: &EpochStart) {}
    /// A batch is done; `loss` is its Poisson loss per trial. [`Control::Stop`] abandons the epoch.
    fn batch_done(&mut self, _loss: f64) -> Control {
        Control::Continue
    }
    /// The epoch's training batches are done (validation follows).
    fn epoch_trained(&mut self) {}
}

/// An observer that sees nothing and never stops.
pub struct Unobserved;

impl EpochObserver for Unobserved {}

/// A fit in progress: the data, the model and its best state, Adam, the early stopper.
pub struct Fit {
    config: RunConfig,
    sets: Vec<PreparedDataset>,
    /// The autodiff device.
    device: Device,
    model: Encoder,
    best: Encoder,
    optimizer: ModuleOptimizer,
    early_stopping: EarlyStopping,
    elapsed_before: f64,
    started: Instant,
    last_val_corr: Option<f64>,
}

impl Fit {
    /// Builds the model of `config` for `sets` on `device` (autodiff is added), evaluates it and
    /// returns the fit with the record of epoch 0 (the untrained model).
    pub fn new(
        config: RunConfig,
        sets: Vec<PreparedDataset>,
        device: &Device,
    ) -> anyhow::Result<(Self, EpochRecord)> {
        config.validate()?;
        let device = device.clone().autodiff();
        let bias = config
            .trainer
            .init_bias_from_first_batch
            .then(|| first_batch_means(&config, &sets));
        let model = build_model(&config, &sets, bias, &device)?;
        let started = Instant::now();
        let initial = validation_objective(
            &model.valid(),
            &sets,
            config.trainer.batch_size,
            &device.clone().inner(),
        );
        let early_stopping =
            EarlyStopping::new(EarlyStoppingConfig::from(&config.trainer), initial);
        let eval_seconds = started.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch: 0,
            round: 0,
            lr: config.trainer.lr,
            train_loss: None,
            train_objective: None,
            val_corr: Some(initial),
            improved: false,
            lr_cut: false,
            train_seconds: 0.0,
            eval_seconds,
            elapsed_seconds: started.elapsed().as_secs_f64(),
        };
        let fit = Self {
            optimizer: adam(&config.trainer),
            best: model.clone(),
            model,
            config,
            sets,
            device,
            early_stopping,
            elapsed_before: 0.0,
            started,
            last_val_corr: Some(initial),
        };
        Ok((fit, record))
    }

    /// Continues a fit from a checkpoint: the model and best model as saved (loaded on the
    /// autodiff device of `device`), the optimizer record and the trainer state.
    pub fn restore(
        config: RunConfig,
        sets: Vec<PreparedDataset>,
        device: &Device,
        model: Encoder,
        best: Encoder,
        optimizer: Option<ModuleOptimizer>,
        state: TrainerState,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            state.format == STATE_FORMAT,
            "trainer state format {} (this cortexfit reads {STATE_FORMAT})",
            state.format
        );
        let keys: Vec<String> = sets.iter().map(|s| s.data_key().to_string()).collect();
        anyhow::ensure!(
            keys == state.data_keys,
            "the run was trained on data keys {:?} but its data paths now give {:?}",
            state.data_keys,
            keys
        );
        let model = assign_param_ids(model, &state.param_ids)?;
        let best = assign_param_ids(best, &state.param_ids)?;
        Ok(Self {
            optimizer: optimizer.unwrap_or_else(|| adam(&config.trainer)),
            config,
            sets,
            device: device.clone().autodiff(),
            model,
            best,
            early_stopping: state.early_stopping,
            elapsed_before: state.elapsed_seconds,
            started: Instant::now(),
            last_val_corr: state.last_val_corr,
        })
    }

    /// A fresh optimizer of this configuration (to load a saved record into).
    pub fn optimizer_for(config: &RunConfig) -> ModuleOptimizer {
        adam(&config.trainer)
    }

    /// Wall-clock seconds of this fit over all processes.
    pub fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    pub fn datasets(&self) -> &[PreparedDataset] {
        &self.sets
    }

    /// The current model (after the last completed epoch, or the best state once finished).
    pub fn model(&self) -> &Encoder {
        &self.model
    }

    /// The best state so far.
    pub fn best(&self) -> &Encoder {
        &self.best
    }

    pub fn optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    pub fn early_stopping(&self) -> &EarlyStopping {
        &self.early_stopping
    }

    /// The evaluation device (the autodiff device's inner device).
    pub fn eval_device(&self) -> Device {
        self.device.clone().inner()
    }

    /// The resumable state after the last completed epoch.
    pub fn state(&self) -> TrainerState {
        TrainerState {
            format: STATE_FORMAT,
            epoch: self.early_stopping.epoch(),
            early_stopping: self.early_stopping.clone(),
            elapsed_seconds: self.elapsed(),
            param_ids: param_ids(&self.model),
            data_keys: self.sets.iter().map(|s| s.data_key().to_string()).collect(),
            last_val_corr: self.last_val_corr,
        }
    }

    /// Runs the next action of the early-stopping state machine.
    pub fn advance(&mut self, observer: &mut dyn EpochObserver) -> anyhow::Result<Next> {
        match self.early_stopping.next_action() {
            Action::TrainEpoch { epoch, lr } => self.epoch(epoch, lr, observer),
            Action::RestoreBest { finished_round } => {
                self.model = self.best.clone();
                Ok(Next::RestoredBest {
                    finished_round,
                    best_epoch: self.early_stopping.best_epoch(),
                    best_objective: self.early_stopping.best_objective(),
                })
            }
            Action::Finish(reason) => {
                self.model = self.best.clone();
                Ok(Next::Finished(reason))
            }
        }
    }

    /// Trains one epoch, evaluates and updates the early stopper.
    fn epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        observer: &mut dyn EpochObserver,
    ) -> anyhow::Result<Next> {
        let trainer = self.config.trainer.clone();
        let t0 = Instant::now();
        // Every random stream of an epoch is derived from the run seed and the epoch, so a resumed
        // fit draws what the uninterrupted fit draws.
        let mut noise = rng(self.config.seed, Stream::Sampling, epoch);
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
        observer.epoch_started(&EpochStart {
            epoch,
            max_epochs: trainer.max_epochs,
            batches: schedule.len(),
            lr,
            last_val_corr: self.last_val_corr,
            budget_left: trainer
                .max_minutes
                .map(|m| Duration::from_secs_f64((m * 60.0 - self.elapsed()).max(0.0))),
        });
        let mut accumulator = GradientsAccumulator::<Encoder>::new();
        let (mut loss_sum, mut objective_sum, mut trials) = (0.0f64, 0.0f64, 0usize);
        for step in &schedule {
            let set = &self.sets[step.dataset];
            let trial_idx = &batches[step.dataset][step.batch];
            let b = trial_idx.len();
            let scale = loss_scale(set.n_trials(), b, trainer.scale_loss);
            let batch = set.batch_tensors(trial_idx, &self.device);
            let out = batch_objective(&mut self.model, step.dataset, batch, scale, &mut noise);
            let poisson_value = scalar(&out.poisson);
            let objective_value = scalar(&out.objective);
            anyhow::ensure!(
                objective_value.is_finite(),
                "the training objective became {objective_value} in epoch {epoch} (dataset {}); \
                 lower trainer.lr or check the data",
                set.data_key()
            );
            loss_sum += poisson_value;
            objective_sum += objective_value;
            trials += b;
            let grads = GradientsParams::from_grads(out.objective.backward(), &self.model);
            accumulator.accumulate(&self.model, grads);
            if step.optimizer_step {
                self.model = optimizer_step(
                    &mut self.optimizer,
                    lr,
                    self.model.clone(),
                    accumulator.grads(),
                );
            }
            if observer.batch_done(poisson_value / b as f64) == Control::Stop {
                return Ok(Next::Interrupted { epoch });
            }
        }
        // Gradients of batches after the last optimizer step are dropped (reference: zero_grad).
        drop(accumulator);
        observer.epoch_trained();
        let train_seconds = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let objective = validation_objective(
            &self.model.valid(),
            &self.sets,
            trainer.batch_size,
            &self.eval_device(),
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
        if let Some(minutes) = trainer.max_minutes
            && self.elapsed() >= minutes * 60.0
        {
            self.early_stopping.stop(StopReason::TimeBudget);
        }
        Ok(Next::Trained {
            record,
            next_lr: evaluation.lr,
        })
    }
}

/// A human-readable reason for the end of training.
pub fn stop_reason_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Converged => "early stopping: all LR-decay rounds ran out of patience",
        StopReason::MaxEpochs => "reached trainer.max_epochs",
        StopReason::NonFiniteObjective => "the validation objective was not finite",
        StopReason::TimeBudget => "the time budget (max_minutes) is spent",
    }
}

/// Reads a trainer state written by [`Fit::state`] (JSON).
pub fn read_state(text: &str) -> anyhow::Result<TrainerState> {
    serde_json::from_str(text).context("not a trainer state")
}
