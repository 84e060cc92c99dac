//! The sweep spec: one TOML file naming a base configuration, the datasets, the kind of fit and
//! the axes of overrides that expand into many fits.
//!
//! ```toml
//! name = "lr-search"                 # default: the file name without .toml
//! base = "lurz2020"                  # a preset, or a run config file (relative to this file)
//! data = ["sim"]                     # datasets (FileTree folders or .zip), relative to this file
//! kind = "train"                     # "train", "transfer" (new readouts on `core`'s frozen
//!                                    # core) or "ensemble" (one ensemble of `seeds` per point)
//! # core = "runs/core"               # kind = "transfer": the run whose core is reused
//! # update_bn = false                # kind = "transfer": update the core's batch-norm statistics
//! # seeds = [1, 2, 3, 4, 5]          # kind = "ensemble": the members' seeds (at least 2)
//! set = ["trainer.max_epochs=20"]    # overrides applied to every fit (`--set` syntax)
//!
//! [grid]                             # every combination of these lists
//! "trainer.lr" = [0.001, 0.003, 0.01]
//! seed = [1, 2, 3]
//!
//! [zip]                              # lists of equal length, taken together (one per fit)
//! "data.image_n" = [500, 1000, "all"]
//!
//! [resources]                        # per fit, for `--engine slurm` (cpus also sets the threads)
//! cpus = 2
//! memory = "8G"
//! time = "04:00:00"
//! # partition = "cpu"
//! # gpus = 1
//! ```
//!
//! The fits are the grid's combinations (keys in sorted order, the last key varying fastest)
//! crossed with the zipped lists. The value `"all"` of `data.image_n` or `data.neuron_n` removes
//! the key (all images / neurons).
//!
//! With `kind = "ensemble"` each point is one ensemble: its members are ordinary `train` fits,
//! one per seed of `seeds` (with the same ids as the same fits of a `train` sweep, so a member
//! that exists already, e.g. from a seed sweep, is reused and never trained twice), and the
//! ensemble is a fit of its own whose id is the hash of its kind and its members' ids. It is
//! formed (as `cortexfit ensemble` does) once every member finished, then evaluated on the
//! validation and test tiers; a failed member fails the ensemble with a message naming it.
//! `seed` is then set by `seeds`, so it may not be an axis or a `set` key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// What each fit of a sweep does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FitKind {
    /// Core and readouts trained together (`cortexfit train`).
    #[default]
    Train,
    /// New readouts on the frozen core of `core` (`cortexfit transfer`).
    Transfer,
    /// One ensemble per point: `train` members, one per seed of `seeds` (`cortexfit ensemble`).
    Ensemble,
}

impl FitKind {
    pub fn name(self) -> &'static str {
        match self {
            FitKind::Train => "train",
            FitKind::Transfer => "transfer",
            FitKind::Ensemble => "ensemble",
        }
    }
}

/// Cluster resources of one fit (one SLURM array task).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// CPU cores per fit (`--cpus-per-task`); also the fit's thread count. Default 1.
    pub cpus: usize,
    /// Memory per fit (`--mem`, e.g. `"8G"`). Default: the cluster's default.
    pub memory: Option<String>,
    /// Wall-clock limit per fit (`--time`, e.g. `"04:00:00"`). Default: the partition's.
    pub time: Option<String>,
    /// Partition (`--partition`). Default: the cluster's default partition.
    pub partition: Option<String>,
    /// GPUs per fit (`--gres=gpu:N`; the fit then runs with `--device gpu`). Default 0.
    pub gpus: usize,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpus: 1,
            memory: None,
            time: None,
            partition: None,
            gpus: 0,
        }
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: Option<String>,
    base: String,
    data: Vec<String>,
    #[serde(default)]
    kind: FitKind,
    core: Option<String>,
    #[serde(default)]
    update_bn: bool,
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    set: Vec<String>,
    #[serde(default)]
    grid: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    zip: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    resources: Resources,
}

/// Where the base configuration comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    Preset(String),
    File(PathBuf),
}

/// A parsed sweep spec, paths resolved against the spec's folder.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The spec file.
    pub path: PathBuf,
    pub name: String,
    pub base: Base,
    pub data: Vec<PathBuf>,
    pub kind: FitKind,
    pub core: Option<PathBuf>,
    pub update_bn: bool,
    /// `kind = "ensemble"`: the members' seeds (empty for other kinds).
    pub seeds: Vec<u64>,
    pub set: Vec<String>,
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    pub zip: BTreeMap<String, Vec<toml::Value>>,
    pub resources: Resources,
}

/// One point of the sweep: the axis values of a fit, key → value, in key order.
pub type Point = BTreeMap<String, toml::Value>;

impl SweepSpec {
    /// Reads and checks a spec file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the sweep spec {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses a spec; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let name_of = || path.display().to_string();
        let de = toml::Deserializer::parse(text)
            .with_context(|| format!("{}: not valid TOML", name_of()))?;
        let file: SpecFile = serde_path_to_error::deserialize(de).map_err(|e| {
            anyhow::anyhow!(
                "{}: key `{}`: {}",
                name_of(),
                e.path(),
                e.inner().to_string().lines().next().unwrap_or_default()
            )
        })?;
        let folder = path.parent().unwrap_or(Path::new(""));
        let resolve = |p: &str| -> anyhow::Result<PathBuf> {
            let joined = folder.join(p);
            std::path::absolute(&joined).with_context(|| format!("resolving {}", joined.display()))
        };
        let base = if crate::config::PRESETS.contains(&file.base.as_str()) {
            Base::Preset(file.base.clone())
        } else if file.base.ends_with(".toml") {
            Base::File(resolve(&file.base)?)
        } else {
            bail!(
                "{}: `base = \"{}\"` is neither a preset ({}) nor a .toml run config",
                name_of(),
                file.base,
                crate::config::PRESETS.join(", ")
            );
        };
        if file.data.is_empty() {
            bail!(
                "{}: `data` is empty (expected at least one dataset)",
                name_of()
            );
        }
        let data = file
            .data
            .iter()
            .map(|d| resolve(d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let core = match (file.kind, &file.core) {
            (FitKind::Transfer, Some(c)) => Some(resolve(c)?),
            (FitKind::Transfer, None) => bail!(
                "{}: `kind = \"transfer\"` needs `core = \"RUN\"` (the run whose core is reused)",
                name_of()
            ),
            (_, Some(_)) => bail!(
                "{}: `core` is only used with `kind = \"transfer\"` (remove it or set the kind)",
                name_of()
            ),
            (_, None) => None,
        };
        let seeds = match (file.kind, file.seeds) {
            (FitKind::Ensemble, Some(seeds)) => {
                if seeds.len() < 2 {
                    bail!(
                        "{}: `seeds` has {} seed(s); an ensemble needs at least 2",
                        name_of(),
                        seeds.len()
                    );
                }
                let mut unique = seeds.clone();
                unique.sort_unstable();
                unique.dedup();
                if unique.len() != seeds.len() {
                    bail!("{}: `seeds` lists a seed twice", name_of());
                }
                let seed_key = |k: &str| k == "seed";
                let set_seed = file
                    .set
                    .iter()
                    .any(|o| o.split_once('=').is_some_and(|(k, _)| seed_key(k.trim())));
                if file.grid.keys().chain(file.zip.keys()).any(|k| seed_key(k)) || set_seed {
                    bail!(
                        "{}: `seed` may not be an axis or a `set` key with `kind = \"ensemble\"` \
                         (the members' seeds are `seeds`)",
                        name_of()
                    );
                }
                seeds
            }
            (FitKind::Ensemble, None) => bail!(
                "{}: `kind = \"ensemble\"` needs `seeds = [1, 2, ...]` (the members' seeds, at \
                 least 2)",
                name_of()
            ),
            (_, Some(_)) => bail!(
                "{}: `seeds` is only used with `kind = \"ensemble\"` (remove it or set the kind)",
                name_of()
            ),
            (_, None) => Vec::new(),
        };
        if file.update_bn && file.kind != FitKind::Transfer {
            bail!(
                "{}: `update_bn` is only used with `kind = \"transfer\"`",
                name_of()
            );
        }
        for (section, axes) in [("grid", &file.grid), ("zip", &file.zip)] {
            for (key, values) in axes {
                if values.is_empty() {
                    bail!("{}: [{section}] `{key}` has no values", name_of());
                }
                if file.grid.contains_key(key) && file.zip.contains_key(key) {
                    bail!("{}: `{key}` is both in [grid] and in [zip]", name_of());
                }
            }
        }
        let lengths: Vec<usize> = file.zip.values().map(Vec::len).collect();
        if lengths.windows(2).any(|w| w[0] != w[1]) {
            let list: Vec<String> = file
                .zip
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.len()))
                .collect();
            bail!(
                "{}: the [zip] lists must have the same length ({})",
                name_of(),
                list.join(", ")
            );
        }
        if file.resources.cpus == 0 {
            bail!("{}: resources.cpus must be at least 1", name_of());
        }
        let name = match file.name {
            Some(n) => n,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "sweep".into()),
        };
        Ok(Self {
            path: path.to_path_buf(),
            name,
            base,
            data,
            kind: file.kind,
            core,
            update_bn: file.update_bn,
            seeds,
            set: file.set,
            grid: file.grid,
            zip: file.zip,
            resources: file.resources,
        })
    }

    /// Every point of the sweep, in plan order.
    pub fn points(&self) -> Vec<Point> {
        let mut points = vec![Point::new()];
        for (key, values) in &self.grid {
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.insert(key.clone(), v.clone());
                        q
                    })
                })
                .collect();
        }
        let zip_len = self.zip.values().next().map_or(1, Vec::len);
        let mut out = Vec::new();
        for p in points {
            for i in 0..zip_len {
                let mut q = p.clone();
                for (key, values) in &self.zip {
                    q.insert(key.clone(), values[i].clone());
                }
                out.push(q);
            }
        }
        out
    }
}

/// The `--set` text of one axis value (`"all"` for a subset size removes the key).
pub fn override_text(key: &str, value: &toml::Value) -> String {
    let subset = matches!(key, "data.image_n" | "data.neuron_n");
    match value {
        toml::Value::String(s) if subset && s == "all" => format!("{key}="),
        other => format!("{key}={other}"),
    }
}

/// A short human label of a point: `seed=1 trainer.lr=0.003`.
pub fn label(point: &Point) -> String {
    if point.is_empty() {
        return "(base)".into();
    }
    point
        .iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
base = "lurz2020"
data = ["sim"]
set = ["trainer.max_epochs=2"]
[grid]
"trainer.lr" = [0.001, 0.003]
seed = [1, 2, 3]
[zip]
"data.image_n" = [100, "all"]
"trainer.batch_size" = [16, 32]
"#;

    #[test]
    fn grid_times_zip_in_order() {
        let spec = SweepSpec::parse(SPEC, Path::new("/s/lr.toml")).unwrap();
        assert_eq!(spec.name, "lr");
        assert_eq!(spec.data, vec![PathBuf::from("/s/sim")]);
        let points = spec.points();
        assert_eq!(points.len(), 2 * 3 * 2);
        assert_eq!(
            label(&points[0]),
            "data.image_n=100 seed=1 trainer.batch_size=16 trainer.lr=0.001"
        );
        assert_eq!(
            label(&points[1]),
            "data.image_n=all seed=1 trainer.batch_size=32 trainer.lr=0.001"
        );
        // The grid's last key (`trainer.lr`... sorted: seed, trainer.lr) varies fastest.
        assert_eq!(
            label(&points[2]),
            "data.image_n=100 seed=1 trainer.batch_size=16 trainer.lr=0.003"
        );
        assert_eq!(
            override_text("data.image_n", &toml::Value::String("all".into())),
            "data.image_n="
        );
        assert_eq!(
            override_text("trainer.lr", &toml::Value::Float(0.003)),
            "trainer.lr=0.003"
        );
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let err = |text: &str| {
            format!(
                "{:#}",
                SweepSpec::parse(text, Path::new("s.toml")).unwrap_err()
            )
        };
        let e = err("base = \"lurz2021\"\ndata = [\"d\"]\n");
        assert!(
            e.contains("s.toml") && e.contains("neither a preset"),
            "{e}"
        );
        let e = err("base = \"lurz2020\"\ndata = [\"d\"]\nkind = \"transfer\"\n");
        assert!(e.contains("needs `core"), "{e}");
        let e = err("base = \"lurz2020\"\ndata = [\"d\"]\n[zip]\na = [1]\nb = [1, 2]\n");
        assert!(e.contains("same length") && e.contains("b: 2"), "{e}");
        let e = err("base = \"lurz2020\"\ndata = [\"d\"]\nseeds = [1, 2]\n");
        assert!(e.contains("`seeds` is only used with"), "{e}");
        let ens = "base = \"lurz2020\"\ndata = [\"d\"]\nkind = \"ensemble\"\n";
        let e = err(ens);
        assert!(e.contains("needs `seeds"), "{e}");
        let e = err(&format!("{ens}seeds = [1]\n"));
        assert!(
            e.contains("`seeds` has 1 seed") && e.contains("at least 2"),
            "{e}"
        );
        let e = err(&format!("{ens}seeds = [1, 2]\n[grid]\nseed = [3, 4]\n"));
        assert!(e.contains("`seed` may not be an axis"), "{e}");
        let e = err(&format!("{ens}seeds = [1, 2]\nset = [\"seed=3\"]\n"));
        assert!(e.contains("`seed` may not be"), "{e}");
        let spec = SweepSpec::parse(
            &format!("{ens}seeds = [4, 5]\n[grid]\n\"trainer.lr\" = [0.1, 0.2]\n"),
            Path::new("e.toml"),
        )
        .unwrap();
        assert_eq!(
            (spec.kind, spec.seeds.clone()),
            (FitKind::Ensemble, vec![4, 5])
        );
        assert_eq!(spec.points().len(), 2);
        let e = err("base = \"lurz2020\"\ndata = [\"d\"]\n[resources]\ncpu = 2\n");
        assert!(e.contains("resources") && e.contains("cpu"), "{e}");
        let e = err("base = \"lurz2020\"\ndata = []\n");
        assert!(e.contains("`data` is empty"), "{e}");
    }
}
