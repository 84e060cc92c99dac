//! ELU (`x` for x > 0, `eˣ − 1` otherwise) as one fused pass forward and one backward.
//!
//! Composed from burn primitives, ELU is five full-size passes forward (compare, clamp, exp,
//! subtract, select) and about as many backward, each writing a new activation-sized tensor;
//! after every core block that is a large share of a training step. Here the backward reads
//! only the saved output: dELU/dx = 1 where y > 0, y + 1 elsewhere.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::extension::values;

/// Elements per parallel task: large enough to amortise scheduling, small enough to balance.
const TASK: usize = 1 << 16;

/// ELU with α = 1 as a backend op with a fused backward.
#[backend_extension(Flex, Autodiff)]
pub trait EluBackend: Backend {
    /// `y = x` where `x > 0`, else `eˣ − 1`; same shape as `x`.
    fn fused_elu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// ELU of every value (α = 1).
pub fn elu_values(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(TASK)
        .zip(x.par_chunks(TASK))
        .for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = if v > 0.0 { v } else { v.exp_m1() };
            }
        });
    out
}

/// Input gradient of ELU from its output `y` and the output gradient.
pub fn elu_grad_values(y: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), grad.len());
    let mut out = vec![0.0f32; y.len()];
    out.par_chunks_mut(TASK)
        .zip(y.par_chunks(TASK).zip(grad.par_chunks(TASK)))
        .for_each(|(o, (y, g))| {
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                *o = if y > 0.0 { g } else { g * (y + 1.0) };
            }
        });
    out
}

impl EluBackend for Flex {
    fn fused_elu(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        FlexTensor::from_data(TensorData::new(elu_values(&values(&x)), shape))
    }
}

/// Backward step of [`EluBackend::fused_elu`]: keeps the forward output.
#[derive(Debug)]
struct EluBackward;

impl Backward<Flex, 1> for EluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad_out = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let y = ops.state;
            let grad = elu_grad_values(&values(&y), &values(&grad_out));
            let grad = FlexTensor::from_data(TensorData::new(grad, y.shape()));
            grads.register::<Flex>(node.id, grad);
        }
    }
}

impl<C: CheckpointStrategy> EluBackend for Autodiff<Flex, C> {
    fn fused_elu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match EluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = Flex::fused_elu(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_elu(x.into_primitive())),
        }
    }
}
