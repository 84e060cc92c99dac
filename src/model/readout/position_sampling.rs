//! Position sampling by the reparameterisation trick (Lurz et al. 2020): in training each neuron
//! of a Gaussian readout is read at p = clamp(μ + Σz, −1, 1) with z ~ N(0, I) drawn per image and
//! neuron, so the gradient reaches μ and Σ through p. This file holds the draws and the burn-op
//! composition of p; the fused op is `kernels::sampled_positions`.

use burn::tensor::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::bilinear::clamp_positions;

/// The random stream a model draws its training-mode noise from (the Gaussian readout's sampled
/// positions). The trainer seeds one per epoch from the run seed, so a fit owns all of its
/// randomness: nothing is drawn from a process-global generator.
pub type SamplingRng = ChaCha8Rng;

/// The standard normals of one training batch's position sampling: `batch · neurons · 2` values
/// (row-major `[batch, neurons, 2]`) taken from `rng` in order.
pub fn draw_position_noise(rng: &mut SamplingRng, batch: usize, neurons: usize) -> Vec<f32> {
    (0..batch * neurons * 2)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect()
}

/// clamp(μ + Σz, −1, 1) (B, N, 2) composed from burn ops (any backend and dtype) for μ (N, 2),
/// Σ (N, 2, 2), (N, 1, 2) or (N, 1, 1) ([`super::GaussType`]) and draws `z` (B, N, 2), with the
/// reference's clamp gradient ([`clamp_positions`]).
pub fn sampled_positions_ops(mu: Tensor<2>, sigma: Tensor<3>, z: Tensor<3>) -> Tensor<3> {
    let [b, n, _] = z.dims();
    let offsets = match sigma.dims()[1..] {
        // off[b,n,c] = Σ_d sigma[n,c,d]·z[b,n,d]
        [2, 2] => (sigma.unsqueeze_dim::<4>(0) * z.unsqueeze_dim::<4>(2))
            .sum_dim(3)
            .reshape([b, n, 2]),
        [1, 2] => sigma.reshape([1, n, 2]) * z,
        [1, 1] => sigma.reshape([1, n, 1]) * z,
        ref other => panic!("Σ per neuron must be 2×2, 1×2 or 1×1, not {other:?}"),
    };
    clamp_positions(mu.unsqueeze_dim::<3>(0) + offsets)
}
