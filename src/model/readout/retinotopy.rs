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
use crate::model::state_dict::{StateDict, StateDictError};
use crate::model::tensor_util::{tensor_from_f64, to_f64_vec};

/// The retinotopy network (reference: `grid_mean_predictor = {type: "cortex", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridPredictorConfig {
    /// How many cortical coordinates feed the network: 2 = (x, y) (the reference default), 3 adds
    /// depth z.
    #[serde(default = "default_input_dimensions")]
    pub input_dimensions: usize,
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

fn default_input_dimensions() -> usize {
    2
}

fn default_hidden_features() -> usize {
    30
}

impl Default for GridPredictorConfig {
    /// The Lurz et al. 2020 paper setting: a single affine map, no tanh.
    fn default() -> Self {
        Self {
            input_dimensions: default_input_dimensions(),
            hidden_layers: 0,
            hidden_features: default_hidden_features(),
            final_tanh: false,
        }
    }
}

/// The reference's normalisation of the cortical coordinates: take the first `dims` columns
/// ((x, y) for 2), subtract each column's mean, and divide by the single largest absolute value
/// over all columns (isotropic, so the cortex's aspect ratio is kept). Returns `(N·dims)`
/// row-major values. A degenerate set (all neurons at one point) is only centred, where the
/// reference would divide by zero. `dims` is clamped to 1..=3.
pub fn normalize_cortex_coordinates(coords: &[[f64; 3]], dims: usize) -> Vec<f64> {
    let dims = dims.clamp(1, 3);
    let n = coords.len().max(1) as f64;
    let mean: Vec<f64> = (0..dims)
        .map(|d| coords.iter().map(|c| c[d]).sum::<f64>() / n)
        .collect();
    let centred: Vec<f64> = coords
        .iter()
        .flat_map(|c| (0..dims).map(|d| c[d] - mean[d]).collect::<Vec<_>>())
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
    /// Normalised cortical coordinates (N, d): a constant, not trained.
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
        let mut d_in = config.input_dimensions;
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

    /// A predictor from given layers and the normalised source grid (`N·d` values, d = the first
    /// layer's input size).
    pub fn with_layers(
        layers: Vec<TorchLinear>,
        source_grid: &[f64],
        final_tanh: bool,
        device: &Device,
    ) -> Self {
        let dtype = layers.first().map(|l| l.weight.val().dtype());
        let d = layers.first().map_or(2, |l| l.dims().0);
        let n = source_grid.len() / d;
        Self {
            layers,
            source_grid: tensor_from_f64(source_grid, [n, d], dtype, device),
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

    /// Writes `<prefix>mu_transform.<2i>.{weight,bias}` and `<prefix>source_grid` (N, d).
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.export_state(&format!("{prefix}mu_transform.{}.", 2 * i), sd);
        }
        sd.insert(
            format!("{prefix}source_grid"),
            self.source_grid.dims().to_vec(),
            to_f64_vec(self.source_grid.clone()),
        );
    }

    /// Reads what [`GridPredictor::export_state`] writes. The source grid is a buffer of the
    /// reference's state dict, so it is read too when present (with this predictor's shape): the
    /// grid the weights were trained with, exactly. It is derived from the data, so a state dict
    /// without it keeps the grid computed from the data's coordinates.
    pub fn import_state(self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.import_state(&format!("{prefix}mu_transform.{}.", 2 * i), sd))
            .collect::<Result<Vec<_>, _>>()?;
        let name = format!("{prefix}source_grid");
        let source_grid = if sd.entries.contains_key(&name) {
            let dims = self.source_grid.dims();
            let entry = sd.get(&name, &dims)?;
            tensor_from_f64(
                &entry.data,
                dims,
                Some(self.source_grid.dtype()),
                &self.source_grid.device(),
            )
        } else {
            self.source_grid
        };
        Ok(Self {
            layers,
            source_grid,
            final_tanh: self.final_tanh,
        })
    }
}
