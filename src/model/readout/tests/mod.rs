//! Behaviour tests of the readout family that have no reference fixture: configs, building one
//! readout per dataset, feature sharing, sampling, initialisation schemes, state-dict round trips.
//! Shared inputs here; the tests by topic in [`building`], [`positions`], [`factorized`] and
//! [`point_pooled`].

mod building;
mod factorized;
mod point_pooled;
mod positions;

use burn::tensor::{Device, Distribution, Tensor};
use rand::SeedableRng;

use super::gaussian::GaussType;
use super::*;
use crate::model::facts::DatasetReadoutFacts;
use crate::model::state_dict::StateDict;
use crate::model::tensor_util::to_f64_vec;

fn device() -> Device {
    Device::flex()
}

fn inputs() -> Vec<DatasetReadoutFacts> {
    let coords = |n: usize, off: f64| -> Vec<[f64; 3]> {
        (0..n)
            .map(|i| [off + 10.0 * i as f64, 5.0 * (i % 3) as f64, 0.0])
            .collect()
    };
    vec![
        DatasetReadoutFacts {
            data_key: "scan-a".into(),
            n_neurons: 5,
            cell_motor_coordinates: Some(coords(5, 0.0)),
            match_ids: Some(vec![11, 4, 7, 20, 9]),
            mean_activity: Some(vec![0.5, 1.0, 1.5, 2.0, 2.5]),
            rf_centers_px: None,
        },
        DatasetReadoutFacts {
            data_key: "scan-b".into(),
            n_neurons: 3,
            cell_motor_coordinates: Some(coords(3, 100.0)),
            match_ids: Some(vec![7, 11, 9]),
            mean_activity: None,
            rf_centers_px: None,
        },
    ]
}

fn gaussian_config(toml_text: &str) -> ReadoutConfig {
    toml::from_str(toml_text).expect("valid readout config")
}

fn feature_map(b: usize, device: &Device) -> Tensor<4> {
    device.seed(3);
    Tensor::random([b, 4, 6, 9], Distribution::Normal(0.0, 1.0), device)
}
