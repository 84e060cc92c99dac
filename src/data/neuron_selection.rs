//! Choosing the neuron population to model from what is known about each neuron: brain area and
//! layer (`meta/neurons/area`, `meta/neurons/layer`), an explicit list of unit ids, and a list of
//! unit ids to leave out (`[data]` `areas`, `layers`, `unit_ids_file`, `exclude_unit_ids_file`).
//!
//! A unit-id list is a text file: ids separated by spaces, commas or line breaks, `#` starts a
//! comment. A line whose first word is not a number names a data key, and its ids apply to that
//! dataset only (`20457-5-9-0  12 13 14`); ids on other lines apply to every dataset. Every id a
//! list gives for a dataset must be one of its neurons.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use super::{DataConfig, DataError, Dataset};

/// A unit-id list as read from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitIdList {
    /// The file, for messages.
    pub path: PathBuf,
    /// (data key the id is restricted to, unit id).
    entries: Vec<(Option<String>, i64)>,
}

impl UnitIdList {
    /// Reads and parses a list (format in the module docs).
    pub fn read(path: &Path) -> Result<UnitIdList, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DataError::Missing {
                    path: path.to_path_buf(),
                    expected: "a unit-id list (a text file of unit ids)".into(),
                }
            } else {
                DataError::io(path, e)
            }
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a list; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> Result<UnitIdList, DataError> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty())
                .peekable();
            let Some(first) = words.peek() else {
                continue;
            };
            let key = match first.parse::<i64>() {
                Ok(_) => None,
                Err(_) => words.next().map(str::to_string),
            };
            for w in words {
                let id = w.parse::<i64>().map_err(|_| DataError::File {
                    path: path.to_path_buf(),
                    message: format!(
                        "line {}: {w:?} is not a unit id (expected whole numbers, optionally after a data key)",
                        n + 1
                    ),
                })?;
                entries.push((key.clone(), id));
            }
        }
        if entries.is_empty() {
            return Err(DataError::File {
                path: path.to_path_buf(),
                message: "lists no unit id".into(),
            });
        }
        Ok(UnitIdList {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The ids that apply to dataset `data_key`.
    pub fn ids_for(&self, data_key: &str) -> BTreeSet<i64> {
        self.entries
            .iter()
            .filter(|(k, _)| k.as_deref().is_none_or(|k| k == data_key))
            .map(|&(_, id)| id)
            .collect()
    }

    /// The ids for `data_key`, checked against the dataset's neurons: an unknown id is an error
    /// naming the file, the dataset and (the first ten of) the unknown ids.
    fn checked_ids_for(&self, dataset: &Dataset) -> Result<BTreeSet<i64>, DataError> {
        let ids = self.ids_for(&dataset.data_key);
        let known: HashSet<i64> = dataset.neurons.unit_ids.iter().copied().collect();
        let unknown: Vec<i64> = ids.iter().copied().filter(|u| !known.contains(u)).collect();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown.iter().take(10).map(i64::to_string).collect();
            return Err(DataError::File {
                path: self.path.clone(),
                message: format!(
                    "{} unit id(s) not in dataset {} ({}): {}{}",
                    unknown.len(),
                    dataset.data_key,
                    dataset.source.display(),
                    shown.join(", "),
                    if unknown.len() > 10 { ", …" } else { "" }
                ),
            });
        }
        Ok(ids)
    }
}

/// Keeps neurons whose `values` entry is in `wanted`; an unknown name is an error listing the
/// names the dataset has.
fn by_name(
    dataset: &Dataset,
    keep: &mut [bool],
    values: Option<&Vec<String>>,
    wanted: &[String],
    key: &str,
    field: &str,
) -> Result<(), DataError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let values = values.ok_or_else(|| DataError::Missing {
        path: dataset.source.join(format!("meta/neurons/{field}.npy")),
        expected: format!("the {field} of every neuron, to select neurons by {key}"),
    })?;
    let present: BTreeSet<&str> = values.iter().map(|v| v.trim()).collect();
    if let Some(missing) = wanted.iter().find(|w| !present.contains(w.trim())) {
        return Err(DataError::setting(
            key,
            format!(
                "no neuron of dataset {} is in {field} {missing:?}; its neurons are in {:?}",
                dataset.data_key, present
            ),
        ));
    }
    for (k, v) in keep.iter_mut().zip(values) {
        *k &= wanted.iter().any(|w| w.trim() == v.trim());
    }
    Ok(())
}

/// The unit ids (in dataset order) that `config`'s areas, layers and unit-id lists keep, or
/// `None` when none of them is set.
pub fn selected_unit_ids(
    dataset: &Dataset,
    config: &DataConfig,
) -> Result<Option<Vec<i64>>, DataError> {
    let lists = |file: &Option<String>| -> Result<Option<BTreeSet<i64>>, DataError> {
        match file {
            Some(f) => Ok(Some(
                UnitIdList::read(Path::new(f))?.checked_ids_for(dataset)?,
            )),
            None => Ok(None),
        }
    };
    let include = lists(&config.unit_ids_file)?;
    let exclude = lists(&config.exclude_unit_ids_file)?;
    if config.areas.is_empty() && config.layers.is_empty() && include.is_none() && exclude.is_none()
    {
        return Ok(None);
    }
    let neurons = &dataset.neurons;
    let mut keep = vec![true; dataset.n_neurons()];
    by_name(
        dataset,
        &mut keep,
        neurons.area.as_ref(),
        &config.areas,
        "data.areas",
        "area",
    )?;
    by_name(
        dataset,
        &mut keep,
        neurons.layer.as_ref(),
        &config.layers,
        "data.layers",
        "layer",
    )?;
    for (k, id) in keep.iter_mut().zip(&neurons.unit_ids) {
        if include.as_ref().is_some_and(|s| !s.contains(id)) {
            *k = false;
        }
        if exclude.as_ref().is_some_and(|s| s.contains(id)) {
            *k = false;
        }
    }
    let ids: Vec<i64> = neurons
        .unit_ids
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(&id, _)| id)
        .collect();
    if ids.is_empty() {
        return Err(DataError::Subset(format!(
            "data.areas / layers / unit_ids_file / exclude_unit_ids_file leave no neuron of dataset {}",
            dataset.data_key
        )));
    }
    Ok(Some(ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_plain_and_keyed_ids_and_name_bad_words() {
        let text = "# good units\n1, 2 3\n\nscan-b 7 8 # only in b\n4\n";
        let list = UnitIdList::parse(text, Path::new("ids.txt")).unwrap();
        assert_eq!(list.ids_for("scan-a"), BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(list.ids_for("scan-b"), BTreeSet::from([1, 2, 3, 4, 7, 8]));
        let err = UnitIdList::parse("1 2\n3 x4\n", Path::new("ids.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ids.txt") && err.contains("line 2") && err.contains("x4"),
            "{err}"
        );
        let err = UnitIdList::parse("# nothing\n", Path::new("e.txt"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("e.txt") && err.contains("no unit id"), "{err}");
    }
}
