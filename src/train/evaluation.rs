//! Predictions in evaluation mode and the early-stopping objective.
//!
//! Evaluation mode = batch norm with its running statistics and Gaussian readouts reading at μ
//! (no sampling), as the reference's `model.eval()`.

use burn::tensor::Device;

use crate::data::{PreparedDataset, Tier};
use crate::model::Encoder;

/// Predictions (trials × neurons, row-major, in the order of `trials`) of dataset `key` in
/// evaluation mode (running BN statistics, readouts at μ). For speed pass the model moved off
/// the autodiff device (`model.valid()`) and a matching `device`.
pub fn predict(
    model: &Encoder,
    key: usize,
    set: &PreparedDataset,
    trials: &[usize],
    batch_size: usize,
    device: &Device,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(trials.len() * set.n_neurons());
    for chunk in trials.chunks(batch_size.max(1)) {
        let batch = set.batch_tensors(chunk, device);
        let y = model.forward_eval(batch.images, key, batch.behavior, batch.pupil_center);
        out.extend(
            y.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("predictions are f32"),
        );
    }
    out
}

/// Per-neuron single-trial correlations on `tier` of every dataset, concatenated over datasets
/// (NaN → 0, as the reference's `get_correlations`). Datasets without that tier contribute nothing.
pub fn tier_correlations(
    model: &Encoder,
    sets: &[PreparedDataset],
    tier: Tier,
    batch_size: usize,
    device: &Device,
) -> Vec<f64> {
    let mut all = Vec::new();
    for (key, set) in sets.iter().enumerate() {
        let trials = set.tier(tier);
        if trials.is_empty() {
            continue;
        }
        let predictions = predict(model, key, set, &trials, batch_size, device);
        let responses = set.responses_of(&trials);
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let corr = crate::metrics::single_trial_correlation(
            &to64(&responses),
            &to64(&predictions),
            set.n_neurons(),
        );
        all.extend(corr.into_iter().map(|c| if c.is_nan() { 0.0 } else { c }));
    }
    all
}

/// The early-stopping objective: mean validation single-trial correlation over all neurons of
/// all datasets. NaN when no dataset has a validation tier.
pub fn validation_objective(
    model: &Encoder,
    sets: &[PreparedDataset],
    batch_size: usize,
    device: &Device,
) -> f64 {
    let corr = tier_correlations(model, sets, Tier::Validation, batch_size, device);
    if corr.is_empty() {
        return f64::NAN;
    }
    corr.iter().sum::<f64>() / corr.len() as f64
}
