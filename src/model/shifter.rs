//! The shifter: eye movements move the image on the retina, so the receptive fields of all
//! neurons of a scan move together. A small MLP maps the (normalised) pupil position of each
//! trial to one (x, y) shift that is added to every readout position (reference: `MLPShifter`).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::readout::linear::TorchLinear;
use crate::model::state_dict::{StateDict, StateDictError};

/// Settings of the shifter (one MLP per data key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShifterConfig {
    /// Width of the hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden_channels: usize,
    /// Number of linear layers (each followed by tanh, including the last).
    #[serde(default = "default_layers")]
    pub shift_layers: usize,
    /// Weight of the shifter regulariser. The MLP shifter has none (as in the reference, whose MLP
    /// shifter ignores it), so only 0 is accepted; kept so reference configs read unchanged.
    #[serde(default)]
    pub gamma_shifter: f64,
}

fn default_hidden() -> usize {
    5
}
fn default_layers() -> usize {
    3
}

impl Default for ShifterConfig {
    /// The Sensorium setting: 2 → 5 → 5 → 2.
    fn default() -> Self {
        Self {
            hidden_channels: default_hidden(),
            shift_layers: default_layers(),
            gamma_shifter: 0.0,
        }
    }
}

/// One scan's shift network: Linear → tanh, repeated; the output lies in (−1, 1)².
#[derive(Module, Debug)]
pub struct MlpShifter {
    /// The linear layers (PyTorch `mlp.0`, `mlp.2`, …; the tanh modules sit between).
    pub layers: Vec<TorchLinear>,
}

impl MlpShifter {
    /// An MLP with PyTorch-default layer initialisation (the reference's intended Xavier init never
    /// runs, REFERENCE §1.4).
    pub fn init(config: &ShifterConfig, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let n = config.shift_layers;
        let layers = (0..n)
            .map(|l| {
                let d_in = if l == 0 { 2 } else { config.hidden_channels };
                let d_out = if l + 1 == n {
                    2
                } else {
                    config.hidden_channels
                };
                TorchLinear::init_default(d_in, d_out, rng, device)
            })
            .collect();
        Self { layers }
    }

    /// Shift (B, 2) for pupil positions (B, 2).
    pub fn forward(&self, pupil_center: Tensor<2>) -> Tensor<2> {
        self.layers
            .iter()
            .fold(pupil_center, |h, layer| layer.forward(h).tanh())
    }

    /// Writes `<prefix>mlp.<2i>.{weight,bias}`.
    pub fn export_state(&self, prefix: &str, sd: &mut StateDict) {
        for (i, l) in self.layers.iter().enumerate() {
            l.export_state(&format!("{prefix}mlp.{}.", 2 * i), sd);
        }
    }

    /// Reads what [`MlpShifter::export_state`] writes.
    pub fn import_state(self, prefix: &str, sd: &StateDict) -> Result<Self, StateDictError> {
        let layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| l.import_state(&format!("{prefix}mlp.{}.", 2 * i), sd))
            .collect::<Result<_, _>>()?;
        Ok(Self { layers })
    }
}

/// One shift network per data key, in the order of the model's data keys.
#[derive(Module, Debug)]
pub struct Shifter {
    pub networks: Vec<MlpShifter>,
    #[module(skip)]
    pub data_keys: Vec<String>,
    #[module(skip)]
    pub gamma_shifter: f64,
}

impl Shifter {
    /// One network per data key, seeded from `seed`.
    pub fn init(config: &ShifterConfig, data_keys: &[String], seed: u64, device: &Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self {
            networks: data_keys
                .iter()
                .map(|_| MlpShifter::init(config, &mut rng, device))
                .collect(),
            data_keys: data_keys.to_vec(),
            gamma_shifter: config.gamma_shifter,
        }
    }

    /// Shift (B, 2) of dataset `key` for pupil positions (B, 2).
    pub fn forward(&self, key: usize, pupil_center: Tensor<2>) -> Tensor<2> {
        self.networks[key].forward(pupil_center)
    }

    /// The reference MLP shifter's regulariser: identically 0 (shape [1]).
    pub fn regularizer(&self, key: usize) -> Tensor<1> {
        let w = self.networks[key].layers[0].weight.val();
        Tensor::zeros([1], (&w.device(), w.dtype()))
    }

    /// Writes `shifter.<data_key>.mlp.<2i>.{weight,bias}`.
    pub fn export_state(&self, sd: &mut StateDict) {
        for (key, net) in self.data_keys.iter().zip(&self.networks) {
            net.export_state(&format!("shifter.{key}."), sd);
        }
    }

    /// Reads what [`Shifter::export_state`] writes.
    pub fn import_state(self, sd: &StateDict) -> Result<Self, StateDictError> {
        let networks = self
            .networks
            .into_iter()
            .zip(&self.data_keys)
            .map(|(net, key)| net.import_state(&format!("shifter.{key}."), sd))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            networks,
            data_keys: self.data_keys,
            gamma_shifter: self.gamma_shifter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_are_bounded_and_state_dict_round_trips() {
        let device = Device::flex();
        let keys = vec!["20457-5-9-0".to_string(), "b".to_string()];
        let s = Shifter::init(&ShifterConfig::default(), &keys, 0, &device);
        let pupil = Tensor::<2>::from_floats([[0.0, 0.0], [30.0, -40.0]], &device);
        let shift = s.forward(0, pupil.clone());
        assert_eq!(shift.dims(), [2, 2]);
        let v: Vec<f32> = shift.into_data().iter::<f32>().collect();
        assert!(v.iter().all(|x| x.abs() < 1.0));
        let mut sd = StateDict::default();
        s.export_state(&mut sd);
        assert_eq!(
            sd.entries["shifter.20457-5-9-0.mlp.4.weight"].shape,
            vec![2, 5]
        );
        assert_eq!(sd.entries["shifter.b.mlp.0.bias"].shape, vec![5]);
        let t = Shifter::init(&ShifterConfig::default(), &keys, 1, &device)
            .import_state(&sd)
            .unwrap();
        let a: Vec<f32> = s
            .forward(1, pupil.clone())
            .into_data()
            .iter::<f32>()
            .collect();
        let b: Vec<f32> = t.forward(1, pupil).into_data().iter::<f32>().collect();
        assert_eq!(a, b);
    }
}
