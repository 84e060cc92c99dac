//! What a run reports while it fits: events for whoever shows progress (the command line draws a
//! bar and prints lines, the Python package calls back into the notebook). The library itself
//! never prints.

use std::path::Path;

use crate::train::{EpochRecord, EpochStart, StopReason};

/// One thing that happened during a fit.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A new run starts training on these datasets.
    Started {
        run_dir: &'a Path,
        data_keys: &'a [String],
        neurons: usize,
    },
    /// A killed run continues after its last completed epoch.
    Resumed {
        run_dir: &'a Path,
        epoch: usize,
        minutes_trained: f64,
    },
    /// An epoch starts (epoch 0, the evaluation of the untrained model, has no start).
    EpochStarted(&'a EpochStart),
    /// A training batch is done; `loss` is its Poisson loss per trial.
    Batch { loss: f64 },
    /// The epoch's training batches are done (validation follows).
    EpochTrained,
    /// An epoch was evaluated and checkpointed; `next_lr` is the learning rate from now on.
    EpochFinished {
        record: &'a EpochRecord,
        next_lr: f64,
    },
    /// A round of early stopping ended and the best state was restored.
    RestoredBest {
        finished_round: usize,
        best_epoch: usize,
        best_objective: f64,
    },
    /// Training is over.
    Stopped {
        reason: StopReason,
        best_epoch: usize,
        best_objective: f64,
    },
}

/// Receives a run's events; can ask the run to stop (Ctrl-C), which ends it after the current
/// batch, keeping the last checkpoint (resume it later).
pub trait Progress {
    fn event(&mut self, event: &Event<'_>);
    /// Polled after every batch: `true` stops the run.
    fn interrupted(&mut self) -> bool {
        false
    }
}

/// Shows nothing, never interrupts.
pub struct Silent;

impl Progress for Silent {
    fn event(&mut self, _event: &Event<'_>) {}
}
