//! `cortexfit._cortexfit`: the compiled half of the Python package. Thin wrappers around the
//! library's run API (`cortexfit::run`, `cortexfit::data`, `cortexfit::sim`); the pure-Python
//! half (`python/cortexfit/`) turns the bytes and JSON these return into numpy arrays, dicts and
//! DataFrames, and draws the progress.
//!
//! Conventions: arrays cross the boundary as little-endian `bytes` (f32 or i64, C order) with
//! their shapes, structured values as JSON text. Every long call releases the GIL; errors become
//! Python exceptions carrying the message the command line prints (`{err:#}`).

use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod data;
mod fit;
mod run;

/// The Python exception for a library error: `KeyboardInterrupt` for an interrupted run,
/// `FileNotFoundError` when a file or folder is missing, `ValueError` otherwise. The message is
/// the CLI's (`error: …` without the prefix).
pub(crate) fn to_py_err(err: anyhow::Error) -> PyErr {
    let message = format!("{err:#}");
    if err.downcast_ref::<cortexfit::run::Interrupted>().is_some() {
        return PyKeyboardInterrupt::new_err(message);
    }
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return PyFileNotFoundError::new_err(message);
        }
        if let Some(cortexfit::data::DataError::Missing { .. }) =
            cause.downcast_ref::<cortexfit::data::DataError>()
        {
            return PyFileNotFoundError::new_err(message);
        }
        if let Some(cortexfit::data::DataError::Io { message: m, .. }) =
            cause.downcast_ref::<cortexfit::data::DataError>()
            && (m.contains("No such file") || m.contains("not found"))
        {
            return PyFileNotFoundError::new_err(message);
        }
    }
    PyValueError::new_err(message)
}

/// `anyhow::Result` → `PyResult`.
pub(crate) fn py<T>(result: anyhow::Result<T>) -> PyResult<T> {
    result.map_err(to_py_err)
}

/// f32 values as little-endian bytes.
pub(crate) fn f32_bytes<'py>(py: Python<'py>, values: &[f32]) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    PyBytes::new(py, &out)
}

/// i64 values as little-endian bytes.
pub(crate) fn i64_bytes<'py>(py: Python<'py>, values: &[i64]) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    PyBytes::new(py, &out)
}

/// Little-endian f32 bytes (from `numpy.ndarray.tobytes()`) as values.
pub(crate) fn bytes_f32(name: &str, bytes: &[u8]) -> PyResult<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(PyValueError::new_err(format!(
            "{name}: {} bytes are not whole float32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Serializes to JSON text for the Python side (`json.loads`).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Sizes the CPU thread pool (once per process; `None` keeps one thread per core).
#[pyfunction]
#[pyo3(signature = (threads=None))]
fn init_threads(threads: Option<usize>) -> PyResult<usize> {
    cortexfit::backend::init_threads(threads).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The names of the published configurations.
#[pyfunction]
fn presets() -> Vec<String> {
    cortexfit::config::PRESETS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The library's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _cortexfit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    cortexfit::kernels::memory::retain_freed_memory();
    m.add_function(wrap_pyfunction!(init_threads, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    data::register(m)?;
    fit::register(m)?;
    run::register(m)?;
    Ok(())
}
