//! A fully connected layer in PyTorch's weight layout `(out_features, in_features)`, so the small
//! networks of the readout family (retinotopy predictor, shifter, modulator) export and import
//! reference state dicts without transposition.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::model::state_dict::{StateDict, StateDictError};
use crate::model::tensor_util::{param_from_f64, to_f64_vec};

/// `y = x·Wᵀ + b` with `W` of shape `(out, in)`.
#[derive(Module, Debug)]
pub struct TorchLinear {
    /// Weight `(out_features, in_features)`.
    pub weight: Param<Tensor<2>>,
    /// Bias `(out_features)`.
    pub bias: Param<Tensor<1>>,
}

impl TorchLinear {
    /// PyTorch's default `nn.Linear` initialisation: weight and bias ~ U(±1/√in).
    pub fn init_default(d_in: usize, d_out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let weight: Vec<f64> = (0..d_in * d_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let bias: Vec<f64> = (0..d_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Self::from_values(&weight, &bias, d_in, d_out, None, device)
    }

    /// A layer with the given values (`weight` row-major `(out, in)`), created in `dtype` (the device's
    /// default float type when `None`).
    pub fn from_values(
        weight: &[f64],
        bias: &[f64],
        d_in: usize,
        d_out: usize,
        dtype: Option<burn::tensor::DType>,
        device: &Device,
    ) -> Self {
        Self {
            weight: param_from_f64(weight, [d_out, d_in], dtype, device),
            bias: param_from_f64(bias, [d_out], dtype, device),
        }
    }

    /// `(in, out)` sizes.
    pub fn dims(&self) -> (usize, usize) {
        let [o, i] = self.weight.dims();
        (i, o)
    }

    /// Applies the layer to `(rows, in)` inputs.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze_dim(0)
    }

    /// Writes `<prefix>weight` and `<prefix>bias`.
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        let (i, o) = self.dims();
        sd.insert(
            format!("{prefix}weight"),
            vec![o, i],
            to_f64_vec(self.weight.val()),
        );
        sd.insert(
            format!("{prefix}bias"),
            vec![o],
            to_f64_vec(self.bias.val()),
        );
    }

    /// Reads `<prefix>weight` and `<prefix>bias` (shapes must match this layer).
    pub fn import_state(self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let (i, o) = self.dims();
        let dtype = Some(self.weight.val().dtype());
        let device = self.weight.val().device();
        let w = sd.get(&format!("{prefix}weight"), &[o, i])?;
        let b = sd.get(&format!("{prefix}bias"), &[o])?;
        Ok(Self::from_values(&w.data, &b.data, i, o, dtype, &device))
    }
}
