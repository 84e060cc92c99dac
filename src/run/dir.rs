//! The layout of a run directory and its resumable checkpoints.
//!
//! ```text
//! RUN/
//!   config.toml            the resolved run configuration (data paths included)
//!   log.jsonl              one JSON line per epoch (epoch 0 = before training)
//!   best.safetensors       the best model so far (weights, BN statistics, model config)
//!   last.safetensors       the model after the last completed epoch
//!   summary.json           written when training ends
//!   evaluation/            per-neuron CSVs written by `cortexfit evaluate`
//!   state/last.json        points to the newest complete checkpoint folder
//!   state/epoch-0007/      model.safetensors, best.safetensors, optimizer.bpk, trainer.json
//! ```
//!
//! A checkpoint folder is written completely first; only then is `state/last.json` replaced
//! (atomically) to point at it, and older folders are removed. A run killed at any moment
//! therefore resumes from a consistent epoch.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

/// Contents of `state/last.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    /// Folder name under `state/`.
    folder: String,
    /// Epochs completed in that checkpoint.
    epoch: usize,
}

impl RunDir {
    /// A run directory at `root` (not created).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// Fails when `root` already holds a run.
    pub fn check_fresh(root: &Path) -> anyhow::Result<()> {
        let dir = Self::new(root);
        if dir.config().exists() || dir.state().exists() {
            anyhow::bail!(
                "{} already holds a run; continue it with `cortexfit train --resume {}` or choose another --out",
                root.display(),
                root.display()
            );
        }
        Ok(())
    }

    /// Creates a fresh run directory; refuses one that already holds a run.
    pub fn create(root: &Path) -> anyhow::Result<Self> {
        Self::check_fresh(root)?;
        let dir = Self::new(root);
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the run directory {}", root.display()))?;
        Ok(dir)
    }

    /// The run directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `log.jsonl`.
    pub fn log(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }
    /// `best.safetensors`.
    pub fn best_model(&self) -> PathBuf {
        self.root.join("best.safetensors")
    }
    /// `last.safetensors`.
    pub fn last_model(&self) -> PathBuf {
        self.root.join("last.safetensors")
    }
    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    /// `evaluation/`.
    pub fn evaluation(&self) -> PathBuf {
        self.root.join("evaluation")
    }
    /// `state/`.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// A new, empty checkpoint folder for `epoch` (write into it, then [`commit`](Self::commit)).
    pub fn begin_checkpoint(&self, epoch: usize) -> anyhow::Result<PathBuf> {
        let folder = self.state().join(format!("epoch-{epoch:04}"));
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .with_context(|| format!("removing the stale checkpoint {}", folder.display()))?;
        }
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        Ok(folder)
    }

    /// Makes `folder` the current checkpoint and removes older ones.
    pub fn commit(&self, folder: &Path, epoch: usize) -> anyhow::Result<()> {
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .context("checkpoint folder name")?
            .to_string();
        let pointer = Pointer {
            folder: name.clone(),
            epoch,
        };
        crate::io::atomic_write(
            &self.state().join("last.json"),
            serde_json::to_string_pretty(&pointer)?.as_bytes(),
        )?;
        for entry in std::fs::read_dir(self.state())? {
            let entry = entry?;
            let path = entry.path();
            if path.is_dir() && entry.file_name().to_str() != Some(name.as_str()) {
                // Best effort: a leftover folder is harmless.
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(())
    }

    /// The current checkpoint folder and its epoch, if any.
    pub fn current_checkpoint(&self) -> anyhow::Result<Option<(PathBuf, usize)>> {
        let path = self.state().join("last.json");
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let pointer: Pointer = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a checkpoint pointer", path.display()))?;
        let folder = self.state().join(&pointer.folder);
        anyhow::ensure!(
            folder.is_dir(),
            "{} points to {}, which does not exist",
            path.display(),
            folder.display()
        );
        Ok(Some((folder, pointer.epoch)))
    }
}

/// Links `from` to `to` (same file system: a hard link, else a copy), replacing `to`.
pub fn link_or_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_file(to).with_context(|| format!("removing {}", to.display()))?;
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}
