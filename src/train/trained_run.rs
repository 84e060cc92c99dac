//! Opening a finished (or running) run for evaluation and prediction.

use std::path::Path;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::datasets::PreparedSet;
use super::run_dir::RunDir;
use super::trainer::load_model;
use crate::config::RunConfig;
use crate::model::Encoder;

/// Which neurons each readout was trained on (`neurons.json` in the run directory), so that
/// evaluation can refuse a recording whose neurons differ from the readout's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadoutNeurons {
    pub data_key: String,
    /// Unit ids in readout order.
    pub unit_ids: Vec<i64>,
}

/// Writes `neurons.json`.
pub fn write_neurons(run: &RunDir, sets: &[PreparedSet]) -> anyhow::Result<()> {
    let neurons: Vec<ReadoutNeurons> = sets
        .iter()
        .map(|s| ReadoutNeurons {
            data_key: s.data_key().to_string(),
            unit_ids: s.dataset.neurons.unit_ids.clone(),
        })
        .collect();
    crate::io::atomic_write(
        &run.root().join("neurons.json"),
        serde_json::to_string(&neurons)?.as_bytes(),
    )
}

/// A trained model (best state, evaluation mode) with its configuration.
pub struct TrainedRun {
    pub run: RunDir,
    pub config: RunConfig,
    pub neurons: Vec<ReadoutNeurons>,
    /// The best model, off the autodiff device.
    pub model: Encoder,
    pub device: Device,
}

impl TrainedRun {
    /// Opens `run_dir` and loads its best model on `device`.
    pub fn open(run_dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let run = RunDir::new(run_dir);
        anyhow::ensure!(
            run.config().exists(),
            "{} is not a cortexfit run (no config.toml)",
            run_dir.display()
        );
        let config = RunConfig::from_file(&run.config(), &[])?;
        let neurons_path = run.root().join("neurons.json");
        let neurons: Vec<ReadoutNeurons> = serde_json::from_str(
            &std::fs::read_to_string(&neurons_path)
                .with_context(|| format!("reading {}", neurons_path.display()))?,
        )
        .with_context(|| format!("{}: not a list of readout neurons", neurons_path.display()))?;
        let best = run.best_model();
        anyhow::ensure!(
            best.exists(),
            "{} has no best.safetensors yet (training has not evaluated a model)",
            run_dir.display()
        );
        let model = load_model(&best, device)?.valid();
        Ok(Self {
            run,
            config,
            neurons,
            model,
            device: device.clone(),
        })
    }

    /// Loads a dataset as the run prepared its training data (normalization, neuron subset) and
    /// returns it with the index of its readout. Its data key must be one the run was trained on.
    pub fn load_data(&self, path: &Path) -> anyhow::Result<(usize, PreparedSet)> {
        let set = PreparedSet::load(path, &self.config.data)?;
        let key = self
            .model
            .data_keys()
            .iter()
            .position(|k| k == set.data_key())
            .with_context(|| {
                format!(
                    "{} has data key `{}`, but the run was trained on {}",
                    path.display(),
                    set.data_key(),
                    self.model
                        .data_keys()
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        if let Some(trained) = self.neurons.iter().find(|n| n.data_key == set.data_key()) {
            anyhow::ensure!(
                set.dataset.neurons.unit_ids == trained.unit_ids,
                "{}: its neurons (unit ids) differ from those the run's readout `{}` was trained on",
                path.display(),
                trained.data_key
            );
        }
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
    let mu = model.readout.positions(key)?;
    let v = values(mu.into_data());
    Some(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
}

/// The covariance factor Σ of dataset `key` as (xx, xy, yx, yy) per neuron (diagonal for the
/// uncorrelated and isotropic types); `None` without a Gaussian readout.
pub fn readout_sigma(model: &Encoder, key: usize) -> Option<Vec<[f64; 4]>> {
    let sigma = model.readout.sigma(key)?;
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
