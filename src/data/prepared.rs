//! A recording ready for fitting: the `[data]` subsets applied, every field normalized once, and
//! the trial batches of training and evaluation cut from it. This is the one dataset pipeline of
//! cortexfit: training, evaluation, prediction, transfer and the in-silico tools all read
//! recordings through [`PreparedDataset`].

use std::path::Path;

use anyhow::Context;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::seq::SliceRandom;

use super::{
    DataConfig, DataError, Dataset, LoadOptions, NeuronSelection, NormalizeOptions, Normalizer,
    Tier,
};

/// A batch of normalized trials as plain arrays (row-major).
#[derive(Debug, Clone)]
pub struct Batch {
    pub trial_indices: Vec<usize>,
    pub batch_size: usize,
    /// B·C·H·W.
    pub images: Vec<f32>,
    /// B·N.
    pub responses: Vec<f32>,
    /// B·(behaviour variables), when the recording has behaviour.
    pub behavior: Option<Vec<f32>>,
    /// B·2, when the recording has the pupil position.
    pub pupil_center: Option<Vec<f32>>,
}

/// The tensors of one batch.
pub struct BatchTensors {
    /// Images (B, C, H, W).
    pub images: Tensor<4>,
    /// Normalized responses (B, N).
    pub responses: Tensor<2>,
    /// Behaviour (B, K), when the recording has it.
    pub behavior: Option<Tensor<2>>,
    /// Pupil position (B, 2), when the recording has it.
    pub pupil_center: Option<Tensor<2>>,
}

/// A recording with responses, behaviour and pupil position normalized once, from which batches
/// are cut. Images are kept once, as loaded (`dataset.images`), and normalized when a batch is
/// cut: their z-score is one multiply-add per pixel, while a second, normalized copy would
/// double the largest array (736 MB for the real scan's 4994 trials at 144×256).
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    /// The recording as loaded (raw values, metadata), after the neuron / image subsets.
    pub dataset: Dataset,
    /// The transform applied (the identity when `data.normalize = false`).
    pub normalizer: Normalizer,
    /// Normalized responses, trials × neurons.
    pub responses: Vec<f32>,
    /// Normalized behaviour, trials × behaviour variables.
    pub behavior: Option<Vec<f32>>,
    /// Normalized pupil position, trials × 2.
    pub pupil_center: Option<Vec<f32>>,
}

/// Apply an f64 row transform to f32 data in row-aligned chunks (no full-size f64 copy).
fn apply(x: &[f32], width: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f32> {
    let rows = (1 << 16) / width.max(1) + 1;
    let mut out = Vec::with_capacity(x.len());
    let mut wide = Vec::with_capacity(rows * width);
    for chunk in x.chunks(rows * width.max(1)) {
        wide.clear();
        wide.extend(chunk.iter().map(|&v| v as f64));
        out.extend(f(&wide).into_iter().map(|v| v as f32));
    }
    out
}

/// `dataset` with only the selected neurons, without copying its images (a neuron subset leaves
/// them as they are).
fn subset_neurons(mut dataset: Dataset, selection: &NeuronSelection) -> Result<Dataset, DataError> {
    let images = std::mem::take(&mut dataset.images);
    let mut out = dataset.subset_neurons(selection)?;
    out.images = images;
    Ok(out)
}

/// Rows `trials` of a row-major array with `width` columns.
fn gather(values: &[f32], width: usize, trials: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(trials.len() * width);
    for &t in trials {
        out.extend_from_slice(&values[t * width..(t + 1) * width]);
    }
    out
}

impl PreparedDataset {
    /// Normalizes `dataset` with statistics from its own `meta/statistics`.
    pub fn new(dataset: Dataset, options: &NormalizeOptions) -> Result<PreparedDataset, DataError> {
        let normalizer = Normalizer::from_statistics(&dataset.statistics, options)?;
        Ok(Self::with_normalizer(dataset, normalizer))
    }

    /// `dataset` transformed by `normalizer`.
    pub fn with_normalizer(dataset: Dataset, normalizer: Normalizer) -> PreparedDataset {
        let n_behaviors = dataset.n_behaviors();
        let responses = apply(&dataset.responses, dataset.n_neurons(), |x| {
            normalizer.responses(x)
        });
        let behavior = dataset
            .behavior
            .as_ref()
            .map(|b| apply(b, n_behaviors, |x| normalizer.behavior(x)));
        let pupil_center = dataset
            .pupil_center
            .as_ref()
            .map(|p| apply(p, 2, |x| normalizer.pupil_center(x)));
        PreparedDataset {
            dataset,
            normalizer,
            responses,
            behavior,
            pupil_center,
        }
    }

    /// Loads `path` (images rescaled by `data.image_scale` or to `data.image_size`) and
    /// prepares it as `config` says.
    pub fn load(path: &Path, config: &DataConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let options = LoadOptions {
            image_scale: Some(config.image_scale),
            image_size: config.image_size,
            ..LoadOptions::default()
        };
        let dataset = Dataset::load(path, &options)
            .with_context(|| format!("loading dataset {}", path.display()))?;
        Self::prepare(dataset, config)
    }

    /// Applies the neuron selection (areas, layers, unit-id lists) and the neuron and image
    /// subsets of `config` to a loaded recording, then normalizes it (or not, with
    /// `normalize = false`). `data.image_scale` is applied by [`Self::load`], while reading.
    pub fn prepare(mut dataset: Dataset, config: &DataConfig) -> anyhow::Result<Self> {
        config.validate()?;
        if let Some(ids) = super::selected_unit_ids(&dataset, config)? {
            dataset = subset_neurons(dataset, &NeuronSelection::UnitIds(ids))?;
        }
        if let Some(split) = &config.neuron_split {
            let ids = split.unit_ids(&dataset.neurons.unit_ids);
            let key = dataset.data_key.clone();
            dataset = subset_neurons(dataset, &NeuronSelection::UnitIds(ids))
                .with_context(|| format!("data.neuron_split on {key}"))?;
        }
        if let Some(n) = config.neuron_n {
            let key = dataset.data_key.clone();
            dataset = subset_neurons(
                dataset,
                &NeuronSelection::Random {
                    count: n,
                    seed: config.subset_seed,
                },
            )
            .with_context(|| format!("data.neuron_n = {n} on {key}"))?;
        }
        if let Some(m) = config.image_n {
            dataset = dataset
                .subset_train_images(m, config.subset_seed)
                .with_context(|| format!("data.image_n = {m} on {}", dataset.data_key))?;
        }
        if config.normalize {
            let options = NormalizeOptions {
                exclude_images: config.exclude_images,
                subtract_behavior_mean: config.subtract_behavior_mean,
            };
            return Ok(Self::new(dataset, &options)?);
        }
        let identity = Normalizer::identity(dataset.n_neurons());
        Ok(Self::with_normalizer(dataset, identity))
    }

    /// Loads every dataset of a run; data keys must be distinct.
    pub fn load_all(paths: &[String], config: &DataConfig) -> anyhow::Result<Vec<Self>> {
        anyhow::ensure!(
            !paths.is_empty(),
            "no dataset given: pass --data DIR_OR_ZIP (or set data.paths in the config)"
        );
        let mut sets: Vec<Self> = Vec::new();
        for path in paths {
            let set = Self::load(Path::new(path), config)?;
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

    /// The data key (one readout per key).
    pub fn data_key(&self) -> &str {
        &self.dataset.data_key
    }

    /// Neurons in this recording.
    pub fn n_neurons(&self) -> usize {
        self.dataset.n_neurons()
    }

    /// Trials of all tiers (the M of the √(M/B) loss scale).
    pub fn n_trials(&self) -> usize {
        self.dataset.n_trials()
    }

    /// Behaviour variables per trial (0 when the recording has none).
    pub fn n_behaviors(&self) -> usize {
        self.dataset.n_behaviors()
    }

    /// The recording has the pupil position of every trial.
    pub fn has_pupil_center(&self) -> bool {
        self.pupil_center.is_some()
    }

    /// Trial indices of a tier, in file order.
    pub fn tier(&self, tier: Tier) -> Vec<usize> {
        self.dataset.tier_indices(tier)
    }

    /// Train-tier trials shuffled by `rng`, cut into batches of `batch_size` (last may be smaller).
    pub fn train_batches(&self, batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
        let mut idx = self.tier(Tier::Train);
        idx.shuffle(rng);
        idx.chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Trials of `tier` in order, cut into batches of `batch_size`.
    pub fn eval_batches(&self, tier: Tier, batch_size: usize) -> Vec<Vec<usize>> {
        self.tier(tier)
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// One batch per unique image of `tier` (all its repeats), sorted by image id.
    pub fn repeat_batches(&self, tier: Tier) -> Vec<Vec<usize>> {
        self.dataset
            .repeat_groups(tier)
            .into_iter()
            .map(|(_, g)| g)
            .collect()
    }

    /// Normalized images of `trials` (trials × C·H·W), z-scored from the raw images as they
    /// are gathered (in f64, like the other fields).
    pub fn images_of(&self, trials: &[usize]) -> Vec<f32> {
        let raw = gather(&self.dataset.images, self.dataset.image_len(), trials);
        match self.normalizer.image_stats {
            Some(_) => apply(&raw, self.dataset.image_len(), |x| {
                self.normalizer.images(x)
            }),
            None => raw,
        }
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

    /// The normalized trials `trials` as arrays.
    pub fn batch(&self, trials: &[usize]) -> Batch {
        let k = self.n_behaviors();
        Batch {
            trial_indices: trials.to_vec(),
            batch_size: trials.len(),
            images: self.images_of(trials),
            responses: self.responses_of(trials),
            behavior: self.behavior.as_ref().map(|b| gather(b, k, trials)),
            pupil_center: self.pupil_center.as_ref().map(|p| gather(p, 2, trials)),
        }
    }

    /// The normalized trials `trials` as tensors on `device`.
    pub fn batch_tensors(&self, trials: &[usize], device: &Device) -> BatchTensors {
        let [c, h, w] = self.dataset.image_shape;
        let (b, n, k) = (trials.len(), self.n_neurons(), self.n_behaviors());
        let batch = self.batch(trials);
        let tensor2 = |values: Vec<f32>, cols: usize| {
            Tensor::<2>::from_data(TensorData::new(values, [b, cols]), device)
        };
        BatchTensors {
            images: Tensor::<4>::from_data(TensorData::new(batch.images, [b, c, h, w]), device),
            responses: tensor2(batch.responses, n),
            behavior: batch.behavior.map(|v| tensor2(v, k)),
            pupil_center: batch.pupil_center.map(|v| tensor2(v, 2)),
        }
    }
}
