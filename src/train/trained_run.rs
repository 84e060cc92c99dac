//! Opening a finished (or running) run for evaluation and prediction.

use std::path::Path;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::datasets::PreparedSet;
use super::run_dir::RunDir;
use super::trainer::load_model_into;
use crate::config::RunConfig;
use crate::model::{Encoder, ReadoutInput};

/// What the model needs to know about each dataset to be rebuilt without loading the data
/// (`datasets.json` in the run directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFacts {
    pub data_key: String,
    pub n_neurons: usize,
    /// Image shape C, H, W.
    pub image_shape: [usize; 3],
    pub cell_motor_coordinates: Option<Vec<[f64; 3]>>,
    pub match_ids: Option<Vec<i64>>,
    /// Unit ids, in readout order.
    pub unit_ids: Vec<i64>,
}

impl DatasetFacts {
    /// The facts of a prepared dataset.
    pub fn of(set: &PreparedSet) -> Self {
        Self {
            data_key: set.data_key().to_string(),
            n_neurons: set.n_neurons(),
            image_shape: set.dataset.image_shape,
            cell_motor_coordinates: set.dataset.neurons.cell_motor_coordinates.clone(),
            match_ids: set.dataset.neurons.multi_match_id.clone(),
            unit_ids: set.dataset.neurons.unit_ids.clone(),
        }
    }

    fn readout_input(&self) -> ReadoutInput {
        ReadoutInput {
            data_key: self.data_key.clone(),
            n_neurons: self.n_neurons,
            cell_motor_coordinates: self.cell_motor_coordinates.clone(),
            match_ids: self.match_ids.clone(),
            mean_activity: None,
        }
    }
}

/// Writes `datasets.json`.
pub fn write_facts(run: &RunDir, sets: &[PreparedSet]) -> anyhow::Result<()> {
    let facts: Vec<DatasetFacts> = sets.iter().map(DatasetFacts::of).collect();
    crate::io::atomic_write(
        &run.root().join("datasets.json"),
        serde_json::to_string(&facts)?.as_bytes(),
    )
}

/// A trained model (best state, evaluation mode) with its configuration.
pub struct TrainedRun {
    pub run: RunDir,
    pub config: RunConfig,
    pub facts: Vec<DatasetFacts>,
    /// The best model in evaluation mode.
    pub model: Encoder,
    pub device: Device,
}

impl TrainedRun {
    /// Opens `run_dir` and loads its best model on `device` (no autodiff).
    pub fn open(run_dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let run = RunDir::new(run_dir);
        anyhow::ensure!(
            run.config().exists(),
            "{} is not a cortexfit run (no config.toml)",
            run_dir.display()
        );
        let config = RunConfig::from_file(&run.config(), &[])?;
        let facts_path = run.root().join("datasets.json");
        let facts: Vec<DatasetFacts> = serde_json::from_str(
            &std::fs::read_to_string(&facts_path)
                .with_context(|| format!("reading {}", facts_path.display()))?,
        )
        .with_context(|| format!("{}: not a list of dataset facts", facts_path.display()))?;
        anyhow::ensure!(!facts.is_empty(), "{}: no datasets", facts_path.display());
        let best = run.best_model();
        anyhow::ensure!(
            best.exists(),
            "{} has no best.safetensors yet (training has not evaluated a model)",
            run_dir.display()
        );
        let inputs: Vec<ReadoutInput> = facts.iter().map(DatasetFacts::readout_input).collect();
        let skeleton = Encoder::init(&config.model, facts[0].image_shape, &inputs, 0, device)
            .context("rebuilding the model of the run")?;
        let model = load_model_into(skeleton, &best)?.valid();
        Ok(Self {
            run,
            config,
            facts,
            model,
            device: device.clone(),
        })
    }

    /// Loads a dataset as the run prepared its training data (normalization, neuron subset) and
    /// returns it with the index of its readout. Its data key must be one the run was trained on.
    pub fn load_data(&self, path: &Path) -> anyhow::Result<(usize, PreparedSet)> {
        let set = PreparedSet::load(path, &self.config.data)?;
        let key = self
            .facts
            .iter()
            .position(|f| f.data_key == set.data_key())
            .with_context(|| {
                format!(
                    "{} has data key `{}`, but the run was trained on {}",
                    path.display(),
                    set.data_key(),
                    self.facts
                        .iter()
                        .map(|f| format!("`{}`", f.data_key))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let facts = &self.facts[key];
        anyhow::ensure!(
            set.dataset.neurons.unit_ids == facts.unit_ids,
            "{}: its neurons (unit ids) differ from those the run's readout `{}` was trained on",
            path.display(),
            facts.data_key
        );
        Ok((key, set))
    }
}

/// Tensor values as f64.
fn values(t: burn::tensor::TensorData) -> Vec<f64> {
    t.convert::<f64>().try_into_vec::<f64>().unwrap_or_default()
}

/// Evaluation readout positions μ (x, y) in grid coordinates of dataset `key`, one per neuron;
/// `None` when the readout has no positions (factorized readout).
pub fn readout_positions(model: &Encoder, key: usize) -> Option<Vec<[f64; 2]>> {
    let mu = model.readout_positions(key)?;
    let v = values(mu.into_data());
    Some(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
}

/// The covariance factor Σ of dataset `key` as (xx, xy, yx, yy) per neuron (diagonal for the
/// uncorrelated and isotropic types); `None` without a Gaussian readout.
pub fn readout_sigma(model: &Encoder, key: usize) -> Option<Vec<[f64; 4]>> {
    let sigma = model.readout_sigma(key)?;
    let [n, rows, cols] = sigma.dims();
    let v = values(sigma.into_data());
    let per = rows * cols;
    Some(
        (0..n)
            .map(|i| {
                let s = &v[i * per..(i + 1) * per];
                match (rows, cols) {
                    (2, 2) => [s[0], s[1], s[2], s[3]],
                    (1, 2) => [s[0], 0.0, 0.0, s[1]],
                    _ => [s[0], 0.0, 0.0, s[0]],
                }
            })
            .collect(),
    )
}
