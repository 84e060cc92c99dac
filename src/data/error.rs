//! Typed errors of the data layer: every message names the file and what was expected.

use std::path::PathBuf;

/// Everything that can go wrong when reading a recording.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read (missing, permission, broken archive).
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// A required file or folder is absent.
    #[error("missing {path}: expected {expected}")]
    Missing { path: PathBuf, expected: String },
    /// The `.npy` file is truncated or its header is malformed.
    #[error("malformed .npy file {path}: {message}")]
    Npy { path: PathBuf, message: String },
    /// The array has a dtype this field cannot hold.
    #[error("{path}: unsupported dtype {found}, expected {expected}")]
    Dtype {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// The array has the wrong shape.
    #[error("{path}: shape {found:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        found: Vec<usize>,
        expected: String,
    },
    /// Two fields disagree on the number of trials.
    #[error("{path}: {found} trials, but {expected} trials were found in data/images")]
    TrialCount {
        path: PathBuf,
        found: usize,
        expected: usize,
    },
    /// A tier name that is none of train / validation / test / final_test.
    #[error(
        "{path}: unknown tier {value:?} at trial {trial}, expected train, validation, test or final_test"
    )]
    UnknownTier {
        path: PathBuf,
        value: String,
        trial: usize,
    },
    /// NaN or infinite values where only finite numbers make sense.
    #[error(
        "{path}: non-finite value {value} at element {index}{}, expected finite numbers",
        position(*index, shape)
    )]
    NonFinite {
        path: PathBuf,
        value: f64,
        /// Flat (row-major) index of the first offending element.
        index: usize,
        /// The array's shape (its index is shown per axis when it has more than one).
        shape: Vec<usize>,
    },
    /// A file whose content is not what was expected (a unit-id list, an HDF5 set).
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// A `[data]` setting that is out of range or contradicts another.
    #[error("`{key}`: {message}")]
    Setting { key: String, message: String },
    /// A subset request that cannot be satisfied.
    #[error("invalid subset: {0}")]
    Subset(String),
}

/// " (index [c, h, w])" for a flat index into a multi-axis array, "" otherwise.
fn position(index: usize, shape: &[usize]) -> String {
    if shape.len() < 2 || shape.contains(&0) {
        return String::new();
    }
    let mut rest = index;
    let mut at = vec![0; shape.len()];
    for (axis, &len) in shape.iter().enumerate().rev() {
        at[axis] = rest % len;
        rest /= len;
    }
    format!(" (index {at:?} of shape {shape:?})")
}

impl DataError {
    pub(crate) fn setting(key: &str, message: impl Into<String>) -> Self {
        DataError::Setting {
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        DataError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }
}
