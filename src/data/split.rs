//! Halves of a recording's neurons (`data.neuron_split`): the "new neurons of the same animal"
//! setting of transfer experiments (Lurz et al. 2020 §4), where a core trained on half A is
//! reused for half B.

use serde::{Deserialize, Serialize};

/// One half of a dataset's neurons, by a seeded permutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronSplit {
    /// `a`: the first ⌊N/2⌋ neurons of the permutation; `b`: the others.
    pub half: NeuronHalf,
    /// Seed of the permutation; keep it fixed for every fit that must see the same halves.
    #[serde(default)]
    pub seed: u64,
}

/// Which half of a [`NeuronSplit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeuronHalf {
    A,
    B,
}

impl NeuronSplit {
    /// The unit ids of this half of `unit_ids` (in their original order).
    pub fn unit_ids(&self, unit_ids: &[i64]) -> Vec<i64> {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..unit_ids.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(self.seed));
        let n_a = unit_ids.len() / 2;
        let mut chosen: Vec<usize> = match self.half {
            NeuronHalf::A => order[..n_a].to_vec(),
            NeuronHalf::B => order[n_a..].to_vec(),
        };
        chosen.sort_unstable();
        chosen.into_iter().map(|i| unit_ids[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neuron_halves_are_disjoint_complete_and_seeded() {
        let ids: Vec<i64> = (100..111).collect();
        let half = |half, seed| NeuronSplit { half, seed }.unit_ids(&ids);
        let (a, b) = (half(NeuronHalf::A, 7), half(NeuronHalf::B, 7));
        assert_eq!((a.len(), b.len()), (5, 6));
        let mut all = [a.clone(), b.clone()].concat();
        all.sort();
        assert_eq!(all, ids);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "original order kept");
        assert_eq!(a, half(NeuronHalf::A, 7));
        assert_ne!(a, half(NeuronHalf::A, 8));
        let s: NeuronSplit = toml::from_str("half = \"b\"\nseed = 3").unwrap();
        assert_eq!(
            s,
            NeuronSplit {
                half: NeuronHalf::B,
                seed: 3
            }
        );
    }
}
