//! The older Sinz-lab static HDF5 sets (`static*.h5`, read by neuralpredictors' `StaticImageSet`;
//! REFERENCE.md §6.3), read with the `hdf5-metno` crate (HDF5's own C library) into the same
//! [`Dataset`] as the FileTree reader, so tiers, neuron selection and normalization are the same.
//!
//! Layout (first axis = trials T): `images` (T, 1, H, W) or (T, H, W); `responses` (T, N);
//! optional `behavior` (T, 3) and `pupil_center` (T, 2) (older files: `eye_position`); `tiers`
//! (T,) byte strings; groups `item_info/*` (per trial: `frame_image_id`, `trial_idx`, …),
//! `neurons/*` (per neuron: `unit_ids`, `area`, `layer`, `cell_motor_coordinates`, …) and
//! `statistics/<field>/<all|stimulus_frame>/{mean,std[,min,max,median]}` (field names lower-cased,
//! `.` → `_`, as neuralpredictors' `convert_static_h5_dataset_to_folder`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use h5::types::{FixedAscii, FixedUnicode, TypeDescriptor as TD, VarLenAscii, VarLenUnicode};
use hdf5_metno as h5;

use super::{
    DataError, Dataset, FieldStatistics, LoadOptions, MetaArray, NeuronMeta, Statistics, Tier,
    TrialMeta, data_key_from_path, image_scale,
};

/// Longest fixed-length string read (longer ones are an error naming the dataset).
const MAX_STRING: usize = 256;

/// `file.h5/group/name`, the path shown in messages.
fn shown(file: &Path, name: &str) -> PathBuf {
    file.join(name.trim_start_matches('/'))
}

fn h5_err(file: &Path, name: &str, e: impl std::fmt::Display) -> DataError {
    DataError::File {
        path: shown(file, name),
        message: e.to_string(),
    }
}

fn dataset(group: &h5::Group, file: &Path, name: &str) -> Result<h5::Dataset, DataError> {
    let full = format!("{}/{name}", group.name().trim_end_matches('/'));
    if !group.link_exists(name) {
        return Err(DataError::Missing {
            path: shown(file, &full),
            expected: format!("HDF5 dataset `{name}` of a static image set"),
        });
    }
    group.dataset(name).map_err(|e| h5_err(file, &full, e))
}

fn descriptor(ds: &h5::Dataset, file: &Path) -> Result<TD, DataError> {
    ds.dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| h5_err(file, &ds.name(), e))
}

/// Any numeric dataset as f32 (HDF5 converts the type), with its shape.
fn floats(ds: &h5::Dataset, file: &Path) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    match descriptor(ds, file)? {
        TD::Integer(_) | TD::Unsigned(_) | TD::Float(_) => {}
        other => {
            return Err(DataError::Dtype {
                path: shown(file, &ds.name()),
                found: other.to_string(),
                expected: "numbers".into(),
            });
        }
    }
    let v = ds
        .read_raw::<f32>()
        .map_err(|e| h5_err(file, &ds.name(), e))?;
    let shape = ds.shape();
    if let Some((index, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(DataError::NonFinite {
            path: shown(file, &ds.name()),
            value: *x as f64,
            index,
            shape,
        });
    }
    Ok((shape, v))
}

/// A meta array of numbers or strings (strings trimmed of padding).
fn meta(ds: &h5::Dataset, file: &Path) -> Result<MetaArray, DataError> {
    let name = ds.name();
    let e = |e: h5::Error| h5_err(file, &name, e);
    let text = |v: Vec<String>| {
        MetaArray::Str(
            v.into_iter()
                .map(|s| s.trim_matches(['\0', ' ']).to_string())
                .collect(),
        )
    };
    Ok(match descriptor(ds, file)? {
        TD::Integer(_) | TD::Unsigned(_) => MetaArray::Int(ds.read_raw::<i64>().map_err(e)?),
        TD::Float(_) => MetaArray::Float(ds.read_raw::<f64>().map_err(e)?),
        TD::FixedAscii(n) | TD::FixedUnicode(n) if n > MAX_STRING => {
            return Err(DataError::Dtype {
                path: shown(file, &name),
                found: format!("strings of {n} bytes"),
                expected: format!("strings of at most {MAX_STRING} bytes"),
            });
        }
        TD::FixedAscii(_) => text(
            ds.read_raw::<FixedAscii<MAX_STRING>>()
                .map_err(e)?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        TD::FixedUnicode(_) => text(
            ds.read_raw::<FixedUnicode<MAX_STRING>>()
                .map_err(e)?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        TD::VarLenAscii => text(
            ds.read_raw::<VarLenAscii>()
                .map_err(e)?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        TD::VarLenUnicode => text(
            ds.read_raw::<VarLenUnicode>()
                .map_err(e)?
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        other => {
            return Err(DataError::Dtype {
                path: shown(file, &name),
                found: other.to_string(),
                expected: "numbers or strings".into(),
            });
        }
    })
}

/// Every dataset of `group` whose first axis has length `n` (checked), by name.
fn meta_group(
    file_h: &h5::File,
    file: &Path,
    group: &str,
    n: usize,
) -> Result<BTreeMap<String, MetaArray>, DataError> {
    if !file_h.link_exists(group) {
        return Err(DataError::Missing {
            path: shown(file, group),
            expected: format!("HDF5 group `{group}` of a static image set"),
        });
    }
    let g = file_h.group(group).map_err(|e| h5_err(file, group, e))?;
    let mut out = BTreeMap::new();
    for ds in g.datasets().map_err(|e| h5_err(file, group, e))? {
        let name = ds.name();
        let shape = ds.shape();
        if shape.first() != Some(&n) {
            return Err(DataError::Shape {
                path: shown(file, &name),
                found: shape,
                expected: format!("first axis of length {n}"),
            });
        }
        let key = name.rsplit('/').next().unwrap_or_default().to_string();
        out.insert(key, meta(&ds, file)?);
    }
    Ok(out)
}

fn ints(m: MetaArray, path: PathBuf) -> Result<Vec<i64>, DataError> {
    match m {
        MetaArray::Int(v) => Ok(v),
        MetaArray::Float(v) if v.iter().all(|x| x.fract() == 0.0) => {
            Ok(v.into_iter().map(|x| x as i64).collect())
        }
        _ => Err(DataError::Dtype {
            path,
            found: "non-integer values".into(),
            expected: "integer ids".into(),
        }),
    }
}

fn strings(m: MetaArray) -> Vec<String> {
    match m {
        MetaArray::Str(v) => v,
        MetaArray::Int(v) => v.iter().map(i64::to_string).collect(),
        MetaArray::Float(v) => v.iter().map(f64::to_string).collect(),
    }
}

/// `statistics/<field>/<all|stimulus_frame>/{mean,std,…}`, checked like the FileTree's.
fn read_statistics(f: &h5::File, file: &Path, n_neurons: usize) -> Result<Statistics, DataError> {
    if !f.link_exists("statistics") {
        return Err(DataError::Missing {
            path: shown(file, "statistics"),
            expected: "HDF5 group statistics/<field>/<all|stimulus_frame>/{mean,std}".into(),
        });
    }
    let g = f
        .group("statistics")
        .map_err(|e| h5_err(file, "statistics", e))?;
    let mut stats = Statistics::default();
    for field_group in g.groups().map_err(|e| h5_err(file, "statistics", e))? {
        let raw = field_group.name();
        let raw = raw.rsplit('/').next().unwrap_or_default();
        let field = match raw.to_lowercase().replace('.', "_").as_str() {
            "eye_position" => "pupil_center".to_string(),
            other => other.to_string(),
        };
        let len = match field.as_str() {
            "images" => 1,
            "responses" => n_neurons,
            "behavior" => 3,
            "pupil_center" => 2,
            _ => continue, // statistics of fields cortexfit does not read
        };
        for (which, target) in [
            ("all", &mut stats.all),
            ("stimulus_frame", &mut stats.stimulus_frame),
        ] {
            if !field_group.link_exists(which) {
                continue;
            }
            let sg = field_group
                .group(which)
                .map_err(|e| h5_err(file, &format!("statistics/{raw}/{which}"), e))?;
            let get = |name: &str| -> Result<Option<Vec<f64>>, DataError> {
                if !sg.link_exists(name) {
                    return Ok(None);
                }
                let ds = dataset(&sg, file, name)?;
                let (shape, v) = floats(&ds, file)?;
                if v.len() != len {
                    return Err(DataError::Shape {
                        path: shown(file, &ds.name()),
                        found: shape,
                        expected: format!("{len} value(s) for {field}"),
                    });
                }
                Ok(Some(v.into_iter().map(f64::from).collect()))
            };
            let required = |name: &str| -> Result<Vec<f64>, DataError> {
                get(name)?.ok_or_else(|| DataError::Missing {
                    path: shown(file, &format!("statistics/{raw}/{which}/{name}")),
                    expected: format!("the {name} of {field}"),
                })
            };
            target.insert(
                field.clone(),
                FieldStatistics {
                    mean: required("mean")?,
                    std: required("std")?,
                    min: get("min")?,
                    max: get("max")?,
                    median: get("median")?,
                },
            );
        }
    }
    Ok(stats)
}

/// Loads a static HDF5 set (see the module docs); `options.image_scale` / `image_size` rescale
/// the images.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Dataset, DataError> {
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
            expected: "an HDF5 static image set (.h5)".into(),
        });
    }
    let f = h5::File::open(path).map_err(|e| DataError::io(path, e))?;
    let root: &h5::Group = &f;
    let (shape, mut images) = floats(&dataset(root, path, "images")?, path)?;
    let [t, mut c, mut h, mut w] = match shape[..] {
        [t, c, h, w] => [t, c, h, w],
        [t, h, w] => [t, 1, h, w],
        _ => {
            return Err(DataError::Shape {
                path: shown(path, "images"),
                found: shape,
                expected: "(T, C, H, W) or (T, H, W)".into(),
            });
        }
    };
    if t == 0 {
        return Err(DataError::Missing {
            path: shown(path, "images"),
            expected: "at least one trial".into(),
        });
    }
    let scale = options.scale_for(h, w, &shown(path, "images"))?;
    if scale != 1.0 {
        let size = image_scale::scaled_size(h, w, scale);
        images = images
            .chunks_exact(c * h * w)
            .flat_map(|img| image_scale::rescale_image(img, [c, h, w], size))
            .collect();
        (h, w) = size;
    }
    c = c.max(1);
    let per_trial = |name: &str, width: Option<usize>| -> Result<Option<Vec<f32>>, DataError> {
        if !f.link_exists(name) {
            return Ok(None);
        }
        let (shape, v) = floats(&dataset(root, path, name)?, path)?;
        let ok = shape.len() == 2 && shape[0] == t && width.is_none_or(|k| shape[1] == k);
        if !ok {
            return Err(DataError::Shape {
                path: shown(path, name),
                found: shape,
                expected: match width {
                    Some(k) => format!("({t}, {k}): one row per trial"),
                    None => format!("({t}, N): one row per trial"),
                },
            });
        }
        Ok(Some(v))
    };
    let responses = per_trial("responses", None)?.ok_or_else(|| DataError::Missing {
        path: shown(path, "responses"),
        expected: "HDF5 dataset `responses` (trials × neurons)".into(),
    })?;
    let n = responses.len() / t;
    let behavior = per_trial("behavior", Some(3))?;
    let pupil_center = match per_trial("pupil_center", Some(2))? {
        Some(p) => Some(p),
        None => per_trial("eye_position", Some(2))?,
    };
    let tiers_ds = dataset(root, path, "tiers")?;
    if tiers_ds.shape() != [t] {
        return Err(DataError::Shape {
            path: shown(path, "tiers"),
            found: tiers_ds.shape(),
            expected: format!("({t},): one tier per trial"),
        });
    }
    let tiers = match meta(&tiers_ds, path)? {
        MetaArray::Str(v) => v
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<Tier>().map_err(|_| DataError::UnknownTier {
                    path: shown(path, "tiers"),
                    value: s,
                    trial: i,
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(DataError::Dtype {
                path: shown(path, "tiers"),
                found: "numbers".into(),
                expected: "strings (train, validation, test, final_test)".into(),
            });
        }
    };
    let mut info = meta_group(&f, path, "item_info", t)?;
    let frame_image_id = match info.remove("frame_image_id") {
        Some(m) => ints(m, shown(path, "item_info/frame_image_id"))?,
        None => {
            return Err(DataError::Missing {
                path: shown(path, "item_info/frame_image_id"),
                expected: "the image id of every trial (repeats share one)".into(),
            });
        }
    };
    let trial_idx = info
        .remove("trial_idx")
        .map(|m| ints(m, shown(path, "item_info/trial_idx")))
        .transpose()?;
    let mut nm = meta_group(&f, path, "neurons", n)?;
    let unit_ids = match nm.remove("unit_ids") {
        Some(m) => ints(m, shown(path, "neurons/unit_ids"))?,
        None => {
            return Err(DataError::Missing {
                path: shown(path, "neurons/unit_ids"),
                expected: "the unit id of every neuron".into(),
            });
        }
    };
    let cell_motor_coordinates = match nm.remove("cell_motor_coordinates") {
        Some(MetaArray::Float(v)) if v.len() == 3 * n => {
            Some(v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
        }
        Some(MetaArray::Int(v)) if v.len() == 3 * n => Some(
            v.chunks_exact(3)
                .map(|c| [c[0] as f64, c[1] as f64, c[2] as f64])
                .collect(),
        ),
        Some(_) => {
            return Err(DataError::Shape {
                path: shown(path, "neurons/cell_motor_coordinates"),
                found: vec![],
                expected: format!("({n}, 3) numbers"),
            });
        }
        None => None,
    };
    let area = nm.remove("area").map(strings);
    let layer = nm.remove("layer").map(strings);
    let animal_ids = nm
        .remove("animal_ids")
        .map(|m| ints(m, shown(path, "neurons/animal_ids")))
        .transpose()?;
    let multi_match_id = nm
        .remove("multi_match_id")
        .map(|m| ints(m, shown(path, "neurons/multi_match_id")))
        .transpose()?;
    let statistics = read_statistics(&f, path, n)?;
    Ok(Dataset {
        data_key: options
            .data_key
            .clone()
            .unwrap_or_else(|| data_key_from_path(path)),
        source: path.to_path_buf(),
        image_shape: [c, h, w],
        images,
        responses,
        behavior,
        pupil_center,
        tiers,
        trials: TrialMeta {
            frame_image_id,
            trial_idx,
            other: info,
        },
        neurons: NeuronMeta {
            unit_ids,
            cell_motor_coordinates,
            area,
            layer,
            animal_ids,
            multi_match_id,
            other: nm,
        },
        statistics,
    })
}
