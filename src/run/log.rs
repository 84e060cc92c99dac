//! `log.jsonl`: one [`EpochRecord`] per line, appended and flushed per epoch.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use crate::train::EpochRecord;

/// Appends epoch records to `log.jsonl` (one JSON object per line, flushed per epoch).
pub struct EpochLog {
    path: PathBuf,
}

impl EpochLog {
    /// Opens (creating if needed) the log of a run directory.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Keeps only the records up to `epoch` (used on resume so that an epoch that was logged
    /// but not checkpointed before a crash is not listed twice).
    pub fn truncate_after(&self, epoch: usize) -> anyhow::Result<()> {
        let records = Self::read(&self.path).unwrap_or_default();
        let mut text = String::new();
        for r in records.iter().filter(|r| r.epoch <= epoch) {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        crate::io::atomic_write(&self.path, text.as_bytes())
    }

    /// Appends one record.
    pub fn append(&self, record: &EpochRecord) -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening the epoch log {}", self.path.display()))?;
        let line = serde_json::to_string(record)?;
        writeln!(file, "{line}")
            .and_then(|_| file.sync_data())
            .with_context(|| format!("writing the epoch log {}", self.path.display()))
    }

    /// Reads every record of a log.
    pub fn read(path: &Path) -> anyhow::Result<Vec<EpochRecord>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the epoch log {}", path.display()))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| {
                    format!("{} line {}: not an epoch record", path.display(), i + 1)
                })
            })
            .collect()
    }
}
