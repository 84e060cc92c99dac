//! Which neurons an in-silico experiment is run on: all of them, the best N by a score (e.g.
//! validation correlation), or explicit unit ids.

/// A choice of neurons of one readout.
#[derive(Debug, Clone, PartialEq)]
pub enum NeuronChoice {
    /// Every neuron, in readout order.
    All,
    /// The `count` neurons with the highest `scores` (one per neuron, e.g. validation
    /// correlation; NaN counts as lowest), best first; ties keep readout order.
    Top { count: usize, scores: Vec<f64> },
    /// These unit ids, in the given order.
    UnitIds(Vec<i64>),
}

/// Why a choice cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("neuron selection: {given} scores given for {expected} neurons")]
    Scores { given: usize, expected: usize },
    #[error("neuron selection: unit id {0} is not among the readout's neurons")]
    UnknownUnit(i64),
    #[error("neuron selection: no neurons chosen")]
    Empty,
}

impl NeuronChoice {
    /// Readout indices of the chosen neurons, for a readout whose neurons have `unit_ids`.
    pub fn resolve(&self, unit_ids: &[i64]) -> Result<Vec<usize>, SelectionError> {
        let chosen: Vec<usize> = match self {
            NeuronChoice::All => (0..unit_ids.len()).collect(),
            NeuronChoice::Top { count, scores } => {
                if scores.len() != unit_ids.len() {
                    return Err(SelectionError::Scores {
                        given: scores.len(),
                        expected: unit_ids.len(),
                    });
                }
                let key = |i: usize| {
                    if scores[i].is_nan() {
                        f64::NEG_INFINITY
                    } else {
                        scores[i]
                    }
                };
                let mut order: Vec<usize> = (0..unit_ids.len()).collect();
                order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
                order.truncate(*count);
                order
            }
            NeuronChoice::UnitIds(ids) => ids
                .iter()
                .map(|id| {
                    unit_ids
                        .iter()
                        .position(|u| u == id)
                        .ok_or(SelectionError::UnknownUnit(*id))
                })
                .collect::<Result<_, _>>()?,
        };
        if chosen.is_empty() {
            return Err(SelectionError::Empty);
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_unit_ids_and_errors() {
        let ids = [10, 11, 12, 13];
        let top = NeuronChoice::Top {
            count: 2,
            scores: vec![0.1, f64::NAN, 0.9, 0.5],
        };
        assert_eq!(top.resolve(&ids).unwrap(), vec![2, 3]);
        assert_eq!(
            NeuronChoice::UnitIds(vec![13, 10]).resolve(&ids).unwrap(),
            vec![3, 0]
        );
        assert_eq!(NeuronChoice::All.resolve(&ids).unwrap().len(), 4);
        let err = NeuronChoice::UnitIds(vec![7]).resolve(&ids).unwrap_err();
        assert!(err.to_string().contains("unit id 7"), "{err}");
    }
}
