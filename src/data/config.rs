//! The `[data]` section of a run configuration: which recordings, which subsets, how they are
//! normalized. Applied by [`super::PreparedDataset::prepare`].

use serde::{Deserialize, Serialize};

use super::{DataError, NeuronSplit};

/// Which recordings a run trains on and how they are prepared. Batch size lives in `[trainer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Datasets (FileTree folders or Sensorium `.zip` files), one readout each. `--data` on the
    /// command line replaces this list.
    pub paths: Vec<String>,
    /// Normalize as neuralpredictors' NeuroNormalizer: responses ÷ per-neuron std (with a
    /// precision floor), behaviour ÷ std, pupil position z-scored, images z-scored unless excluded.
    pub normalize: bool,
    /// Leave images as stored (Lurz 2020 excludes them from normalization).
    pub exclude_images: bool,
    /// Train on a seeded random subset of this many neurons per dataset (all when absent).
    pub neuron_n: Option<usize>,
    /// Train on a seeded random subset of this many unique training images (all when absent).
    pub image_n: Option<usize>,
    /// Train on one half of the neurons (a seeded permutation; `half = "a" | "b"`, `seed`): new
    /// neurons of the same animal for transfer experiments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neuron_split: Option<NeuronSplit>,
    /// Seed of the neuron and image subsets (kept apart from the run seed so that several
    /// model seeds see the same subset).
    pub subset_seed: u64,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            normalize: true,
            exclude_images: false,
            neuron_n: None,
            neuron_split: None,
            image_n: None,
            subset_seed: 0,
        }
    }
}

impl DataConfig {
    /// Rejects settings that cannot both hold.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.exclude_images && !self.normalize {
            return Err(DataError::setting(
                "data.exclude_images",
                "excluding images from normalization needs data.normalize = true \
                 (with normalize = false nothing is normalized anyway: drop exclude_images)",
            ));
        }
        if self.neuron_n == Some(0) {
            return Err(DataError::setting(
                "data.neuron_n",
                "must be at least 1 (leave it out to use all neurons)",
            ));
        }
        if self.image_n == Some(0) {
            return Err(DataError::setting(
                "data.image_n",
                "must be at least 1 (leave it out to use all training images)",
            ));
        }
        Ok(())
    }
}
