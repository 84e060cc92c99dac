//! The Gaussian readout's sampled positions in training as one op, forward and backward:
//! `p[b, n] = clamp(μ[n] + Σ[n] · z[b, n], −1, 1)` for the mean positions μ `[neurons, 2]`, the
//! covariance factors Σ `[neurons, 2, 2]` (full), `[neurons, 1, 2]` (uncorrelated: the diagonal)
//! or `[neurons, 1, 1]` (isotropic: one spread), and one standard-normal draw z `[batch, neurons,
//! 2]` per image and neuron. The gradient passes the clamp only where −1 < μ + Σz < 1 strictly
//! (the reference's, as `model::readout::bilinear::clamp_positions`).
//!
//! Composed from burn ops this is a dozen single-threaded passes over batch × neurons × 2 (× 2
//! for a full Σ) values forward and backward, about a twentieth of a two-thread training step for
//! lurz2020; here the forward runs image by image and the backward block of neurons by block of
//! neurons in parallel, each value computed once.
//!
//! The forward gives burn's numbers exactly (the same products and sums in the same order); the
//! gradients sum over images in order within each neuron, so they do not depend on the thread
//! count.

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

/// Neurons per task of the backward pass.
const NEURON_BLOCK: usize = 512;

/// The form of Σ, read from its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// `[neurons, 2, 2]`: offset_c = Σ_c0·z_0 + Σ_c1·z_1.
    Full,
    /// `[neurons, 1, 2]`: offset_c = σ_c·z_c.
    Diagonal,
    /// `[neurons, 1, 1]`: offset_c = σ·z_c.
    Isotropic,
}

impl Spread {
    /// The form of a Σ of shape `[neurons, rows, cols]`, if it is one of the three.
    pub fn of(dims: [usize; 3]) -> Option<Spread> {
        match dims[1..] {
            [2, 2] => Some(Spread::Full),
            [1, 2] => Some(Spread::Diagonal),
            [1, 1] => Some(Spread::Isotropic),
            _ => None,
        }
    }

    /// Values of Σ per neuron.
    fn len(self) -> usize {
        match self {
            Spread::Full => 4,
            Spread::Diagonal => 2,
            Spread::Isotropic => 1,
        }
    }

    /// μ + Σz (before the clamp) for one neuron's μ, Σ and draw.
    #[inline(always)]
    fn unclamped(self, mu: &[f32], sigma: &[f32], z: &[f32]) -> [f32; 2] {
        match self {
            Spread::Full => [
                mu[0] + (sigma[0] * z[0] + sigma[1] * z[1]),
                mu[1] + (sigma[2] * z[0] + sigma[3] * z[1]),
            ],
            Spread::Diagonal => [mu[0] + sigma[0] * z[0], mu[1] + sigma[1] * z[1]],
            Spread::Isotropic => [mu[0] + sigma[0] * z[0], mu[1] + sigma[0] * z[1]],
        }
    }
}

/// The sampled positions `[batch, neurons, 2]` (clamped to [−1, 1]) for μ `[neurons, 2]`, Σ
/// `[neurons, spread.len()]` and the draws z `[batch, neurons, 2]`.
pub fn forward(spread: Spread, mu: &[f32], sigma: &[f32], z: &[f32]) -> Vec<f32> {
    let neurons = check_lengths(spread, mu, sigma, z);
    let mut out = vec![0.0f32; z.len()];
    out.par_chunks_mut((2 * neurons).max(1))
        .zip(z.par_chunks((2 * neurons).max(1)))
        .for_each(|(out, z)| {
            for (((p, z), mu), sigma) in out
                .chunks_exact_mut(2)
                .zip(z.chunks_exact(2))
                .zip(mu.chunks_exact(2))
                .zip(sigma.chunks_exact(spread.len()))
            {
                let [x, y] = spread.unclamped(mu, sigma, z);
                p[0] = x.clamp(-1.0, 1.0);
                p[1] = y.clamp(-1.0, 1.0);
            }
        });
    out
}

/// Gradients of μ `[neurons, 2]` and Σ `[neurons, spread.len()]` given the gradient `grad` of the
/// positions `[batch, neurons, 2]`.
pub fn backward(
    spread: Spread,
    (mu, sigma, z): (&[f32], &[f32], &[f32]),
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let neurons = check_lengths(spread, mu, sigma, z);
    assert_eq!(grad.len(), z.len(), "position gradient");
    let batch = z.len() / (2 * neurons).max(1);
    let width = spread.len();
    let mut grad_mu = vec![0.0f32; mu.len()];
    let mut grad_sigma = vec![0.0f32; sigma.len()];
    grad_mu
        .par_chunks_mut(2 * NEURON_BLOCK)
        .zip(grad_sigma.par_chunks_mut(width * NEURON_BLOCK))
        .enumerate()
        .for_each(|(block, (grad_mu, grad_sigma))| {
            let first = block * NEURON_BLOCK;
            let count = grad_mu.len() / 2;
            let mu = &mu[2 * first..2 * (first + count)];
            let sigma = &sigma[width * first..width * (first + count)];
            for image in 0..batch {
                let row = 2 * (image * neurons + first)..2 * (image * neurons + first + count);
                for ((((g, z), mu), sigma), (g_mu, g_sigma)) in grad[row.clone()]
                    .chunks_exact(2)
                    .zip(z[row].chunks_exact(2))
                    .zip(mu.chunks_exact(2))
                    .zip(sigma.chunks_exact(width))
                    .zip(
                        grad_mu
                            .chunks_exact_mut(2)
                            .zip(grad_sigma.chunks_exact_mut(width)),
                    )
                {
                    let p = spread.unclamped(mu, sigma, z);
                    let inside = |v: f32| v > -1.0 && v < 1.0;
                    let g = [
                        if inside(p[0]) { g[0] } else { 0.0 },
                        if inside(p[1]) { g[1] } else { 0.0 },
                    ];
                    g_mu[0] += g[0];
                    g_mu[1] += g[1];
                    match spread {
                        Spread::Full => {
                            g_sigma[0] += g[0] * z[0];
                            g_sigma[1] += g[0] * z[1];
                            g_sigma[2] += g[1] * z[0];
                            g_sigma[3] += g[1] * z[1];
                        }
                        Spread::Diagonal => {
                            g_sigma[0] += g[0] * z[0];
                            g_sigma[1] += g[1] * z[1];
                        }
                        Spread::Isotropic => g_sigma[0] += g[0] * z[0] + g[1] * z[1],
                    }
                }
            }
        });
    (grad_mu, grad_sigma)
}

/// Checks the operands' lengths against each other; returns the number of neurons.
fn check_lengths(spread: Spread, mu: &[f32], sigma: &[f32], z: &[f32]) -> usize {
    let neurons = mu.len() / 2;
    assert_eq!(mu.len(), 2 * neurons, "μ: two coordinates per neuron");
    assert_eq!(
        sigma.len(),
        spread.len() * neurons,
        "Σ: {spread:?} per neuron"
    );
    assert_eq!(
        z.len() % (2 * neurons).max(1),
        0,
        "draws: [batch, neurons, 2]"
    );
    neurons
}

/// The sampled positions as a backend op with its backward.
#[backend_extension(Flex, Autodiff)]
pub trait PositionSamplingBackend: Backend {
    /// `clamp(μ + Σz, −1, 1)` `[batch, neurons, 2]` for μ `[neurons, 2]`, Σ `[neurons, r, c]`
    /// ([`Spread::of`]) and z `[batch, neurons, 2]` (no gradient flows into z).
    fn sampled_positions(
        mu: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
        z: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The form of a Σ tensor (checked by [`uses_position_kernel`] before the op runs).
fn spread_of(sigma: &FlexTensor) -> Spread {
    Spread::of(sigma.shape().dims())
        .expect("Σ of shape [neurons, 2, 2], [neurons, 1, 2] or [neurons, 1, 1]")
}

impl PositionSamplingBackend for Flex {
    fn sampled_positions(mu: FlexTensor, sigma: FlexTensor, z: FlexTensor) -> FlexTensor {
        let spread = spread_of(&sigma);
        let dims: [usize; 3] = z.shape().dims();
        let out = forward(spread, &values(&mu), &values(&sigma), &values(&z));
        flex_tensor(out, dims)
    }
}

/// Backward step of [`PositionSamplingBackend::sampled_positions`]: μ, Σ and the draws.
#[derive(Debug)]
struct PositionSamplingBackward;

impl Backward<Flex, 2> for PositionSamplingBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_mu, node_sigma] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (mu, sigma, z) = ops.state;
        let spread = spread_of(&sigma);
        let (grad_mu, grad_sigma) = backward(
            spread,
            (&values(&mu), &values(&sigma), &values(&z)),
            &values(&grad),
        );
        if let Some(node) = node_mu {
            grads.register::<Flex>(node.id, flex_tensor(grad_mu, mu.shape()));
        }
        if let Some(node) = node_sigma {
            grads.register::<Flex>(node.id, flex_tensor(grad_sigma, sigma.shape()));
        }
    }
}

impl<C: CheckpointStrategy> PositionSamplingBackend for Autodiff<Flex, C> {
    fn sampled_positions(
        mu: FloatTensor<Self>,
        sigma: FloatTensor<Self>,
        z: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let z = z.into_primitive();
        match PositionSamplingBackward
            .prepare::<C>([mu.node(), sigma.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (mu, sigma) = (mu.into_primitive(), sigma.into_primitive());
                let out = Flex::sampled_positions(mu.clone(), sigma.clone(), z.clone());
                prep.finish((mu, sigma, z), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::sampled_positions(
                mu.into_primitive(),
                sigma.into_primitive(),
                z,
            )),
        }
    }
}

/// Whether [`sampled_positions`] runs on these operands (flex, f32, fast kernels on, shapes
/// `[neurons, 2]`, `[neurons, r, c]` of a [`Spread`], `[batch, neurons, 2]`).
pub fn uses_position_kernel(mu: &Tensor<2>, sigma: &Tensor<3>, z: &Tensor<3>) -> bool {
    let [neurons, coordinates] = mu.dims();
    let [_, z_neurons, z_coordinates] = z.dims();
    let shapes_fit = coordinates == 2
        && Spread::of(sigma.dims()).is_some()
        && sigma.dims()[0] == neurons
        && [z_neurons, z_coordinates] == [neurons, 2];
    let all_f32 = [mu.dtype(), sigma.dtype(), z.dtype()] == [DType::F32; 3];
    shapes_fit && all_f32 && super::enabled() && super::on_flex(mu) && z.shape().num_elements() > 0
}

/// `clamp(μ + Σz, −1, 1)` `[batch, neurons, 2]` with the reference's clamp gradient (see the
/// module doc), gradients into μ and Σ. Only where [`uses_position_kernel`] says so.
pub fn sampled_positions(mu: Tensor<2>, sigma: Tensor<3>, z: Tensor<3>) -> Tensor<3> {
    assert!(
        uses_position_kernel(&mu, &sigma, &z),
        "sampled_positions: unsupported operands (check uses_position_kernel first)"
    );
    Tensor::from_dispatch(<Dispatch as PositionSamplingBackend>::sampled_positions(
        mu.into_dispatch(),
        sigma.into_dispatch(),
        z.detach().into_dispatch(),
    ))
}
