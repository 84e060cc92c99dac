//! The data-efficiency experiment (Lurz et al. 2020, Figures 4–5): prediction performance against
//! the number of training images, for a core trained directly on the new data, a core transferred
//! from other neurons or animals, and a goal-directed (object-recognition) core.
//!
//! Every fit runs in `OUT/<condition>_<images>_s<seed>/`. A fit counts as done once its `score.json`
//! is written; a killed experiment started again skips done fits, scores fits that finished
//! training, resumes fits that have a checkpoint and restarts the others. After each fit
//! `OUT/results.csv` and the figure (`OUT/data_efficiency.png`, `.svg`) are rewritten, so partial
//! results can be looked at while the experiment runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::plot::plot_data_efficiency;
use super::results::{ResultRow, Score, summarize, summary_table, write_csv};
use super::runner::FitRunner;
use super::spec::{Condition, Fit, ImageCount, plan};

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

/// Runs (or resumes) the experiment; `progress` receives one line per event. Returns all rows.
pub fn run_data_efficiency(
    spec: &DataEfficiency,
    runner: &mut dyn FitRunner,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<ResultRow>> {
    std::fs::create_dir_all(&spec.out)
        .with_context(|| format!("creating {}", spec.out.display()))?;
    check_identity(&spec.out, &spec.identity)?;
    let available = runner
        .available_train_images()
        .context("counting the training images of the dataset")?;
    let fits = plan(&spec.conditions, &spec.images, &spec.seeds);
    let mut rows = Vec::new();
    for (i, fit) in fits.iter().enumerate() {
        let train_images = fit.images.resolve(available);
        let dir = spec.out.join(fit.name());
        let tag = format!("[{}/{}] {}", i + 1, fits.len(), fit.name());
        let score = fit_and_score(fit, train_images, &dir, runner, &tag, progress)?;
        progress(&format!(
            "{tag}: {} = {:.4}",
            score.metric.name(),
            score.value
        ));
        rows.push(ResultRow::new(fit, &score));
        write_outputs(&spec.out, &rows)?;
    }
    if let Some(first) = rows.first() {
        progress(&summary_table(&summarize(&rows), first.metric));
    }
    Ok(rows)
}

fn fit_and_score(
    fit: &Fit,
    train_images: usize,
    dir: &Path,
    runner: &mut dyn FitRunner,
    tag: &str,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Score> {
    let score_path = dir.join("score.json");
    if score_path.is_file() {
        let score: Score = serde_json::from_str(
            &std::fs::read_to_string(&score_path)
                .with_context(|| format!("reading {}", score_path.display()))?,
        )
        .with_context(|| format!("{}: not a score", score_path.display()))?;
        progress(&format!("{tag}: done before, skipped"));
        return Ok(score);
    }
    if !runner.is_finished(dir) {
        let resumed = dir.exists() && {
            progress(&format!("{tag}: continuing the interrupted fit"));
            runner.resume(dir)?
        };
        if !resumed {
            if dir.exists() {
                // Killed before its first checkpoint: nothing worth keeping.
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("removing the unfinished fit {}", dir.display()))?;
            }
            progress(&format!("{tag}: training with {train_images} images"));
            runner
                .train(fit, train_images, dir)
                .with_context(|| format!("fit {}", fit.name()))?;
        }
    }
    let score = runner
        .score(dir, train_images)
        .with_context(|| format!("scoring fit {}", fit.name()))?;
    crate::io::atomic_write(
        &score_path,
        serde_json::to_string_pretty(&score)?.as_bytes(),
    )?;
    Ok(score)
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
    use std::collections::HashMap;

    use super::*;
    use crate::experiment::results::ScoreMetric;

    /// Pretends to train: writes `summary.json` with a score that grows with images, higher for
    /// transfer; can be told to "crash" on one fit.
    #[derive(Default)]
    struct FakeRunner {
        trained: Vec<String>,
        resumed: Vec<String>,
        crash_on: Option<String>,
        images_seen: HashMap<String, usize>,
    }

    impl FitRunner for FakeRunner {
        fn available_train_images(&mut self) -> anyhow::Result<usize> {
            Ok(1000)
        }
        fn train(&mut self, fit: &Fit, train_images: usize, run_dir: &Path) -> anyhow::Result<()> {
            std::fs::create_dir_all(run_dir)?;
            if self.crash_on.as_deref() == Some(fit.name().as_str()) {
                std::fs::create_dir_all(run_dir.join("state"))?;
                std::fs::write(run_dir.join("state/last.json"), "{}")?;
                bail!("killed");
            }
            self.trained.push(fit.name());
            self.images_seen.insert(fit.name(), train_images);
            let bonus = if fit.condition == Condition::Transfer {
                0.2
            } else {
                0.0
            };
            let v = 0.1 * (train_images as f64).ln() / 10.0 + bonus + 0.01 * fit.seed as f64;
            std::fs::write(
                run_dir.join("summary.json"),
                format!(r#"{{"validation":[{{"single_trial_correlation":{v}}}],"test":[]}}"#),
            )?;
            Ok(())
        }
        fn resume(&mut self, run_dir: &Path) -> anyhow::Result<bool> {
            let name = run_dir.file_name().unwrap().to_string_lossy().to_string();
            self.resumed.push(name);
            std::fs::write(
                run_dir.join("summary.json"),
                r#"{"validation":[{"single_trial_correlation":0.5}]}"#,
            )?;
            Ok(true)
        }
    }

    fn spec(out: &Path) -> DataEfficiency {
        DataEfficiency {
            conditions: vec![Condition::Direct, Condition::Transfer],
            images: vec![ImageCount::Some(100), ImageCount::All],
            seeds: vec![1, 2],
            out: out.to_path_buf(),
            identity: serde_json::json!({"data": "sim4"}),
        }
    }

    #[test]
    fn runs_every_fit_then_resumes_without_repeating_work() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("exp");
        let mut runner = FakeRunner {
            crash_on: Some("transfer_all_s1".into()),
            ..Default::default()
        };
        let err = run_data_efficiency(&spec(&out), &mut runner, &mut |_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("transfer_all_s1"), "{err:#}");
        assert_eq!(runner.trained.len(), 5, "{:?}", runner.trained);
        assert_eq!(runner.images_seen["direct_all_s1"], 1000);
        assert_eq!(runner.images_seen["direct_100_s2"], 100);
        // Partial results are on disk already.
        assert_eq!(
            crate::experiment::results::read_csv(&out.join("results.csv"))
                .unwrap()
                .len(),
            5
        );

        // Started again: the five done fits are skipped, the crashed one resumed, the rest trained.
        let mut again = FakeRunner::default();
        let mut lines = Vec::new();
        let rows = run_data_efficiency(&spec(&out), &mut again, &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(again.resumed, vec!["transfer_all_s1".to_string()]);
        assert_eq!(
            again.trained,
            vec!["direct_all_s2".to_string(), "transfer_all_s2".to_string()]
        );
        assert_eq!(rows.len(), 8);
        assert!(
            rows.iter()
                .all(|r| r.metric == ScoreMetric::ValidationCorrelation)
        );
        assert!(
            lines.iter().filter(|l| l.contains("skipped")).count() == 5,
            "{lines:?}"
        );
        for f in [
            "results.csv",
            "data_efficiency.png",
            "data_efficiency.svg",
            "experiment.json",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }

        // Another experiment in the same folder is refused.
        let mut other = spec(&out);
        other.identity = serde_json::json!({"data": "real"});
        let err = run_data_efficiency(&other, &mut FakeRunner::default(), &mut |_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("other settings"), "{err:#}");
    }

    #[test]
    fn a_fit_killed_before_its_first_checkpoint_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("exp");
        let fit_dir = out.join("direct_100_s1");
        std::fs::create_dir_all(&fit_dir).unwrap();
        std::fs::write(fit_dir.join("config.toml"), "").unwrap();
        struct NoCheckpoint(FakeRunner);
        impl FitRunner for NoCheckpoint {
            fn available_train_images(&mut self) -> anyhow::Result<usize> {
                Ok(1000)
            }
            fn train(&mut self, f: &Fit, n: usize, d: &Path) -> anyhow::Result<()> {
                assert!(
                    !d.join("config.toml").exists(),
                    "stale files were not removed"
                );
                self.0.train(f, n, d)
            }
            fn resume(&mut self, _: &Path) -> anyhow::Result<bool> {
                Ok(false)
            }
        }
        let mut s = spec(&out);
        s.conditions = vec![Condition::Direct];
        s.images = vec![ImageCount::Some(100)];
        s.seeds = vec![1];
        let mut runner = NoCheckpoint(FakeRunner::default());
        let rows = run_data_efficiency(&s, &mut runner, &mut |_| {}).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(runner.0.trained, vec!["direct_100_s1".to_string()]);
    }
}
