//! Training a run: a [`Fit`](crate::train::Fit) driven to the end, with its run directory
//! written as it goes (configuration, neurons, log, resumable checkpoints, summary).

use std::path::Path;

use anyhow::Context;
use burn::module::Module;

use super::dir::{RunDir, link_or_copy};
use super::log::EpochLog;
use super::open::write_neurons;
use super::options::{Interrupted, RunOptions};
use super::progress::{Event, Progress};
use super::summary::{Summary, summarize};
use crate::config::RunConfig;
use crate::data::PreparedDataset;
use crate::model::checkpoint;
use crate::train::fit::read_state;
use crate::train::{Control, EpochObserver, EpochStart, Fit, Next};

/// Trains a new run of `config` in `run_dir` (created; must not hold a run) and returns its
/// summary. Data and model are checked before anything is written, so a bad path or a model
/// that does not fit the data leaves nothing behind.
pub fn train(
    config: RunConfig,
    run_dir: &Path,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    config.validate()?;
    RunDir::check_fresh(run_dir)?;
    let _kernels = crate::kernels::use_kernels(config.kernels);
    let sets = PreparedDataset::load_all(&config.data.paths, &config.data)?;
    let (fit, initial) = Fit::new(config, sets, &options.device)?;
    let run = RunDir::create(run_dir)?;
    crate::io::atomic_write(
        &run.config(),
        fit.config()
            .to_commented_toml(&format!(
                "Resolved configuration of the cortexfit run in {} (cortexfit {}).",
                run_dir.display(),
                env!("CARGO_PKG_VERSION")
            ))
            .as_bytes(),
    )?;
    write_neurons(&run, fit.datasets())?;
    let keys: Vec<String> = fit
        .datasets()
        .iter()
        .map(|s| s.data_key().to_string())
        .collect();
    progress.event(&Event::Started {
        run_dir,
        data_keys: &keys,
        neurons: fit.datasets().iter().map(PreparedDataset::n_neurons).sum(),
    });
    let log = EpochLog::new(&run.log());
    log.truncate_after(0)?;
    log.append(&initial)?;
    checkpoint::save(fit.best(), &run.best_model())?;
    write_checkpoint(&run, &fit, true)?;
    progress.event(&Event::EpochFinished {
        record: &initial,
        next_lr: initial.lr,
    });
    drive(fit, &run, &log, progress)
}

/// Continues a run from its last completed epoch; ends with the numbers an uninterrupted run
/// would have produced.
pub fn resume(
    run_dir: &Path,
    options: &RunOptions,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    let run = RunDir::new(run_dir);
    anyhow::ensure!(
        run.config().exists(),
        "{} is not a cortexfit run (no config.toml)",
        run_dir.display()
    );
    anyhow::ensure!(
        !run.root().join(super::import::IMPORT_FILE).exists(),
        "{} holds a model imported from PyTorch ({}), not a training run: there is nothing to \
         resume",
        run_dir.display(),
        super::import::IMPORT_FILE
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
    let state = read_state(
        &std::fs::read_to_string(&state_path)
            .with_context(|| format!("reading {}", state_path.display()))?,
    )
    .with_context(|| state_path.display().to_string())?;
    let _kernels = crate::kernels::use_kernels(config.kernels);
    let sets = PreparedDataset::load_all(&config.data.paths, &config.data)?;
    let device = options.device.clone().autodiff();
    let load = |name: &str| {
        let path = folder.join(name);
        checkpoint::load(&path, &device)
            .with_context(|| format!("reading the model checkpoint {}", path.display()))
    };
    let (model, best) = (load("model.safetensors")?, load("best.safetensors")?);
    let optimizer_path = folder.join("optimizer.bpk");
    let optimizer = if optimizer_path.exists() {
        Some(
            Fit::optimizer_for(&config)
                .load(&optimizer_path)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "reading the optimizer state {}: {e:?}",
                        optimizer_path.display()
                    )
                })?,
        )
    } else {
        None
    };
    let minutes_trained = state.elapsed_seconds / 60.0;
    let fit = Fit::restore(config, sets, &options.device, model, best, optimizer, state)
        .with_context(|| format!("resuming {}", run_dir.display()))?;
    let log = EpochLog::new(&run.log());
    log.truncate_after(epoch)?;
    progress.event(&Event::Resumed {
        run_dir,
        epoch,
        minutes_trained,
    });
    drive(fit, &run, &log, progress)
}

/// Passes the fit's in-epoch events on to the user's progress.
struct Relay<'a>(&'a mut dyn Progress);

impl EpochObserver for Relay<'_> {
    fn epoch_started(&mut self, start: &EpochStart) {
        self.0.event(&Event::EpochStarted(start));
    }
    fn batch_done(&mut self, loss: f64) -> Control {
        self.0.event(&Event::Batch { loss });
        if self.0.interrupted() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn epoch_trained(&mut self) {
        self.0.event(&Event::EpochTrained);
    }
}

/// Runs the fit to its end, logging and checkpointing every epoch, then writes the summary.
fn drive(
    mut fit: Fit,
    run: &RunDir,
    log: &EpochLog,
    progress: &mut dyn Progress,
) -> anyhow::Result<Summary> {
    let reason = loop {
        match fit.advance(&mut Relay(progress))? {
            Next::Trained { record, next_lr } => {
                log.append(&record)?;
                write_checkpoint(run, &fit, record.improved)?;
                progress.event(&Event::EpochFinished {
                    record: &record,
                    next_lr,
                });
            }
            Next::RestoredBest {
                finished_round,
                best_epoch,
                best_objective,
            } => progress.event(&Event::RestoredBest {
                finished_round,
                best_epoch,
                best_objective,
            }),
            Next::Finished(reason) => break reason,
            Next::Interrupted { epoch } => {
                return Err(Interrupted {
                    run_dir: run.root().to_path_buf(),
                    epoch,
                }
                .into());
            }
        }
    };
    let stopping = fit.early_stopping();
    progress.event(&Event::Stopped {
        reason,
        best_epoch: stopping.best_epoch(),
        best_objective: stopping.best_objective(),
    });
    let summary = summarize(
        &fit.model().valid(),
        fit.datasets(),
        fit.config(),
        stopping,
        reason,
        fit.elapsed(),
        &fit.eval_device(),
    );
    crate::io::atomic_write(
        &run.summary(),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(summary)
}

/// Writes the resumable checkpoint of the fit's current state and the user-facing model files.
fn write_checkpoint(run: &RunDir, fit: &Fit, best_changed: bool) -> anyhow::Result<()> {
    let state = fit.state();
    let epoch = state.epoch;
    let previous = run.current_checkpoint()?;
    let folder = run.begin_checkpoint(epoch)?;
    checkpoint::save(fit.model(), &folder.join("model.safetensors"))?;
    match previous {
        Some((prev, _)) if !best_changed && prev.join("best.safetensors").exists() => link_or_copy(
            &prev.join("best.safetensors"),
            &folder.join("best.safetensors"),
        )?,
        _ => checkpoint::save(fit.best(), &folder.join("best.safetensors"))?,
    }
    fit.optimizer()
        .save(folder.join("optimizer.bpk"))
        .map_err(|e| anyhow::anyhow!("writing the optimizer state: {e:?}"))?;
    crate::io::atomic_write(
        &folder.join("trainer.json"),
        serde_json::to_string_pretty(&state)?.as_bytes(),
    )?;
    run.commit(&folder, epoch)?;
    if best_changed {
        checkpoint::save(fit.best(), &run.best_model())?;
    }
    checkpoint::save(fit.model(), &run.last_model())?;
    Ok(())
}
