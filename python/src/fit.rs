//! Fitting from Python: `train`, `resume`, `transfer`, `ensemble`, with the run's events passed to
//! a Python callback and Ctrl-C (a pending `KeyboardInterrupt`) stopping the run after the current
//! batch, keeping its last checkpoint.

use std::path::PathBuf;

use anyhow::Context;
use cortexfit::backend::DeviceKind;
use cortexfit::config::RunConfig;
use cortexfit::run::transfer::TransferRequest;
use cortexfit::run::{Event, Progress, RunOptions};
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;

use crate::{json, py, to_py_err};

/// The run options of a `device=` argument.
pub(crate) fn options(name: &str) -> PyResult<RunOptions> {
    let kind = match name {
        "cpu" => DeviceKind::Cpu,
        "cuda" => DeviceKind::Cuda,
        other => {
            return Err(PyValueError::new_err(format!(
                "device: expected \"cpu\" or \"cuda\", got {other:?}"
            )));
        }
    };
    Ok(RunOptions {
        device: kind
            .device()
            .map_err(|e| PyValueError::new_err(e.to_string()))?,
    })
}

/// Passes events to a Python callable `callback(kind, payload_json)` and polls for Ctrl-C.
/// An exception raised by the callback, or a pending signal, stops the run; it is kept and
/// raised once the run has ended.
struct PyProgress {
    callback: Option<Py<PyAny>>,
    pending: Option<PyErr>,
}

impl PyProgress {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        Self {
            callback,
            pending: None,
        }
    }

    fn send(&mut self, kind: &str, payload: serde_json::Value) {
        let Some(callback) = &self.callback else {
            return;
        };
        if self.pending.is_some() {
            return;
        }
        let text = payload.to_string();
        if let Err(e) = Python::attach(|py| callback.call1(py, (kind, text)).map(|_| ())) {
            self.pending = Some(e);
        }
    }

    /// The error of a finished call: the callback's exception or the signal's
    /// `KeyboardInterrupt` (with the library's message on how to resume) take precedence.
    fn finish<T>(self, result: anyhow::Result<T>) -> PyResult<T> {
        match (result, self.pending) {
            (Ok(v), None) => Ok(v),
            (Ok(_), Some(e)) => Err(e),
            (Err(err), pending) => {
                let interrupted = err.downcast_ref::<cortexfit::run::Interrupted>().is_some();
                match pending {
                    Some(e)
                        if interrupted
                            && Python::attach(|py| e.is_instance_of::<PyKeyboardInterrupt>(py)) =>
                    {
                        Err(PyKeyboardInterrupt::new_err(format!(
                            "{err:#} (from Python: cortexfit.resume(path))"
                        )))
                    }
                    Some(e) if interrupted => Err(e),
                    _ => Err(to_py_err(err)),
                }
            }
        }
    }
}

impl Progress for PyProgress {
    fn event(&mut self, event: &Event<'_>) {
        use serde_json::json;
        match event {
            Event::Started {
                run_dir,
                data_keys,
                neurons,
            } => self.send(
                "started",
                json!({"run_dir": run_dir.display().to_string(), "data_keys": data_keys,
                       "neurons": neurons}),
            ),
            Event::Resumed {
                run_dir,
                epoch,
                minutes_trained,
            } => self.send(
                "resumed",
                json!({"run_dir": run_dir.display().to_string(), "epoch": epoch,
                       "minutes_trained": minutes_trained}),
            ),
            Event::EpochStarted(start) => self.send(
                "epoch_started",
                json!({"epoch": start.epoch, "max_epochs": start.max_epochs,
                       "batches": start.batches, "lr": start.lr,
                       "last_val_corr": start.last_val_corr,
                       "budget_left_seconds": start.budget_left.map(|d| d.as_secs_f64())}),
            ),
            Event::Batch { loss } => self.send("batch", json!({ "loss": loss })),
            Event::EpochTrained => self.send("epoch_trained", json!({})),
            Event::EpochFinished { record, next_lr } => {
                let mut value = serde_json::to_value(record).unwrap_or_default();
                value["next_lr"] = json!(next_lr);
                self.send("epoch_finished", value)
            }
            Event::RestoredBest {
                finished_round,
                best_epoch,
                best_objective,
            } => self.send(
                "restored_best",
                json!({"finished_round": finished_round, "best_epoch": best_epoch,
                       "best_objective": best_objective}),
            ),
            Event::Stopped {
                reason,
                best_epoch,
                best_objective,
            } => self.send(
                "stopped",
                json!({"reason": reason, "reason_text":
                           cortexfit::train::fit::stop_reason_text(*reason),
                       "best_epoch": best_epoch, "best_objective": best_objective}),
            ),
        }
    }

    fn interrupted(&mut self) -> bool {
        if self.pending.is_some() {
            return true;
        }
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.pending = Some(e);
            return true;
        }
        false
    }
}

/// Where a run's configuration comes from.
fn base_config(source: &str, kind: &str, overrides: &[String]) -> anyhow::Result<RunConfig> {
    Ok(match kind {
        "preset" => {
            RunConfig::preset(source)?.with_overrides(&format!("preset {source}"), overrides)?
        }
        "file" => RunConfig::from_file(std::path::Path::new(source), overrides)?,
        "json" => {
            let mut value: serde_json::Value =
                serde_json::from_str(source).context("the configuration dict")?;
            drop_nulls(&mut value);
            let table: toml::Table = serde_json::from_value(value)
                .context("the configuration dict is not a TOML table")?;
            RunConfig::from_toml_str(
                &toml::to_string(&table)?,
                "the configuration dict",
                overrides,
            )?
        }
        other => anyhow::bail!("unknown configuration kind {other:?}"),
    })
}

/// Removes `None` values from a configuration dict: an unset option is an absent key in TOML.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The resolved configuration of a training call, as `cortexfit train` resolves it: preset, file
/// or dict, then the overrides, then seed, budget and datasets.
fn resolve(
    source: &str,
    kind: &str,
    overrides: &[String],
    data: &[PathBuf],
    seed: Option<u64>,
    max_minutes: Option<f64>,
) -> anyhow::Result<RunConfig> {
    let mut overrides = overrides.to_vec();
    if let Some(seed) = seed {
        overrides.push(format!("seed={seed}"));
    }
    if let Some(m) = max_minutes {
        overrides.push(format!("trainer.max_minutes={m:?}"));
    }
    if !data.is_empty() {
        let paths = data
            .iter()
            .map(|p| {
                std::path::absolute(p)
                    .with_context(|| format!("resolving data {}", p.display()))
                    .map(|p| toml::Value::String(p.display().to_string()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        overrides.push(format!("data.paths={}", toml::Value::Array(paths)));
    }
    base_config(source, kind, &overrides)
}

/// The resolved configuration as JSON (what `train` would use).
#[pyfunction]
#[pyo3(signature = (source, kind, overrides, data, seed=None, max_minutes=None))]
fn resolve_config(
    source: &str,
    kind: &str,
    overrides: Vec<String>,
    data: Vec<PathBuf>,
    seed: Option<u64>,
    max_minutes: Option<f64>,
) -> PyResult<String> {
    json(&py(resolve(
        source,
        kind,
        &overrides,
        &data,
        seed,
        max_minutes,
    ))?)
}

/// Trains a new run into `out`; returns its summary as JSON.
#[pyfunction]
#[pyo3(signature = (source, kind, overrides, data, out, seed=None, max_minutes=None, callback=None, device="cpu"))]
#[allow(clippy::too_many_arguments)]
fn train(
    py_: Python<'_>,
    source: &str,
    kind: &str,
    overrides: Vec<String>,
    data: Vec<PathBuf>,
    out: PathBuf,
    seed: Option<u64>,
    max_minutes: Option<f64>,
    callback: Option<Py<PyAny>>,
    device: &str,
) -> PyResult<String> {
    let config = py(resolve(source, kind, &overrides, &data, seed, max_minutes))?;
    let options = options(device)?;
    let mut progress = PyProgress::new(callback);
    let result = py_.detach(|| cortexfit::run::train(config, &out, &options, &mut progress));
    json(&progress.finish(result)?)
}

/// Continues a killed or interrupted run; returns its summary as JSON.
#[pyfunction]
#[pyo3(signature = (run_dir, callback=None, device="cpu"))]
fn resume(
    py_: Python<'_>,
    run_dir: PathBuf,
    callback: Option<Py<PyAny>>,
    device: &str,
) -> PyResult<String> {
    let options = options(device)?;
    let mut progress = PyProgress::new(callback);
    let result = py_.detach(|| cortexfit::run::resume(&run_dir, &options, &mut progress));
    json(&progress.finish(result)?)
}

/// New readouts on the frozen core of `core` (a run or ensemble); returns the summary as JSON.
#[pyfunction]
#[pyo3(signature = (core, data, out, train_images=None, update_bn=false, fine_tune=false, overrides=Vec::new(), seed=None, max_minutes=None, callback=None, device="cpu"))]
#[allow(clippy::too_many_arguments)]
fn transfer(
    py_: Python<'_>,
    core: PathBuf,
    data: Vec<PathBuf>,
    out: PathBuf,
    train_images: Option<usize>,
    update_bn: bool,
    fine_tune: bool,
    overrides: Vec<String>,
    seed: Option<u64>,
    max_minutes: Option<f64>,
    callback: Option<Py<PyAny>>,
    device: &str,
) -> PyResult<String> {
    let request = TransferRequest {
        core_run: core,
        data,
        out,
        train_images,
        update_bn,
        fine_tune,
        overrides,
        seed,
        max_minutes,
    };
    let options = options(device)?;
    let mut progress = PyProgress::new(callback);
    let result =
        py_.detach(|| cortexfit::run::transfer::transfer(&request, &options, &mut progress));
    json(&progress.finish(result)?)
}

/// Groups finished runs (same configuration, different seeds) into an ensemble folder.
#[pyfunction]
#[pyo3(signature = (runs, out, device="cpu"))]
fn ensemble(py_: Python<'_>, runs: Vec<PathBuf>, out: PathBuf, device: &str) -> PyResult<()> {
    let device = options(device)?.device;
    py(py_.detach(|| cortexfit::run::ensemble::create(&out, &runs, &device)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(resume, m)?)?;
    m.add_function(wrap_pyfunction!(transfer, m)?)?;
    m.add_function(wrap_pyfunction!(ensemble, m)?)?;
    Ok(())
}
