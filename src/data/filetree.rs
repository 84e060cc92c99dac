//! Reading the FileTree layout (REFERENCE.md §6.1/§6.2): `data/<field>/<i>.npy` per trial and
//! `meta/{trials,neurons,statistics}`. Per-trial files are read in parallel with rayon.

use super::error::DataError;
use super::image_scale;
use super::npy::{self, NpyArray, NpyData};
use super::source::Source;
use super::{
    Dataset, FieldStatistics, LoadOptions, MetaArray, NeuronMeta, Statistics, Tier, TrialMeta,
    data_key_from_path,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

fn read_npy(src: &Source, rel: &str) -> Result<NpyArray, DataError> {
    let bytes = src.read(rel)?;
    npy::parse(&bytes, &src.display_path(rel))
}

/// Number of trial files `0.npy … (T-1).npy` in `data/<field>`, checking there are no gaps.
fn count_trials(src: &Source, field: &str) -> Result<usize, DataError> {
    let dir = format!("data/{field}");
    let names = src.list(&dir)?;
    let mut idx: Vec<usize> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".npy"))
        .filter_map(|s| s.parse().ok())
        .collect();
    idx.sort_unstable();
    if let Some(pos) = idx.iter().enumerate().position(|(i, &v)| i != v) {
        return Err(DataError::Missing {
            path: src.display_path(&format!("{dir}/{pos}.npy")),
            expected: format!(
                "trial files 0.npy … {}.npy without gaps ({} files found)",
                idx.last().copied().unwrap_or(0),
                idx.len()
            ),
        });
    }
    Ok(idx.len())
}

/// A trial's values with their shape.
type Shaped = (Vec<usize>, Vec<f32>);

/// What is kept of each trial as read: (shape, values) → (shape, values).
type TrialTransform<'a> = dyn Fn(Vec<usize>, Vec<f32>) -> Result<Shaped, DataError> + Sync + 'a;

/// Read `data/<field>/<i>.npy` for all trials; every trial must have the shape of trial 0 and
/// only finite values (a NaN pixel or response would otherwise surface epochs later as a NaN
/// training objective, far from its cause). `transform` maps each trial's (shape, values) to
/// what is kept (images: rescaled), before the values are written into the one output array.
/// Returns the concatenated values and the per-trial shape of trial 0 (after `transform`).
fn read_field(
    src: &Source,
    field: &str,
    n_trials: usize,
    transform: &TrialTransform<'_>,
) -> Result<(Vec<f32>, Vec<usize>), DataError> {
    let found = count_trials(src, field)?;
    if found != n_trials {
        return Err(DataError::TrialCount {
            path: src.display_path(&format!("data/{field}")),
            found,
            expected: n_trials,
        });
    }
    // (shape as stored, shape kept, values kept).
    let read_trial = |i: usize| -> Result<(Vec<usize>, Shaped), DataError> {
        let rel = format!("data/{field}/{i}.npy");
        let a = read_npy(src, &rel)?;
        let shape = a.shape.clone();
        let path = src.display_path(&rel);
        if matches!(a.data, NpyData::Str(_)) {
            return Err(DataError::Dtype {
                path,
                found: a.descr,
                expected: "u1, f4 or f8".into(),
            });
        }
        let v = a.into_f32(&path)?;
        if let Some((j, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(DataError::NonFinite {
                path,
                value: *x as f64,
                index: j,
                shape,
            });
        }
        Ok((shape.clone(), transform(shape, v)?))
    };
    if n_trials == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    // Trial 0 fixes the shape; the others are written straight into one preallocated array, so
    // the field is held once (not once per trial and again concatenated).
    let (shape0, (kept_shape0, first)) = read_trial(0)?;
    let len = first.len();
    let mut out = vec![0f32; n_trials * len];
    out[..len].copy_from_slice(&first);
    drop(first);
    if len > 0 {
        out[len..]
            .par_chunks_mut(len)
            .enumerate()
            .try_for_each(|(k, chunk)| {
                let i = k + 1;
                let (shape, (_, v)) = read_trial(i)?;
                if shape != shape0 || v.len() != len {
                    return Err(DataError::Shape {
                        path: src.display_path(&format!("data/{field}/{i}.npy")),
                        found: shape,
                        expected: format!("{shape0:?} like data/{field}/0.npy"),
                    });
                }
                chunk.copy_from_slice(&v);
                Ok(())
            })?;
    } else {
        (1..n_trials).into_par_iter().try_for_each(|i| {
            let (shape, _) = read_trial(i)?;
            if shape != shape0 {
                return Err(DataError::Shape {
                    path: src.display_path(&format!("data/{field}/{i}.npy")),
                    found: shape,
                    expected: format!("{shape0:?} like data/{field}/0.npy"),
                });
            }
            Ok(())
        })?;
    }
    Ok((out, kept_shape0))
}

/// Keeps a trial as read.
fn as_read(shape: Vec<usize>, v: Vec<f32>) -> Result<Shaped, DataError> {
    Ok((shape, v))
}

fn to_meta(a: NpyArray) -> MetaArray {
    match a.data {
        NpyData::Int(v) => MetaArray::Int(v),
        NpyData::F32(v) => MetaArray::Float(v.into_iter().map(f64::from).collect()),
        NpyData::F64(v) => MetaArray::Float(v),
        NpyData::Str(v) => MetaArray::Str(v),
    }
}

/// All arrays of a meta folder whose first axis has length `n` (checked), by file stem.
fn read_meta_dir(
    src: &Source,
    dir: &str,
    n: Option<usize>,
) -> Result<BTreeMap<String, (NpyArray, String)>, DataError> {
    let mut out = BTreeMap::new();
    for name in src.list(dir)? {
        let Some(stem) = name.strip_suffix(".npy") else {
            continue;
        };
        let rel = format!("{dir}/{name}");
        let a = read_npy(src, &rel)?;
        if let Some(n) = n.filter(|&n| a.shape.first() != Some(&n)) {
            return Err(DataError::Shape {
                path: src.display_path(&rel),
                found: a.shape,
                expected: format!("first axis of length {n}"),
            });
        }
        out.insert(stem.to_string(), (a, rel));
    }
    Ok(out)
}

fn require(
    src: &Source,
    map: &mut BTreeMap<String, (NpyArray, String)>,
    dir: &str,
    name: &str,
) -> Result<(NpyArray, std::path::PathBuf), DataError> {
    map.remove(name)
        .map(|(a, rel)| (a, src.display_path(&rel)))
        .ok_or_else(|| DataError::Missing {
            path: src.display_path(&format!("{dir}/{name}.npy")),
            expected: format!("meta array {name}"),
        })
}

fn read_trials(src: &Source, n: usize) -> Result<(Vec<Tier>, TrialMeta), DataError> {
    let dir = "meta/trials";
    let mut map = read_meta_dir(src, dir, Some(n))?;
    let (tiers_a, tiers_path) = require(src, &mut map, dir, "tiers")?;
    if !matches!(tiers_a.data, NpyData::Str(_)) {
        return Err(DataError::Dtype {
            path: tiers_path,
            found: tiers_a.descr,
            expected: "a unicode string array".into(),
        });
    }
    let tiers = tiers_a
        .into_strings()
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<Tier>().map_err(|_| DataError::UnknownTier {
                path: tiers_path.clone(),
                value: s,
                trial: i,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (ids, ids_path) = require(src, &mut map, dir, "frame_image_id")?;
    let frame_image_id = ids.into_i64(&ids_path)?;
    let trial_idx = match map.remove("trial_idx") {
        Some((a, rel)) => Some(a.into_i64(&src.display_path(&rel))?),
        None => None,
    };
    let other = map.into_iter().map(|(k, (a, _))| (k, to_meta(a))).collect();
    Ok((
        tiers,
        TrialMeta {
            frame_image_id,
            trial_idx,
            other,
        },
    ))
}

fn read_neurons(src: &Source, n: usize) -> Result<NeuronMeta, DataError> {
    let dir = "meta/neurons";
    let mut map = read_meta_dir(src, dir, Some(n))?;
    let (ids, ids_path) = require(src, &mut map, dir, "unit_ids")?;
    let unit_ids = ids.into_i64(&ids_path)?;
    let cell_motor_coordinates = match map.remove("cell_motor_coordinates") {
        Some((a, rel)) => {
            let path = src.display_path(&rel);
            if a.shape != [n, 3] {
                return Err(DataError::Shape {
                    path,
                    found: a.shape,
                    expected: format!("({n}, 3)"),
                });
            }
            let v = a.into_f64(&path)?;
            Some(v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
        }
        None => None,
    };
    let strings = |map: &mut BTreeMap<String, (NpyArray, String)>, k: &str| {
        map.remove(k).map(|(a, _)| a.into_strings())
    };
    let area = strings(&mut map, "area");
    let layer = strings(&mut map, "layer");
    let mut ints = |k: &str| -> Result<Option<Vec<i64>>, DataError> {
        match map.remove(k) {
            Some((a, rel)) => Ok(Some(a.into_i64(&src.display_path(&rel))?)),
            None => Ok(None),
        }
    };
    let animal_ids = ints("animal_ids")?;
    let multi_match_id = ints("multi_match_id")?;
    let other = map.into_iter().map(|(k, (a, _))| (k, to_meta(a))).collect();
    Ok(NeuronMeta {
        unit_ids,
        cell_motor_coordinates,
        area,
        layer,
        animal_ids,
        multi_match_id,
        other,
    })
}

/// `meta/statistics/<field>/<all|stimulus_frame>/{mean,std[,min,max,median]}.npy`. Every array
/// must hold one value per channel of its field (images: one scalar; responses: one per
/// neuron; behaviour: 3; pupil centre: 2): the normalizer indexes them per neuron / variable, so
/// a wrong length would silently misalign them. mean and std must be finite.
fn read_statistics(src: &Source, n_neurons: usize) -> Result<Statistics, DataError> {
    let mut stats = Statistics::default();
    if !src.exists("meta/statistics/") {
        return Err(DataError::Missing {
            path: src.display_path("meta/statistics"),
            expected: "statistics/<field>/<all|stimulus_frame>/{mean,std}.npy".into(),
        });
    }
    for (field, len, expected) in [
        ("images", 1, "a scalar (shape () or (1,))".to_string()),
        (
            "responses",
            n_neurons,
            format!("({n_neurons},), one per neuron"),
        ),
        (
            "behavior",
            3,
            "(3,), one per behaviour variable".to_string(),
        ),
        ("pupil_center", 2, "(2,), x and y".to_string()),
    ] {
        for (which, target) in [
            ("all", &mut stats.all),
            ("stimulus_frame", &mut stats.stimulus_frame),
        ] {
            let dir = format!("meta/statistics/{field}/{which}");
            if !src.exists(&format!("{dir}/")) {
                continue;
            }
            // mean and std feed the normalizer and must be finite; min / max / median are kept
            // for the user only.
            let get = |name: &str| -> Result<Vec<f64>, DataError> {
                let rel = format!("{dir}/{name}.npy");
                let path = src.display_path(&rel);
                let a = read_npy(src, &rel)?;
                if a.len() != len || a.shape.len() > 1 {
                    return Err(DataError::Shape {
                        path,
                        found: a.shape,
                        expected: expected.clone(),
                    });
                }
                let shape = a.shape.clone();
                let v = a.into_f64(&path)?;
                let used = name == "mean" || name == "std";
                if let Some((index, x)) = v.iter().enumerate().find(|(_, x)| used && !x.is_finite())
                {
                    return Err(DataError::NonFinite {
                        path,
                        value: *x,
                        index,
                        shape,
                    });
                }
                Ok(v)
            };
            let opt = |name: &str| -> Result<Option<Vec<f64>>, DataError> {
                if src.exists(&format!("{dir}/{name}.npy")) {
                    get(name).map(Some)
                } else {
                    Ok(None)
                }
            };
            let fs = FieldStatistics {
                mean: get("mean")?,
                std: get("std")?,
                min: opt("min")?,
                max: opt("max")?,
                median: opt("median")?,
            };
            target.insert(field.to_string(), fs);
        }
    }
    Ok(stats)
}

/// Load a whole dataset (see [`Dataset::load`]).
pub fn load(path: &Path, options: &LoadOptions) -> Result<Dataset, DataError> {
    let src = Source::open(path)?;
    let n_trials = count_trials(&src, "images")?;
    if n_trials == 0 {
        return Err(DataError::Missing {
            path: src.display_path("data/images/0.npy"),
            expected: "at least one trial".into(),
        });
    }
    let image0 = src.display_path("data/images/0.npy");
    // Images as (C, H, W), rescaled one trial at a time when `image_scale` ≠ 1 or `image_size`
    // asks for another size, so the full-resolution images are never all in memory.
    let image_transform = |shape: Vec<usize>, v: Vec<f32>| {
        let chw = match shape[..] {
            [h, w] => [1, h, w],
            [c, h, w] => [c, h, w],
            _ => {
                return Err(DataError::Shape {
                    path: image0.clone(),
                    found: shape,
                    expected: "(C, H, W) or (H, W)".into(),
                });
            }
        };
        let scale = options.scale_for(chw[1], chw[2], &image0)?;
        if scale == 1.0 {
            return Ok((chw.to_vec(), v));
        }
        let (h, w) = image_scale::scaled_size(chw[1], chw[2], scale);
        let scaled = image_scale::rescale_image(&v, chw, (h, w));
        Ok((vec![chw[0], h, w], scaled))
    };
    let (images, shape) = read_field(&src, "images", n_trials, &image_transform)?;
    let image_shape = [shape[0], shape[1], shape[2]];
    let (responses, rshape) = read_field(&src, "responses", n_trials, &as_read)?;
    if rshape.len() != 1 {
        return Err(DataError::Shape {
            path: src.display_path("data/responses/0.npy"),
            found: rshape,
            expected: "(N,)".into(),
        });
    }
    let n_neurons = rshape[0];
    let optional = |field: &str, width: usize| -> Result<Option<Vec<f32>>, DataError> {
        if !src.exists(&format!("data/{field}/")) {
            return Ok(None);
        }
        let (v, s) = read_field(&src, field, n_trials, &as_read)?;
        if s != [width] {
            return Err(DataError::Shape {
                path: src.display_path(&format!("data/{field}/0.npy")),
                found: s,
                expected: format!("({width},)"),
            });
        }
        Ok(Some(v))
    };
    let behavior = optional("behavior", 3)?;
    let pupil_center = optional("pupil_center", 2)?;
    let (tiers, trials) = read_trials(&src, n_trials)?;
    let neurons = read_neurons(&src, n_neurons)?;
    let statistics = read_statistics(&src, n_neurons)?;
    Ok(Dataset {
        data_key: options
            .data_key
            .clone()
            .unwrap_or_else(|| data_key_from_path(path)),
        source: path.to_path_buf(),
        image_shape,
        images,
        responses,
        behavior,
        pupil_center,
        tiers,
        trials,
        neurons,
        statistics,
    })
}
