//! Opening a finished (or running) run for evaluation and prediction: its configuration, the
//! neurons of each readout and its best model in evaluation mode.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::dir::RunDir;
use super::ensemble_file;
use crate::config::RunConfig;
use crate::data::{PreparedDataset, Tier};
use crate::model::Encoder;
use crate::model::tensor_util::to_f64_vec;

/// Which neurons each readout was trained on (`neurons.json` in the run directory), so that
/// evaluation can refuse a recording whose neurons differ from the readout's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadoutNeurons {
    pub data_key: String,
    /// Unit ids in readout order.
    pub unit_ids: Vec<i64>,
}

/// Writes `neurons.json`.
pub fn write_neurons(run: &RunDir, sets: &[PreparedDataset]) -> anyhow::Result<()> {
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

/// A trained model (best state, evaluation mode) with its configuration, or an ensemble of such
/// models (several runs of one configuration with different seeds, `run::ensemble`) whose
/// prediction is the mean of its members' predictions.
pub struct Run {
    /// The run directory (for an ensemble: the ensemble's directory).
    pub dir: RunDir,
    /// The configuration (of the first member for an ensemble; members differ only in seed).
    pub config: RunConfig,
    pub neurons: Vec<ReadoutNeurons>,
    /// The best model of each member, off the autodiff device (one for a single run).
    pub models: Vec<Encoder>,
    /// The run directory of each member (the run itself for a single run).
    pub member_dirs: Vec<std::path::PathBuf>,
    /// The seed of each member.
    pub member_seeds: Vec<u64>,
    pub device: Device,
}

impl Run {
    /// Opens a run or an ensemble (a folder with `ensemble.json`) and loads the best model of
    /// each member on `device`.
    pub fn open(path: &Path, device: &Device) -> anyhow::Result<Self> {
        if ensemble_file::is_ensemble(path) {
            return open_ensemble(path, device);
        }
        Self::open_single(path, device)
    }

    /// Opens one run directory (not an ensemble).
    pub fn open_single(run_dir: &Path, device: &Device) -> anyhow::Result<Self> {
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
        let model = crate::model::checkpoint::load(&best, device)
            .with_context(|| format!("reading the model checkpoint {}", best.display()))?
            .valid();
        Ok(Self {
            dir: run,
            member_seeds: vec![config.seed],
            config,
            neurons,
            models: vec![model],
            member_dirs: vec![run_dir.to_path_buf()],
            device: device.clone(),
        })
    }

    /// Loads a dataset as the run prepared its training data (normalization, neuron subset) and
    /// returns it with the index of its readout. Its data key must be one the run was trained on.
    pub fn load_data(&self, path: &Path) -> anyhow::Result<(usize, PreparedDataset)> {
        let set = PreparedDataset::load(path, &self.config.data)?;
        let key = self
            .model()
            .data_keys()
            .iter()
            .position(|k| k == set.data_key())
            .with_context(|| {
                format!(
                    "{} has data key `{}`, but the run was trained on {}",
                    path.display(),
                    set.data_key(),
                    self.model()
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

    /// The model of a single run; the first member's model for an ensemble (use it for what
    /// does not depend on the member: data keys, input shape, what the model needs).
    pub fn model(&self) -> &Encoder {
        &self.models[0]
    }

    /// Whether this is an ensemble of several runs.
    pub fn is_ensemble(&self) -> bool {
        self.models.len() > 1
    }

    /// The data keys of the readouts, in order.
    pub fn data_keys(&self) -> &[String] {
        self.model().data_keys()
    }

    /// The readout index of `data_key`.
    pub fn key_of(&self, data_key: &str) -> anyhow::Result<usize> {
        self.data_keys()
            .iter()
            .position(|k| k == data_key)
            .with_context(|| {
                format!(
                    "the run has no readout `{data_key}`; its data keys are {}",
                    self.data_keys().join(", ")
                )
            })
    }

    /// Predictions (trials × neurons, row-major) of readout `key` for the trials `trials` of a
    /// prepared dataset, in evaluation mode; the mean over members for an ensemble.
    pub fn predict(&self, key: usize, set: &PreparedDataset, trials: &[usize]) -> Vec<f32> {
        let per_member: Vec<Vec<f32>> = (0..self.models.len())
            .map(|m| self.predict_member(m, key, set, trials))
            .collect();
        mean_of(per_member)
    }

    /// Predictions of member `member` alone (see [`Run::predict`]).
    pub fn predict_member(
        &self,
        member: usize,
        key: usize,
        set: &PreparedDataset,
        trials: &[usize],
    ) -> Vec<f32> {
        let _kernels = crate::kernels::use_kernels(self.config.kernels);
        crate::train::evaluation::predict(
            &self.models[member],
            key,
            set,
            trials,
            self.config.trainer.batch_size,
            &self.device,
        )
    }

    /// Predictions (trials × neurons) of readout `key` for the trials of `tier`.
    pub fn predict_tier(
        &self,
        key: usize,
        set: &PreparedDataset,
        tier: Tier,
    ) -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
        let trials = set.tier(tier);
        anyhow::ensure!(
            !trials.is_empty(),
            "{} (data key {}) has no trials in tier `{tier}`",
            set.dataset.source.display(),
            set.data_key()
        );
        let predictions = self.predict(key, set, &trials);
        Ok((trials, predictions))
    }

    /// Predictions (trials × neurons) of readout `key` for arrays given in the model's input
    /// units (as the run's normalization leaves them): `images` trials × C × H × W, `behavior`
    /// trials × behaviour variables and `pupil_center` trials × 2 where the model needs them.
    pub fn predict_arrays(
        &self,
        key: usize,
        images: &[f32],
        behavior: Option<&[f32]>,
        pupil_center: Option<&[f32]>,
    ) -> anyhow::Result<Vec<f32>> {
        let _kernels = crate::kernels::use_kernels(self.config.kernels);
        let model = self.model();
        let [c, h, w] = model.facts.in_shape;
        let per = c * h * w;
        anyhow::ensure!(key < self.data_keys().len(), "no readout with index {key}");
        anyhow::ensure!(
            images.len().is_multiple_of(per),
            "images: {} values are not a whole number of {c}×{h}×{w} images",
            images.len()
        );
        let trials = images.len() / per;
        let k = model.facts.n_behaviors;
        let check = |name: &str, values: Option<&[f32]>, needed: bool, width: usize| match values {
            None if needed => anyhow::bail!(
                "{name}: the model needs it ({width} values per trial) but none was given"
            ),
            Some(v) if v.len() != trials * width => anyhow::bail!(
                "{name}: {} values, expected {trials} trials × {width}",
                v.len()
            ),
            _ => Ok(()),
        };
        check("behavior", behavior, model.needs_behavior(), k)?;
        check("pupil_center", pupil_center, model.needs_pupil_center(), 2)?;
        let batch = self.config.trainer.batch_size.max(1);
        let n = model.readout.n_neurons(key);
        let mut per_member = Vec::with_capacity(self.models.len());
        for member in &self.models {
            let mut out = Vec::with_capacity(trials * n);
            for start in (0..trials).step_by(batch) {
                let end = (start + batch).min(trials);
                let b = end - start;
                let tensor = |v: &[f32], cols: usize| {
                    Tensor::<2>::from_data(
                        TensorData::new(v[start * cols..end * cols].to_vec(), [b, cols]),
                        &self.device,
                    )
                };
                let x = Tensor::<4>::from_data(
                    TensorData::new(images[start * per..end * per].to_vec(), [b, c, h, w]),
                    &self.device,
                );
                let y = member.forward_eval(
                    x,
                    key,
                    behavior
                        .filter(|_| member.needs_behavior())
                        .map(|v| tensor(v, k)),
                    pupil_center
                        .filter(|_| member.needs_pupil_center())
                        .map(|v| tensor(v, 2)),
                );
                out.extend(y.into_data().iter::<f32>());
            }
            per_member.push(out);
        }
        Ok(mean_of(per_member))
    }
}

/// The element-wise mean of equally long vectors (the first one itself when there is one).
fn mean_of(mut vectors: Vec<Vec<f32>>) -> Vec<f32> {
    if vectors.len() == 1 {
        return vectors.pop().unwrap_or_default();
    }
    let n = vectors.len() as f64;
    let len = vectors.first().map_or(0, Vec::len);
    (0..len)
        .map(|i| (vectors.iter().map(|v| v[i] as f64).sum::<f64>() / n) as f32)
        .collect()
}

/// Evaluation readout positions μ (x, y) in grid coordinates of dataset `key`, one per neuron;
/// `None` when the readout has no positions (factorized readout).
pub fn readout_positions(model: &Encoder, key: usize) -> Option<Vec<[f64; 2]>> {
    let mu = model.readout.positions(key)?;
    let v = to_f64_vec(mu);
    Some(v.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
}

/// The covariance factor Σ of dataset `key` as (xx, xy, yx, yy) per neuron (diagonal for the
/// uncorrelated and isotropic types); `None` without a Gaussian readout.
pub fn readout_sigma(model: &Encoder, key: usize) -> Option<Vec<[f64; 4]>> {
    let sigma = model.readout.sigma(key)?;
    let [n, rows, cols] = sigma.dims();
    let v = to_f64_vec(sigma);
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

/// Whether the run in `dir` stopped for its wall-clock budget (`trainer.max_minutes`), or may
/// have: no readable `summary.json` (an unfinished or imported run) counts as yes.
fn time_budget_may_have_acted(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<super::summary::Summary>(&text).ok())
        .is_none_or(|s| s.stop_reason == crate::train::StopReason::TimeBudget)
}

/// Opens every member; they must share the configuration except for the seed, the data keys and
/// the neurons of every readout.
pub fn check_members(members: &[PathBuf], device: &Device) -> anyhow::Result<Vec<Run>> {
    let runs = members
        .iter()
        .map(|m| {
            Run::open_single(m, device).with_context(|| format!("ensemble member {}", m.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &runs[0];
    let mut seeds = std::collections::BTreeSet::new();
    for (run, path) in runs.iter().zip(members) {
        // Members differ in their seed and, when transferred, in the core file they started from.
        let mut config = run.config.clone();
        config.seed = first.config.seed;
        config.transfer = first.config.transfer.clone();
        // A wall-clock budget that stopped neither fit did not shape either of them.
        if config.trainer.max_minutes != first.config.trainer.max_minutes
            && !time_budget_may_have_acted(path)
            && !time_budget_may_have_acted(&members[0])
        {
            config.trainer.max_minutes = first.config.trainer.max_minutes;
        }
        anyhow::ensure!(
            config == first.config,
            "ensemble member {} has another configuration than {} (members may differ only in \
             `seed`, `[transfer]` and a `trainer.max_minutes` that stopped none of them)",
            path.display(),
            members[0].display()
        );
        anyhow::ensure!(
            run.neurons == first.neurons,
            "ensemble member {} has other readouts (data keys or neurons) than {}",
            path.display(),
            members[0].display()
        );
        anyhow::ensure!(
            seeds.insert(run.config.seed),
            "ensemble member {} repeats seed {} (an ensemble of identical fits)",
            path.display(),
            run.config.seed
        );
    }
    Ok(runs)
}

/// Opens the ensemble at `dir`: the members' models, averaged by [`Run::predict`].
pub fn open_ensemble(dir: &Path, device: &Device) -> anyhow::Result<Run> {
    let paths = ensemble_file::members(dir)?;
    let runs = check_members(&paths, device)?;
    let mut runs = runs.into_iter();
    let first = runs.next().context("an ensemble has members")?;
    let mut ensemble = Run {
        dir: RunDir::new(dir),
        ..first
    };
    for run in runs {
        ensemble.models.extend(run.models);
        ensemble.member_dirs.extend(run.member_dirs);
        ensemble.member_seeds.extend(run.member_seeds);
    }
    Ok(ensemble)
}
