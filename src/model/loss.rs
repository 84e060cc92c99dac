//! Poisson loss (reference: `neuralpredictors.measures.PoissonLoss`, v0.0.1 ε = 1e-12).
//!
//! For a predicted rate ŷ and an observed response y the negative Poisson log-likelihood, up
//! to terms that do not depend on ŷ, is ŷ − y·log(ŷ + ε); ε guards against log 0.

use burn::tensor::Tensor;

use crate::kernels;
use serde::{Deserialize, Serialize};

/// How the per-element losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossReduction {
    /// Σ over images and neurons (what every reference trainer uses, `avg=False`).
    #[default]
    Sum,
    /// Mean over images and neurons.
    Mean,
}

/// Poisson loss settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoissonLoss {
    /// Added inside the logarithm.
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub reduction: LossReduction,
}

fn default_eps() -> f64 {
    1e-12
}

impl Default for PoissonLoss {
    fn default() -> Self {
        Self {
            eps: default_eps(),
            reduction: LossReduction::Sum,
        }
    }
}

impl PoissonLoss {
    /// The loss of predicted rates `prediction` (B, N) against `target` (B, N); no gradient flows
    /// into the target.
    pub fn forward(&self, prediction: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
        poisson_loss(prediction, target, self.eps, self.reduction)
    }
}

/// Σ or mean of ŷ − y·log(ŷ + ε) (one fused op on flex, f32: [`kernels::poisson_loss`]).
pub fn poisson_loss(
    prediction: Tensor<2>,
    target: Tensor<2>,
    eps: f64,
    reduction: LossReduction,
) -> Tensor<1> {
    if kernels::uses_poisson_kernel(&prediction, &target) {
        let mean = reduction == LossReduction::Mean;
        return kernels::poisson_loss(prediction, target, eps, mean);
    }
    let elementwise = prediction
        .clone()
        .sub(target.detach().mul(prediction.add_scalar(eps).log()));
    match reduction {
        LossReduction::Sum => elementwise.sum(),
        LossReduction::Mean => elementwise.mean(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn poisson_loss_matches_the_formula() {
        let device = Device::flex();
        let y = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, 2.0], [1, 2]), &device);
        let t = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 2]), &device);
        let sum: f32 = poisson_loss(y.clone(), t.clone(), 1e-12, LossReduction::Sum).into_scalar();
        let expected = 0.5 - (0.5f32).ln() + 2.0;
        assert!((sum - expected).abs() < 1e-6, "{sum} vs {expected}");
        let mean: f32 = poisson_loss(y, t, 1e-12, LossReduction::Mean).into_scalar();
        assert!((mean - expected / 2.0).abs() < 1e-6);
    }

    /// ε is the reference's 1e-12, from `Default` and when a config leaves it out: a zero rate
    /// for an observed spike costs −ln(1e-12) ≈ 27.63, not inf.
    #[test]
    fn default_eps_is_the_reference_one() {
        use burn::tensor::DType;
        let device = Device::flex();
        let from_config: PoissonLoss = toml::from_str("reduction = \"mean\"").unwrap();
        assert_eq!(from_config.eps, 1e-12);
        assert_eq!(from_config.reduction, LossReduction::Mean);
        let loss = PoissonLoss::default();
        assert_eq!((loss.eps, loss.reduction), (1e-12, LossReduction::Sum));
        let f64s =
            |v: Vec<f64>| Tensor::<2>::from_data(TensorData::new(v, [1, 2]), (&device, DType::F64));
        let value: f64 = loss
            .forward(f64s(vec![0.0, 0.25]), f64s(vec![1.0, 0.0]))
            .into_scalar();
        let expected = -(1e-12f64).ln() + 0.25;
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        let mean: f64 = from_config
            .forward(f64s(vec![0.0, 0.25]), f64s(vec![1.0, 0.0]))
            .into_scalar();
        assert!((mean - expected / 2.0).abs() < 1e-12, "{mean}");
    }
}
