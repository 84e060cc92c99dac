//! What the model builder must know about the data: image shape, behaviour variables, and per
//! dataset (readout) its neurons, cortical coordinates, matched ids, mean activity and mapped
//! receptive-field centres. Filled from the prepared datasets by `train::build_model`; the
//! serializable part is stored in checkpoints.

use serde::{Deserialize, Serialize};

/// What the model builder must know about the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetFacts {
    /// Image (channels, height, width) as fed to the model (before behaviour channels).
    pub in_shape: [usize; 3],
    /// Number of behaviour variables (0 when there is none).
    #[serde(default)]
    pub n_behaviors: usize,
    /// One entry per dataset (data key), in the order of the keys used in `forward`.
    pub datasets: Vec<DatasetReadoutFacts>,
}

/// What a readout needs to know about its dataset. Checkpoints store the serializable part, so
/// that a saved model can be rebuilt without its data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetReadoutFacts {
    /// The dataset's name (e.g. "20457-5-9-0"); used in state-dict names.
    pub data_key: String,
    pub n_neurons: usize,
    /// Cortical (x, y, z) in µm per neuron (meta/neurons/cell_motor_coordinates); needed for
    /// retinotopy.
    #[serde(default)]
    pub cell_motor_coordinates: Option<Vec<[f64; 3]>>,
    /// multi_match_id per neuron; needed for feature sharing.
    #[serde(default)]
    pub match_ids: Option<Vec<i64>>,
    /// Mean response per neuron (initial readout bias); not stored in checkpoints.
    #[serde(skip)]
    pub mean_activity: Option<Vec<f32>>,
    /// Receptive-field centre (row, column) per neuron in input pixels, mapped from the training
    /// data (`readout::rf_mapping`); starts free Gaussian positions when
    /// `model.readout.init_mu_from_data` is set. Not stored in checkpoints.
    #[serde(skip)]
    pub rf_centers_px: Option<Vec<[f64; 2]>>,
}

impl DatasetFacts {
    /// Facts of datasets `datasets` (readout order) with images of `in_shape`.
    pub fn new(in_shape: [usize; 3], n_behaviors: usize, datasets: &[DatasetReadoutFacts]) -> Self {
        Self {
            in_shape,
            n_behaviors,
            datasets: datasets.to_vec(),
        }
    }
}
