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

use super::ensemble_file;
pub use super::ensemble_file::{ENSEMBLE_FILE, EnsembleFile, is_ensemble, members};
pub use super::open::check_members;

/// Writes `dir/ensemble.json` for `members` (run directories), after checking that they form an
/// ensemble (see [`check_members`]). Members inside `dir` are stored relative to it, so the folder can move.
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
    ensemble_file::write(dir, stored)
}
