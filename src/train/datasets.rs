//! The recordings of a run, loaded, subset and normalized once, and cut into batches.

use std::path::Path;

use anyhow::Context;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;

use crate::config::DataConfig;
use crate::data::{Dataset, LoadOptions, Tier};

/// One recording ready for training: normalized arrays in memory plus its tiers.
pub struct PreparedSet {
    /// The recording as loaded (raw values, metadata).
    pub dataset: Dataset,
    /// Normalized images, trials × C·H·W.
    images: Vec<f32>,
    /// Normalized responses, trials × neurons.
    responses: Vec<f32>,
    /// Normalized behaviour, trials × 3.
    behavior: Option<Vec<f32>>,
    /// Normalized pupil position, trials × 2.
    pupil_center: Option<Vec<f32>>,
}

/// The tensors of one batch.
pub struct BatchTensors {
    /// Images (B, C, H, W).
    pub images: Tensor<4>,
    /// Normalized responses (B, N).
    pub responses: Tensor<2>,
    /// Behaviour (B, 3), when the recording has it.
    pub behavior: Option<Tensor<2>>,
    /// Pupil position (B, 2), when the recording has it.
    pub pupil_center: Option<Tensor<2>>,
}

impl PreparedSet {
    /// Loads `path`, applies the subsets of `config` and normalizes.
    pub fn load(path: &Path, config: &DataConfig) -> anyhow::Result<Self> {
        let dataset = Dataset::load(path, &LoadOptions::default())
            .with_context(|| format!("loading dataset {}", path.display()))?;
        Self::prepare(dataset, config)
    }

    /// Applies the subsets of `config` to a loaded recording and normalizes it.
    pub fn prepare(mut dataset: Dataset, config: &DataConfig) -> anyhow::Result<Self> {
        if let Some(split) = &config.neuron_split {
            let ids = crate::train::transfer::split_neurons(&dataset.neurons.unit_ids, split);
            dataset = dataset
                .subset_neurons(&crate::data::NeuronSelection::UnitIds(ids))
                .with_context(|| format!("data.neuron_split on {}", dataset.data_key))?;
        }
        if let Some(n) = config.neuron_n {
            dataset = dataset
                .subset_neurons(&crate::data::NeuronSelection::Random {
                    count: n,
                    seed: config.subset_seed,
                })
                .with_context(|| format!("data.neuron_n = {n} on {}", dataset.data_key))?;
        }
        if let Some(m) = config.image_n {
            dataset = dataset
                .subset_train_images(m, config.subset_seed)
                .with_context(|| format!("data.image_n = {m} on {}", dataset.data_key))?;
        }
        if config.normalize {
            let prepared = crate::data::PreparedDataset::new(
                dataset,
                &crate::data::NormalizeOptions {
                    exclude_images: config.exclude_images,
                    ..Default::default()
                },
            )?;
            return Ok(Self {
                dataset: prepared.dataset,
                images: prepared.images,
                responses: prepared.responses,
                behavior: prepared.behavior,
                pupil_center: prepared.pupil_center,
            });
        }
        let images = dataset.images.clone();
        let responses = dataset.responses.clone();
        let behavior = dataset.behavior.clone();
        let pupil_center = dataset.pupil_center.clone();
        Ok(Self {
            dataset,
            images,
            responses,
            behavior,
            pupil_center,
        })
    }

    /// The data key (one readout per key).
    pub fn data_key(&self) -> &str {
        &self.dataset.data_key
    }

    /// Neurons in this recording.
    pub fn n_neurons(&self) -> usize {
        self.dataset.n_neurons()
    }

    /// Behaviour variables per trial (0 when the recording has none).
    pub fn n_behaviors(&self) -> usize {
        match &self.behavior {
            Some(b) if self.n_trials() > 0 => b.len() / self.n_trials(),
            _ => 0,
        }
    }

    /// The recording has the pupil position of every trial.
    pub fn has_pupil_center(&self) -> bool {
        self.pupil_center.is_some()
    }

    /// Trials of all tiers (the M of the √(M/B) loss scale).
    pub fn n_trials(&self) -> usize {
        self.dataset.n_trials()
    }

    /// Trial indices of a tier, in file order.
    pub fn tier(&self, tier: Tier) -> Vec<usize> {
        self.dataset.tier_indices(tier)
    }

    /// The training trials shuffled with `rng` and cut into batches (the last may be smaller).
    pub fn train_batches(
        &self,
        batch_size: usize,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Vec<Vec<usize>> {
        let mut idx = self.tier(Tier::Train);
        idx.shuffle(rng);
        idx.chunks(batch_size).map(<[usize]>::to_vec).collect()
    }

    /// Normalized images of `trials` (trials × C·H·W).
    pub fn images_of(&self, trials: &[usize]) -> Vec<f32> {
        let [c, h, w] = self.dataset.image_shape;
        gather(&self.images, c * h * w, trials)
    }

    /// Normalized responses of `trials` (trials × neurons).
    pub fn responses_of(&self, trials: &[usize]) -> Vec<f32> {
        gather(&self.responses, self.n_neurons(), trials)
    }

    /// Per-neuron mean normalized response over `trials`.
    pub fn mean_response(&self, trials: &[usize]) -> Vec<f32> {
        let n = self.n_neurons();
        let mut mean = vec![0f64; n];
        for &t in trials {
            for (m, &r) in mean.iter_mut().zip(&self.responses[t * n..(t + 1) * n]) {
                *m += r as f64;
            }
        }
        mean.iter()
            .map(|m| (m / trials.len().max(1) as f64) as f32)
            .collect()
    }

    /// The tensors of a batch of trials on `device`.
    pub fn batch(&self, trials: &[usize], device: &Device) -> BatchTensors {
        let [c, h, w] = self.dataset.image_shape;
        let b = trials.len();
        let n = self.n_neurons();
        let tensor2 = |values: Vec<f32>, cols: usize| {
            Tensor::<2>::from_data(TensorData::new(values, [b, cols]), device)
        };
        BatchTensors {
            images: Tensor::<4>::from_data(
                TensorData::new(gather(&self.images, c * h * w, trials), [b, c, h, w]),
                device,
            ),
            responses: tensor2(gather(&self.responses, n, trials), n),
            behavior: self.behavior.as_ref().map(|v| {
                let k = self.n_behaviors();
                tensor2(gather(v, k, trials), k)
            }),
            pupil_center: self
                .pupil_center
                .as_ref()
                .map(|v| tensor2(gather(v, 2, trials), 2)),
        }
    }
}

/// Rows `trials` of a row-major array with `width` columns.
fn gather(values: &[f32], width: usize, trials: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(trials.len() * width);
    for &t in trials {
        out.extend_from_slice(&values[t * width..(t + 1) * width]);
    }
    out
}

/// Loads every dataset of a run; data keys must be distinct.
pub fn load_all(paths: &[String], config: &DataConfig) -> anyhow::Result<Vec<PreparedSet>> {
    anyhow::ensure!(
        !paths.is_empty(),
        "no dataset given: pass --data DIR_OR_ZIP (or set data.paths in the config)"
    );
    let mut sets: Vec<PreparedSet> = Vec::new();
    for path in paths {
        let set = PreparedSet::load(Path::new(path), config)?;
        if let Some(other) = sets.iter().find(|s| s.data_key() == set.data_key()) {
            anyhow::bail!(
                "datasets {} and {} have the same data key `{}`; one readout per key needs distinct keys",
                other.dataset.source.display(),
                path,
                set.data_key()
            );
        }
        sets.push(set);
    }
    Ok(sets)
}
