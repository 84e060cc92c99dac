//! Planning a sweep: each point of the spec resolved into a complete run configuration and its
//! content-hash id ([`super::id`]), written to `SWEEP/plan.json` for the workers.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::id::{canonical_json, dataset_fingerprint, file_fingerprint, fit_id};
use super::spec::{Base, FitKind, Point, Resources, SweepSpec, label, override_text};
use crate::config::RunConfig;
use crate::run::transfer::{TransferRequest, transfer_config};

/// One fit of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedFit {
    /// Content hash of the resolved config and the datasets' fingerprints.
    pub id: String,
    /// The point's axis values as text (`seed=1 trainer.lr=0.003`).
    pub label: String,
    /// The axis values (key → JSON value).
    pub point: serde_json::Map<String, serde_json::Value>,
    /// `--set` overrides of this fit (the spec's `set`, then the point's values).
    pub overrides: Vec<String>,
    /// The resolved configuration that is trained (absent when it could not be resolved).
    pub config: Option<RunConfig>,
    /// The canonical JSON document whose hash is the id.
    pub canonical: String,
    /// Why the configuration could not be resolved (the fit is then recorded as failed).
    pub error: Option<String>,
    /// What the fit does: `train`, `transfer` or `ensemble` (plans written before fits had their
    /// own kind: the plan's).
    #[serde(default)]
    pub kind: String,
    /// `ensemble` fits: the ids of the member fits (listed earlier in the plan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

impl PlannedFit {
    /// The fit's kind (`train`, `transfer`, `ensemble`).
    pub fn kind<'a>(&'a self, plan: &'a Plan) -> &'a str {
        if self.kind.is_empty() {
            &plan.kind
        } else {
            &self.kind
        }
    }
}

/// Everything a worker needs to run any fit of a sweep (`SWEEP/plan.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// The spec file the plan was made from.
    pub spec: PathBuf,
    pub kind: String,
    pub data: Vec<PathBuf>,
    pub core: Option<PathBuf>,
    pub update_bn: bool,
    pub resources: ResourcesRecord,
    /// The cortexfit version that made the plan.
    pub version: String,
    pub fits: Vec<PlannedFit>,
}

/// [`Resources`] as stored in the plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourcesRecord {
    pub cpus: usize,
    pub memory: Option<String>,
    pub time: Option<String>,
    pub partition: Option<String>,
    pub gpus: usize,
}

impl From<&Resources> for ResourcesRecord {
    fn from(r: &Resources) -> Self {
        Self {
            cpus: r.cpus,
            memory: r.memory.clone(),
            time: r.time.clone(),
            partition: r.partition.clone(),
            gpus: r.gpus,
        }
    }
}

/// The version recorded with every fit.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Plan {
    /// Resolves every point of `spec` (reads the datasets' file lists for their fingerprints).
    pub fn make(spec: &SweepSpec) -> anyhow::Result<Self> {
        let fingerprints = spec
            .data
            .iter()
            .map(|d| dataset_fingerprint(d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let core_fp = spec.core.as_deref().map(core_fingerprint).transpose()?;
        let mut fits = Vec::new();
        let mut ensembles = Vec::new();
        for point in spec.points() {
            if spec.kind != FitKind::Ensemble {
                fits.push(plan_fit(spec, spec.kind, &point, &fingerprints, &core_fp)?);
                continue;
            }
            // One ensemble: a `train` fit per seed, then the ensemble of their ids.
            let mut members = Vec::new();
            for &seed in &spec.seeds {
                let mut with_seed = point.clone();
                with_seed.insert("seed".into(), toml::Value::Integer(seed as i64));
                let member = plan_fit(spec, FitKind::Train, &with_seed, &fingerprints, &None)?;
                members.push(member);
            }
            ensembles.push(ensemble_fit(spec, &point, &members)?);
            fits.extend(members);
        }
        fits.extend(ensembles);
        let mut seen = std::collections::HashSet::new();
        fits.retain(|f| seen.insert(f.id.clone()));
        Ok(Self {
            name: spec.name.clone(),
            spec: spec.path.clone(),
            kind: spec.kind.name().to_string(),
            data: spec.data.clone(),
            core: spec.core.clone(),
            update_bn: spec.update_bn,
            resources: (&spec.resources).into(),
            version: VERSION.to_string(),
            fits,
        })
    }

    /// The fit with id `id`.
    pub fn fit(&self, id: &str) -> anyhow::Result<&PlannedFit> {
        self.fits
            .iter()
            .find(|f| f.id == id)
            .with_context(|| format!("fit {id} is not in the plan of sweep {}", self.name))
    }

    /// Writes `DIR/plan.json` atomically.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        crate::io::atomic_write(
            &dir.join("plan.json"),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    /// Reads `DIR/plan.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("plan.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is {} a sweep folder? `cortexfit sweep run` writes it)",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a sweep plan", path.display()))
    }

    /// The [`TransferRequest`] of a transfer fit into `run_dir` (`None` for other kinds).
    pub fn transfer_request(&self, fit: &PlannedFit, run_dir: &Path) -> Option<TransferRequest> {
        if fit.kind(self) != FitKind::Transfer.name() {
            return None;
        }
        self.core.as_ref().map(|core| TransferRequest {
            core_run: core.clone(),
            data: self.data.clone(),
            out: run_dir.to_path_buf(),
            train_images: None,
            update_bn: self.update_bn,
            fine_tune: false,
            overrides: fit.overrides.clone(),
            seed: None,
            max_minutes: None,
        })
    }
}

/// One `train` or `transfer` fit at `point`.
fn plan_fit(
    spec: &SweepSpec,
    kind: FitKind,
    point: &Point,
    fingerprints: &[String],
    core_fingerprint: &Option<String>,
) -> anyhow::Result<PlannedFit> {
    let mut overrides = spec.set.clone();
    overrides.extend(point.iter().map(|(k, v)| override_text(k, v)));
    let resolved = resolve(spec, kind, &overrides);
    let base = format!("{:?}", spec.base);
    PlannedFit::new(
        kind,
        label(point),
        point_to_json(point),
        overrides,
        resolved,
        &base,
        fingerprints,
        core_fingerprint,
    )
}

impl PlannedFit {
    /// A `train` or `transfer` fit whose configuration `resolved` was resolved from `base` (a
    /// description of where it started: preset, file) and `overrides`; `fingerprints` are its
    /// datasets' ([`dataset_fingerprint`]), `core` the transferred core's file fingerprint.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: FitKind,
        label: String,
        point: serde_json::Map<String, serde_json::Value>,
        overrides: Vec<String>,
        resolved: anyhow::Result<RunConfig>,
        base: &str,
        fingerprints: &[String],
        core: &Option<String>,
    ) -> anyhow::Result<Self> {
        let (config, canonical, error) = match resolved {
            Ok(config) => {
                let doc = id_document(&config, kind, fingerprints, core)?;
                (Some(config), canonical_json(&doc), None)
            }
            Err(e) => {
                // Unresolvable: the id hashes what was asked for, so it stays stable too.
                let doc = serde_json::json!({
                    "unresolved": {"base": base, "overrides": overrides},
                    "datasets": fingerprints,
                });
                (None, canonical_json(&doc), Some(format!("{e:#}")))
            }
        };
        Ok(PlannedFit {
            id: fit_id(&canonical),
            label,
            point,
            overrides,
            config,
            canonical,
            error,
            kind: kind.name().to_string(),
            members: Vec::new(),
        })
    }
}

/// The configuration of a `train` fit: `base` with the datasets `data`, then `overrides`.
pub fn train_config(
    base: &Base,
    data: &[PathBuf],
    overrides: &[String],
) -> anyhow::Result<RunConfig> {
    let paths: Vec<toml::Value> = data
        .iter()
        .map(|p| toml::Value::String(p.display().to_string()))
        .collect();
    let mut all = vec![format!("data.paths={}", toml::Value::Array(paths))];
    all.extend(overrides.iter().cloned());
    Ok(match base {
        Base::Preset(name) => {
            RunConfig::preset(name)?.with_overrides(&format!("preset {name}"), &all)?
        }
        Base::File(file) => RunConfig::from_file(file, &all)?,
    })
}

/// The fingerprint of a transfer core: its run's `best.safetensors`.
pub fn core_fingerprint(core: &Path) -> anyhow::Result<String> {
    let best = core.join("best.safetensors");
    file_fingerprint(&best).with_context(|| {
        format!(
            "the transfer core {} (a finished single run; ensembles are not supported as cores)",
            core.display()
        )
    })
}

/// The ensemble of `members` (one per seed) at `point`. Its id hashes its kind and its members'
/// ids; the hashed document also carries the members' shared config (with `seed` = the list of
/// seeds) and datasets, so `cortexfit results` groups and filters ensembles by config keys too.
fn ensemble_fit(
    spec: &SweepSpec,
    point: &Point,
    members: &[PlannedFit],
) -> anyhow::Result<PlannedFit> {
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let mut doc = serde_json::json!({"kind": FitKind::Ensemble.name(), "members": ids});
    if let Some(first) = members.iter().find(|m| m.error.is_none()) {
        let member_doc: serde_json::Value = serde_json::from_str(&first.canonical)?;
        let mut config = member_doc["config"].clone();
        config["seed"] = serde_json::json!(spec.seeds);
        doc["config"] = config;
        doc["datasets"] = member_doc["datasets"].clone();
    }
    let canonical = canonical_json(&doc);
    let mut overrides = spec.set.clone();
    overrides.extend(point.iter().map(|(k, v)| override_text(k, v)));
    Ok(PlannedFit {
        id: fit_id(&canonical),
        label: label(point),
        point: point_to_json(point),
        overrides,
        config: None,
        canonical,
        error: None,
        kind: FitKind::Ensemble.name().to_string(),
        members: ids,
    })
}

/// The fully resolved configuration of one fit.
fn resolve(spec: &SweepSpec, kind: FitKind, overrides: &[String]) -> anyhow::Result<RunConfig> {
    match kind {
        FitKind::Train | FitKind::Ensemble => train_config(&spec.base, &spec.data, overrides),
        FitKind::Transfer => {
            let core = spec.core.as_ref().context("a transfer sweep has a core")?;
            let source = RunConfig::from_file(&core.join("config.toml"), &[])?;
            let request = TransferRequest {
                core_run: core.clone(),
                data: spec.data.clone(),
                out: PathBuf::new(),
                train_images: None,
                update_bn: spec.update_bn,
                fine_tune: false,
                overrides: overrides.to_vec(),
                seed: None,
                max_minutes: None,
            };
            transfer_config(&source, &request, Path::new("transferred_core.safetensors"))
        }
    }
}

/// The document hashed into the id: the config without paths, the datasets' fingerprints.
fn id_document(
    config: &RunConfig,
    kind: FitKind,
    datasets: &[String],
    core: &Option<String>,
) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(config)?;
    let object = value.as_object_mut().context("a config is an object")?;
    if let Some(data) = object.get_mut("data").and_then(|d| d.as_object_mut()) {
        data.remove("paths");
    }
    let transfer = object.remove("transfer");
    let mut doc = serde_json::json!({
        "config": value,
        "datasets": datasets,
        "kind": kind.name(),
    });
    if let Some(core) = core {
        doc["core"] = serde_json::Value::String(core.clone());
    } else if let Some(t) = config.transfer.as_ref() {
        // A base config that starts from a saved core or model: hash that file, not its path.
        let mut files = serde_json::Map::new();
        for (key, path) in [("core", &t.core), ("model", &t.model)] {
            if let Some(p) = path {
                files.insert(key.into(), file_fingerprint(p)?.into());
            }
        }
        doc["transfer"] = serde_json::Value::Object(files);
        let _ = transfer;
    }
    Ok(doc)
}

/// A point's axis values as a JSON object.
pub fn point_to_json(point: &Point) -> serde_json::Map<String, serde_json::Value> {
    point
        .iter()
        .map(|(k, v)| {
            let json = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
            (k.clone(), json)
        })
        .collect()
}
