//! An experiment's fits as sweep fits ([`crate::sweep`]): each one fully resolved into its run
//! configuration with a content-hash id, so the experiment runs through the sweep engines
//! (`--engine local|slurm`), records every fit in the sweep store, continues killed fits from
//! their checkpoints and never trains the same fit twice.
//!
//! A fit of condition `direct` (or `goal-directed`) is a `train` fit of `--config` (or
//! `--goal-directed-config`); a `transfer` fit fits new readouts on the frozen core of `--core`.
//! Every fit gets, in this order, the overrides `seed=S`, `data.subset_seed=S` (the image subset
//! depends on the seed only, so every condition of a seed sees the same images),
//! `data.image_n=N` (when fewer than all training images), `trainer.max_minutes=M` (with
//! `--max-minutes`), then the `--set` overrides.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::spec::{Condition, Fit};
use crate::config::RunConfig;
use crate::run::transfer::{TransferRequest, transfer_config};
use crate::sweep::id::dataset_fingerprint;
use crate::sweep::plan::{
    Plan, PlannedFit, ResourcesRecord, VERSION, core_fingerprint, train_config,
};
use crate::sweep::spec::{Base, FitKind};

/// A run configuration named on the command line: a preset name or, when the text names an
/// existing file (or ends in `.toml`), that file.
pub fn config_source(text: &str) -> anyhow::Result<Base> {
    let path = Path::new(text);
    Ok(if path.is_file() || text.ends_with(".toml") {
        Base::File(std::path::absolute(path).with_context(|| format!("resolving {text}"))?)
    } else {
        Base::Preset(text.to_string())
    })
}

/// What every fit of an experiment shares.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The dataset every fit is trained and scored on.
    pub data: PathBuf,
    /// Model and trainer settings of the direct condition.
    pub config: Base,
    /// Configuration of the goal-directed condition (its `[model]` has a goal-directed core).
    pub goal_directed_config: Option<Base>,
    /// Run whose core the transfer condition reuses.
    pub core: Option<PathBuf>,
    /// Transfer: update the core's batch-norm running statistics on the new data.
    pub update_bn: bool,
    /// `--set` overrides applied to every fit.
    pub overrides: Vec<String>,
    pub max_minutes: Option<f64>,
    /// SLURM resources of each fit.
    pub resources: ResourcesRecord,
}

impl Setup {
    /// The `--set` overrides of `fit` trained on `train_images` of `available` images.
    pub fn fit_overrides(&self, fit: &Fit, train_images: usize, available: usize) -> Vec<String> {
        let mut o = vec![
            format!("seed={}", fit.seed),
            format!("data.subset_seed={}", fit.seed),
        ];
        if train_images < available {
            o.push(format!("data.image_n={train_images}"));
        }
        if let Some(m) = self.max_minutes {
            o.push(format!("trainer.max_minutes={m}"));
        }
        o.extend(self.overrides.iter().cloned());
        o
    }

    /// The sweep plan of `fits` (named `name`); `train_images` gives each fit's image count.
    pub fn plan(
        &self,
        name: &str,
        fits: &[Fit],
        train_images: &dyn Fn(&Fit) -> usize,
        available: usize,
    ) -> anyhow::Result<Plan> {
        let fingerprints = vec![dataset_fingerprint(&self.data)?];
        let wants_transfer = fits.iter().any(|f| f.condition == Condition::Transfer);
        let core_fp = match (&self.core, wants_transfer) {
            (Some(core), true) => Some(core_fingerprint(core)?),
            _ => None,
        };
        let source = match (&self.core, wants_transfer) {
            (Some(core), true) => Some(RunConfig::from_file(&core.join("config.toml"), &[])?),
            _ => None,
        };
        let data = std::slice::from_ref(&self.data);
        let mut planned = Vec::new();
        for fit in fits {
            let n = train_images(fit);
            let overrides = self.fit_overrides(fit, n, available);
            let (kind, resolved, base, core) = match fit.condition {
                Condition::Direct => (
                    FitKind::Train,
                    train_config(&self.config, data, &overrides),
                    format!("{:?}", self.config),
                    None,
                ),
                Condition::GoalDirected => (
                    FitKind::Train,
                    match &self.goal_directed_config {
                        Some(c) => train_config(c, data, &overrides),
                        None => Err(anyhow::anyhow!(
                            "the goal-directed condition needs --goal-directed-config (a run \
                             config whose [model] has a goal-directed core)"
                        )),
                    },
                    format!("{:?}", self.goal_directed_config),
                    None,
                ),
                Condition::Transfer => (
                    FitKind::Transfer,
                    match (&self.core, &source) {
                        (Some(core), Some(source)) => {
                            let request = TransferRequest {
                                core_run: core.clone(),
                                data: data.to_vec(),
                                out: PathBuf::new(),
                                train_images: None,
                                update_bn: self.update_bn,
                                fine_tune: false,
                                overrides: overrides.clone(),
                                seed: None,
                                max_minutes: None,
                            };
                            transfer_config(
                                source,
                                &request,
                                Path::new("transferred_core.safetensors"),
                            )
                        }
                        _ => Err(anyhow::anyhow!(
                            "the transfer condition needs --core RUN (a trained run)"
                        )),
                    },
                    format!("{:?}", self.core),
                    core_fp.clone(),
                ),
            };
            let mut point = serde_json::Map::new();
            point.insert("condition".into(), fit.condition.name().into());
            point.insert("images".into(), fit.images.to_string().into());
            point.insert("seed".into(), fit.seed.into());
            planned.push(PlannedFit::new(
                kind,
                fit.name(),
                point,
                overrides,
                resolved,
                &base,
                &fingerprints,
                &core,
            )?);
        }
        Ok(Plan {
            name: name.to_string(),
            spec: PathBuf::new(),
            kind: "data-efficiency".into(),
            data: data.to_vec(),
            core: self.core.clone(),
            update_bn: self.update_bn,
            resources: self.resources.clone(),
            version: VERSION.to_string(),
            fits: planned,
        })
    }
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
    use crate::experiment::spec::{ImageCount, plan};

    #[test]
    fn fits_resolve_to_content_hashed_sweep_fits() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(data.join("meta")).unwrap();
        std::fs::write(data.join("meta/x.npy"), b"x").unwrap();
        let setup = Setup {
            data: data.clone(),
            config: Base::Preset("lurz2020".into()),
            goal_directed_config: None,
            core: None,
            update_bn: false,
            overrides: vec!["trainer.max_epochs=3".into()],
            max_minutes: Some(2.5),
            resources: ResourcesRecord {
                cpus: 1,
                memory: None,
                time: None,
                partition: None,
                gpus: 0,
            },
        };
        let fits = plan(
            &[Condition::Direct, Condition::GoalDirected],
            &[ImageCount::Some(250), ImageCount::All],
            &[1, 2],
        );
        let n = |f: &Fit| f.images.resolve(4000);
        let p = setup.plan("exp", &fits, &n, 4000).unwrap();
        assert_eq!(p.fits.len(), 8);
        let direct = &p.fits[0];
        assert_eq!(direct.label, "direct_250_s1");
        assert_eq!(
            direct.overrides,
            [
                "seed=1",
                "data.subset_seed=1",
                "data.image_n=250",
                "trainer.max_minutes=2.5",
                "trainer.max_epochs=3"
            ]
        );
        let config = direct.config.as_ref().unwrap();
        assert_eq!((config.seed, config.data.subset_seed), (1, 1));
        assert_eq!(config.data.image_n, Some(250));
        assert_eq!(config.trainer.max_epochs, 3);
        assert_eq!(direct.kind, "train");
        // `all` sets no subset; the same fit planned again has the same id.
        let all = p.fits.iter().find(|f| f.label == "direct_all_s2").unwrap();
        assert_eq!(all.config.as_ref().unwrap().data.image_n, None);
        let again = setup.plan("other", &fits, &n, 4000).unwrap();
        assert_eq!(again.fits[0].id, direct.id);
        let ids: std::collections::HashSet<&str> = p.fits.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids.len(), 8, "distinct fits, distinct ids");
        // Goal-directed without its config: a fit recorded as failed with the reason.
        let gd = p
            .fits
            .iter()
            .find(|f| f.label == "goal-directed_250_s1")
            .unwrap();
        assert!(
            gd.error
                .as_deref()
                .unwrap()
                .contains("--goal-directed-config"),
            "{gd:?}"
        );
    }
}
