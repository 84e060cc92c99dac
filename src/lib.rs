//! cortexfit — fit data-driven deep-network models of visual cortex (Lurz et al. 2020) to
//! recorded neural population responses.
//!
//! Data flows one way through the modules:
//! `cli` → `config` → `data` → `model` → `train` → `metrics` / `report`.
//!
//! - [`data`]: reading recordings in the Sensorium / Lurz FileTree layout (folder or `.zip`),
//!   normalization, tiers, batches, subsets.
//! - [`sim`]: a ground-truth V1 simulator that writes the same layout.
//! - [`model`]: cores, readouts (Gaussian, factorized, point-pooled), retinotopy, shifter,
//!   modulator, the encoder, Poisson loss, presets and checkpoints.
//! - [`train`]: the trainer (Adam, early stopping, LR decay with best-state restore, round-robin
//!   over datasets).
//! - [`metrics`]: correlations, oracle, fraction oracle, FEV/FEVE.
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
pub mod sim;
pub mod train;
