//! `ensemble.json`: the file that makes a folder an ensemble, listing its member runs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

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

/// Writes `dir/ensemble.json` listing `stored` (paths as they should be stored).
pub fn write(dir: &Path, stored: Vec<PathBuf>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::io::atomic_write(
        &dir.join(ENSEMBLE_FILE),
        serde_json::to_string_pretty(&EnsembleFile { members: stored })?.as_bytes(),
    )
}
