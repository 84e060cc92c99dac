//! Training and scoring one fit of an experiment.
//!
//! [`CommandRunner`] runs the `cortexfit` binary itself (`cortexfit train …`, `cortexfit transfer …`,
//! `cortexfit train --resume …`) as a child process per fit. Each fit is therefore an ordinary run
//! directory (same files as any run; `cortexfit evaluate` works on it), a crash or an out-of-memory
//! kill of one fit cannot take the experiment's bookkeeping with it, and every fit starts from a
//! fresh process (no state carried between fits).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::results::{Score, ScoreMetric};
use super::spec::{Condition, Fit};

/// What an experiment needs from whoever trains its fits (a trait so the bookkeeping is tested
/// without training anything).
pub trait FitRunner {
    /// Number of unique training images of the target dataset (resolves `all`, caps counts).
    fn available_train_images(&mut self) -> anyhow::Result<usize>;
    /// Trains `fit` with `train_images` images into the fresh directory `run_dir`.
    fn train(&mut self, fit: &Fit, train_images: usize, run_dir: &Path) -> anyhow::Result<()>;
    /// Continues a killed fit; `Ok(false)` when there is nothing to continue from (start again).
    fn resume(&mut self, run_dir: &Path) -> anyhow::Result<bool>;
    /// Whether `run_dir` holds a finished fit.
    fn is_finished(&self, run_dir: &Path) -> bool {
        run_dir.join("summary.json").is_file()
    }
    /// The score of a finished fit.
    fn score(&mut self, run_dir: &Path, train_images: usize) -> anyhow::Result<Score> {
        score_from_summary(&run_dir.join("summary.json"), train_images)
    }
}

/// Where a run configuration comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    Preset(String),
    File(PathBuf),
}

impl ConfigSource {
    /// A preset name or, when the text names an existing file (or ends in `.toml`), that file.
    pub fn parse(text: &str) -> Self {
        let path = Path::new(text);
        if path.is_file() || text.ends_with(".toml") {
            ConfigSource::File(path.to_path_buf())
        } else {
            ConfigSource::Preset(text.to_string())
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            ConfigSource::Preset(p) => vec!["--preset".into(), p.clone()],
            ConfigSource::File(f) => vec!["--config".into(), f.display().to_string()],
        }
    }
}

/// Runs fits with the `cortexfit` binary.
#[derive(Debug, Clone)]
pub struct CommandRunner {
    /// The `cortexfit` executable (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// The dataset every fit is trained and scored on.
    pub data: PathBuf,
    /// Model and trainer settings of the direct condition.
    pub config: ConfigSource,
    /// Configuration of the goal-directed condition (its `[model]` has a goal-directed core).
    pub goal_directed_config: Option<ConfigSource>,
    /// Run whose core the transfer condition reuses.
    pub core: Option<PathBuf>,
    /// Transfer: update the core's batch-norm running statistics on the new data.
    pub update_bn: bool,
    /// `--set` overrides applied to every fit.
    pub overrides: Vec<String>,
    pub threads: Option<usize>,
    pub max_minutes: Option<f64>,
    /// Folder for each fit's console output (`<fit>.log`).
    pub log_dir: PathBuf,
    /// Training images of `data`, counted once (`Default`: not yet).
    pub available: std::cell::OnceCell<usize>,
}

impl CommandRunner {
    fn run(&self, args: Vec<String>, log_name: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.log_dir)
            .with_context(|| format!("creating {}", self.log_dir.display()))?;
        let log_path = self.log_dir.join(format!("{log_name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let status = Command::new(&self.exe)
            .args(&args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        if !status.success() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "`cortexfit {}` failed ({status}); its output is in {}:\n{}",
                args.join(" "),
                log_path.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }

    fn common(&self, args: &mut Vec<String>) {
        args.push("--quiet".into());
        if let Some(t) = self.threads {
            args.extend(["--threads".into(), t.to_string()]);
        }
    }

    /// The command line of a fresh fit (without the executable).
    pub fn train_args(
        &self,
        fit: &Fit,
        train_images: usize,
        available: usize,
        run_dir: &Path,
    ) -> anyhow::Result<Vec<String>> {
        let mut args: Vec<String> = match fit.condition {
            Condition::Direct => {
                let mut a = vec!["train".to_string()];
                a.extend(self.config.args());
                a
            }
            Condition::GoalDirected => {
                let source = self.goal_directed_config.as_ref().context(
                    "the goal-directed condition needs --goal-directed-config (a run config whose \
                     [model] has a goal-directed core)",
                )?;
                let mut a = vec!["train".to_string()];
                a.extend(source.args());
                a
            }
            Condition::Transfer => {
                let core = self
                    .core
                    .as_ref()
                    .context("the transfer condition needs --core RUN (a trained run)")?;
                let mut a = vec![
                    "transfer".to_string(),
                    "--core".into(),
                    core.display().to_string(),
                ];
                if self.update_bn {
                    a.push("--update-bn".into());
                }
                a
            }
        };
        args.extend([
            "--data".into(),
            self.data.display().to_string(),
            "--out".into(),
            run_dir.display().to_string(),
            "--seed".into(),
            fit.seed.to_string(),
        ]);
        // The image subset depends on the seed only, so every condition of a seed sees the same images.
        args.extend(["--set".into(), format!("data.subset_seed={}", fit.seed)]);
        if train_images < available {
            args.extend(["--set".into(), format!("data.image_n={train_images}")]);
        }
        for o in &self.overrides {
            args.extend(["--set".into(), o.clone()]);
        }
        if let Some(m) = self.max_minutes {
            args.extend(["--max-minutes".into(), format!("{m}")]);
        }
        self.common(&mut args);
        Ok(args)
    }
}

impl FitRunner for CommandRunner {
    fn available_train_images(&mut self) -> anyhow::Result<usize> {
        if let Some(n) = self.available.get() {
            return Ok(*n);
        }
        let n = count_train_images(&self.data)?;
        Ok(*self.available.get_or_init(|| n))
    }

    fn train(&mut self, fit: &Fit, train_images: usize, run_dir: &Path) -> anyhow::Result<()> {
        let available = self.available_train_images()?;
        let args = self.train_args(fit, train_images, available, run_dir)?;
        self.run(args, &fit.name())
    }

    fn resume(&mut self, run_dir: &Path) -> anyhow::Result<bool> {
        // A run killed before its first checkpoint cannot be resumed: start it again.
        if !run_dir.join("config.toml").is_file() || !has_checkpoint(run_dir) {
            return Ok(false);
        }
        let mut args = vec![
            "train".to_string(),
            "--resume".into(),
            run_dir.display().to_string(),
        ];
        self.common(&mut args);
        let name = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "resume".into());
        self.run(args, &name)?;
        Ok(true)
    }
}

/// Whether a run directory holds a completed checkpoint to resume from (`state/last.json`,
/// written by the trainer only once a checkpoint folder is complete).
fn has_checkpoint(run_dir: &Path) -> bool {
    run_dir.join("state").join("last.json").is_file()
}

/// The score of a finished run from its `summary.json`: the test tier's fraction oracle when the
/// test tier has repeated images, else the mean validation single-trial correlation.
pub fn score_from_summary(path: &Path, train_images: usize) -> anyhow::Result<Score> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let first = |tier: &str| summary.get(tier).and_then(|t| t.get(0)).cloned();
    let number = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_f64);
    if let Some(test) = first("test")
        && let Some(fo) = number(&test, "fraction_oracle")
    {
        let corr = number(&test, "single_trial_correlation").unwrap_or(f64::NAN);
        return Ok(Score {
            metric: ScoreMetric::FractionOracleTest,
            value: fo,
            single_trial_correlation: corr,
            train_images,
        });
    }
    let validation = first("validation")
        .with_context(|| format!("{}: no validation metrics", path.display()))?;
    let corr = number(&validation, "single_trial_correlation").with_context(|| {
        format!(
            "{}: validation has no single_trial_correlation",
            path.display()
        )
    })?;
    Ok(Score {
        metric: ScoreMetric::ValidationCorrelation,
        value: corr,
        single_trial_correlation: corr,
        train_images,
    })
}

/// Unique images of the training tier of a dataset.
pub fn count_train_images(data: &Path) -> anyhow::Result<usize> {
    use crate::data::{Dataset, LoadOptions, Tier};
    let dataset = Dataset::load(data, &LoadOptions::default())
        .with_context(|| format!("loading {}", data.display()))?;
    let mut ids: Vec<i64> = dataset
        .tier_indices(Tier::Train)
        .into_iter()
        .map(|i| dataset.trials.frame_image_id[i])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::spec::ImageCount;

    #[test]
    fn score_prefers_test_fraction_oracle() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        std::fs::write(
            &p,
            r#"{"validation":[{"single_trial_correlation":0.3}],
                "test":[{"single_trial_correlation":0.35,"fraction_oracle":0.8}]}"#,
        )
        .unwrap();
        let s = score_from_summary(&p, 100).unwrap();
        assert_eq!(s.metric, ScoreMetric::FractionOracleTest);
        assert_eq!(
            (s.value, s.single_trial_correlation, s.train_images),
            (0.8, 0.35, 100)
        );
        std::fs::write(
            &p,
            r#"{"validation":[{"single_trial_correlation":0.3}],"test":[]}"#,
        )
        .unwrap();
        let s = score_from_summary(&p, 100).unwrap();
        assert_eq!(
            (s.metric, s.value),
            (ScoreMetric::ValidationCorrelation, 0.3)
        );
        std::fs::write(&p, r#"{"test":[]}"#).unwrap();
        let err = format!("{:#}", score_from_summary(&p, 1).unwrap_err());
        assert!(err.contains("no validation metrics"), "{err}");
    }

    #[test]
    fn command_lines_name_the_condition_and_subset() {
        let runner = CommandRunner {
            exe: "cortexfit".into(),
            data: "/d/animal4".into(),
            config: ConfigSource::Preset("lurz2020".into()),
            goal_directed_config: None,
            core: Some("/runs/core".into()),
            update_bn: false,
            overrides: vec!["trainer.max_epochs=3".into()],
            threads: Some(2),
            max_minutes: None,
            log_dir: "/tmp".into(),
            available: Default::default(),
        };
        let fit = Fit {
            condition: Condition::Transfer,
            images: ImageCount::Some(250),
            seed: 2,
        };
        let a = runner
            .train_args(&fit, 250, 4000, Path::new("/o/transfer_250_s2"))
            .unwrap()
            .join(" ");
        assert!(
            a.starts_with(
                "transfer --core /runs/core --data /d/animal4 --out /o/transfer_250_s2 --seed 2"
            ),
            "{a}"
        );
        assert!(
            a.contains(
                "--set data.subset_seed=2 --set data.image_n=250 --set trainer.max_epochs=3"
            ),
            "{a}"
        );
        assert!(a.ends_with("--quiet --threads 2"), "{a}");
        let all = Fit {
            condition: Condition::Direct,
            images: ImageCount::All,
            seed: 1,
        };
        let a = runner
            .train_args(&all, 4000, 4000, Path::new("/o/x"))
            .unwrap()
            .join(" ");
        assert!(a.starts_with("train --preset lurz2020 --data"), "{a}");
        assert!(!a.contains("image_n"), "{a}");
        let gd = Fit {
            condition: Condition::GoalDirected,
            ..all
        };
        let err = format!(
            "{:#}",
            runner.train_args(&gd, 1, 1, Path::new("/o/y")).unwrap_err()
        );
        assert!(err.contains("--goal-directed-config"), "{err}");
    }
}
