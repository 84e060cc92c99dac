//! The terminal side of a fit's progress: a bar per epoch (batches) with loss, last validation
//! correlation, learning rate and time left, and one line per epoch; silent with `--quiet`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::{Event, Progress};
use crate::train::fit::stop_reason_text;

/// Shows a run's events on stderr.
pub struct TerminalProgress {
    quiet: bool,
    bar: Option<ProgressBar>,
    /// LR, last validation correlation and budget of the current epoch.
    base_message: String,
}

impl TerminalProgress {
    /// `quiet` turns off everything on the terminal (the log file is still written).
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: None,
            base_message: String::new(),
        }
    }

    /// Prints a line (above the bar when one is shown).
    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    fn set_loss(&self, loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            let loss = loss.map_or("–".to_string(), |l| format!("{l:.4}"));
            bar.set_message(format!("loss {loss} {}", self.base_message));
        }
    }
}

impl Progress for TerminalProgress {
    fn event(&mut self, event: &Event<'_>) {
        if self.quiet {
            return;
        }
        match event {
            Event::Started {
                run_dir,
                data_keys,
                neurons,
            } => self.line(&format!(
                "training on {} ({neurons} neurons) in {}",
                data_keys.join(", "),
                run_dir.display()
            )),
            Event::Resumed {
                run_dir,
                epoch,
                minutes_trained,
            } => self.line(&format!(
                "resuming {} after epoch {epoch} ({minutes_trained:.1} min trained)",
                run_dir.display()
            )),
            Event::EpochStarted(start) => {
                let bar = ProgressBar::with_draw_target(
                    Some(start.batches as u64),
                    ProgressDrawTarget::stderr(),
                );
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} batches {msg} ({elapsed} / eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(format!("epoch {}/{}", start.epoch, start.max_epochs));
                let val = start
                    .last_val_corr
                    .map_or("–".to_string(), |v| format!("{v:.4}"));
                let budget = start.budget_left.map_or(String::new(), |d| {
                    format!(" budget left {:.1} min", d.as_secs_f64() / 60.0)
                });
                self.bar = Some(bar);
                self.base_message = format!("lr {:.2e} val corr {val}{budget}", start.lr);
                self.set_loss(None);
            }
            Event::Batch { loss } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.set_loss(Some(*loss));
            }
            Event::EpochTrained => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            Event::EpochFinished { record, next_lr } => {
                let val = record.val_corr.unwrap_or(f64::NAN);
                if record.epoch == 0 {
                    self.line(&format!("epoch 0: validation correlation {val:.4}"));
                    return;
                }
                self.line(&format!(
                    "epoch {:3}  lr {:.2e}  train loss {:.4}  val corr {val:.4}{}{}  ({:.1} s + {:.1} s)",
                    record.epoch,
                    record.lr,
                    record.train_loss.unwrap_or(f64::NAN),
                    if record.improved { "  *best*" } else { "" },
                    if record.lr_cut {
                        format!("  lr → {next_lr:.2e}")
                    } else {
                        String::new()
                    },
                    record.train_seconds,
                    record.eval_seconds,
                ));
            }
            Event::RestoredBest {
                finished_round,
                best_epoch,
                best_objective,
            } => self.line(&format!(
                "round {} ended: restored the best state (epoch {best_epoch}, validation correlation {best_objective:.4})",
                finished_round + 1
            )),
            Event::Stopped {
                reason,
                best_epoch,
                best_objective,
            } => self.line(&format!(
                "stopped ({}); best epoch {best_epoch} with validation correlation {best_objective:.4}",
                stop_reason_text(*reason)
            )),
        }
    }
}
