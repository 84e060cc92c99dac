//! The data-efficiency experiment (Lurz et al. 2020, Figures 4–5): prediction performance against
//! the number of training images, for a core trained directly on the new data, a core transferred
//! from other neurons or animals, and a goal-directed (object-recognition) core.
//!
//! The experiment folder `OUT` is a sweep folder ([`crate::sweep`]): its fits are planned as sweep
//! fits ([`super::fits`], content-hash ids, `OUT/plan.json`), run by a sweep engine (`local`:
//! `--jobs` at a time on this machine; `slurm`: one job array) into `OUT/runs/<id>/` and recorded
//! in the sweep store (`OUT/results.sqlite` by default). `OUT/<condition>_<images>_s<seed>` links
//! to each fit's run directory. Started again, the experiment skips finished fits, continues
//! killed ones from their last checkpoint (the sweep worker's resume) and runs failed ones again.
//! `OUT/results.csv` and the figure (`OUT/data_efficiency.png`, `.svg`) are written from the
//! finished fits each time; with `--engine slurm` the command returns once the fits are queued,
//! and the same command run again once they finished writes the complete results.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::fits::{Setup, count_train_images};
use super::plot::plot_data_efficiency;
use super::results::{ResultRow, score_from_summary, summarize, summary_table, write_csv};
use super::spec::{Condition, ImageCount, plan};
use crate::sweep::engine::Engine;
use crate::sweep::store::{self, Status};

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataEfficiency {
    pub conditions: Vec<Condition>,
    pub images: Vec<ImageCount>,
    pub seeds: Vec<u64>,
    /// Output folder.
    pub out: PathBuf,
    /// What identifies the experiment (data, configurations, core), recorded in
    /// `OUT/experiment.json`; restarting in the same folder with a different identity is refused,
    /// so results of different experiments never mix.
    pub identity: serde_json::Value,
}

/// Runs (or resumes) the experiment with `engine` (workers started from `exe`), recording fits
/// in the store `store_url`; `progress` receives one line per event. Returns the rows of the
/// finished fits.
pub fn run_data_efficiency(
    spec: &DataEfficiency,
    setup: &Setup,
    engine: &mut dyn Engine,
    exe: &Path,
    store_url: &str,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<ResultRow>> {
    std::fs::create_dir_all(&spec.out)
        .with_context(|| format!("creating {}", spec.out.display()))?;
    check_identity(&spec.out, &spec.identity)?;
    let available =
        count_train_images(&setup.data).context("counting the training images of the dataset")?;
    let fits = plan(&spec.conditions, &spec.images, &spec.seeds);
    let name = spec.out.file_name().map_or_else(
        || "data-efficiency".into(),
        |n| n.to_string_lossy().to_string(),
    );
    let images = |f: &super::spec::Fit| f.images.resolve(available);
    let sweep_plan = setup.plan(&name, &fits, &images, available)?;
    let ids: Vec<String> = sweep_plan.fits.iter().map(|f| f.id.clone()).collect();
    let mut store = store::open(store_url)?;
    let mut done_before = Vec::new();
    for id in &ids {
        done_before.push(store.get(id)?.is_some_and(|r| r.status == Status::Finished));
    }
    let report = crate::sweep::submit_plan(sweep_plan, &spec.out, store_url, engine, exe, true)?;
    progress(&report.message);

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut waiting = 0;
    for (i, ((fit, id), before)) in fits.iter().zip(&ids).zip(&done_before).enumerate() {
        let tag = format!("[{}/{}] {}", i + 1, fits.len(), fit.name());
        let record = store.get(id)?;
        match record {
            Some(r) if r.status == Status::Finished => {
                let run_dir = PathBuf::from(&r.run_dir);
                link(&spec.out, &fit.name(), &run_dir);
                let score = score_from_summary(&run_dir.join("summary.json"), images(fit))
                    .with_context(|| format!("scoring fit {}", fit.name()))?;
                if *before {
                    progress(&format!("{tag}: done before, skipped"));
                } else {
                    progress(&format!(
                        "{tag}: {} = {:.4}",
                        score.metric.name(),
                        score.value
                    ));
                }
                rows.push(ResultRow::new(fit, &score));
            }
            Some(r) if r.status == Status::Failed => {
                let error = r.error.unwrap_or_default();
                progress(&format!("{tag}: failed: {error}"));
                failed.push(format!("fit {} ({id}): {error}", fit.name()));
            }
            other => {
                waiting += 1;
                let state = other.map_or("not started".into(), |r| r.status.to_string());
                progress(&format!("{tag}: {state}"));
            }
        }
    }
    write_outputs(&spec.out, &rows)?;
    if let Some(first) = rows.first() {
        progress(&summary_table(&summarize(&rows), first.metric));
    }
    if !failed.is_empty() {
        bail!("{} fits failed:\n{}", failed.len(), failed.join("\n"));
    }
    if waiting > 0 {
        progress(&format!(
            "{waiting} fits are queued or running; run the same command again once they \
             finished to complete results.csv and the figure"
        ));
    }
    Ok(rows)
}

/// `OUT/<fit name>` → the fit's run directory (a symbolic link, for people browsing `OUT`).
fn link(out: &Path, name: &str, run_dir: &Path) {
    let path = out.join(name);
    if path.symlink_metadata().is_ok() {
        return;
    }
    #[cfg(unix)]
    {
        let target = run_dir.strip_prefix(out).unwrap_or(run_dir);
        let _ = std::os::unix::fs::symlink(target, &path);
    }
    #[cfg(not(unix))]
    let _ = run_dir;
}

fn check_identity(out: &Path, identity: &serde_json::Value) -> anyhow::Result<()> {
    let path = out.join("experiment.json");
    if path.is_file() {
        let old: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not JSON", path.display()))?;
        if &old != identity {
            bail!(
                "{} holds an experiment with other settings ({}; now {}): choose another --out",
                out.display(),
                old,
                identity
            );
        }
        return Ok(());
    }
    crate::io::atomic_write(&path, serde_json::to_string_pretty(identity)?.as_bytes())
}

/// Writes `results.csv`, `data_efficiency.png` and `data_efficiency.svg`.
pub fn write_outputs(out: &Path, rows: &[ResultRow]) -> anyhow::Result<()> {
    write_csv(rows, &out.join("results.csv"))?;
    let Some(first) = rows.first() else {
        return Ok(());
    };
    if let Some(other) = rows.iter().find(|r| r.metric != first.metric) {
        bail!(
            "fits are scored with different metrics ({} for {}, {} for {}): the dataset changed?",
            first.metric.name(),
            first.run,
            other.metric.name(),
            other.run
        );
    }
    plot_data_efficiency(&summarize(rows), first.metric, out, "data_efficiency")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_experiment_in_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = serde_json::json!({"data": "sim4"});
        check_identity(dir.path(), &a).unwrap();
        check_identity(dir.path(), &a).unwrap();
        let err = check_identity(dir.path(), &serde_json::json!({"data": "real"})).unwrap_err();
        assert!(format!("{err:#}").contains("other settings"), "{err:#}");
    }
}
