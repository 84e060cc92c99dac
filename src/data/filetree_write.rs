//! Writing a loaded recording in the FileTree layout (REFERENCE.md §6.1), e.g. one read from an
//! HDF5 static set (`cortexfit convert`). The tree is written into a temporary sibling folder and
//! renamed into place at the end, so a failed conversion leaves nothing half-written and never
//! touches an existing folder.

use std::path::{Path, PathBuf};

use npyz::WriterBuilder;

use super::{DataError, Dataset, FieldStatistics, MetaArray};

fn npy<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    shape: &[usize],
    data: &[T],
) -> Result<(), DataError> {
    let shape: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut buf)
        .begin_nd()
        .map_err(|e| DataError::io(path, e))?;
    w.extend(data.iter().copied())
        .map_err(|e| DataError::io(path, e))?;
    w.finish().map_err(|e| DataError::io(path, e))?;
    write(path, &buf)
}

/// Strings as a numpy unicode array (`<U{longest}`), as the real metadata stores them.
fn npy_strings(path: &Path, data: &[String]) -> Result<(), DataError> {
    let width = data
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let dtype = npyz::DType::new_scalar(
        format!("<U{width}")
            .parse()
            .map_err(|e| DataError::io(path, e))?,
    );
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<str>::new()
        .dtype(dtype)
        .shape(&[data.len() as u64])
        .writer(&mut buf)
        .begin_nd()
        .map_err(|e| DataError::io(path, e))?;
    for s in data {
        w.push(s.as_str()).map_err(|e| DataError::io(path, e))?;
    }
    w.finish().map_err(|e| DataError::io(path, e))?;
    write(path, &buf)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| DataError::io(path, e))
}

/// A meta array of `n` rows (trials or neurons), with its row shape restored.
fn meta(path: &Path, m: &MetaArray, n: usize) -> Result<(), DataError> {
    let shape = |len: usize| {
        if len == n || n == 0 {
            vec![len]
        } else {
            vec![n, len / n]
        }
    };
    match m {
        MetaArray::Int(v) => npy(path, &shape(v.len()), v),
        MetaArray::Float(v) => npy(path, &shape(v.len()), v),
        MetaArray::Str(v) if v.len() == n => npy_strings(path, v),
        MetaArray::Str(v) => Err(DataError::Shape {
            path: path.to_path_buf(),
            found: vec![v.len()],
            expected: format!("one string per row ({n})"),
        }),
    }
}

fn statistics(dir: &Path, field: &str, s: &FieldStatistics) -> Result<(), DataError> {
    let shape: Vec<usize> = if field == "images" {
        vec![]
    } else {
        vec![s.mean.len()]
    };
    for (name, values) in [
        ("mean", Some(&s.mean)),
        ("std", Some(&s.std)),
        ("min", s.min.as_ref()),
        ("max", s.max.as_ref()),
        ("median", s.median.as_ref()),
    ] {
        if let Some(v) = values {
            let shape = if v.len() == 1 && field == "images" {
                vec![]
            } else {
                shape.clone()
            };
            npy(&dir.join(format!("{name}.npy")), &shape, v)?;
        }
    }
    Ok(())
}

/// Writes every field, meta array and statistic of `dataset` below `root`.
fn write_tree(dataset: &Dataset, root: &Path) -> Result<(), DataError> {
    let (t, n) = (dataset.n_trials(), dataset.n_neurons());
    let [c, h, w] = dataset.image_shape;
    let d = root.join("data");
    let k = dataset.n_behaviors();
    for i in 0..t {
        let len = c * h * w;
        npy(
            &d.join(format!("images/{i}.npy")),
            &[c, h, w],
            &dataset.images[i * len..(i + 1) * len],
        )?;
        npy(
            &d.join(format!("responses/{i}.npy")),
            &[n],
            &dataset.responses[i * n..(i + 1) * n],
        )?;
        if let Some(b) = &dataset.behavior {
            npy(
                &d.join(format!("behavior/{i}.npy")),
                &[k],
                &b[i * k..(i + 1) * k],
            )?;
        }
        if let Some(p) = &dataset.pupil_center {
            npy(
                &d.join(format!("pupil_center/{i}.npy")),
                &[2],
                &p[i * 2..(i + 1) * 2],
            )?;
        }
    }
    let trials = root.join("meta/trials");
    let tiers: Vec<String> = dataset.tiers.iter().map(|t| t.to_string()).collect();
    npy_strings(&trials.join("tiers.npy"), &tiers)?;
    let tr = &dataset.trials;
    npy(&trials.join("frame_image_id.npy"), &[t], &tr.frame_image_id)?;
    if let Some(v) = &tr.trial_idx {
        npy(&trials.join("trial_idx.npy"), &[t], v)?;
    }
    for (name, m) in &tr.other {
        meta(&trials.join(format!("{name}.npy")), m, t)?;
    }
    let neurons = root.join("meta/neurons");
    let nm = &dataset.neurons;
    npy(&neurons.join("unit_ids.npy"), &[n], &nm.unit_ids)?;
    if let Some(v) = &nm.cell_motor_coordinates {
        let flat: Vec<f64> = v.iter().flatten().copied().collect();
        npy(&neurons.join("cell_motor_coordinates.npy"), &[n, 3], &flat)?;
    }
    for (name, v) in [("area", &nm.area), ("layer", &nm.layer)] {
        if let Some(v) = v {
            npy_strings(&neurons.join(format!("{name}.npy")), v)?;
        }
    }
    for (name, v) in [
        ("animal_ids", &nm.animal_ids),
        ("multi_match_id", &nm.multi_match_id),
    ] {
        if let Some(v) = v {
            npy(&neurons.join(format!("{name}.npy")), &[n], v)?;
        }
    }
    for (name, m) in &nm.other {
        meta(&neurons.join(format!("{name}.npy")), m, n)?;
    }
    let stats = root.join("meta/statistics");
    for (which, map) in [
        ("all", &dataset.statistics.all),
        ("stimulus_frame", &dataset.statistics.stimulus_frame),
    ] {
        for (field, s) in map {
            statistics(&stats.join(format!("{field}/{which}")), field, s)?;
        }
    }
    Ok(())
}

/// Writes `dataset` as a FileTree folder `out`, which must not exist yet.
pub fn write_filetree(dataset: &Dataset, out: &Path) -> Result<(), DataError> {
    if out.exists() {
        return Err(DataError::File {
            path: out.to_path_buf(),
            message: "already exists; choose a new folder (nothing was written)".into(),
        });
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let tmp: PathBuf = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_tree(dataset, &tmp)
        .and_then(|_| std::fs::rename(&tmp, out).map_err(|e| DataError::io(out, e)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
