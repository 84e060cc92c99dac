//! Parity with the reference PyTorch library (neuralpredictors 0.3.0, float64).
//!
//! The fixtures in `tests/fixtures/*.npz` were computed by the reference library; their README
//! says what every array is. One test per fixture case at least. The test modules live in
//! `tests/parity/` (a test crate root resolves `mod` paths from `tests/`, hence `#[path]`).

#[path = "parity/fixtures.rs"]
mod fixtures;

#[path = "parity/core.rs"]
mod core;

#[path = "parity/readouts.rs"]
mod readouts;

#[path = "parity/encoder.rs"]
mod encoder;

#[path = "parity/checkpoint.rs"]
mod checkpoint;

#[path = "parity/intermediates.rs"]
mod intermediates;

#[path = "parity/pytorch.rs"]
mod pytorch;

#[path = "parity/pytorch_import.rs"]
mod pytorch_import;
