//! Early stopping with learning-rate decay and best-state restore, as a pure state machine.
//!
//! This reproduces neuralpredictors' `early_stopping` generator driven together with a
//! PyTorch `ReduceLROnPlateau(mode="max", threshold_mode="abs")` that shares its patience and
//! tolerance (REFERENCE.md §1.7, §4.3):
//!
//! - the objective (mean validation correlation) is evaluated once before training;
//! - `lr_decay_steps` rounds: each round trains epoch after epoch until `patience` consecutive
//!   evaluations fail to beat the best by more than `tolerance` (or `max_epochs` is reached);
//! - between rounds the best state is restored (weights and batch-norm statistics; the Adam
//!   moments are kept), and after the last round it is restored once more;
//! - the plateau scheduler keeps its *own* best (starting at −∞) and bad-epoch count, which is
//!   never reset by a restore, and cuts the LR only when that count *exceeds* the patience. With
//!   equal patience this cut therefore lands on the first evaluation after a restore, one epoch
//!   later than one would naively expect — the "off-by-one" the reference has and we keep, so that
//!   reference hyper-parameters mean the same thing here;
//! - a non-finite objective stops training (best state restored).
//!
//! The machine owns no tensors: the trainer asks [`EarlyStopping::next_action`] what to do,
//! trains or restores accordingly and reports each evaluation with [`EarlyStopping::record`].
//! Its whole state is serde, so it goes into the resumable checkpoint.

use serde::{Deserialize, Serialize};

/// The settings of early stopping and of the plateau LR schedule (a subset of the trainer config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingConfig {
    /// Learning rate of the first round.
    pub lr: f64,
    /// Evaluations without improvement before a round ends (and the scheduler's patience).
    pub patience: usize,
    /// Absolute improvement the objective must exceed to count as better.
    pub tolerance: f64,
    /// Hard limit on the number of training epochs over all rounds.
    pub max_epochs: usize,
    /// Number of early-stopping rounds; the best state is restored between rounds.
    pub lr_decay_steps: usize,
    /// Factor applied to the LR by the plateau scheduler.
    pub lr_decay_factor: f64,
    /// The LR is never cut below this value.
    pub min_lr: f64,
}

impl From<&crate::config::TrainerConfig> for EarlyStoppingConfig {
    /// The early-stopping / LR settings of a `[trainer]` section.
    fn from(t: &crate::config::TrainerConfig) -> Self {
        Self {
            lr: t.lr,
            patience: t.patience,
            tolerance: t.tolerance,
            max_epochs: t.max_epochs,
            lr_decay_steps: t.lr_decay_steps,
            lr_decay_factor: t.lr_decay_factor,
            min_lr: t.min_lr,
        }
    }
}

/// What the trainer must do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Train epoch number `epoch` (1-based) with learning rate `lr`, then evaluate and call
    /// [`EarlyStopping::record`].
    TrainEpoch { epoch: usize, lr: f64 },
    /// A round has ended: load the best state (weights and BN statistics, not the optimizer
    /// state), then ask again.
    RestoreBest { finished_round: usize },
    /// Training is over: load the best state and stop.
    Finish(StopReason),
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All `lr_decay_steps` rounds ran out of patience.
    Converged,
    /// `max_epochs` epochs were trained.
    MaxEpochs,
    /// The objective became NaN or infinite.
    NonFiniteObjective,
    /// The wall-clock budget (`max_minutes`) was spent.
    TimeBudget,
}

/// What one evaluation changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// The objective beat the best by more than the tolerance: save the current state as best.
    pub improved: bool,
    /// The learning rate for the next epoch.
    pub lr: f64,
    /// The plateau scheduler cut the learning rate on this evaluation.
    pub lr_cut: bool,
}

/// PyTorch's `ReduceLROnPlateau` in mode "max" with an absolute threshold and no cooldown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PlateauScheduler {
    /// Best objective the scheduler has seen (starts at −∞; `None` encodes −∞ in JSON).
    best: Option<f64>,
    /// Consecutive evaluations that were not better than `best + threshold`.
    bad_epochs: usize,
    lr: f64,
}

impl PlateauScheduler {
    /// PyTorch skips LR changes smaller than this.
    const EPS: f64 = 1e-8;

    fn step(&mut self, objective: f64, config: &EarlyStoppingConfig) -> bool {
        let better = match self.best {
            None => objective > f64::NEG_INFINITY,
            Some(best) => objective > best + config.tolerance,
        };
        if better {
            self.best = Some(objective);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.bad_epochs > config.patience {
            self.bad_epochs = 0;
            let new_lr = (self.lr * config.lr_decay_factor).max(config.min_lr);
            if self.lr - new_lr > Self::EPS {
                self.lr = new_lr;
                return true;
            }
        }
        false
    }
}

/// The early-stopping / LR-decay state machine. See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    /// Epochs trained so far.
    epoch: usize,
    /// Current round (0-based).
    round: usize,
    /// Evaluations without improvement in the current round.
    patience_counter: usize,
    /// Best objective so far (the initial evaluation counts).
    #[serde(with = "nan_as_null")]
    best_objective: f64,
    /// Epoch whose state is the best state (0 = the initial model).
    best_epoch: usize,
    /// Most recent objective.
    #[serde(with = "nan_as_null")]
    current_objective: f64,
    scheduler: PlateauScheduler,
    /// Set once `Finish` has been returned.
    stopped: Option<StopReason>,
    /// A `TrainEpoch` was handed out and not yet recorded.
    awaiting_evaluation: bool,
}

impl EarlyStopping {
    /// Starts the machine with the objective of the untrained model (which is the first best state).
    pub fn new(config: EarlyStoppingConfig, initial_objective: f64) -> Self {
        let lr = config.lr;
        Self {
            config,
            epoch: 0,
            round: 0,
            patience_counter: 0,
            best_objective: initial_objective,
            best_epoch: 0,
            current_objective: initial_objective,
            scheduler: PlateauScheduler {
                best: None,
                bad_epochs: 0,
                lr,
            },
            stopped: None,
            awaiting_evaluation: false,
        }
    }

    /// The next thing to do. Calling it again without [`record`](Self::record) after a
    /// `TrainEpoch` returns the same epoch (useful after a crash between the two).
    pub fn next_action(&mut self) -> Action {
        if let Some(reason) = self.stopped {
            return Action::Finish(reason);
        }
        if self.awaiting_evaluation {
            return Action::TrainEpoch {
                epoch: self.epoch,
                lr: self.scheduler.lr,
            };
        }
        if self.patience_counter < self.config.patience && self.epoch < self.config.max_epochs {
            if !self.current_objective.is_finite() {
                return self.finish(StopReason::NonFiniteObjective);
            }
            self.epoch += 1;
            self.awaiting_evaluation = true;
            return Action::TrainEpoch {
                epoch: self.epoch,
                lr: self.scheduler.lr,
            };
        }
        // The round has ended (patience exhausted or epoch budget spent).
        let finished_round = self.round;
        self.round += 1;
        self.patience_counter = 0;
        if self.epoch >= self.config.max_epochs {
            return self.finish(StopReason::MaxEpochs);
        }
        if self.round >= self.config.lr_decay_steps {
            return self.finish(StopReason::Converged);
        }
        Action::RestoreBest { finished_round }
    }

    /// Reports the objective evaluated after the epoch handed out by the last `TrainEpoch`.
    pub fn record(&mut self, objective: f64) -> Evaluation {
        debug_assert!(self.awaiting_evaluation, "record() without a TrainEpoch");
        self.awaiting_evaluation = false;
        self.current_objective = objective;
        let lr_cut = self.scheduler.step(objective, &self.config);
        let improved = objective > self.best_objective + self.config.tolerance;
        if improved {
            self.best_objective = objective;
            self.best_epoch = self.epoch;
            self.patience_counter = 0;
        } else {
            self.patience_counter += 1;
        }
        Evaluation {
            improved,
            lr: self.scheduler.lr,
            lr_cut,
        }
    }

    /// Stops from outside (e.g. the time budget); the next action is `Finish(reason)`.
    pub fn stop(&mut self, reason: StopReason) {
        self.awaiting_evaluation = false;
        self.stopped.get_or_insert(reason);
    }

    fn finish(&mut self, reason: StopReason) -> Action {
        self.stopped = Some(reason);
        Action::Finish(reason)
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }
    /// Current round (0-based).
    pub fn round(&self) -> usize {
        self.round
    }
    /// The learning rate the next epoch uses.
    pub fn lr(&self) -> f64 {
        self.scheduler.lr
    }
    /// The best objective so far.
    pub fn best_objective(&self) -> f64 {
        self.best_objective
    }
    /// The epoch of the best state (0 = before training).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }
    /// The reason training stopped, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stopped
    }
    /// The configuration the machine runs with.
    pub fn config(&self) -> &EarlyStoppingConfig {
        &self.config
    }
}

/// JSON has no NaN: a non-finite objective is stored as `null` and read back as NaN.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            s.serialize_some(value)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lurz() -> EarlyStoppingConfig {
        EarlyStoppingConfig {
            lr: 0.005,
            patience: 5,
            tolerance: 1e-6,
            max_epochs: 200,
            lr_decay_steps: 3,
            lr_decay_factor: 0.3,
            min_lr: 1e-4,
        }
    }

    /// One line of the replay: what happened at each step.
    #[derive(Debug, PartialEq)]
    enum Event {
        Train { epoch: usize, lr: f64 },
        Improved(usize),
        Cut { epoch: usize, lr: f64 },
        Restore,
        Finish(StopReason),
    }

    /// Drives the machine with a scripted objective per epoch (the last value repeats).
    fn replay(config: EarlyStoppingConfig, initial: f64, objectives: &[f64]) -> Vec<Event> {
        let mut es = EarlyStopping::new(config, initial);
        let mut events = Vec::new();
        loop {
            match es.next_action() {
                Action::TrainEpoch { epoch, lr } => {
                    events.push(Event::Train { epoch, lr });
                    let obj = objectives[(epoch - 1).min(objectives.len() - 1)];
                    let ev = es.record(obj);
                    if ev.improved {
                        events.push(Event::Improved(epoch));
                    }
                    if ev.lr_cut {
                        events.push(Event::Cut { epoch, lr: ev.lr });
                    }
                }
                Action::RestoreBest { .. } => events.push(Event::Restore),
                Action::Finish(reason) => {
                    events.push(Event::Finish(reason));
                    return events;
                }
            }
            assert!(events.len() < 10_000, "machine does not terminate");
        }
    }

    fn lr_of(events: &[Event], epoch: usize) -> f64 {
        events
            .iter()
            .find_map(|e| match e {
                Event::Train { epoch: ep, lr } if *ep == epoch => Some(*lr),
                _ => None,
            })
            .unwrap()
    }

    /// §4.3: improve for 3 epochs, then plateau forever. Round 1 ends after 5 bad epochs
    /// (epoch 8), the best state is restored, and the LR is cut on the first evaluation after
    /// the restore (epoch 9, the scheduler's 6th bad epoch), so epoch 10 is the first with 0.0015.
    #[test]
    fn replays_the_reference_lr_cut_timing() {
        let objs = [0.1, 0.2, 0.3, 0.3];
        let events = replay(lurz(), 0.0, &objs);
        let restores: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| **e == Event::Restore)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(restores.len(), 2, "{events:?}");
        // Round 1: epochs 1..=8 (3 improving + 5 bad), restore after epoch 8.
        assert_eq!(
            events[restores[0] - 1],
            Event::Train {
                epoch: 8,
                lr: 0.005
            }
        );
        // The cut happens on epoch 9's evaluation.
        let cuts: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Cut { .. }))
            .collect();
        assert!(matches!(cuts[0], Event::Cut { epoch: 9, lr } if (lr - 0.0015).abs() < 1e-12));
        assert_eq!(lr_of(&events, 9), 0.005);
        assert!((lr_of(&events, 10) - 0.0015).abs() < 1e-12);
        // Round 2: epochs 9..=13 (all bad), restore; round 3: epochs 14..=18, cut at epoch 15
        // (scheduler: bad epochs 10..15 after its reset at epoch 9 → 6th bad at 15).
        assert_eq!(
            events[restores[1] - 1],
            Event::Train {
                epoch: 13,
                lr: 0.0015
            }
        );
        assert!(matches!(cuts[1], Event::Cut { epoch: 15, lr } if (lr - 0.00045).abs() < 1e-12));
        assert_eq!(cuts.len(), 2);
        assert_eq!(events.last(), Some(&Event::Finish(StopReason::Converged)));
        assert_eq!(lr_of(&events, 18), 0.00045);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Train { epoch: 19, .. }))
        );
    }

    /// An improvement in a later round resets both counters; the LR floor is respected.
    #[test]
    fn improvement_after_restore_postpones_the_cut_and_floor_holds() {
        let mut config = lurz();
        config.lr_decay_steps = 6;
        // Improves at epoch 1, then plateaus, then improves once at epoch 7 (first after restore).
        let mut objs = vec![0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.6];
        objs.extend([0.6; 1]);
        let events = replay(config, 0.0, &objs);
        // Round 1: epoch 1 improves, epochs 2..6 bad → restore after epoch 6.
        // Epoch 7 improves: scheduler's bad count (5) resets, no cut.
        assert!(events.contains(&Event::Improved(7)));
        let first_cut = events.iter().find_map(|e| match e {
            Event::Cut { epoch, .. } => Some(*epoch),
            _ => None,
        });
        // After epoch 7 the scheduler needs 6 bad epochs: 8..13 → cut at 13 (epoch 12 ends round 2
        // with 5 bad, restore, epoch 13 is the 6th).
        assert_eq!(first_cut, Some(13));
        let lrs: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Train { lr, .. } => Some(*lr),
                _ => None,
            })
            .collect();
        assert!(lrs.iter().all(|&lr| lr >= 1e-4 - 1e-15));
        assert!(lrs.iter().any(|&lr| (lr - 1e-4).abs() < 1e-15), "{lrs:?}");
    }

    /// `ReduceLROnPlateau`'s rules at their edges, as PyTorch has them: nothing is better than
    /// the initial −∞ unless finite; an objective exactly `tolerance` above the best is not
    /// better (`a > best + threshold`); a cut needs `bad_epochs > patience`; a change of at most
    /// `eps` is skipped, so once the LR sits at `min_lr` a plateau reports no cut.
    #[test]
    fn plateau_scheduler_edges_match_pytorch() {
        let config = EarlyStoppingConfig {
            lr: 1.0,
            patience: 1,
            tolerance: 0.25,
            lr_decay_factor: 0.5,
            min_lr: 0.25,
            ..lurz()
        };
        let mut s = PlateauScheduler {
            best: None,
            bad_epochs: 0,
            lr: 1.0,
        };
        assert!(!s.step(f64::NEG_INFINITY, &config));
        assert_eq!((s.best, s.bad_epochs), (None, 1));
        assert!(!s.step(0.5, &config));
        assert_eq!((s.best, s.bad_epochs), (Some(0.5), 0));
        // 0.75 = best + tolerance exactly (exact in binary): not better.
        assert!(!s.step(0.75, &config));
        assert_eq!((s.best, s.bad_epochs), (Some(0.5), 1));
        assert!(s.step(0.75, &config), "2 bad epochs > patience 1: cut");
        assert_eq!((s.lr, s.bad_epochs), (0.5, 0));
        assert!(!s.step(0.5, &config));
        assert!(s.step(0.5, &config));
        assert_eq!(s.lr, 0.25);
        // At the floor: max(0.125, 0.25) = 0.25 is no change, so no cut is reported.
        for _ in 0..4 {
            assert!(!s.step(0.5, &config));
            assert_eq!(s.lr, 0.25);
        }
        // A change of exactly eps (2e-8 → 1e-8, exact in binary) is skipped too.
        let tiny = EarlyStoppingConfig {
            lr: 2e-8,
            patience: 0,
            min_lr: 0.0,
            ..config
        };
        let mut s = PlateauScheduler {
            best: Some(1.0),
            bad_epochs: 0,
            lr: 2e-8,
        };
        assert!(!s.step(0.0, &tiny));
        assert_eq!(s.lr, 2e-8);
    }

    /// The machine's own improvement test is the reference's `obj > best + tolerance`: an
    /// objective exactly `tolerance` above the best (exact in binary) is not an improvement;
    /// `epoch()` counts the epochs handed out; `stop` from outside ends the fit with its reason
    /// at once, even in the middle of an epoch.
    #[test]
    fn improvement_is_strict_epochs_count_and_an_outside_stop_finishes() {
        let config = EarlyStoppingConfig {
            tolerance: 0.25,
            ..lurz()
        };
        let mut es = EarlyStopping::new(config, 0.5);
        assert_eq!(es.epoch(), 0);
        assert!(matches!(
            es.next_action(),
            Action::TrainEpoch { epoch: 1, .. }
        ));
        assert!(
            !es.record(0.75).improved,
            "0.75 = 0.5 + tolerance is not better"
        );
        assert_eq!((es.best_epoch(), es.best_objective()), (0, 0.5));
        assert!(matches!(
            es.next_action(),
            Action::TrainEpoch { epoch: 2, .. }
        ));
        assert!(es.record(0.875).improved);
        assert_eq!((es.epoch(), es.best_epoch()), (2, 2));
        assert!(matches!(
            es.next_action(),
            Action::TrainEpoch { epoch: 3, .. }
        ));
        es.stop(StopReason::TimeBudget);
        assert_eq!(es.next_action(), Action::Finish(StopReason::TimeBudget));
        assert_eq!(es.stop_reason(), Some(StopReason::TimeBudget));
        // A later stop keeps the first reason.
        es.stop(StopReason::MaxEpochs);
        assert_eq!(es.next_action(), Action::Finish(StopReason::TimeBudget));
        assert_eq!(es.epoch(), 3);

        // Never better than the start: two rounds end, `round()` counts them and `lr()` is the
        // cut rate the next epoch would use.
        let mut es = EarlyStopping::new(lurz(), 0.5);
        assert_eq!((es.lr(), es.round()), (0.005, 0));
        let mut restores = 0;
        while restores < 2 {
            match es.next_action() {
                Action::TrainEpoch { .. } => {
                    es.record(0.1);
                }
                Action::RestoreBest { .. } => restores += 1,
                Action::Finish(reason) => panic!("finished early: {reason:?}"),
            }
        }
        assert_eq!(
            (es.round(), es.best_epoch(), es.stop_reason()),
            (2, 0, None)
        );
        assert!(es.lr() > 0.0 && es.lr() < 0.005, "{}", es.lr());
    }

    #[test]
    fn stops_at_max_epochs_and_on_nan() {
        let mut config = lurz();
        config.max_epochs = 4;
        let objs: Vec<f64> = (1..=10).map(|i| i as f64 * 0.01).collect();
        let events = replay(config, 0.0, &objs);
        assert_eq!(events.last(), Some(&Event::Finish(StopReason::MaxEpochs)));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Train { .. }))
                .count(),
            4
        );
        assert!(!events.contains(&Event::Restore));

        let events = replay(lurz(), 0.0, &[0.1, f64::NAN]);
        // Epoch 2 is NaN: the next epoch is not started.
        assert_eq!(
            events.last(),
            Some(&Event::Finish(StopReason::NonFiniteObjective))
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::Train { epoch: 3, .. }))
        );
    }

    #[test]
    fn single_round_does_not_restore_before_finishing_and_state_round_trips() {
        let mut config = lurz();
        config.lr_decay_steps = 1;
        let events = replay(config.clone(), 0.0, &[0.1]);
        assert!(!events.contains(&Event::Restore));
        assert_eq!(events.last(), Some(&Event::Finish(StopReason::Converged)));
        // 1 improving + 5 bad epochs.
        assert!(events.contains(&Event::Train {
            epoch: 6,
            lr: 0.005
        }));

        let mut es = EarlyStopping::new(config, 0.0);
        let Action::TrainEpoch { .. } = es.next_action() else {
            panic!()
        };
        es.record(0.2);
        let json = serde_json::to_string(&es).unwrap();
        let back: EarlyStopping = serde_json::from_str(&json).unwrap();
        assert_eq!(back, es);
    }
}
