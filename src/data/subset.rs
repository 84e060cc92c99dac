//! Neuron and training-image subsets for the data-efficiency experiments (Lurz 2020 Fig. 3).

use super::{DataError, Dataset, MetaArray, Tier};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};

/// Which neurons to keep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum NeuronSelection {
    /// `count` neurons drawn at random with `seed` (kept in their original order).
    Random { count: usize, seed: u64 },
    /// Exactly these unit ids, in this order.
    UnitIds(Vec<i64>),
}

fn pick<T: Clone>(v: &[T], idx: &[usize], width: usize) -> Vec<T> {
    idx.iter()
        .flat_map(|&i| v[i * width..(i + 1) * width].iter().cloned())
        .collect()
}

fn pick_meta(m: &MetaArray, idx: &[usize], n: usize) -> MetaArray {
    let w = |len: usize| len / n.max(1);
    match m {
        MetaArray::Int(v) => MetaArray::Int(pick(v, idx, w(v.len()))),
        MetaArray::Float(v) => MetaArray::Float(pick(v, idx, w(v.len()))),
        MetaArray::Str(v) => MetaArray::Str(pick(v, idx, w(v.len()))),
    }
}

impl Dataset {
    /// Keep only the selected neurons (responses, neuron meta and response statistics).
    pub fn subset_neurons(&self, selection: &NeuronSelection) -> Result<Dataset, DataError> {
        let n = self.n_neurons();
        let idx: Vec<usize> = match selection {
            NeuronSelection::Random { count, seed } => {
                if *count > n {
                    return Err(DataError::Subset(format!(
                        "{count} neurons requested, dataset {} has {n}",
                        self.data_key
                    )));
                }
                let mut v = sample(&mut ChaCha8Rng::seed_from_u64(*seed), n, *count).into_vec();
                v.sort_unstable();
                v
            }
            NeuronSelection::UnitIds(ids) => {
                let pos: HashMap<i64, usize> = self
                    .neurons
                    .unit_ids
                    .iter()
                    .enumerate()
                    .map(|(i, &u)| (u, i))
                    .collect();
                ids.iter()
                    .map(|u| {
                        pos.get(u).copied().ok_or_else(|| {
                            DataError::Subset(format!(
                                "unit id {u} not in dataset {}",
                                self.data_key
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let mut out = self.clone();
        let t = self.n_trials();
        out.responses = (0..t)
            .flat_map(|r| idx.iter().map(move |&j| self.responses[r * n + j]))
            .collect();
        let nm = &self.neurons;
        out.neurons.unit_ids = pick(&nm.unit_ids, &idx, 1);
        out.neurons.cell_motor_coordinates =
            nm.cell_motor_coordinates.as_ref().map(|v| pick(v, &idx, 1));
        out.neurons.area = nm.area.as_ref().map(|v| pick(v, &idx, 1));
        out.neurons.layer = nm.layer.as_ref().map(|v| pick(v, &idx, 1));
        out.neurons.animal_ids = nm.animal_ids.as_ref().map(|v| pick(v, &idx, 1));
        out.neurons.multi_match_id = nm.multi_match_id.as_ref().map(|v| pick(v, &idx, 1));
        out.neurons.other = nm
            .other
            .iter()
            .map(|(k, m)| (k.clone(), pick_meta(m, &idx, n)))
            .collect();
        for stats in [&mut out.statistics.all, &mut out.statistics.stimulus_frame] {
            if let Some(r) = stats.get_mut("responses") {
                for v in [
                    Some(&mut r.mean),
                    Some(&mut r.std),
                    r.min.as_mut(),
                    r.max.as_mut(),
                    r.median.as_mut(),
                ]
                .into_iter()
                .flatten()
                {
                    if v.len() == n {
                        *v = pick(v, &idx, 1);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Keep `m` unique training images drawn with `seed` (all their trials); the other train
    /// trials are dropped, other tiers untouched.
    pub fn subset_train_images(&self, m: usize, seed: u64) -> Result<Dataset, DataError> {
        let train = self.tier_indices(Tier::Train);
        let unique: Vec<i64> = train
            .iter()
            .map(|&i| self.trials.frame_image_id[i])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if m > unique.len() {
            return Err(DataError::Subset(format!(
                "{m} training images requested, dataset {} has {}",
                self.data_key,
                unique.len()
            )));
        }
        let chosen: BTreeSet<i64> = sample(&mut ChaCha8Rng::seed_from_u64(seed), unique.len(), m)
            .into_iter()
            .map(|k| unique[k])
            .collect();
        let keep: Vec<usize> = (0..self.n_trials())
            .filter(|&i| {
                self.tiers[i] != Tier::Train || chosen.contains(&self.trials.frame_image_id[i])
            })
            .collect();
        Ok(self.select_trials(&keep))
    }

    /// A copy holding only trials `idx` (in that order).
    pub fn select_trials(&self, idx: &[usize]) -> Dataset {
        let t = self.n_trials();
        let mut out = self.clone();
        out.images = pick(&self.images, idx, self.image_len());
        out.responses = pick(&self.responses, idx, self.n_neurons());
        out.behavior = self.behavior.as_ref().map(|v| pick(v, idx, 3));
        out.pupil_center = self.pupil_center.as_ref().map(|v| pick(v, idx, 2));
        out.tiers = pick(&self.tiers, idx, 1);
        out.trials.frame_image_id = pick(&self.trials.frame_image_id, idx, 1);
        out.trials.trial_idx = self.trials.trial_idx.as_ref().map(|v| pick(v, idx, 1));
        out.trials.other = self
            .trials
            .other
            .iter()
            .map(|(k, m)| (k.clone(), pick_meta(m, idx, t)))
            .collect();
        out
    }
}
