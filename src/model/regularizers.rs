//! Core regularizers (reference: `neuralpredictors.regularizers` and `Stacked2dCore`).
//!
//! The first layer's filters W (out × in × k × k) are treated as out·in single-channel k×k images
//! and penalised for roughness with a 3×3 Laplace filter; the normalised forms divide by the
//! filters' own energy so the penalty does not simply shrink the weights. Hidden layers can get a
//! group-sparsity penalty that switches off whole input→output filter pairs.

use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;
use serde::{Deserialize, Serialize};

use crate::model::tensor_util::tensor_like;

/// The 3×3 Laplace kernel [[0,−1,0],[−1,4,−1],[0,−1,0]] (reference `Laplace` filter buffer).
pub const LAPLACE_3X3: [f64; 9] = [0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0];

/// Smoothness penalty on the first-layer filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum InputRegularizer {
    /// agg(lap(W)²) / agg(W²): scale-invariant (Lurz 2020, Sensorium).
    #[default]
    #[serde(rename = "LaplaceL2norm")]
    LaplaceL2Norm,
    /// agg(lap(W)²) / 2 (deprecated in the reference; the Stacked2dCore legacy default).
    #[serde(rename = "LaplaceL2")]
    LaplaceL2,
    /// agg((lap(W)·(1 − G))²) / agg(W²), G a centred Gaussian (σ = k/4) scaled to [0, 1]:
    /// penalises roughness mostly at the filter's periphery.
    #[serde(rename = "GaussianLaplaceL2")]
    GaussianLaplaceL2,
}

/// How [`InputRegularizer`] is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaplaceSettings {
    pub kind: InputRegularizer,
    /// Zero padding of the Laplace convolution; `None` = 1 ("same", output k×k).
    pub padding: Option<usize>,
    /// agg = mean when true, sum when false (reference `use_avg_reg`).
    pub avg: bool,
}

impl LaplaceSettings {
    /// The penalty of filters `w` (out, in, k, k), a 1-element tensor.
    pub fn penalty(&self, w: Tensor<4>) -> Tensor<1> {
        let padding = self.padding.unwrap_or(1);
        let lap = laplace(w.clone(), padding);
        let agg = |t: Tensor<4>| if self.avg { t.mean() } else { t.sum() };
        match self.kind {
            InputRegularizer::LaplaceL2Norm => agg(lap.powi_scalar(2)).div(agg(w.powi_scalar(2))),
            InputRegularizer::LaplaceL2 => agg(lap.powi_scalar(2)).div_scalar(2.0),
            InputRegularizer::GaussianLaplaceL2 => {
                let [_, _, k1, k2] = w.dims();
                let [_, _, h, wd] = lap.dims();
                let g = peripheral_weight(k1, k2, h, wd);
                let g = tensor_like::<4, 4>(&g, [1, 1, h, wd], &lap);
                agg(lap.mul(g).powi_scalar(2)).div(agg(w.powi_scalar(2)))
            }
        }
    }
}

/// lap(W): each (out, in) filter convolved (cross-correlated) with the 3×3 Laplace kernel,
/// zero padding `padding`. Output (out·in, 1, k + 2p − 2, k + 2p − 2).
pub fn laplace(w: Tensor<4>, padding: usize) -> Tensor<4> {
    let [o, i, k1, k2] = w.dims();
    let images = w.reshape([o * i, 1, k1, k2]);
    let kernel = tensor_like::<4, 4>(&LAPLACE_3X3, [1, 1, 3, 3], &images);
    burn::tensor::module::conv2d(
        images,
        kernel,
        None,
        ConvOptions::new([1, 1], [padding, padding], [1, 1], 1),
    )
}

/// 1 − G on an h×w grid (the centre crop of the k1×k2 filter grid): G = exp(−r²/2σ²), σ = min(k)/4,
/// min-subtracted and max-normalised (reference `gaussian2d(..., normalize=True)`).
fn peripheral_weight(k1: usize, k2: usize, h: usize, w: usize) -> Vec<f64> {
    let sigma = k1.min(k2) as f64 / 4.0;
    let c1 = (k1 as f64 - 1.0) / 2.0;
    let c2 = (k2 as f64 - 1.0) / 2.0;
    let gauss: Vec<f64> = (0..k1)
        .flat_map(|r| {
            (0..k2).map(move |c| {
                let (y, x) = (r as f64 - c1, c as f64 - c2);
                (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
            })
        })
        .collect();
    let min = gauss.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = gauss
        .iter()
        .map(|g| g - min)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let (o1, o2) = ((k1 - h.min(k1)) / 2, (k2 - w.min(k2)) / 2);
    (0..h)
        .flat_map(|r| (0..w).map(move |c| (r, c)))
        .map(|(r, c)| 1.0 - (gauss[(r + o1) * k2 + c + o2] - min) / max)
        .collect()
}

/// Group sparsity of the hidden convolutions: for each layer, the mean over (out, in) pairs of
/// sqrt(Σ_{kh,kw} w²); summed over layers and divided by (layers − 1) (the reference divides by
/// the number of hidden layers, at least 1). Returns `None` when there is nothing to sum.
pub fn group_sparsity(hidden_weights: &[Tensor<4>], layers: usize) -> Option<Tensor<1>> {
    let total = hidden_weights
        .iter()
        .map(|w| {
            let [o, i, k1, k2] = w.dims();
            w.clone()
                .powi_scalar(2)
                .reshape([o, i, k1 * k2])
                .sum_dim(2)
                .sqrt()
                .mean()
        })
        .reduce(|a, b| a.add(b))?;
    Some(total.div_scalar(layers.saturating_sub(1).max(1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn laplace_of_a_constant_filter_is_zero_inside_and_nonzero_at_the_border() {
        let device = Device::flex();
        let w = Tensor::<4>::from_data(TensorData::new(vec![1.0f32; 25], [1, 1, 5, 5]), &device);
        let lap: Vec<f32> = laplace(w, 1).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(lap[12], 0.0); // centre
        assert_eq!(lap[0], 2.0); // corner: 4 − 2 neighbours inside
        let valid: Vec<f32> = laplace(Tensor::ones([1, 1, 5, 5], &device), 0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(valid, vec![0.0; 9]);
    }

    fn filter(values: Vec<f64>, k: usize) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, [1, 1, k, k]), &Device::flex())
    }

    fn settings(kind: InputRegularizer, avg: bool) -> LaplaceSettings {
        LaplaceSettings {
            kind,
            padding: None,
            avg,
        }
    }

    #[test]
    fn laplace_penalties_of_a_single_spike() {
        // A unit spike in the centre of a 5×5 filter: lap = 4 at the centre, −1 at its 4
        // neighbours, so Σ lap² = 20 and Σ W² = 1.
        let mut w = vec![0.0; 25];
        w[12] = 1.0;
        let p = |kind, avg| -> f32 {
            settings(kind, avg)
                .penalty(filter(w.clone(), 5))
                .into_scalar()
        };
        assert!((p(InputRegularizer::LaplaceL2Norm, false) - 20.0).abs() < 1e-5);
        assert!((p(InputRegularizer::LaplaceL2Norm, true) - 20.0).abs() < 1e-5);
        assert!((p(InputRegularizer::LaplaceL2, false) - 10.0).abs() < 1e-5);
        assert!((p(InputRegularizer::LaplaceL2, true) - 10.0 / 25.0).abs() < 1e-6);
        // Gaussian-weighted: the centre is not penalised, the neighbours by (1 − G(1))².
        let g1 = peripheral_weight(5, 5, 5, 5)[7];
        let expected = 4.0 * g1 * g1;
        assert!((p(InputRegularizer::GaussianLaplaceL2, false) as f64 - expected).abs() < 1e-5);
        // The normalised penalty does not change with the filter's scale; LaplaceL2 does.
        let scaled: Vec<f64> = w.iter().map(|v| v * 3.0).collect();
        let q = |kind| -> f32 {
            settings(kind, false)
                .penalty(filter(scaled.clone(), 5))
                .into_scalar()
        };
        assert!((q(InputRegularizer::LaplaceL2Norm) - 20.0).abs() < 1e-4);
        assert!((q(InputRegularizer::LaplaceL2) - 90.0).abs() < 1e-4);
    }

    #[test]
    fn group_sparsity_averages_filter_norms_over_hidden_layers() {
        // Two hidden layers of one 1×1×2×2 filter each with norms 2 and 4: (2 + 4) / 2.
        let a = filter(vec![1.0, 1.0, 1.0, 1.0], 2);
        let b = filter(vec![2.0, 2.0, 2.0, 2.0], 2);
        let gs: f32 = group_sparsity(&[a, b], 3).unwrap().into_scalar();
        assert!((gs - 3.0).abs() < 1e-6);
        assert!(group_sparsity(&[], 1).is_none());
    }

    #[test]
    fn peripheral_weight_is_zero_at_the_centre_and_one_at_a_corner() {
        let g = peripheral_weight(5, 5, 5, 5);
        assert!(g[12].abs() < 1e-15);
        assert!((g[0] - 1.0).abs() < 1e-15);
    }
}
