//! The batched in-silico objective: row b of a batch of images drives its own neuron n_b, and
//! the objective Σ_b response[b, n_b] has, per row, exactly the gradient of that neuron's
//! response with respect to that row's image. Many neurons are thus optimised (MEIs) or probed
//! (RF maps) in one forward and one backward pass.

use burn::tensor::{Tensor, TensorData};

use super::context::InputContext;
use super::ensemble::ModelEnsemble;

/// Each row's response of its neuron and the gradient with respect to its image.
pub struct RowGradients {
    /// Response of neuron `neurons[b]` to image b (model units).
    pub responses: Vec<f32>,
    /// d response / d image, rows × C·H·W, per unit of the **dataset's** image values.
    pub gradients: Vec<f32>,
}

/// Responses and input gradients of `neurons[b]` (readout indices of readout `key`) to the
/// images (rows × C·H·W, dataset units) of the batch. The caller has checked the ensemble
/// against `context` ([`ModelEnsemble::check`]) and the neuron indices.
pub fn row_gradients(
    ensemble: &ModelEnsemble,
    key: usize,
    context: &InputContext,
    images: &[f32],
    neurons: &[usize],
    n_neurons: usize,
) -> RowGradients {
    let [c, h, w] = context.image_shape;
    let b = neurons.len();
    debug_assert_eq!(images.len(), b * c * h * w);
    let device = ensemble.device();
    let x = Tensor::<4>::from_data(
        TensorData::new(context.to_model(images), [b, c, h, w]),
        device,
    )
    .require_grad();
    // Only the batch's neurons are read out: column k of `y` is neuron `neurons[k]`, so row b's
    // own neuron is on the diagonal (the same numbers as reading out all `n_neurons`).
    debug_assert!(neurons.iter().all(|&n| n < n_neurons));
    let y = ensemble.forward_neurons(x.clone(), key, context, neurons);
    let mut mask = vec![0f32; b * b];
    for row in 0..b {
        mask[row * b + row] = 1.0;
    }
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, b]), device);
    let picked = (y * mask).sum_dim(1);
    let responses: Vec<f32> = picked.clone().detach().into_data().iter::<f32>().collect();
    let grads = picked.sum().backward();
    let gain = context.input_gain() as f32;
    let gradients: Vec<f32> = match x.grad(&grads) {
        Some(g) => g.into_data().iter::<f32>().map(|v| v * gain).collect(),
        // No path from the input to the output (cannot happen for an encoder): zero gradient.
        None => vec![0.0; images.len()],
    };
    RowGradients {
        responses,
        gradients,
    }
}
