//! Importing a model trained in PyTorch (neuralpredictors, the Sensorium starter kit): a
//! `torch.save` checkpoint, the run configuration that describes its architecture (a preset and
//! `--set`, or a config file) and the data it was trained on become an ordinary run directory,
//! which `evaluate`, `predict`, `transfer`, `ensemble` and the in-silico commands read like any
//! trained run.
//!
//! The checkpoint must fit the configured model exactly: every tensor the model has must be in
//! the file with the model's shape, and the file may hold nothing else (a checkpoint of another
//! architecture is refused, naming the tensors that disagree). Readout keys (`readout.<key>.…`)
//! are renamed to the data keys of `--data` when there is one readout and one dataset, or as
//! `readout_keys` says. With a retinotopic readout the checkpoint's `source_grid` (its neurons'
//! normalised cortical coordinates) must match the data's neurons, which catches data whose
//! neurons are not the ones the model was trained on.
//!
//! ```text
//! RUN/  config.toml  neurons.json  best.safetensors  last.safetensors  import.json
//! ```
//!
//! The imported model sees its inputs as the run's `[data]` section prepares them; that section
//! must normalise as the PyTorch training did (the `lurz2020` preset leaves images as stored,
//! the `sensorium2022` presets z-score them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::dir::RunDir;
use super::open::write_neurons;
use super::options::RunOptions;
use crate::config::RunConfig;
use crate::data::PreparedDataset;
use crate::model::pytorch::read_pytorch_state_dict;
use crate::model::readout::ReadoutConfig;
use crate::model::{Encoder, StateDict, checkpoint};

/// File of an imported run that says where its weights came from.
pub const IMPORT_FILE: &str = "import.json";

/// Largest difference accepted between the checkpoint's `source_grid` and the one computed from
/// the data's cortical coordinates (both lie in [−1, 1]; float32 rounding is ~1e-7).
const SOURCE_GRID_TOLERANCE: f64 = 1e-4;

/// What `cortexfit import` asks for.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The `torch.save` file (`.pth`, `.pth.tar`, `.pt`).
    pub checkpoint: PathBuf,
    /// The top-level key the state dict is nested under (found automatically when absent).
    pub state_key: Option<String>,
    /// The model's architecture and the data (`data.paths`, one readout each), as for training.
    pub config: RunConfig,
    /// Readout keys of the checkpoint → data keys of the data (`20457-5-9-0` → `20457-5-9`);
    /// needed only when there are several readouts whose keys differ from the data's.
    pub readout_keys: Vec<(String, String)>,
    /// The new run directory (must not hold a run).
    pub out: PathBuf,
}

/// `import.json`: where an imported run's weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// The checkpoint file (absolute path).
    pub checkpoint: String,
    /// The key the state dict was nested under, if any.
    pub nested_key: Option<String>,
    /// Checkpoint readout key → data key, for the keys that were renamed.
    pub renamed_readouts: BTreeMap<String, String>,
    /// Number of tensors loaded.
    pub tensors: usize,
    /// The data keys of the readouts, in order.
    pub data_keys: Vec<String>,
}

/// Imports `request.checkpoint` into the run directory `request.out`. Everything is checked
/// (configuration, data, every tensor) before the directory is created.
pub fn import(request: &ImportRequest, options: &RunOptions) -> anyhow::Result<ImportRecord> {
    let config = &request.config;
    config.validate()?;
    anyhow::ensure!(
        config.transfer.is_none(),
        "an imported run takes its weights from the checkpoint: remove the `[transfer]` section"
    );
    anyhow::ensure!(
        !config.data.paths.is_empty(),
        "give the data the model was trained on (--data), one dataset per readout"
    );
    RunDir::check_fresh(&request.out)?;
    let path = std::path::absolute(&request.checkpoint)
        .with_context(|| format!("resolving {}", request.checkpoint.display()))?;
    let p = path.display().to_string();
    let torch = read_pytorch_state_dict(&path, request.state_key.as_deref())?;
    let _kernels = crate::kernels::use_kernels(config.kernels);
    let sets = PreparedDataset::load_all(&config.data.paths, &config.data)?;
    let data_keys: Vec<String> = sets.iter().map(|s| s.data_key().to_string()).collect();
    // The weights replace every initial value: skip initialisations that need the data.
    let mut build = config.clone();
    if let ReadoutConfig::Gaussian(g) = &mut build.model.readout {
        g.init_mu_from_data = false;
    }
    let mut model = crate::train::build_model(&build, &sets, None, &options.device)?;
    model.config = config.model.clone();
    let (state, renamed) = rename_readouts(torch.state, &data_keys, &request.readout_keys)
        .with_context(|| p.clone())?;
    let expected = model.export_state();
    check_fits(&state, &expected).with_context(|| {
        format!("{p} does not fit the configured model (is it a checkpoint of another architecture or other data? --preset, --config and --set describe the model)")
    })?;
    check_source_grids(&state, &expected).with_context(|| p.clone())?;
    let model = model
        .import_state(&state)
        .with_context(|| format!("{p}: loading the weights"))?;
    let record = ImportRecord {
        checkpoint: p.clone(),
        nested_key: torch.nested_key,
        renamed_readouts: renamed,
        tensors: state.entries.len(),
        data_keys,
    };
    write_run(&request.out, config, &sets, &model, &record)?;
    Ok(record)
}

/// Writes the run directory of an imported model.
fn write_run(
    out: &Path,
    config: &RunConfig,
    sets: &[PreparedDataset],
    model: &Encoder,
    record: &ImportRecord,
) -> anyhow::Result<()> {
    let run = RunDir::create(out)?;
    crate::io::atomic_write(
        &run.config(),
        config
            .to_commented_toml(&format!(
                "Configuration of the cortexfit run in {}, imported from the PyTorch checkpoint \
                 {} (cortexfit {}).",
                out.display(),
                record.checkpoint,
                env!("CARGO_PKG_VERSION")
            ))
            .as_bytes(),
    )?;
    write_neurons(&run, sets)?;
    checkpoint::save(model, &run.best_model())?;
    checkpoint::save(model, &run.last_model())?;
    crate::io::atomic_write(
        &run.root().join(IMPORT_FILE),
        serde_json::to_string_pretty(record)?.as_bytes(),
    )
}

/// The readout keys of a state dict: `<key>` of `readout.<key>.…` (data keys hold no dots).
fn readout_keys(sd: &StateDict) -> BTreeSet<String> {
    sd.entries
        .keys()
        .filter_map(|n| n.strip_prefix("readout."))
        .filter_map(|rest| rest.split_once('.').map(|(k, _)| k.to_string()))
        .collect()
}

/// Renames the per-dataset entries (`readout.`, `shifter.`, `modulator.` + key) of `sd` from the
/// checkpoint's readout keys to the data keys: by `map`, or one key onto one dataset. Returns the
/// renamed state dict and the keys that were renamed.
fn rename_readouts(
    sd: StateDict,
    data_keys: &[String],
    map: &[(String, String)],
) -> anyhow::Result<(StateDict, BTreeMap<String, String>)> {
    let in_file = readout_keys(&sd);
    let wanted: BTreeSet<String> = data_keys.iter().cloned().collect();
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for (from, to) in map {
        anyhow::ensure!(
            in_file.contains(from),
            "--readout-key {from}={to}: the checkpoint has no readout `{from}` (it has {})",
            list(&in_file)
        );
        anyhow::ensure!(
            wanted.contains(to),
            "--readout-key {from}={to}: no dataset has data key `{to}` (the data has {})",
            list(&wanted)
        );
        renamed.insert(from.clone(), to.clone());
    }
    if renamed.is_empty() && in_file != wanted && in_file.len() == 1 && wanted.len() == 1 {
        let from = in_file.iter().next().cloned().unwrap_or_default();
        renamed.insert(from, data_keys[0].clone());
    }
    renamed.retain(|from, to| from != to);
    let result: BTreeSet<String> = in_file
        .iter()
        .map(|k| renamed.get(k).cloned().unwrap_or_else(|| k.clone()))
        .collect();
    anyhow::ensure!(
        result == wanted,
        "its readouts are {} but the data keys of --data are {}; map them with --readout-key \
         CHECKPOINT_KEY=DATA_KEY",
        list(&in_file),
        list(&wanted)
    );
    if renamed.is_empty() {
        return Ok((sd, renamed));
    }
    let entries = sd
        .entries
        .into_iter()
        .map(|(name, t)| {
            for part in ["readout.", "shifter.", "modulator."] {
                if let Some(rest) = name.strip_prefix(part)
                    && let Some((key, tail)) = rest.split_once('.')
                    && let Some(to) = renamed.get(key)
                {
                    return (format!("{part}{to}.{tail}"), t);
                }
            }
            (name, t)
        })
        .collect();
    Ok((StateDict { entries }, renamed))
}

/// `` `a`, `b` `` for a set of names.
fn list(keys: &BTreeSet<String>) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most `n` names of `names`, then how many more.
fn some(names: &[&String], n: usize) -> String {
    let shown: Vec<String> = names.iter().take(n).map(|k| format!("`{k}`")).collect();
    if names.len() > n {
        format!("{} and {} more", shown.join(", "), names.len() - n)
    } else {
        shown.join(", ")
    }
}

/// The checkpoint `file` must have exactly the tensors of `model` (names and shapes).
fn check_fits(file: &StateDict, model: &StateDict) -> anyhow::Result<()> {
    let shapes: Vec<String> = model
        .entries
        .iter()
        .filter_map(|(name, t)| {
            let f = file.entries.get(name)?;
            (f.shape != t.shape).then(|| {
                format!(
                    "tensor `{name}` has shape {:?} in the checkpoint but {:?} in the model",
                    f.shape, t.shape
                )
            })
        })
        .collect();
    let mut problems: Vec<String> = shapes.iter().take(3).cloned().collect();
    if shapes.len() > 3 {
        problems.push(format!("{} more tensors differ in shape", shapes.len() - 3));
    }
    let missing: Vec<&String> = model
        .entries
        .keys()
        .filter(|k| !file.entries.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "the checkpoint lacks {} tensor(s) of the model: {}",
            missing.len(),
            some(&missing, 6)
        ));
    }
    let extra: Vec<&String> = file
        .entries
        .keys()
        .filter(|k| !model.entries.contains_key(*k))
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "the checkpoint has {} tensor(s) the model does not: {}",
            extra.len(),
            some(&extra, 6)
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{}", problems.join("; "))
}

/// Each `readout.<key>.source_grid` of the checkpoint must match the one computed from the data's
/// cortical coordinates: the data's neurons are then those the model was trained on, in order.
fn check_source_grids(file: &StateDict, model: &StateDict) -> anyhow::Result<()> {
    for (name, t) in &model.entries {
        if !name.ends_with(".source_grid") {
            continue;
        }
        let Some(f) = file.entries.get(name) else {
            continue;
        };
        let worst = f
            .data
            .iter()
            .zip(&t.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        anyhow::ensure!(
            worst <= SOURCE_GRID_TOLERANCE,
            "tensor `{name}` (the normalised cortical coordinates of the readout's neurons) differs \
             by up to {worst:.3e} from the one computed from the data's cell_motor_coordinates: \
             the data's neurons are not the ones the model was trained on, or not in the same \
             order"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(names: &[(&str, Vec<usize>)]) -> StateDict {
        let mut sd = StateDict::default();
        for (n, shape) in names {
            let len = shape.iter().product();
            sd.insert(*n, shape.clone(), vec![0.0; len]);
        }
        sd
    }

    #[test]
    fn one_readout_is_renamed_to_the_one_data_key() {
        let file = sd(&[
            ("core.w", vec![1]),
            ("readout.20457-5-9-0.bias", vec![2]),
            ("shifter.20457-5-9-0.mlp.0.weight", vec![1]),
        ]);
        let (out, renamed) = rename_readouts(file, &["20457-5-9".into()], &[]).unwrap();
        assert_eq!(renamed["20457-5-9-0"], "20457-5-9");
        let names: Vec<&str> = out.entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "core.w",
                "readout.20457-5-9.bias",
                "shifter.20457-5-9.mlp.0.weight"
            ]
        );
    }

    #[test]
    fn several_readouts_need_a_map_and_the_map_is_checked() {
        let file = sd(&[("readout.a-0.bias", vec![1]), ("readout.b-0.bias", vec![1])]);
        let keys = ["a".to_string(), "b".to_string()];
        let err = rename_readouts(file.clone(), &keys, &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`a-0`, `b-0`") && err.contains("--readout-key"),
            "{err}"
        );
        let map = [("a-0".into(), "a".into()), ("b-0".into(), "b".into())];
        let (out, _) = rename_readouts(file.clone(), &keys, &map).unwrap();
        assert!(out.entries.contains_key("readout.b.bias"));
        let bad = [("c-0".into(), "a".into())];
        let err = rename_readouts(file, &keys, &bad).unwrap_err().to_string();
        assert!(err.contains("no readout `c-0`"), "{err}");
    }

    #[test]
    fn a_checkpoint_that_does_not_fit_names_the_tensors() {
        let model = sd(&[("core.w", vec![64, 1, 15, 15]), ("readout.k.bias", vec![3])]);
        let file = sd(&[
            ("core.w", vec![64, 4, 9, 9]),
            ("shifter.k.mlp.0.weight", vec![5, 2]),
        ]);
        let err = check_fits(&file, &model).unwrap_err().to_string();
        assert!(
            err.contains("`core.w` has shape [64, 4, 9, 9] in the checkpoint but [64, 1, 15, 15]")
                && err.contains("lacks 1 tensor(s) of the model: `readout.k.bias`")
                && err.contains("does not: `shifter.k.mlp.0.weight`"),
            "{err}"
        );
        assert!(check_fits(&model, &model).is_ok());
    }

    #[test]
    fn source_grids_must_match_the_data() {
        let mut model = StateDict::default();
        model.insert(
            "readout.k.source_grid",
            vec![2, 2],
            vec![0.1, 0.2, -1.0, 1.0],
        );
        let mut file = model.clone();
        assert!(check_source_grids(&file, &model).is_ok());
        file.insert(
            "readout.k.source_grid",
            vec![2, 2],
            vec![0.2, 0.1, -1.0, 1.0],
        );
        let err = check_source_grids(&file, &model).unwrap_err().to_string();
        assert!(
            err.contains("`readout.k.source_grid`") && err.contains("not the ones"),
            "{err}"
        );
    }
}
