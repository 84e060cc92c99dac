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
    /// Subtract the behaviour mean too (neuralpredictors' `subtract_behavior_mean`), so behaviour
    /// is z-scored and a modulator sees zero at average behaviour. Off by default: the
    /// reference divides behaviour by its std only.
    pub subtract_behavior_mean: bool,
    /// Rescale every image by this factor while loading, as neuralpredictors' / the Sensorium
    /// starter kit's `ScaleInputs(scale)` (skimage `rescale`: bilinear, mirror edges, no
    /// anti-aliasing; `image_scale.rs`). `0.25` takes the Sensorium zips' 144×256 images to the
    /// 36×64 the sensorium2022 models are fitted on. Default 1 (images as stored).
    pub image_scale: f64,
    /// Rescale every image to this `[height, width]` while loading, by the one factor that
    /// does so (as `image_scale`: 144×256 → `[36, 64]` is factor 0.25); data already that size
    /// is used as stored, data no single factor maps onto it is refused. The sensorium2022
    /// presets set `[36, 64]`, the size their models are fitted at, so they run on the Sensorium
    /// zips as shipped and on data already downsampled alike. Unset by default; not together
    /// with an `image_scale` other than 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<[usize; 2]>,
    /// Keep only neurons in these brain areas (`meta/neurons/area`, e.g. `["V1"]`); all when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<String>,
    /// Keep only neurons in these cortical layers (`meta/neurons/layer`, e.g. `["L2/3"]`); all
    /// when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// A text file of the unit ids to keep (`unit_ids.rs` gives the format); all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_ids_file: Option<String>,
    /// A text file of unit ids to leave out (same format).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_unit_ids_file: Option<String>,
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
            subtract_behavior_mean: false,
            image_scale: 1.0,
            image_size: None,
            areas: Vec::new(),
            layers: Vec::new(),
            unit_ids_file: None,
            exclude_unit_ids_file: None,
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
        if self.subtract_behavior_mean && !self.normalize {
            return Err(DataError::setting(
                "data.subtract_behavior_mean",
                "subtracting the behaviour mean is part of normalization: it needs \
                 data.normalize = true",
            ));
        }
        if !(self.image_scale.is_finite() && self.image_scale > 0.0) {
            return Err(DataError::setting(
                "data.image_scale",
                format!(
                    "must be a finite number > 0 (0.25 turns 144×256 into 36×64), got {}",
                    self.image_scale
                ),
            ));
        }
        if let Some(size) = self.image_size {
            if size.contains(&0) {
                return Err(DataError::setting(
                    "data.image_size",
                    format!("must be [height, width] of at least 1 each, got {size:?}"),
                ));
            }
            if self.image_scale != 1.0 {
                return Err(DataError::setting(
                    "data.image_size",
                    format!(
                        "set either data.image_size ({size:?}) or data.image_scale ({}), not \
                         both: image_size chooses the scale factor itself",
                        self.image_scale
                    ),
                ));
            }
        }
        for (key, names) in [("data.areas", &self.areas), ("data.layers", &self.layers)] {
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(DataError::setting(key, "names must not be empty"));
            }
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
