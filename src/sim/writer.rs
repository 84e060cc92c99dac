//! Writing a simulated session in the FileTree layout of the real data (REFERENCE.md §6.1/6.2):
//! one `.npy` per trial and field under `data/`, per-trial and per-neuron metadata under
//! `meta/`, summary statistics under `meta/statistics/<field>/all/`, plus `config.json`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use npyz::WriterBuilder;

/// Encodes a numeric array as `.npy` bytes (little-endian, C order).
pub fn npy_bytes<T: npyz::AutoSerialize + Copy>(
    shape: &[usize],
    data: &[T],
) -> anyhow::Result<Vec<u8>> {
    let expected: usize = shape.iter().product();
    anyhow::ensure!(
        expected == data.len(),
        "npy shape {shape:?} needs {expected} values, got {}",
        data.len()
    );
    let shape: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut buf)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(buf)
}

/// Encodes strings as a numpy unicode array (`<U{width}`), as the real metadata does.
pub fn npy_unicode(data: &[&str], width: usize) -> anyhow::Result<Vec<u8>> {
    let dtype = npyz::DType::new_scalar(format!("<U{width}").parse()?);
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<str>::new()
        .dtype(dtype)
        .shape(&[data.len() as u64])
        .writer(&mut buf)
        .begin_nd()?;
    for s in data {
        anyhow::ensure!(
            s.chars().count() <= width,
            "string {s:?} longer than {width}"
        );
        w.push(s)?;
    }
    w.finish()?;
    Ok(buf)
}

/// Writes files below one root folder (the temporary folder of an atomic dataset write).
pub struct TreeWriter {
    root: PathBuf,
}

impl TreeWriter {
    pub fn new(root: &Path) -> TreeWriter {
        TreeWriter {
            root: root.to_path_buf(),
        }
    }

    /// Writes `bytes` to `root/relative`, creating folders only when missing (the per-trial
    /// files are thousands, so the common path is a single `write`).
    pub fn write(&self, relative: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.root.join(relative);
        match std::fs::write(&path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating folder {}", dir.display()))?;
                }
                std::fs::write(&path, bytes)
            }
            other => other,
        }
        .with_context(|| format!("writing {}", path.display()))
    }

    pub fn npy<T: npyz::AutoSerialize + Copy>(
        &self,
        relative: &str,
        shape: &[usize],
        data: &[T],
    ) -> anyhow::Result<()> {
        self.write(
            relative,
            &npy_bytes(shape, data).with_context(|| relative.to_string())?,
        )
    }

    /// Writes `mean, std, min, max, median` (f32, like the real data) of a field.
    /// `values` is row-major `samples × channels`; `channels == 0` means scalar statistics
    /// over every value (the images).
    pub fn statistics(&self, field: &str, values: &[f64], channels: usize) -> anyhow::Result<()> {
        let (cols, shape): (usize, Vec<usize>) = if channels == 0 {
            (1, vec![])
        } else {
            (channels, vec![channels])
        };
        let rows = values.len() / cols;
        let mut stats: [Vec<f32>; 5] = Default::default();
        let mut column = vec![0.0; rows];
        for j in 0..cols {
            for (i, c) in column.iter_mut().enumerate() {
                *c = values[i * cols + j];
            }
            let mean = column.iter().sum::<f64>() / rows as f64;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            column.sort_by(f64::total_cmp);
            let median = if rows % 2 == 1 {
                column[rows / 2]
            } else {
                0.5 * (column[rows / 2 - 1] + column[rows / 2])
            };
            let values = [mean, var.sqrt(), column[0], column[rows - 1], median];
            for (s, v) in stats.iter_mut().zip(values) {
                s.push(v as f32);
            }
        }
        for (name, s) in ["mean", "std", "min", "max", "median"].iter().zip(&stats) {
            self.npy(
                &format!("meta/statistics/{field}/all/{name}.npy"),
                &shape,
                s,
            )?;
        }
        Ok(())
    }
}

/// Replaces `out` by the finished temporary folder `tmp`. An existing non-empty `out` is only
/// replaced with `force`, and then only after the new tree is complete.
pub fn publish(tmp: &Path, out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_none();
        if !empty && !force {
            anyhow::bail!(
                "{} already exists and is not empty; pass --force to replace it",
                out.display()
            );
        }
        let old = sibling(out, "old");
        std::fs::rename(out, &old).with_context(|| format!("moving {} aside", out.display()))?;
        std::fs::rename(tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    } else {
        std::fs::rename(tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
    }
    Ok(())
}

/// `DIR.<tag>-<pid>` next to `DIR`.
pub fn sibling(out: &Path, tag: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    out.with_file_name(format!("{name}.{tag}-{}", std::process::id()))
}
