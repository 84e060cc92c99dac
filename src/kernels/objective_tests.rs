//! The fused ops of the training objective — the Gaussian readout's sampled positions and the
//! Poisson loss — must give the burn-op compositions' results, forward and backward, and not
//! depend on the thread count.

use super::*;
use crate::model::readout::position_sampling::sampled_positions_ops;
use crate::model::{LossReduction, poisson_loss as loss_via_dispatch};
use burn::tensor::{Device, Distribution, TensorData, Tolerance};

fn random<const D: usize>(shape: [usize; D], low: f64, high: f64) -> TensorData {
    Tensor::<D>::random(shape, Distribution::Uniform(low, high), &Device::flex()).into_data()
}

fn threads<R: Send>(count: usize, f: impl Fn() -> R + Sync + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .build()
        .unwrap()
        .install(f)
}

// ---------------------------------------------------------------------------------------------
// Sampled positions

/// Positions and the gradients of μ and Σ for `loss = Σ p · probe`.
type PositionRun = (TensorData, TensorData, TensorData);

fn run_positions(
    sample: impl Fn(Tensor<2>, Tensor<3>, Tensor<3>) -> Tensor<3>,
    (mu, sigma, z, probe): (&TensorData, &TensorData, &TensorData, &TensorData),
) -> PositionRun {
    let device = Device::flex().autodiff();
    let mu = Tensor::<2>::from_data(mu.clone(), &device).require_grad();
    let sigma = Tensor::<3>::from_data(sigma.clone(), &device).require_grad();
    let z = Tensor::<3>::from_data(z.clone(), &device);
    let p = sample(mu.clone(), sigma.clone(), z);
    let grads = (p.clone() * Tensor::from_data(probe.clone(), &device))
        .sum()
        .backward();
    (
        p.into_data(),
        mu.grad(&grads).expect("μ gradient").into_data(),
        sigma.grad(&grads).expect("Σ gradient").into_data(),
    )
}

/// μ, Σ, draws and a probe for `neurons` neurons of Σ shape `[rows, cols]`: μ partly outside
/// [−1, 1], and neuron 0 (Σ = 0) and neuron 1 (μ = 0.5, Σ = 0.25, z = 2) landing exactly on the
/// border, where the gradient must stop.
fn position_operands(
    batch: usize,
    neurons: usize,
    [rows, cols]: [usize; 2],
) -> (TensorData, TensorData, TensorData, TensorData) {
    let mut mu = random([neurons, 2], -1.3, 1.3).try_to_vec::<f32>().unwrap();
    let mut sigma = random([neurons, rows, cols], -0.4, 0.4)
        .try_to_vec::<f32>()
        .unwrap();
    let mut z = random([batch, neurons, 2], -2.5, 2.5)
        .try_to_vec::<f32>()
        .unwrap();
    let per = rows * cols;
    mu[..2].copy_from_slice(&[1.0, -1.0]);
    sigma[..per].fill(0.0);
    mu[2..4].copy_from_slice(&[0.5, 0.5]);
    sigma[per..2 * per].fill(0.0);
    sigma[per] = 0.25;
    if per == 4 {
        sigma[per + 3] = 0.25;
    } else if per == 2 {
        sigma[per + 1] = 0.25;
    }
    for image in 0..batch {
        z[image * neurons * 2 + 2..image * neurons * 2 + 4].copy_from_slice(&[2.0, 2.0]);
    }
    (
        TensorData::new(mu, [neurons, 2]),
        TensorData::new(sigma, [neurons, rows, cols]),
        TensorData::new(z, [batch, neurons, 2]),
        random([batch, neurons, 2], -1.0, 1.0),
    )
}

#[test]
fn sampled_positions_match_burn_ops_for_every_spread() {
    for spread in [[2, 2], [1, 2], [1, 1]] {
        // 1100 neurons: three backward blocks, the last one partial.
        let operands = position_operands(5, 1100, spread);
        let (mu, sigma, z, probe) = &operands;
        let fused = run_positions(sampled_positions, (mu, sigma, z, probe));
        let ops = run_positions(sampled_positions_ops, (mu, sigma, z, probe));
        // The same products and sums: the same bits.
        assert_eq!(fused.0, ops.0, "{spread:?}: positions");
        let tolerance = Tolerance::<f32>::rel_abs(1e-5, 1e-6);
        fused.1.assert_approx_eq::<f32>(&ops.1, tolerance);
        fused.2.assert_approx_eq::<f32>(&ops.2, tolerance);
        // The border neurons: positions exactly ±1, no gradient into their μ.
        let p = fused.0.try_to_vec::<f32>().unwrap();
        assert_eq!(p[..4], [1.0, -1.0, 1.0, 1.0], "{spread:?}");
        let g = fused.1.try_to_vec::<f32>().unwrap();
        assert_eq!(
            g[..4],
            [0.0; 4],
            "{spread:?}: the clamp stops the gradient at ±1"
        );
        assert!(g[4..].iter().any(|&v| v != 0.0));
    }
}

#[test]
fn sampled_positions_take_the_fused_path_only_where_they_can() {
    let device = Device::flex();
    let mu = Tensor::<2>::zeros([3, 2], &device);
    let z = Tensor::<3>::zeros([2, 3, 2], &device);
    assert!(uses_position_kernel(
        &mu,
        &Tensor::zeros([3, 2, 2], &device),
        &z
    ));
    assert!(!uses_position_kernel(
        &mu,
        &Tensor::zeros([3, 2, 1], &device),
        &z
    ));
    assert!(!uses_position_kernel(
        &mu,
        &Tensor::zeros([4, 1, 1], &device),
        &z
    ));
    let _burn = use_kernels(Kernels::Burn);
    assert!(!uses_position_kernel(
        &mu,
        &Tensor::zeros([3, 1, 1], &device),
        &z
    ));
}

#[test]
fn sampled_positions_do_not_depend_on_the_thread_count() {
    let operands = position_operands(7, 1500, [2, 2]);
    let (mu, sigma, z, probe) = &operands;
    let run = || run_positions(sampled_positions, (mu, sigma, z, probe));
    assert_eq!(threads(1, run), threads(3, run));
}

// ---------------------------------------------------------------------------------------------
// Poisson loss

/// The loss and the prediction's gradient for `objective = 3 · loss`.
fn run_loss(
    kernels: Kernels,
    prediction: &TensorData,
    target: &TensorData,
    mean: bool,
) -> (f32, TensorData) {
    let _choice = use_kernels(kernels);
    let device = Device::flex().autodiff();
    let prediction = Tensor::<2>::from_data(prediction.clone(), &device).require_grad();
    let target = Tensor::<2>::from_data(target.clone(), &device);
    let reduction = if mean {
        LossReduction::Mean
    } else {
        LossReduction::Sum
    };
    let loss = loss_via_dispatch(prediction.clone(), target, 1e-12, reduction);
    let grads = loss.clone().mul_scalar(3.0).backward();
    (
        loss.into_scalar(),
        prediction
            .grad(&grads)
            .expect("prediction gradient")
            .into_data(),
    )
}

/// Rates in (0, 4) with some exact zeros (where ε matters), spike counts 0–5.
fn loss_operands(batch: usize, neurons: usize) -> (TensorData, TensorData) {
    let mut rates = random([batch, neurons], 0.0, 4.0)
        .try_to_vec::<f32>()
        .unwrap();
    for r in rates.iter_mut().step_by(97) {
        *r = 0.0;
    }
    let counts = random([batch, neurons], 0.0, 6.0)
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::floor)
        .collect();
    (
        TensorData::new(rates, [batch, neurons]),
        TensorData::new(counts, [batch, neurons]),
    )
}

#[test]
fn poisson_loss_matches_burn_ops_forward_and_backward() {
    // 9·5000 values: three parallel chunks, the last one partial.
    let (prediction, target) = loss_operands(9, 5000);
    for mean in [false, true] {
        let (fused, fused_grad) = run_loss(Kernels::Fused, &prediction, &target, mean);
        let (ops, ops_grad) = run_loss(Kernels::Burn, &prediction, &target, mean);
        // burn sums 45000 f32 terms in f32, the kernel in f64: equal to f32 summation error.
        assert!(
            ((fused - ops) / ops).abs() < 1e-5,
            "mean = {mean}: fused {fused} vs burn {ops}"
        );
        // 1 − y/ŷ cancels where y ≈ ŷ: compare to a few ulps of the objective's scale 3.
        fused_grad.assert_approx_eq::<f32>(&ops_grad, Tolerance::rel_abs(1e-5, 1e-6));
    }
    // The exact value, in f64, of a zero rate for two spikes: 2·ln(1e12) with ε in f32.
    let zero = TensorData::new(vec![0.0f32], [1, 1]);
    let two = TensorData::new(vec![2.0f32], [1, 1]);
    let (value, _) = run_loss(Kernels::Fused, &zero, &two, false);
    let want = -2.0 * f64::from(1e-12f32).ln();
    assert!(
        (f64::from(value) - want).abs() < 1e-4 * want,
        "{value} vs {want}"
    );
}

#[test]
fn poisson_loss_does_not_depend_on_the_thread_count() {
    let (prediction, target) = loss_operands(13, 4000);
    let run = || {
        let (loss, grad) = run_loss(Kernels::Fused, &prediction, &target, false);
        (loss.to_bits(), grad)
    };
    assert_eq!(threads(1, run), threads(3, run));
}
