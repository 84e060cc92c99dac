//! Datasets and simulations: `Dataset.load` (raw arrays and metadata) and `simulate`.

use std::path::PathBuf;

use cortexfit::data::{Dataset, LoadOptions, Tier};
use cortexfit::sim::{GroundTruth, SimulationConfig};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{f32_bytes, i64_bytes, json, py};

/// Loads a recording (FileTree folder or `.zip`) and returns its arrays (f32/i64 bytes) and
/// metadata in a dict; the GIL is released while it reads.
#[pyfunction]
#[pyo3(signature = (path, data_key=None))]
fn load_dataset<'py>(
    py_: Python<'py>,
    path: PathBuf,
    data_key: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let options = LoadOptions {
        data_key,
        ..Default::default()
    };
    let ds = py(py_.detach(|| {
        Dataset::load(&path, &options)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("loading {}", path.display())))
    }))?;
    let d = PyDict::new(py_);
    d.set_item("data_key", &ds.data_key)?;
    d.set_item("source", ds.source.display().to_string())?;
    d.set_item("image_shape", ds.image_shape.to_vec())?;
    d.set_item("n_trials", ds.n_trials())?;
    d.set_item("n_neurons", ds.n_neurons())?;
    d.set_item("n_behaviors", ds.n_behaviors())?;
    d.set_item("images", f32_bytes(py_, &ds.images))?;
    d.set_item("responses", f32_bytes(py_, &ds.responses))?;
    d.set_item("behavior", ds.behavior.as_ref().map(|b| f32_bytes(py_, b)))?;
    d.set_item(
        "pupil_center",
        ds.pupil_center.as_ref().map(|p| f32_bytes(py_, p)),
    )?;
    let tiers: Vec<&str> = ds.tiers.iter().map(|t| t.as_str()).collect();
    d.set_item("tiers", tiers)?;
    d.set_item("frame_image_id", i64_bytes(py_, &ds.trials.frame_image_id))?;
    d.set_item(
        "trial_idx",
        ds.trials.trial_idx.as_ref().map(|t| i64_bytes(py_, t)),
    )?;
    let n = &ds.neurons;
    d.set_item("unit_ids", i64_bytes(py_, &n.unit_ids))?;
    d.set_item(
        "cell_motor_coordinates",
        n.cell_motor_coordinates
            .as_ref()
            .map(|c| c.iter().map(|p| p.to_vec()).collect::<Vec<_>>()),
    )?;
    d.set_item("area", n.area.clone())?;
    d.set_item("layer", n.layer.clone())?;
    d.set_item(
        "animal_ids",
        n.animal_ids.as_ref().map(|a| i64_bytes(py_, a)),
    )?;
    let mut repeats = Vec::new();
    for tier in [Tier::Test, Tier::FinalTest] {
        let groups = ds.repeat_groups(tier);
        if !groups.is_empty() {
            repeats.push((tier.as_str(), groups.len()));
        }
    }
    d.set_item("repeated_images", repeats)?;
    Ok(d)
}

/// Simulates a session into `out`; `config` is a JSON object of `SimulationConfig` fields (unset
/// ones take the defaults). Returns the summary as JSON.
#[pyfunction]
#[pyo3(signature = (out, config, force=false))]
fn simulate(py_: Python<'_>, out: PathBuf, config: &str, force: bool) -> PyResult<String> {
    let config: SimulationConfig = serde_json::from_str(config)
        .map_err(|e| PyValueError::new_err(format!("simulation options: {e}")))?;
    let summary = py(py_.detach(|| cortexfit::sim::simulate_with(&config, &out, force)))?;
    let mut value =
        serde_json::to_value(&summary).map_err(|e| PyValueError::new_err(e.to_string()))?;
    value["out"] = serde_json::Value::String(summary.out.display().to_string());
    json(&value)
}

/// The ground truth of a simulated dataset: JSON (without the rates) and the noise-free test
/// rates (f64 → f32 bytes, test trials × neurons).
#[pyfunction]
fn ground_truth<'py>(
    py_: Python<'py>,
    path: PathBuf,
) -> PyResult<(String, Bound<'py, pyo3::types::PyBytes>)> {
    let gt = py(py_.detach(|| GroundTruth::load(&path)))?;
    let rates: Vec<f32> = gt.test_rates.iter().map(|&v| v as f32).collect();
    Ok((json(&gt)?, f32_bytes(py_, &rates)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(ground_truth, m)?)?;
    Ok(())
}
