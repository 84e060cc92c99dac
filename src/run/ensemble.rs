//! Ensembles: several runs of one configuration that differ only in their seed, used as one
//! model whose prediction is the mean of the members' predictions (in-silico experiments are
//! always run on ensembles; they also predict better than any member).
//!
//! An ensemble is a folder with `ensemble.json` listing its member runs (paths relative to the
//! folder when they lie inside it). `cortexfit train --seeds 1,2,3` trains the members into
//! `OUT/seed-<s>/` and writes `OUT/ensemble.json`; `cortexfit ensemble --runs A B C --out E`
//! groups finished runs. Every command that takes a run takes an ensemble.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::dir::RunDir;
use super::open::Run;

/// File that marks an ensemble folder.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

/// Contents of `ensemble.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleFile {
    /// Member run directories (relative to the ensemble folder, or absolute).
    pub members: Vec<PathBuf>,
}

/// Whether `path` is an ensemble folder.
pub fn is_ensemble(path: &Path) -> bool {
    path.join(ENSEMBLE_FILE).is_file()
}

/// The member run directories of the ensemble at `dir`, resolved.
pub fn members(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let path = dir.join(ENSEMBLE_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: EnsembleFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an ensemble file", path.display()))?;
    anyhow::ensure!(
        !file.members.is_empty(),
        "{}: `members` is empty",
        path.display()
    );
    Ok(file
        .members
        .iter()
        .map(|m| {
            if m.is_absolute() {
                m.clone()
            } else {
                dir.join(m)
            }
        })
        .collect())
}

/// Writes `dir/ensemble.json` for `members` (run directories), after checking that they form an
/// ensemble (see [`open`]). Members inside `dir` are stored relative to it, so the folder can move.
pub fn create(dir: &Path, members: &[PathBuf], device: &Device) -> anyhow::Result<()> {
    anyhow::ensure!(
        !members.is_empty(),
        "an ensemble needs at least one member run"
    );
    anyhow::ensure!(
        !dir.join("config.toml").exists(),
        "{} holds a single run; choose another folder for the ensemble",
        dir.display()
    );
    let dir_abs =
        std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let mut stored = Vec::with_capacity(members.len());
    for m in members {
        let abs = std::path::absolute(m).with_context(|| format!("resolving {}", m.display()))?;
        stored.push(match abs.strip_prefix(&dir_abs) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => abs,
        });
    }
    check_members(members, device)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic_write(
        &dir.join(ENSEMBLE_FILE),
        serde_json::to_string_pretty(&EnsembleFile { members: stored })?.as_bytes(),
    )
}

/// Opens every member; they must share the configuration except for the seed, the data keys and
/// the neurons of every readout.
fn check_members(members: &[PathBuf], device: &Device) -> anyhow::Result<Vec<Run>> {
    let runs = members
        .iter()
        .map(|m| {
            Run::open_single(m, device).with_context(|| format!("ensemble member {}", m.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &runs[0];
    let mut seeds = std::collections::BTreeSet::new();
    for (run, path) in runs.iter().zip(members) {
        let mut config = run.config.clone();
        config.seed = first.config.seed;
        anyhow::ensure!(
            config == first.config,
            "ensemble member {} has another configuration than {} (members may differ only in \
             `seed`)",
            path.display(),
            members[0].display()
        );
        anyhow::ensure!(
            run.neurons == first.neurons,
            "ensemble member {} has other readouts (data keys or neurons) than {}",
            path.display(),
            members[0].display()
        );
        anyhow::ensure!(
            seeds.insert(run.config.seed),
            "ensemble member {} repeats seed {} (an ensemble of identical fits)",
            path.display(),
            run.config.seed
        );
    }
    Ok(runs)
}

/// Opens the ensemble at `dir`: the members' models, averaged by [`Run::predict`].
pub fn open(dir: &Path, device: &Device) -> anyhow::Result<Run> {
    let paths = members(dir)?;
    let runs = check_members(&paths, device)?;
    let mut runs = runs.into_iter();
    let first = runs.next().context("an ensemble has members")?;
    let mut ensemble = Run {
        dir: RunDir::new(dir),
        ..first
    };
    for run in runs {
        ensemble.models.extend(run.models);
        ensemble.member_dirs.extend(run.member_dirs);
        ensemble.member_seeds.extend(run.member_seeds);
    }
    Ok(ensemble)
}
