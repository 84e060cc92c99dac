//! Round-robin over several datasets within one epoch (neuralpredictors' `LongCycler`) and the
//! gradient-accumulation rhythm that goes with it.
//!
//! With K datasets (scans or animals, one readout each) and `max_b` = the most training batches
//! of any of them, an epoch is K·max_b steps; step t uses dataset t mod K and that dataset's next
//! batch. A dataset with fewer batches starts over within the epoch. The reference wraps each
//! loader in `itertools.cycle`, which replays the batches of the first pass in the same order
//! (no reshuffle within an epoch); we do the same. Each epoch draws a new shuffle.
//!
//! The optimizer steps after every `accumulate` batches (default K: one batch of every dataset
//! per step); batches left over at the end of an epoch are dropped with the gradients, as the
//! reference's `zero_grad` at the start of the next epoch does.

/// One step of an epoch: which dataset, which of its batches, and whether the optimizer steps
/// after this batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleStep {
    /// Index of the dataset (data key) this batch comes from.
    pub dataset: usize,
    /// Index into that dataset's list of batches for this epoch.
    pub batch: usize,
    /// Run the optimizer after accumulating this batch's gradient.
    pub optimizer_step: bool,
}

/// The schedule of one epoch for datasets with `batches_per_dataset[k]` training batches each,
/// stepping the optimizer every `accumulate` batches (`None` = number of datasets).
///
/// Datasets with zero batches are skipped entirely (they contribute nothing to training).
pub fn long_cycle(batches_per_dataset: &[usize], accumulate: Option<usize>) -> Vec<CycleStep> {
    let active: Vec<usize> = (0..batches_per_dataset.len())
        .filter(|&k| batches_per_dataset[k] > 0)
        .collect();
    let k = active.len();
    if k == 0 {
        return Vec::new();
    }
    let max_batches = active
        .iter()
        .map(|&d| batches_per_dataset[d])
        .max()
        .unwrap_or(0);
    let accumulate = accumulate.unwrap_or(k).max(1);
    (0..k * max_batches)
        .map(|t| {
            let dataset = active[t % k];
            CycleStep {
                dataset,
                batch: (t / k) % batches_per_dataset[dataset],
                optimizer_step: (t + 1) % accumulate == 0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dataset_steps_after_every_batch() {
        let steps = long_cycle(&[3], None);
        assert_eq!(steps.len(), 3);
        assert!(steps.iter().all(|s| s.dataset == 0 && s.optimizer_step));
        assert_eq!(
            steps.iter().map(|s| s.batch).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn smaller_datasets_repeat_and_one_step_per_round() {
        // Dataset 0 has 4 batches, dataset 1 has 2, dataset 2 has 3: 12 steps.
        let steps = long_cycle(&[4, 2, 3], None);
        assert_eq!(steps.len(), 12);
        let order: Vec<(usize, usize)> = steps.iter().map(|s| (s.dataset, s.batch)).collect();
        assert_eq!(
            order,
            vec![
                (0, 0),
                (1, 0),
                (2, 0),
                (0, 1),
                (1, 1),
                (2, 1),
                (0, 2),
                (1, 0),
                (2, 2),
                (0, 3),
                (1, 1),
                (2, 0)
            ]
        );
        let step_at: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.optimizer_step)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(step_at, vec![2, 5, 8, 11]);
    }

    #[test]
    fn custom_accumulation_drops_the_remainder_and_empty_datasets_are_skipped() {
        let steps = long_cycle(&[5], Some(2));
        assert_eq!(
            steps.iter().filter(|s| s.optimizer_step).count(),
            2,
            "5 batches, a step every 2 → the 5th gradient is dropped"
        );
        assert!(!steps[4].optimizer_step);
        let steps = long_cycle(&[2, 0, 1], None);
        assert!(steps.iter().all(|s| s.dataset != 1));
        assert_eq!(steps.len(), 4);
        assert!(long_cycle(&[0, 0], None).is_empty());
    }
}
