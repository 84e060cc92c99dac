//! Recordings in the Sensorium / Lurz 2020 FileTree layout (REFERENCE.md §6), read from a folder
//! or straight from its `.zip` archive, plus normalization (NeuroNormalizer, §1.8), tiers,
//! batches and the neuron / image subsets of the data-efficiency experiments.
//!
//! [`Dataset`] holds one scan (one `data_key`) in memory with RAW on-disk values (images
//! rescaled when asked, [`image_scale`]); [`PreparedDataset`] applies a run's `[data]` settings
//! ([`DataConfig`]: neuron selection, subsets, [`Normalizer`]) and cuts normalized batches from it;
//! it is the one dataset pipeline of the crate. Images are held once, raw, and normalized per
//! batch.

mod config;
mod error;
mod filetree;
mod filetree_write;
#[cfg(feature = "hdf5")]
mod hdf5;
pub mod image_scale;
mod neuron_selection;
mod normalize;
pub mod npy;
mod prepared;
mod source;
mod split;
mod subset;
mod tiers;

pub use config::DataConfig;
pub use error::DataError;
pub use filetree_write::write_filetree;
pub use neuron_selection::{UnitIdList, selected_unit_ids};
pub use normalize::{NormalizeOptions, Normalizer};
pub use prepared::{Batch, BatchTensors, PreparedDataset};
pub use split::{NeuronHalf, NeuronSplit};
pub use subset::NeuronSelection;
pub use tiers::Tier;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to load a dataset.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// Data key to use instead of the one parsed from the folder / zip name.
    #[serde(default)]
    pub data_key: Option<String>,
    /// Rescale every image by this factor while loading (`data.image_scale`; see
    /// [`image_scale`]); `None` or 1 keeps them as stored.
    #[serde(default)]
    pub image_scale: Option<f64>,
    /// Rescale every image to this (height, width) while loading (`data.image_size`), by the
    /// one factor that does so ([`LoadOptions::scale_for`]); images of that size are kept as
    /// stored. Not together with an `image_scale` other than 1.
    #[serde(default)]
    pub image_size: Option<[usize; 2]>,
}

impl LoadOptions {
    /// The factor by which images stored as `h` × `w` are rescaled (1: kept as stored), from
    /// `image_size` if set, else `image_scale`. `path` names the image file in the error given
    /// when no single factor turns `h` × `w` into `image_size`.
    pub fn scale_for(&self, h: usize, w: usize, path: &Path) -> Result<f64, DataError> {
        let Some([th, tw]) = self.image_size else {
            return Ok(self.image_scale.unwrap_or(1.0));
        };
        if (h, w) == (th, tw) {
            return Ok(1.0);
        }
        let scale = th as f64 / h as f64;
        if image_scale::scaled_size(h, w, scale) == (th, tw) {
            return Ok(scale);
        }
        Err(DataError::Shape {
            path: path.to_path_buf(),
            found: vec![h, w],
            expected: format!(
                "images that one scale factor turns into {th}×{tw} (data.image_size; e.g. \
                 {}×{} with factor 0.25): set data.image_scale for this data instead",
                4 * th,
                4 * tw
            ),
        })
    }
}

/// A per-trial or per-neuron meta array of any kind, kept by name.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaArray {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<String>),
}

/// `meta/trials/*`: one entry per trial.
#[derive(Debug, Clone, Default)]
pub struct TrialMeta {
    /// Image shown on each trial; repeats share an id.
    pub frame_image_id: Vec<i64>,
    /// Trial index in recording time (may have gaps, not in file order).
    pub trial_idx: Option<Vec<i64>>,
    /// Every other array in `meta/trials`, by file stem (first axis = trials, flattened).
    pub other: BTreeMap<String, MetaArray>,
}

/// `meta/neurons/*`: one entry per neuron.
#[derive(Debug, Clone, Default)]
pub struct NeuronMeta {
    pub unit_ids: Vec<i64>,
    /// (x, y, z) in µm.
    pub cell_motor_coordinates: Option<Vec<[f64; 3]>>,
    pub area: Option<Vec<String>>,
    pub layer: Option<Vec<String>>,
    pub animal_ids: Option<Vec<i64>>,
    /// Matched neuron across scans, −1 if unmatched (Lurz data).
    pub multi_match_id: Option<Vec<i64>>,
    /// Every other array in `meta/neurons`, by file stem.
    pub other: BTreeMap<String, MetaArray>,
}

/// Summary statistics of one field (`meta/statistics/<field>/<all|stimulus_frame>/`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldStatistics {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub min: Option<Vec<f64>>,
    pub max: Option<Vec<f64>>,
    pub median: Option<Vec<f64>>,
}

/// `meta/statistics`, by field name, for the `all` and `stimulus_frame` sources.
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    pub all: BTreeMap<String, FieldStatistics>,
    pub stimulus_frame: BTreeMap<String, FieldStatistics>,
}

impl Statistics {
    /// Statistics of `field` from source `all` (falling back to `stimulus_frame`).
    pub fn field(&self, field: &str) -> Option<&FieldStatistics> {
        self.all
            .get(field)
            .or_else(|| self.stimulus_frame.get(field))
    }
}

/// One scan / animal, all in memory, raw values as on disk (cast to f32).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub data_key: String,
    pub source: PathBuf,
    /// C, H, W.
    pub image_shape: [usize; 3],
    /// n_trials·C·H·W.
    pub images: Vec<f32>,
    /// n_trials·n_neurons.
    pub responses: Vec<f32>,
    /// n_trials·3 (pupil dilation, its derivative, running speed).
    pub behavior: Option<Vec<f32>>,
    /// n_trials·2.
    pub pupil_center: Option<Vec<f32>>,
    pub tiers: Vec<Tier>,
    pub trials: TrialMeta,
    pub neurons: NeuronMeta,
    pub statistics: Statistics,
}

impl Dataset {
    /// Load a recording: a FileTree folder or `.zip` archive, or an HDF5 static image set
    /// (`.h5` / `.hdf5`, REFERENCE.md §6.3).
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Dataset, DataError> {
        if is_hdf5(path) {
            #[cfg(feature = "hdf5")]
            return hdf5::load(path, options);
            #[cfg(not(feature = "hdf5"))]
            return Err(DataError::File {
                path: path.to_path_buf(),
                message: "this cortexfit was built without HDF5 support (cargo feature `hdf5`, \
                          on by default); convert the file to a FileTree with a build that has it"
                    .into(),
            });
        }
        filetree::load(path, options)
    }

    pub fn n_trials(&self) -> usize {
        self.tiers.len()
    }

    pub fn n_neurons(&self) -> usize {
        self.neurons.unit_ids.len()
    }

    /// Behaviour variables per trial (0 when the recording has none).
    pub fn n_behaviors(&self) -> usize {
        match &self.behavior {
            Some(b) if self.n_trials() > 0 => b.len() / self.n_trials(),
            _ => 0,
        }
    }

    /// Number of values per image (C·H·W).
    pub fn image_len(&self) -> usize {
        self.image_shape.iter().product()
    }

    /// Trial indices of `tier`, ascending.
    pub fn tier_indices(&self, tier: Tier) -> Vec<usize> {
        (0..self.n_trials())
            .filter(|&i| self.tiers[i] == tier)
            .collect()
    }

    /// Trials of `tier` grouped by `frame_image_id` (one group per unique image, sorted by id;
    /// trials within a group ascending). Used for oracle metrics.
    pub fn repeat_groups(&self, tier: Tier) -> Vec<(i64, Vec<usize>)> {
        let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for i in self.tier_indices(tier) {
            groups
                .entry(self.trials.frame_image_id[i])
                .or_default()
                .push(i);
        }
        groups.into_iter().collect()
    }
}

/// Whether `path` names an HDF5 file (`.h5`, `.hdf5`).
pub fn is_hdf5(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("h5") || e.eq_ignore_ascii_case("hdf5"))
}

/// The data key Sensorium / neuralpredictors derive from a folder or zip name:
/// `static20457-5-9-preproc0` → `20457-5-9-0`, `lurz2020_static20457-5-9` → `20457-5-9`,
/// `static26872-17-20-GrayImageNet-94c6…zip` → `26872-17-20`. Falls back to the file stem.
pub fn data_key_from_path(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = [".zip", ".h5", ".hdf5"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name);
    let Some(pos) = stem.find("static") else {
        return stem.to_string();
    };
    let rest = &stem[pos + "static".len()..];
    let parts: Vec<&str> = rest.split('-').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ids: Vec<&str> = parts
        .iter()
        .take(3)
        .copied()
        .take_while(|s| numeric(s))
        .collect();
    if ids.len() < 3 {
        return stem.to_string();
    }
    let mut key = ids.join("-");
    if let Some(p) = parts
        .get(3)
        .and_then(|s| s.strip_prefix("preproc"))
        .filter(|p| numeric(p))
    {
        key.push('-');
        key.push_str(p);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_as_sensorium() {
        let k = |s: &str| data_key_from_path(Path::new(s));
        assert_eq!(k("/x/static20457-5-9-preproc0"), "20457-5-9-0");
        assert_eq!(k("/x/lurz2020_static20457-5-9"), "20457-5-9");
        assert_eq!(
            k("static26872-17-20-GrayImageNet-94c6ff995dac583098847cfecd43e7b6.zip"),
            "26872-17-20"
        );
        assert_eq!(k("/x/mydata"), "mydata");
        assert_eq!(k("/x/static22564-2-13-preproc0.h5"), "22564-2-13-0");
    }
}
