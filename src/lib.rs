//! cortexfit — fit data-driven deep-network models of visual cortex (Lurz et al. 2020) to
//! recorded neural population responses.
//!
//! Arrows point one way (see `ARCHITECTURE.md`): `cli` → [`run`] → {[`config`], [`data`],
//! [`model`], [`train`], [`metrics`]}; the library never prints.
//!
//! - [`run`]: the library API: train, resume, open, predict, evaluate and transfer runs.
//! - [`data`]: recordings in the Sensorium / Lurz FileTree layout (folder or `.zip`), the
//!   `[data]` settings, subsets, normalization and the one prepared-dataset pipeline.
//! - [`sim`]: a ground-truth V1 simulator that writes the same layout.
//! - [`model`]: cores, readouts (Gaussian, factorized, point-pooled), retinotopy, shifter,
//!   modulator, the encoder, Poisson loss, presets and checkpoints.
//! - [`train`]: fitting a model to prepared datasets (Adam, early stopping, LR decay with
//!   best-state restore, round-robin over datasets), without files.
//! - [`metrics`]: correlations, oracle, fraction oracle, FEV/FEVE.
//! - [`kernels`]: fused CPU kernels for the flex backend.
//! - [`experiment`]: families of fits (data-efficiency curves).
//! - [`insilico`]: experiments on trained models and ensembles: MEIs, grating tuning,
//!   receptive fields, checked against the simulator's ground truth.

pub mod backend;
pub mod cli;
pub mod config;
pub mod data;
pub mod experiment;
pub mod insilico;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod report;
pub mod run;
pub mod sim;
pub mod sweep;
pub mod train;
