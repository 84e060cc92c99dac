//! Normalized copies of a dataset and the trial batches used for training and evaluation.

use super::{DataError, Dataset, NormalizeOptions, Normalizer, Tier};
use rand::Rng;
use rand::seq::SliceRandom;

/// A batch of normalized trials, ready to become tensors.
#[derive(Debug, Clone)]
pub struct Batch {
    pub trial_indices: Vec<usize>,
    pub batch_size: usize,
    /// B·C·H·W.
    pub images: Vec<f32>,
    /// B·N.
    pub responses: Vec<f32>,
    pub behavior: Option<Vec<f32>>,
    pub pupil_center: Option<Vec<f32>>,
}

/// A dataset with every field normalized once, from which batches are cut.
#[derive(Debug, Clone)]
pub struct PreparedDataset {
    pub dataset: Dataset,
    pub normalizer: Normalizer,
    pub images: Vec<f32>,
    pub responses: Vec<f32>,
    pub behavior: Option<Vec<f32>>,
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

fn gather(x: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| x[i * width..(i + 1) * width].iter().copied())
        .collect()
}

impl PreparedDataset {
    /// Normalize `dataset` with statistics from its own `meta/statistics`.
    pub fn new(dataset: Dataset, options: &NormalizeOptions) -> Result<PreparedDataset, DataError> {
        let normalizer = Normalizer::from_statistics(&dataset.statistics, options)?;
        let images = apply(&dataset.images, dataset.image_len(), |x| {
            normalizer.images(x)
        });
        let responses = apply(&dataset.responses, dataset.n_neurons(), |x| {
            normalizer.responses(x)
        });
        let behavior = dataset
            .behavior
            .as_ref()
            .map(|b| apply(b, 3, |x| normalizer.behavior(x)));
        let pupil_center = dataset
            .pupil_center
            .as_ref()
            .map(|p| apply(p, 2, |x| normalizer.pupil_center(x)));
        Ok(PreparedDataset {
            dataset,
            normalizer,
            images,
            responses,
            behavior,
            pupil_center,
        })
    }

    /// The normalized trials `idx`.
    pub fn batch(&self, idx: &[usize]) -> Batch {
        let n = self.dataset.n_neurons();
        Batch {
            trial_indices: idx.to_vec(),
            batch_size: idx.len(),
            images: gather(&self.images, self.dataset.image_len(), idx),
            responses: gather(&self.responses, n, idx),
            behavior: self.behavior.as_ref().map(|b| gather(b, 3, idx)),
            pupil_center: self.pupil_center.as_ref().map(|p| gather(p, 2, idx)),
        }
    }

    /// Train-tier trials shuffled by `rng`, cut into batches of `batch_size` (last may be smaller).
    pub fn train_batches(&self, batch_size: usize, rng: &mut impl Rng) -> Vec<Vec<usize>> {
        let mut idx = self.dataset.tier_indices(Tier::Train);
        idx.shuffle(rng);
        idx.chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Trials of `tier` in order, cut into batches of `batch_size`.
    pub fn eval_batches(&self, tier: Tier, batch_size: usize) -> Vec<Vec<usize>> {
        self.dataset
            .tier_indices(tier)
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
}
