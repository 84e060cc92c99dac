//! The Poisson loss `L = Σ ŷ − y·ln(ŷ + ε)` (or its mean) as one op: one parallel pass forward,
//! one backward (`∂L/∂ŷ = 1 − y / (ŷ + ε)`), instead of five single-threaded burn ops over the
//! batch × neurons predictions each way.
//!
//! Each element's term is computed in f32 as burn's ops compute it; the terms are summed in f64
//! in fixed chunks, the chunk sums in order, so the loss does not depend on the thread count
//! (and is closer to the exact sum than a running f32 sum).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use super::extension::{flex_tensor, values};

/// Elements per parallel task (and per partial sum).
const CHUNK: usize = 1 << 14;

/// `Σ ŷ − y·ln(ŷ + ε)` over all elements, or its mean where `mean`.
pub fn forward(prediction: &[f32], target: &[f32], eps: f32, mean: bool) -> f32 {
    assert_eq!(prediction.len(), target.len(), "prediction and target");
    let partial: Vec<f64> = prediction
        .par_chunks(CHUNK)
        .zip(target.par_chunks(CHUNK))
        .map(|(p, y)| {
            p.iter()
                .zip(y)
                .map(|(&p, &y)| f64::from(p - y * (p + eps).ln()))
                .sum()
        })
        .collect();
    let total: f64 = partial.iter().sum();
    if mean {
        (total / prediction.len() as f64) as f32
    } else {
        total as f32
    }
}

/// `∂L/∂ŷ` times the loss's gradient `grad`: `g·(1 − y / (ŷ + ε))` with `g = grad` (sum) or
/// `grad / len` (mean).
pub fn backward(prediction: &[f32], target: &[f32], eps: f32, mean: bool, grad: f32) -> Vec<f32> {
    assert_eq!(prediction.len(), target.len(), "prediction and target");
    let g = if mean {
        grad / prediction.len() as f32
    } else {
        grad
    };
    let mut out = vec![0.0f32; prediction.len()];
    out.par_chunks_mut(CHUNK)
        .zip(prediction.par_chunks(CHUNK).zip(target.par_chunks(CHUNK)))
        .for_each(|(out, (p, y))| {
            for ((o, &p), &y) in out.iter_mut().zip(p).zip(y) {
                *o = g * (1.0 - y / (p + eps));
            }
        });
    out
}

/// The Poisson loss as a backend op with its backward.
#[backend_extension(Flex, Autodiff)]
pub trait PoissonLossBackend: Backend {
    /// `[1]`: Σ (or mean, where `mean`) of `ŷ − y·ln(ŷ + ε)` over `prediction` ŷ and `target` y
    /// of one shape (no gradient flows into the target).
    fn poisson_loss(
        prediction: FloatTensor<Self>,
        target: FloatTensor<Self>,
        eps: f32,
        mean: bool,
    ) -> FloatTensor<Self>;
}

impl PoissonLossBackend for Flex {
    fn poisson_loss(
        prediction: FlexTensor,
        target: FlexTensor,
        eps: f32,
        mean: bool,
    ) -> FlexTensor {
        let loss = forward(&values(&prediction), &values(&target), eps, mean);
        flex_tensor(vec![loss], [1])
    }
}

/// Backward step of [`PoissonLossBackend::poisson_loss`]: the prediction and target, ε, mean.
#[derive(Debug)]
struct PoissonLossBackward;

impl Backward<Flex, 1> for PoissonLossBackward {
    type State = (FlexTensor, FlexTensor, f32, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (prediction, target, eps, mean) = ops.state;
        if let Some(node) = node {
            let grad = values(&grad)[0];
            let out = backward(&values(&prediction), &values(&target), eps, mean, grad);
            grads.register::<Flex>(node.id, flex_tensor(out, prediction.shape()));
        }
    }
}

impl<C: CheckpointStrategy> PoissonLossBackend for Autodiff<Flex, C> {
    fn poisson_loss(
        prediction: FloatTensor<Self>,
        target: FloatTensor<Self>,
        eps: f32,
        mean: bool,
    ) -> FloatTensor<Self> {
        let target = target.into_primitive();
        match PoissonLossBackward
            .prepare::<C>([prediction.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let prediction = prediction.into_primitive();
                let out = Flex::poisson_loss(prediction.clone(), target.clone(), eps, mean);
                prep.finish((prediction, target, eps, mean), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::poisson_loss(
                prediction.into_primitive(),
                target,
                eps,
                mean,
            )),
        }
    }
}

/// Whether [`poisson_loss`] runs on these operands (flex, f32, fast kernels on, one shape, not
/// empty).
pub fn uses_poisson_kernel(prediction: &Tensor<2>, target: &Tensor<2>) -> bool {
    let all_f32 = [prediction.dtype(), target.dtype()] == [DType::F32; 2];
    prediction.dims() == target.dims()
        && prediction.shape().num_elements() > 0
        && all_f32
        && super::enabled()
        && super::on_flex(prediction)
}

/// `[1]`: Σ (or mean, where `mean`) of `ŷ − y·ln(ŷ + ε)` with ε rounded to f32, the gradient
/// into the prediction only. Only where [`uses_poisson_kernel`] says so.
pub fn poisson_loss(prediction: Tensor<2>, target: Tensor<2>, eps: f64, mean: bool) -> Tensor<1> {
    assert!(
        uses_poisson_kernel(&prediction, &target),
        "poisson_loss: unsupported operands (check uses_poisson_kernel first)"
    );
    Tensor::from_dispatch(<Dispatch as PoissonLossBackend>::poisson_loss(
        prediction.into_dispatch(),
        target.detach().into_dispatch(),
        eps as f32,
        mean,
    ))
}
