//! An opened run or ensemble (`cortexfit::run::Run`): prediction, evaluation, readout positions.

use std::path::{Path, PathBuf};

use cortexfit::data::{PreparedDataset, Tier};
use cortexfit::run::{Run, TierEvaluation, readout_positions, readout_sigma};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::json;

use crate::{bytes_f32, f32_bytes, i64_bytes, json, py};

fn tier(name: &str) -> PyResult<Tier> {
    name.parse::<Tier>()
        .map_err(|e| PyValueError::new_err(format!("tier: {e}")))
}

/// A trained run (or ensemble) in evaluation mode.
#[pyclass(name = "RunHandle", module = "cortexfit._cortexfit", frozen)]
struct RunHandle {
    run: Run,
}

impl RunHandle {
    fn load(&self, py_: Python<'_>, path: &Path) -> PyResult<(usize, PreparedDataset)> {
        py(py_.detach(|| self.run.load_data(path)))
    }
}

#[pymethods]
impl RunHandle {
    /// Opens a run or an ensemble directory.
    #[new]
    #[pyo3(signature = (path, device="cpu"))]
    fn new(py_: Python<'_>, path: PathBuf, device: &str) -> PyResult<Self> {
        let device = crate::fit::options(device)?.device;
        let run = py(py_.detach(|| Run::open(&path, &device)))?;
        Ok(Self { run })
    }

    /// The configuration as JSON.
    fn config_json(&self) -> PyResult<String> {
        json(&self.run.config)
    }

    /// The configuration as commented TOML (as `config.toml` holds it).
    fn config_toml(&self) -> String {
        self.run
            .config
            .to_commented_toml("Configuration of a cortexfit run.")
    }

    /// Writes the best model for PyTorch (`cortexfit export`): (tensors written, the Python
    /// lines that load it or None, why there are none or None).
    fn export(
        &self,
        py_: Python<'_>,
        out: PathBuf,
    ) -> PyResult<(usize, Option<String>, Option<String>)> {
        let report = py(py_.detach(|| cortexfit::run::export::export_run(&self.run, &out)))?;
        Ok(match report.python {
            Ok(code) => (report.tensors, Some(code), None),
            Err(why) => (report.tensors, None, Some(why)),
        })
    }

    fn path(&self) -> String {
        self.run.dir.root().display().to_string()
    }

    fn data_keys(&self) -> Vec<String> {
        self.run.data_keys().to_vec()
    }

    fn member_seeds(&self) -> Vec<u64> {
        self.run.member_seeds.clone()
    }

    fn member_dirs(&self) -> Vec<String> {
        self.run
            .member_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect()
    }

    /// The unit ids of readout `data_key`.
    fn unit_ids<'py>(&self, py_: Python<'py>, data_key: &str) -> PyResult<Bound<'py, PyBytes>> {
        let n = self
            .run
            .neurons
            .iter()
            .find(|n| n.data_key == data_key)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "the run has no readout `{data_key}`; its data keys are {}",
                    self.run.data_keys().join(", ")
                ))
            })?;
        Ok(i64_bytes(py_, &n.unit_ids))
    }

    /// What the model takes: image shape (C, H, W), behaviour variables, whether it needs
    /// behaviour and pupil centre.
    fn inputs_needed(&self) -> (Vec<usize>, usize, bool, bool) {
        let m = self.run.model();
        (
            m.facts.in_shape.to_vec(),
            m.facts.n_behaviors,
            m.needs_behavior(),
            m.needs_pupil_center(),
        )
    }

    /// The number of neurons of readout `data_key`.
    fn n_neurons(&self, data_key: &str) -> PyResult<usize> {
        let key = py(self.run.key_of(data_key))?;
        Ok(self.run.model().readout.n_neurons(key))
    }

    /// Predictions (f32 bytes, trials × neurons) for arrays in model input units.
    #[pyo3(signature = (data_key, images, behavior=None, pupil_center=None))]
    fn predict<'py>(
        &self,
        py_: Python<'py>,
        data_key: &str,
        images: &[u8],
        behavior: Option<&[u8]>,
        pupil_center: Option<&[u8]>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let key = py(self.run.key_of(data_key))?;
        let images = bytes_f32("images", images)?;
        let behavior = behavior.map(|b| bytes_f32("behavior", b)).transpose()?;
        let pupil = pupil_center
            .map(|p| bytes_f32("pupil_center", p))
            .transpose()?;
        let out = py(py_.detach(|| {
            self.run
                .predict_arrays(key, &images, behavior.as_deref(), pupil.as_deref())
        }))?;
        Ok(f32_bytes(py_, &out))
    }

    /// A dataset's tier as the run prepares it (its normalization and neurons): a dict with
    /// data_key, trials, images, behavior, pupil_center, responses (bytes) and shapes.
    fn inputs<'py>(
        &self,
        py_: Python<'py>,
        path: PathBuf,
        tier_name: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let tier = tier(tier_name)?;
        let (_, set) = self.load(py_, &path)?;
        let trials = set.tier(tier);
        if trials.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{} (data key {}) has no trials in tier `{tier}`",
                path.display(),
                set.data_key()
            )));
        }
        let gather = |values: &Option<Vec<f32>>, width: usize| {
            values.as_ref().map(|v| {
                let rows: Vec<f32> = trials
                    .iter()
                    .flat_map(|&t| v[t * width..(t + 1) * width].iter().copied())
                    .collect();
                f32_bytes(py_, &rows)
            })
        };
        let d = PyDict::new(py_);
        d.set_item("data_key", set.data_key())?;
        let trials_i64: Vec<i64> = trials.iter().map(|&t| t as i64).collect();
        d.set_item("trials", i64_bytes(py_, &trials_i64))?;
        d.set_item("image_shape", set.dataset.image_shape.to_vec())?;
        d.set_item("n_neurons", set.n_neurons())?;
        d.set_item("n_behaviors", set.n_behaviors())?;
        d.set_item("images", f32_bytes(py_, &set.images_of(&trials)))?;
        d.set_item("responses", f32_bytes(py_, &set.responses_of(&trials)))?;
        d.set_item("behavior", gather(&set.behavior, set.n_behaviors()))?;
        d.set_item("pupil_center", gather(&set.pupil_center, 2))?;
        Ok(d)
    }

    /// Predictions for a tier of a dataset, exactly as `cortexfit predict` computes them:
    /// (data_key, trials i64 bytes, predictions f32 bytes, neurons).
    fn predict_tier<'py>(
        &self,
        py_: Python<'py>,
        path: PathBuf,
        tier_name: &str,
    ) -> PyResult<(String, Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize)> {
        let tier = tier(tier_name)?;
        let (key, set) = self.load(py_, &path)?;
        let (trials, predictions) = py(py_.detach(|| self.run.predict_tier(key, &set, tier)))?;
        let trials: Vec<i64> = trials.iter().map(|&t| t as i64).collect();
        Ok((
            set.data_key().to_string(),
            i64_bytes(py_, &trials),
            f32_bytes(py_, &predictions),
            set.n_neurons(),
        ))
    }

    /// Every metric on a tier: JSON with `summary`, `members` (summaries of each member of an
    /// ensemble) and `neurons` (per-neuron columns, as `cortexfit evaluate`'s CSV).
    fn evaluate(&self, py_: Python<'_>, path: PathBuf, tier_name: &str) -> PyResult<String> {
        let tier = tier(tier_name)?;
        let (key, set) = self.load(py_, &path)?;
        let (evaluation, members) = py_.detach(|| {
            let evaluation = self.run.evaluate(key, &set, tier);
            let members = if self.run.is_ensemble() {
                self.run.evaluate_members(key, &set, tier)
            } else {
                None
            };
            (evaluation, members)
        });
        let Some(evaluation) = evaluation else {
            return Err(PyValueError::new_err(format!(
                "{} (data key {}) has no trials in tier `{tier}`",
                path.display(),
                set.data_key(),
            )));
        };
        let members: Vec<serde_json::Value> = members
            .unwrap_or_default()
            .iter()
            .zip(&self.run.member_seeds)
            .map(|(m, seed)| json!({"seed": seed, "summary": m.summary}))
            .collect();
        json(&json!({
            "summary": evaluation.summary,
            "members": members,
            "neurons": neuron_columns(&self.run, key, &set, &evaluation),
        }))
    }

    /// An in-silico experiment (`kind` = "mei", "tuning" or "rf") on the readout of the dataset
    /// at `path`, written to `out` (the files `cortexfit insilico` writes). `top` / `units`
    /// choose neurons (all by default); `params` are the experiment's settings by name.
    #[pyo3(signature = (kind, path, out, top=None, units=None, params=None))]
    #[allow(clippy::too_many_arguments)]
    fn insilico(
        &self,
        py_: Python<'_>,
        kind: &str,
        path: PathBuf,
        out: PathBuf,
        top: Option<usize>,
        units: Option<Vec<i64>>,
        params: Option<std::collections::HashMap<String, f64>>,
    ) -> PyResult<()> {
        use cortexfit::insilico::{
            mei::MeiConfig, rf::RfConfig, stimulus::Aperture, tuning::TuningConfig,
        };
        use cortexfit::run::insilico::{Experiment, Neurons};
        let params = params.unwrap_or_default();
        let known: &[&str] = match kind {
            "mei" => &["seed", "blur_sigma", "steps", "contrast", "batch"],
            "tuning" => &["orientations", "phases", "disc", "figure_neurons"],
            "rf" => &["samples", "seed"],
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown in-silico experiment `{other}` (mei, tuning, rf)"
                )));
            }
        };
        if let Some(name) = params.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(PyValueError::new_err(format!(
                "{kind}: unknown setting `{name}` (known: {})",
                known.join(", ")
            )));
        }
        let get = |name: &str| params.get(name).copied();
        let count = |name: &str, default: usize| -> PyResult<usize> {
            match get(name) {
                None => Ok(default),
                Some(v) if v >= 0.0 && v.fract() == 0.0 => Ok(v as usize),
                Some(v) => Err(PyValueError::new_err(format!(
                    "{kind}: `{name}` must be a whole number, got {v}"
                ))),
            }
        };
        let neurons = match (top, units) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err("give `top` or `units`, not both"));
            }
            (Some(n), None) => Neurons::Top(n),
            (None, Some(ids)) => Neurons::Units(ids),
            (None, None) => Neurons::All,
        };
        match kind {
            "mei" => {
                let contrast = get("contrast").unwrap_or(1.0);
                let defaults = MeiConfig::default();
                let seed = count("seed", 0)? as u64;
                let steps = count("steps", defaults.max_steps)?;
                let batch = count("batch", defaults.batch_size)?;
                py(py_.detach(|| {
                    let experiment = Experiment::new(&self.run, &path, &neurons)?;
                    anyhow::ensure!(
                        contrast.is_finite() && contrast > 0.0,
                        "mei: `contrast` must be a positive fraction, got {contrast}"
                    );
                    let config = MeiConfig {
                        seed,
                        blur_sigma: get("blur_sigma").unwrap_or(defaults.blur_sigma),
                        max_steps: steps,
                        batch_size: batch,
                        norm: Some(experiment.context.norm * contrast),
                        ..defaults
                    };
                    experiment.mei(&config, Some(&out)).map(|_| ())
                }))
            }
            "tuning" => {
                let defaults = TuningConfig::default();
                let config = TuningConfig {
                    orientations: count("orientations", defaults.orientations)?,
                    phases: count("phases", defaults.phases)?,
                    aperture: get("disc").map_or(Aperture::FullField, |radius_px| Aperture::Disc {
                        radius_px,
                    }),
                    ..defaults
                };
                let figure = count("figure_neurons", 12)?;
                py(py_.detach(|| {
                    let experiment = Experiment::new(&self.run, &path, &neurons)?;
                    experiment.tuning(&config, Some(&out), figure).map(|_| ())
                }))
            }
            _ => {
                let defaults = RfConfig::default();
                let config = RfConfig {
                    samples: count("samples", defaults.samples)?,
                    seed: count("seed", 0)? as u64,
                    ..defaults
                };
                py(py_.detach(|| {
                    let experiment = Experiment::new(&self.run, &path, &neurons)?;
                    experiment.receptive_fields(&config, Some(&out)).map(|_| ())
                }))
            }
        }
    }

    /// Readout positions μ (x, y) in grid coordinates, neurons × 2 as a list; `None` without a
    /// Gaussian readout.
    fn readout_positions(&self, data_key: &str) -> PyResult<Option<Vec<[f64; 2]>>> {
        let key = py(self.run.key_of(data_key))?;
        Ok(readout_positions(self.run.model(), key))
    }
}

/// The per-neuron table of an evaluation, column by column.
fn neuron_columns(
    run: &Run,
    key: usize,
    set: &PreparedDataset,
    evaluation: &TierEvaluation,
) -> serde_json::Value {
    let m = &evaluation.neurons;
    let mut columns = serde_json::Map::new();
    columns.insert("unit_id".into(), json!(set.dataset.neurons.unit_ids));
    columns.insert(
        "single_trial_correlation".into(),
        json!(m.single_trial_correlation),
    );
    for (name, values) in [
        ("correlation_to_average", &m.correlation_to_average),
        ("oracle", &m.oracle),
        ("fev", &m.fev),
        ("feve", &m.feve),
    ] {
        if let Some(v) = values {
            columns.insert(name.into(), json!(v));
        }
    }
    columns.insert("poisson_loss".into(), json!(m.poisson_loss));
    if let Some(p) = readout_positions(run.model(), key) {
        columns.insert(
            "mu_x".into(),
            json!(p.iter().map(|p| p[0]).collect::<Vec<_>>()),
        );
        columns.insert(
            "mu_y".into(),
            json!(p.iter().map(|p| p[1]).collect::<Vec<_>>()),
        );
    }
    if let Some(s) = readout_sigma(run.model(), key) {
        for (i, name) in ["sigma_xx", "sigma_xy", "sigma_yx", "sigma_yy"]
            .into_iter()
            .enumerate()
        {
            columns.insert(
                name.into(),
                json!(s.iter().map(|s| s[i]).collect::<Vec<_>>()),
            );
        }
    }
    serde_json::Value::Object(columns)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RunHandle>()?;
    Ok(())
}
