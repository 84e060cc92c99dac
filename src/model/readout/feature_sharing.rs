//! Feature sharing across scans: the same neuron recorded in several scans (matched by a
//! `multi_match_id`) should compute the same feature of the image, so matched neurons read with
//! one shared feature vector, each scaled per neuron (REFERENCE §2.1). The bank holds one (C)
//! column per sorted unique match id of the first dataset (the owner); only the owner's readout
//! is regularised, so the bank is penalised once, not once per scan.
//!
//! A negative match id (the data's −1) means **unmatched**: the neuron was not found in the other
//! scans, so it shares with nobody and gets a bank column of its own, appended after the matched
//! columns in dataset order, then neuron order. (neuralpredictors treats −1 as an ordinary id, so
//! all unmatched neurons of all scans would read one common feature vector.)

use burn::module::Param;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};

use super::gaussian::SharedFeatures;
use super::init_scheme::InitScheme;
use crate::model::tensor_util::param_from_f64;

/// Why features cannot be shared.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeatureSharingError {
    #[error(
        "feature sharing needs match ids for every dataset; data key `{0}` has none (meta/neurons/multi_match_id)"
    )]
    MissingMatchIds(String),
    #[error("data key `{data_key}`: {n_ids} match ids for {n_neurons} neurons")]
    Length {
        data_key: String,
        n_ids: usize,
        n_neurons: usize,
    },
    #[error(
        "data key `{data_key}`: neuron {neuron} has match id {id}, which the first dataset `{owner}` does not have; \
         keep only neurons matched in every dataset or mark unmatched neurons with match id -1"
    )]
    Unmatched {
        data_key: String,
        owner: String,
        neuron: usize,
        id: i64,
    },
}

/// Which bank column each neuron of each dataset uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SharingPlan {
    /// The match id of each bank column: the owner's sorted unique matched ids, then −1 once per
    /// unmatched neuron (its own column).
    pub unique_ids: Vec<i64>,
    /// Per dataset, in the given order; the first is the owner.
    pub per_dataset: Vec<SharedFeatures>,
}

/// Whether a match id marks an unmatched neuron (−1 in the data; any negative id).
pub fn is_unmatched(id: i64) -> bool {
    id < 0
}

/// Plans the bank from `(data_key, match_ids)` per dataset; the first dataset owns the bank.
/// Unmatched neurons (negative ids) each get a column of their own after the matched ones.
pub fn plan_sharing(datasets: &[(&str, &[i64])]) -> Result<SharingPlan, FeatureSharingError> {
    let Some((owner, owner_ids)) = datasets.first() else {
        return Ok(SharingPlan {
            unique_ids: vec![],
            per_dataset: vec![],
        });
    };
    let mut matched: Vec<i64> = owner_ids
        .iter()
        .copied()
        .filter(|&id| !is_unmatched(id))
        .collect();
    matched.sort_unstable();
    matched.dedup();
    let mut unique_ids = matched.clone();
    let per_dataset = datasets
        .iter()
        .enumerate()
        .map(|(d, (key, ids))| {
            let bank_index = ids
                .iter()
                .enumerate()
                .map(|(neuron, &id)| {
                    if is_unmatched(id) {
                        unique_ids.push(-1);
                        return Ok(unique_ids.len() - 1);
                    }
                    matched
                        .binary_search(&id)
                        .map_err(|_| FeatureSharingError::Unmatched {
                            data_key: key.to_string(),
                            owner: owner.to_string(),
                            neuron,
                            id,
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(SharedFeatures {
                bank_index,
                owner: d == 0,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SharingPlan {
        unique_ids,
        per_dataset,
    })
}

/// The shared bank (C, U): N(0, init_noise) (lurz2020) or 1/C (neuralpredictors).
pub fn init_bank(
    n_channels: usize,
    n_unique: usize,
    scheme: InitScheme,
    init_noise: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Param<Tensor<2>> {
    let values: Vec<f64> = match scheme {
        InitScheme::Lurz2020 => {
            let d = Normal::new(0.0, init_noise.max(0.0)).expect("finite init_noise");
            (0..n_channels * n_unique).map(|_| d.sample(rng)).collect()
        }
        InitScheme::Neuralpredictors => vec![1.0 / n_channels as f64; n_channels * n_unique],
    };
    param_from_f64(&values, [n_channels, n_unique], None, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_indexes_sorted_unique_ids_and_rejects_unmatched() {
        let a: &[i64] = &[7, 3, 9, 3];
        let b: &[i64] = &[9, 7];
        let plan = plan_sharing(&[("a", a), ("b", b)]).unwrap();
        assert_eq!(plan.unique_ids, vec![3, 7, 9]);
        assert_eq!(plan.per_dataset[0].bank_index, vec![1, 0, 2, 0]);
        assert!(plan.per_dataset[0].owner);
        assert_eq!(plan.per_dataset[1].bank_index, vec![2, 1]);
        assert!(!plan.per_dataset[1].owner);
        let c: &[i64] = &[5];
        let err = plan_sharing(&[("a", a), ("c", c)]).unwrap_err();
        assert!(matches!(err, FeatureSharingError::Unmatched { id: 5, .. }));
    }

    #[test]
    fn unmatched_neurons_get_their_own_columns() {
        let a: &[i64] = &[-1, 3, -1, 9];
        let b: &[i64] = &[9, -1, 3];
        let plan = plan_sharing(&[("a", a), ("b", b)]).unwrap();
        // Matched 3, 9; then a's two unmatched neurons, then b's one.
        assert_eq!(plan.unique_ids, vec![3, 9, -1, -1, -1]);
        assert_eq!(plan.per_dataset[0].bank_index, vec![2, 0, 3, 1]);
        assert_eq!(plan.per_dataset[1].bank_index, vec![1, 4, 0]);
        // 0 is an ordinary match id (only negative ids are unmatched): shared across scans.
        assert!(is_unmatched(-1) && !is_unmatched(0));
        let plan = plan_sharing(&[("a", &[0, -1][..]), ("b", &[0][..])]).unwrap();
        assert_eq!(plan.unique_ids, vec![0, -1]);
        assert_eq!(plan.per_dataset[1].bank_index, vec![0]);
    }
}
