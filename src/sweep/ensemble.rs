//! The ensemble fits of a `kind = "ensemble"` sweep: once every member fit finished, the
//! ensemble is formed in its own run directory (`ensemble.json`, as `cortexfit ensemble` writes
//! it; the members stay where they were trained, possibly in another sweep's folder) and
//! evaluated on the validation and test tiers of the sweep's datasets. The metrics go to
//! `ensemble_summary.json` in that directory (the source of truth `rebuild` reads) and to the
//! store.
//!
//! A member that failed fails the ensemble with a message naming it; a member that is not
//! finished yet (still queued or running) fails it too, saying so: `cortexfit sweep retry` forms
//! it once the members are done. The engines run the ensembles after the members (local: a
//! second round once the members' round ended; SLURM: a second job array that starts once the
//! members' arrays ended, `--dependency=afterany:`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::plan::{Plan, PlannedFit};
use super::store::{Status, Store};
use crate::data::Tier;
use crate::run::evaluate::TierSummary;
use crate::run::{Run, RunOptions};

/// The file of an ensemble fit's metrics, in its run directory.
pub const SUMMARY_FILE: &str = "ensemble_summary.json";

/// What an ensemble fit achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSummary {
    /// The members' run directories.
    pub members: Vec<PathBuf>,
    /// Validation metrics of the members' mean prediction, per dataset.
    pub validation: Vec<TierSummary>,
    /// Test metrics of the members' mean prediction, per dataset (datasets with a test tier).
    pub test: Vec<TierSummary>,
}

/// The members' run directories, when every member finished; else the reason it cannot be
/// formed (naming the member).
pub fn member_dirs(
    plan: &Plan,
    fit: &PlannedFit,
    store: &mut dyn Store,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for id in &fit.members {
        let label = plan
            .fits
            .iter()
            .find(|f| &f.id == id)
            .map_or_else(String::new, |f| format!(" ({})", f.label));
        match store.get(id)? {
            Some(r) if r.status == Status::Finished => dirs.push(PathBuf::from(r.run_dir)),
            Some(r) if r.status == Status::Failed => anyhow::bail!(
                "member fit {id}{label} failed: {}",
                r.error
                    .as_deref()
                    .and_then(|e| e.lines().next())
                    .unwrap_or("no message")
            ),
            Some(r) => anyhow::bail!(
                "member fit {id}{label} is not finished ({}); `cortexfit sweep retry` forms the \
                 ensemble once it is",
                r.status
            ),
            None => anyhow::bail!(
                "member fit {id}{label} has not run; `cortexfit sweep retry` forms the ensemble \
                 once it finished"
            ),
        }
    }
    Ok(dirs)
}

/// Forms the ensemble of `fit` in `dir` and evaluates it (or reads what an earlier attempt
/// wrote).
pub fn form_and_evaluate(
    plan: &Plan,
    fit: &PlannedFit,
    dir: &Path,
    store: &mut dyn Store,
    options: &RunOptions,
) -> anyhow::Result<EnsembleSummary> {
    let members = member_dirs(plan, fit, store)?;
    let path = dir.join(SUMMARY_FILE);
    if path.is_file()
        && let Ok(summary) = read(&path)
        && summary.members == members
    {
        return Ok(summary);
    }
    crate::run::ensemble::create(dir, &members, &options.device)
        .with_context(|| format!("forming the ensemble in {}", dir.display()))?;
    let run = Run::open(dir, &options.device)?;
    let mut summary = EnsembleSummary {
        members,
        validation: Vec::new(),
        test: Vec::new(),
    };
    for data in &plan.data {
        let (key, set) = run.load_data(data)?;
        if let Some(e) = run.evaluate(key, &set, Tier::Validation) {
            summary.validation.push(e.summary);
        }
        if let Some(e) = run.evaluate(key, &set, Tier::Test) {
            summary.test.push(e.summary);
        }
    }
    crate::io::atomic_write(&path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

/// Reads an ensemble fit's `ensemble_summary.json`.
pub fn read(path: &Path) -> anyhow::Result<EnsembleSummary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not an ensemble summary", path.display()))
}
