//! Saving and loading models as safetensors files.
//!
//! A checkpoint holds every weight and buffer under the reference library's state-dict names
//! (`core.features.layer0.conv.weight`, `readout.<key>._mu`, …) plus, in the file's metadata,
//! the model configuration (JSON), the dataset facts needed to rebuild the model, and a format
//! version. Because the tensor names are PyTorch's, the same file is also the export for PyTorch
//! users: `model.load_state_dict(safetensors.torch.load_file(path))` on the matching
//! neuralpredictors model. [`read_state_dict`] reads such files written by PyTorch, so a core
//! trained there can be imported with [`Encoder::load_core_state`].

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use burn::tensor::{DType, Device};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::model::config::ModelConfig;
use crate::model::encoder::Encoder;
use crate::model::facts::DatasetFacts;
use crate::model::readout::ReadoutConfig;
use crate::model::state_dict::{StateDict, StateTensor};

/// Version of the checkpoint layout; bumped whenever names or metadata change incompatibly.
pub const FORMAT_VERSION: u32 = 1;

const KEY_FORMAT: &str = "format";
const KEY_VERSION: &str = "cortexfit_checkpoint_version";
const KEY_CONFIG: &str = "model_config";
const KEY_FACTS: &str = "dataset_facts";
const KEY_PRECISION: &str = "precision";

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: not a cortexfit checkpoint (no `{KEY_VERSION}` in the safetensors metadata)")]
    NotACheckpoint { path: String },
    #[error(
        "{path}: checkpoint format version {found}, but this cortexfit reads version {FORMAT_VERSION}"
    )]
    Version { path: String, found: String },
}

/// Precision of the stored floating-point tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredPrecision {
    F32,
    F64,
}

/// Writes `sd` as a safetensors file (atomically) with `metadata`. Entries named
/// `*num_batches_tracked` are stored as int64, as PyTorch does.
pub fn write_state_dict(
    path: &Path,
    sd: &StateDict,
    precision: StoredPrecision,
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = sd
        .entries
        .iter()
        .map(|(name, t)| {
            let (dtype, data) = if name.ends_with("num_batches_tracked") {
                let v: Vec<u8> = t
                    .data
                    .iter()
                    .flat_map(|&x| (x as i64).to_le_bytes())
                    .collect();
                (Dtype::I64, v)
            } else {
                match precision {
                    StoredPrecision::F32 => (
                        Dtype::F32,
                        t.data
                            .iter()
                            .flat_map(|&x| (x as f32).to_le_bytes())
                            .collect(),
                    ),
                    StoredPrecision::F64 => (
                        Dtype::F64,
                        t.data.iter().flat_map(|&x| x.to_le_bytes()).collect(),
                    ),
                }
            };
            (name.clone(), dtype, t.shape.clone(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .with_context(|| format!("tensor `{name}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let buffer = safetensors::serialize(views, Some(metadata))
        .with_context(|| format!("serializing {}", path.display()))?;
    let buffer =
        with_sorted_metadata(buffer).with_context(|| format!("serializing {}", path.display()))?;
    crate::io::atomic_write(path, &buffer)
}

/// The same file with the header's `__metadata__` entries in sorted order. safetensors writes
/// them from a `HashMap`, whose order changes from process to process, so the same weights gave
/// different bytes in every run (a resumed and an uninterrupted run are compared byte for byte).
/// Layout: 8-byte little-endian header length, the JSON header (space-padded), the tensor data.
fn with_sorted_metadata(buffer: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let len_bytes: [u8; 8] = buffer
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .context("no header length")?;
    let n = usize::try_from(u64::from_le_bytes(len_bytes))?;
    let header = buffer.get(8..8 + n).context("truncated header")?;
    let mut header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)?;
    if let Some(serde_json::Value::Object(meta)) = header.remove("__metadata__") {
        let sorted: BTreeMap<String, serde_json::Value> = meta.into_iter().collect();
        header.insert("__metadata__".into(), serde_json::to_value(sorted)?);
    }
    let mut text = serde_json::to_string(&header)?;
    // The same entries in another order have the same length; keep the original padding.
    if text.len() > n {
        anyhow::bail!("re-serialized header grew from {n} to {} bytes", text.len());
    }
    text.extend(std::iter::repeat_n(' ', n - text.len()));
    let mut out = Vec::with_capacity(buffer.len());
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&buffer[8 + n..]);
    Ok(out)
}

/// Reads every tensor of a safetensors file (f32, f64, f16, bf16, int64 or int32) into a state
/// dict, and returns the file's metadata.
pub fn read_state_dict(path: &Path) -> anyhow::Result<(StateDict, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut sd = StateDict::default();
    for (name, view) in tensors.iter() {
        let raw = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::I64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::I32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half_to_f64(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
                .collect(),
            other => anyhow::bail!(
                "{}: tensor `{name}` has dtype {other:?}; expected a float or integer type",
                path.display()
            ),
        };
        sd.entries.insert(
            name.to_string(),
            StateTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((sd, meta.metadata().clone().unwrap_or_default()))
}

/// IEEE half precision → f64.
pub(crate) fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The stored precision matching the model's parameters.
fn model_precision(encoder: &Encoder) -> StoredPrecision {
    if encoder.core.dtype() == DType::F64 {
        StoredPrecision::F64
    } else {
        StoredPrecision::F32
    }
}

/// Saves `encoder` (weights in its own precision, configuration, dataset facts, format version)
/// to `path`, atomically.
pub fn save(encoder: &Encoder, path: &Path) -> anyhow::Result<()> {
    let mut meta = HashMap::new();
    meta.insert(KEY_FORMAT.to_string(), "pt".to_string());
    meta.insert(KEY_VERSION.to_string(), FORMAT_VERSION.to_string());
    meta.insert(
        KEY_CONFIG.to_string(),
        serde_json::to_string(&encoder.config)?,
    );
    meta.insert(
        KEY_FACTS.to_string(),
        serde_json::to_string(&encoder.facts)?,
    );
    let precision = model_precision(encoder);
    let name = match precision {
        StoredPrecision::F32 => "f32",
        StoredPrecision::F64 => "f64",
    };
    meta.insert(KEY_PRECISION.to_string(), name.to_string());
    write_state_dict(path, &encoder.export_state(), precision, meta)
        .with_context(|| format!("saving the model checkpoint {}", path.display()))
}

/// The file format of an export for PyTorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `.safetensors`: loads with `safetensors.torch.load_file`.
    Safetensors,
    /// `.pth` / `.pt` / `.pth.tar`: PyTorch's own zip format, as `torch.save(state_dict, f)`
    /// writes it (`model::torch_save`); loads with `torch.load`.
    Torch,
}

impl ExportFormat {
    /// The format a file name asks for, from its extension; `Err` says what is accepted.
    pub fn from_path(path: &Path) -> anyhow::Result<ExportFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Ok(ExportFormat::Safetensors),
            "pth" | "pt" => Ok(ExportFormat::Torch),
            "tar"
                if path
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .ends_with(".pth.tar") =>
            {
                Ok(ExportFormat::Torch)
            }
            _ => anyhow::bail!(
                "{}: expected a file name ending in .pth, .pt or .pth.tar (PyTorch's format, \
                 as torch.save writes it) or .safetensors",
                path.display()
            ),
        }
    }
}

/// Exports the weights alone under the reference names, as float32 (what PyTorch models use),
/// for `load_state_dict` in neuralpredictors.
pub fn export_for_pytorch(
    encoder: &Encoder,
    path: &Path,
    format: ExportFormat,
) -> anyhow::Result<()> {
    match format {
        ExportFormat::Safetensors => {
            let mut meta = HashMap::new();
            meta.insert(KEY_FORMAT.to_string(), "pt".to_string());
            write_state_dict(path, &encoder.export_state(), StoredPrecision::F32, meta)
        }
        ExportFormat::Torch => {
            crate::model::torch_save::write_pytorch_state_dict(path, &encoder.export_state())
        }
    }
    .with_context(|| format!("exporting the state dict {}", path.display()))
}

/// Loads a checkpoint written by [`save`]: rebuilds the model from the stored configuration and
/// dataset facts on `device` (float32 unless the checkpoint is float64), then loads the weights.
pub fn load(path: &Path, device: &Device) -> anyhow::Result<Encoder> {
    let (sd, meta) = read_state_dict(path)?;
    let p = path.display().to_string();
    let version = meta
        .get(KEY_VERSION)
        .ok_or_else(|| CheckpointError::NotACheckpoint { path: p.clone() })?;
    if version != &FORMAT_VERSION.to_string() {
        return Err(CheckpointError::Version {
            path: p,
            found: version.clone(),
        }
        .into());
    }
    let config: ModelConfig = serde_json::from_str(
        meta.get(KEY_CONFIG)
            .with_context(|| format!("{p}: metadata has no `{KEY_CONFIG}`"))?,
    )
    .with_context(|| format!("{p}: metadata `{KEY_CONFIG}`"))?;
    let facts: DatasetFacts = serde_json::from_str(
        meta.get(KEY_FACTS)
            .with_context(|| format!("{p}: metadata has no `{KEY_FACTS}`"))?,
    )
    .with_context(|| format!("{p}: metadata `{KEY_FACTS}`"))?;
    // The stored weights replace every initial value, so initialisations that need the data
    // (readout positions at mapped receptive fields) are not redone.
    let mut build = config.clone();
    if let ReadoutConfig::Gaussian(g) = &mut build.readout {
        g.init_mu_from_data = false;
    }
    let mut encoder = Encoder::init(&build, &facts, 0, device)
        .with_context(|| format!("{p}: rebuilding the model from its stored configuration"))?;
    encoder.config = config;
    let is_f64 = match meta.get(KEY_PRECISION).map(String::as_str) {
        Some("f64") => true,
        Some("f32") => false,
        other => anyhow::bail!(
            "{p}: metadata `{KEY_PRECISION}` is {other:?}, expected \"f32\" or \"f64\""
        ),
    };
    let encoder = if is_f64 {
        crate::model::tensor_util::cast_module(encoder, DType::F64)
    } else {
        encoder
    };
    encoder
        .import_state(&sd)
        .with_context(|| format!("{p}: loading the weights"))
}
