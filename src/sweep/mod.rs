//! Many fits: sweep specs, content-addressed fit ids, engines (this machine or SLURM) and the
//! results database.
//!
//! - [`spec`]: the sweep spec (TOML): base config, datasets, kind of fit, axes of overrides,
//!   cluster resources.
//! - [`id`]: a fit's id is the hash of its fully resolved config and its datasets' fingerprints,
//!   so the same fit asked for twice, by anyone, is done once.
//! - [`plan`]: the spec resolved into fits (`SWEEP/plan.json`).
//! - [`engine`]: where fits run (`local`, `slurm`), behind one trait.
//! - [`worker`]: one fit, run where an engine placed it, recorded in the store.
//! - [`ensemble`]: the ensemble fits of `kind = "ensemble"`, formed once their members finished.
//! - [`store`]: the results database (SQLite file by default).
//! - [`submit`]: what `cortexfit sweep run` does: plan, skip what is finished or running,
//!   submit the rest.
//! - [`cancel`]: `cortexfit sweep cancel` (SLURM and this machine).
//! - [`query`]: filtering, grouping and formatting the store's rows (`cortexfit results`).
//! - [`plot`]: a metric against a config key, one line per group.
//!
//! A sweep folder:
//!
//! ```text
//! SWEEP/
//!   plan.json          every fit: id, axis values, overrides, resolved config
//!   results.sqlite     the default store
//!   runs/<id>/         each fit's run directory (+ fit.json, error.txt when it failed)
//!   logs/<id>.log      each fit's console output (all attempts)
//!   slurm/             job-array scripts, their task lists, jobs.txt
//!   local-run.json     while `sweep run --engine local` runs: its process and workers
//! ```

pub mod cancel;
pub mod engine;
pub mod ensemble;
pub mod id;
pub mod plan;
pub mod plot;
pub mod query;
pub mod spec;
pub mod store;
pub mod submit;
pub mod worker;

pub use plan::{Plan, PlannedFit};
pub use spec::SweepSpec;
pub use store::{FitRecord, Status, Store};
pub use submit::{SweepReport, submit, submit_plan};
pub use worker::{Outcome, rebuild, run_fit};
