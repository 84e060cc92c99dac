//! One training step of the reference `standard_trainer` (REFERENCE.md §1.7): the batch
//! objective, Adam, and the in-place parameter constraints. The fitting loop ([`super::fit`]) and
//! `cortexfit bench` both use these functions, so the benchmark times exactly what training runs.
//!
//! Objective of a batch of B trials of a dataset with M trials in all tiers:
//! `√(M/B) · Σ_{b,n} Poisson(ŷ_bn, y_bn) + regularizers(dataset)` (the scale is 1 with
//! `trainer.scale_loss = false`), with `Poisson(ŷ, y) = ŷ − y·log(ŷ + ε)`.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use crate::config::TrainerConfig;
use crate::data::BatchTensors;
use crate::model::loss::{LossReduction, poisson_loss};
use crate::model::{Encoder, SamplingRng};

/// ε inside the Poisson loss's logarithm (neuralpredictors v0.0.1, used by Lurz 2020).
pub const POISSON_EPS: f64 = 1e-12;

/// The loss scale √(M/B) for a batch of `batch` trials of a dataset with `n_trials` trials in all
/// tiers (1 when `scale_loss` is off). B is the actual batch size, so a short last batch gets a
/// larger scale.
pub fn loss_scale(n_trials: usize, batch: usize, scale_loss: bool) -> f64 {
    if scale_loss {
        (n_trials as f64 / batch.max(1) as f64).sqrt()
    } else {
        1.0
    }
}

/// The optimized objective of one batch and its unscaled Poisson part.
pub struct BatchObjective {
    /// `scale · Σ Poisson + regularizers` (shape [1]), to call `backward` on.
    pub objective: Tensor<1>,
    /// `Σ Poisson` over the batch (shape [1]).
    pub poisson: Tensor<1>,
}

/// Forward pass in training mode (batch statistics, readout positions sampled from `noise`) and
/// the objective of dataset `key`'s `batch`, with loss scale `scale` (see [`loss_scale`]).
pub fn batch_objective(
    model: &mut Encoder,
    key: usize,
    batch: BatchTensors,
    scale: f64,
    noise: &mut SamplingRng,
) -> BatchObjective {
    let prediction = model.forward(
        batch.images,
        key,
        batch.behavior,
        batch.pupil_center,
        Some(noise),
    );
    let poisson = poisson_loss(prediction, batch.responses, POISSON_EPS, LossReduction::Sum);
    let objective = poisson.clone().mul_scalar(scale) + model.regularizer(key);
    BatchObjective { objective, poisson }
}

/// Adam as the trainer configures it (PyTorch's defaults, ε = `trainer.adam_epsilon`).
pub fn adam(trainer: &TrainerConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_epsilon(trainer.adam_epsilon as f32)
        .init()
}

/// One Adam step with learning rate `lr`, then the reference's in-place constraints (readout μ
/// and point-pooled grids clamped to [−1, 1], factorized positivity).
pub fn optimizer_step(
    optimizer: &mut ModuleOptimizer,
    lr: f64,
    model: Encoder,
    grads: GradientsParams,
) -> Encoder {
    optimizer.step(lr, model, grads).clamp_parameters()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_scale_is_sqrt_of_all_trials_over_the_actual_batch() {
        assert_eq!(loss_scale(4994, 64, true), (4994.0f64 / 64.0).sqrt());
        // A short last batch of 8 trials gets a larger scale, not the nominal batch size's.
        assert_eq!(loss_scale(4994, 8, true), (4994.0f64 / 8.0).sqrt());
        assert!(loss_scale(4994, 8, true) > loss_scale(4994, 64, true));
        assert_eq!(loss_scale(4994, 64, false), 1.0);
        assert_eq!(loss_scale(100, 100, true), 1.0);
    }
}
