//! The modulator: behaviour (pupil dilation, its change, running speed) scales each neuron's
//! response. An MLP maps the behaviour vector of a trial to a per-neuron gain
//! g = ELU(out) + 1 that multiplies the readout output before the final ELU+1 (nnsysident
//! `MLPModulator`).

use burn::module::Module;
use burn::tensor::activation::{elu, relu};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::readout::linear::TorchLinear;
use crate::model::state_dict::{StateDict, StateDictError};

/// Settings of the modulator (one MLP per data key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulatorConfig {
    /// Width of the hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden_features: usize,
    /// Number of Linear+ReLU layers (the last maps to the neurons).
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Weight of the penalty mean|W_last|.
    #[serde(default)]
    pub gamma_modulator: f64,
}

fn default_hidden() -> usize {
    5
}
fn default_layers() -> usize {
    2
}

impl Default for ModulatorConfig {
    /// The reference defaults: hidden 5, 2 layers, no penalty.
    fn default() -> Self {
        Self {
            hidden_features: default_hidden(),
            layers: default_layers(),
            gamma_modulator: 0.0,
        }
    }
}

/// One scan's gain network.
#[derive(Module, Debug)]
pub struct MlpModulator {
    /// Linear layers, each followed by ReLU (PyTorch names `mlp.0`, `mlp.2`, …).
    pub layers: Vec<TorchLinear>,
}

impl MlpModulator {
    /// PyTorch-default initialisation.
    pub fn init(
        config: &ModulatorConfig,
        n_behaviors: usize,
        n_neurons: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let n = config.layers;
        let layers = (0..n)
            .map(|l| {
                let d_in = if l == 0 {
                    n_behaviors
                } else {
                    config.hidden_features
                };
                let d_out = if l + 1 == n {
                    n_neurons
                } else {
                    config.hidden_features
                };
                TorchLinear::init_default(d_in, d_out, rng, device)
            })
            .collect();
        Self { layers }
    }

    /// Gain (B, N) = ELU(MLP(behavior)) + 1 for behaviour (B, n_behaviors); always > 0.
    pub fn forward(&self, behavior: Tensor<2>) -> Tensor<2> {
        let out = self
            .layers
            .iter()
            .fold(behavior, |h, layer| relu(layer.forward(h)));
        elu(out, 1.0) + 1.0
    }

    /// Unweighted penalty mean |W_last| (shape [1]).
    pub fn last_weight_l1(&self) -> Tensor<1> {
        self.layers
            .last()
            .expect("≥1 layer")
            .weight
            .val()
            .abs()
            .mean()
    }
}

/// One modulator per data key.
#[derive(Module, Debug)]
pub struct Modulator {
    pub networks: Vec<MlpModulator>,
    #[module(skip)]
    pub data_keys: Vec<String>,
    #[module(skip)]
    pub gamma_modulator: f64,
}

impl Modulator {
    /// One network per data key (`n_neurons[i]` outputs), seeded from `seed`.
    pub fn init(
        config: &ModulatorConfig,
        data_keys: &[String],
        n_behaviors: usize,
        n_neurons: &[usize],
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self {
            networks: n_neurons
                .iter()
                .map(|&n| MlpModulator::init(config, n_behaviors, n, &mut rng, device))
                .collect(),
            data_keys: data_keys.to_vec(),
            gamma_modulator: config.gamma_modulator,
        }
    }

    /// Gain (B, N) of dataset `key`.
    pub fn forward(&self, key: usize, behavior: Tensor<2>) -> Tensor<2> {
        self.networks[key].forward(behavior)
    }

    /// gamma_modulator · mean|W_last| (shape [1]).
    pub fn regularizer(&self, key: usize) -> Tensor<1> {
        self.networks[key].last_weight_l1() * self.gamma_modulator
    }

    /// Writes `modulator.<data_key>.mlp.<2i>.{weight,bias}` (names follow the MLP layout; the
    /// reference library version of the fixtures has no modulator to compare against).
    pub fn export_state(&self, sd: &mut StateDict) {
        for (key, net) in self.data_keys.iter().zip(&self.networks) {
            for (i, l) in net.layers.iter().enumerate() {
                l.export_state(&format!("modulator.{key}.mlp.{}.", 2 * i), sd);
            }
        }
    }

    /// Reads what [`Modulator::export_state`] writes.
    pub fn import_state(self, sd: &StateDict) -> Result<Self, StateDictError> {
        let mut networks = Vec::new();
        for (net, key) in self.networks.into_iter().zip(&self.data_keys) {
            let layers = net
                .layers
                .into_iter()
                .enumerate()
                .map(|(i, l)| l.import_state(&format!("modulator.{key}.mlp.{}.", 2 * i), sd))
                .collect::<Result<_, _>>()?;
            networks.push(MlpModulator { layers });
        }
        Ok(Self {
            networks,
            data_keys: self.data_keys,
            gamma_modulator: self.gamma_modulator,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn gain_is_positive_per_neuron_and_one_for_zero_weights() {
        let device = Device::flex();
        let keys = vec!["a".to_string(), "b".to_string()];
        let m = Modulator::init(&ModulatorConfig::default(), &keys, 3, &[4, 6], 0, &device);
        device.seed(1);
        let behavior = Tensor::<2>::random([5, 3], Distribution::Normal(0.0, 2.0), &device);
        let gain = m.forward(1, behavior.clone());
        assert_eq!(gain.dims(), [5, 6]);
        let g: Vec<f32> = gain.into_data().iter::<f32>().collect();
        assert!(g.iter().all(|&v| v > 0.0));
        let zero = MlpModulator {
            layers: m.networks[0]
                .layers
                .iter()
                .map(|l| TorchLinear {
                    weight: l.weight.clone().map(|w| w.zeros_like()),
                    bias: l.bias.clone().map(|b| b.zeros_like()),
                })
                .collect(),
        };
        let g: Vec<f32> = zero.forward(behavior).into_data().iter::<f32>().collect();
        assert!(g.iter().all(|&v| v == 1.0), "{g:?}");
        let reg: Vec<f32> = Modulator {
            networks: vec![zero],
            data_keys: vec!["a".into()],
            gamma_modulator: 3.0,
        }
        .regularizer(0)
        .into_data()
        .iter::<f32>()
        .collect();
        assert_eq!(reg, vec![0.0]);
        let reg: Vec<f32> = m.regularizer(0).into_data().iter::<f32>().collect();
        assert_eq!(reg, vec![0.0], "gamma 0 by default");
    }

    #[test]
    fn state_dict_round_trip() {
        let device = Device::flex();
        let keys = vec!["a".to_string()];
        let cfg = ModulatorConfig::default();
        let m = Modulator::init(&cfg, &keys, 3, &[4], 0, &device);
        let mut sd = StateDict::default();
        m.export_state(&mut sd);
        assert_eq!(sd.entries["modulator.a.mlp.2.weight"].shape, vec![4, 5]);
        let other = Modulator::init(&cfg, &keys, 3, &[4], 9, &device)
            .import_state(&sd)
            .unwrap();
        let mut sd2 = StateDict::default();
        other.export_state(&mut sd2);
        assert_eq!(sd, sd2);
    }
}
