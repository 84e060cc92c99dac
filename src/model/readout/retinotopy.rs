//! Retinotopy: each neuron's receptive-field position μ predicted from its position on the cortex.
//!
//! Neighbouring V1 neurons see neighbouring parts of the visual field, so instead of learning two
//! free numbers per neuron the Gaussian readout can learn one small map from cortical (x, y) to μ,
//! shared by all neurons of a scan (the reference's `grid_mean_predictor` of type "cortex"). With 0
//! hidden layers (Lurz et al. 2020) that map is a single 2→2 affine transform: 6 parameters per scan.

use burn::module::Module;
use burn::tensor::activation::elu;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::linear::TorchLinear;
use super::tensor_util::{tensor_from_f64, to_f64_vec};
use crate::model::state_dict::{StateDict, StateDictError};

/// The retinotopy network (reference: `grid_mean_predictor = {type: "cortex", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridPredictorConfig {
    /// Number of hidden layers (0 = one affine 2→2 map, the paper's setting).
    #[serde(default)]
    pub hidden_layers: usize,
    /// Width of each hidden layer (ignored with 0 hidden layers).
    #[serde(default = "default_hidden_features")]
    pub hidden_features: usize,
    /// Apply tanh to the predicted μ (keeps it inside (−1, 1)).
    #[serde(default)]
    pub final_tanh: bool,
}

fn default_hidden_features() -> usize {
    30
}

impl Default for GridPredictorConfig {
    /// The Lurz et al. 2020 paper setting: a single affine map, no tanh.
    fn default() -> Self {
        Self {
            hidden_layers: 0,
            hidden_features: default_hidden_features(),
            final_tanh: false,
        }
    }
}

/// The reference's normalisation of the cortical coordinates: take (x, y), subtract each column's
/// mean, and divide by the single largest absolute value over both columns (isotropic, so the
/// cortex's aspect ratio is kept). Returns `(N·2)` row-major values. A degenerate set (all neurons
/// at one point) is only centred, where the reference would divide by zero.
pub fn normalize_cortex_coordinates(coords: &[[f64; 3]]) -> Vec<f64> {
    let n = coords.len().max(1) as f64;
    let mean = [0, 1].map(|d| coords.iter().map(|c| c[d]).sum::<f64>() / n);
    let centred: Vec<f64> = coords
        .iter()
        .flat_map(|c| [c[0] - mean[0], c[1] - mean[1]])
        .collect();
    let max_abs = centred.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = if max_abs > 0.0 { max_abs } else { 1.0 };
    centred.into_iter().map(|v| v / scale).collect()
}

/// μ = MLP(normalised cortical xy): Linear, then (ELU, Linear) per hidden layer, optional tanh.
#[derive(Module, Debug)]
pub struct GridPredictor {
    /// The linear layers in order (PyTorch `mu_transform.0`, `.2`, `.4`, …; the ELUs sit between).
    pub layers: Vec<TorchLinear>,
    /// Normalised cortical coordinates (N, 2): a constant, not trained.
    pub source_grid: Tensor<2>,
    #[module(skip)]
    final_tanh: bool,
}

impl GridPredictor {
    /// A predictor with PyTorch-default layer init; for the paper's single affine map with the
    /// Lurz 2020 init use [`GridPredictor::with_layers`] and your own values (see `gaussian.rs`).
    pub fn init(
        config: &GridPredictorConfig,
        source_grid: &[f64],
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let mut layers = Vec::new();
        let mut d_in = 2;
        for _ in 0..config.hidden_layers {
            layers.push(TorchLinear::init_default(
                d_in,
                config.hidden_features,
                rng,
                device,
            ));
            d_in = config.hidden_features;
        }
        layers.push(TorchLinear::init_default(d_in, 2, rng, device));
        Self::with_layers(layers, source_grid, config.final_tanh, device)
    }

    /// A predictor from given layers and the normalised source grid (`N·2` values).
    pub fn with_layers(
        layers: Vec<TorchLinear>,
        source_grid: &[f64],
        final_tanh: bool,
        device: &Device,
    ) -> Self {
        let dtype = layers.first().map(|l| l.weight.val().dtype());
        let n = source_grid.len() / 2;
        Self {
            layers,
            source_grid: tensor_from_f64(source_grid, [n, 2], dtype, device),
            final_tanh,
        }
    }

    /// Number of neurons.
    pub fn n_neurons(&self) -> usize {
        self.source_grid.dims()[0]
    }

    /// Predicted μ (N, 2), not clamped (the readout clamps positions).
    pub fn forward(&self) -> Tensor<2> {
        let mut h = self.layers[0].forward(self.source_grid.clone());
        for layer in &self.layers[1..] {
            h = layer.forward(elu(h, 1.0));
        }
        if self.final_tanh { h.tanh() } else { h }
    }

    /// Writes `<prefix>mu_transform.<2i>.{weight,bias}` and `<prefix>source_grid` (N, 2).
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.export_state(&format!("{prefix}mu_transform.{}.", 2 * i), sd);
        }
        sd.insert(
            format!("{prefix}source_grid"),
            vec![self.n_neurons(), 2],
            to_f64_vec(self.source_grid.clone()),
        );
    }

    /// Reads the layers written by [`GridPredictor::export_state`] (the source grid stays: it is
    /// derived from the data).
    pub fn import_state(self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.import_state(&format!("{prefix}mu_transform.{}.", 2 * i), sd))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            layers,
            source_grid: self.source_grid,
            final_tanh: self.final_tanh,
        })
    }
}
