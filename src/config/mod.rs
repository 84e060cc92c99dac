//! The run configuration: one typed TOML file (sections `data`, `model`, `trainer`, plus `seed`)
//! that rejects unknown keys and contradictory settings.
//!
//! Command-line overrides (`--set trainer.lr=0.003`) are applied to the TOML tree *before* typed
//! deserialization, so they go through exactly the same checks as the file. Values are parsed as
//! TOML (`0.003`, `true`, `[1, 2]`, `"text"`); a value that is not valid TOML is taken as a string,
//! so `--set model.readout.type=gaussian` works without quotes. An empty value (`--set
//! data.neuron_n=`) removes the key: an optional setting becomes absent, any other takes its default.

mod comments;
mod error;
mod model_docs;
mod trainer;
mod transfer;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use crate::data::DataConfig;
pub use error::ConfigError;
pub use trainer::TrainerConfig;
pub use transfer::TransferInit;

use crate::model::{ModelConfig, PRESET_NAMES};

/// Everything a run needs besides the command line's I/O paths and thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of every random choice (initialisation, shuffling, readout position sampling).
    #[serde(default)]
    pub seed: u64,
    /// Which implementation computes the hot operations (`fused` kernels or `burn`'s ops); part
    /// of the configuration because it changes the numbers at rounding level.
    #[serde(default)]
    pub kernels: crate::kernels::Kernels,
    /// Recordings and their preparation.
    #[serde(default)]
    pub data: DataConfig,
    /// The model: core, readout, shifter, modulator.
    pub model: ModelConfig,
    /// Optimisation and early stopping.
    #[serde(default)]
    pub trainer: TrainerConfig,
    /// Start from a transferred core instead of a fresh one (`cortexfit transfer` writes this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferInit>,
}

/// The names `cortexfit config --preset` and `train --preset` accept (the model presets).
pub const PRESETS: &[&str] = PRESET_NAMES;

impl RunConfig {
    /// The run configuration of a published model: the model preset plus its paper's data and
    /// trainer settings.
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let unknown = || ConfigError::UnknownPreset {
            name: name.to_string(),
            known: PRESETS.join(", "),
        };
        if !PRESETS.contains(&name) {
            return Err(unknown());
        }
        let model = ModelConfig::preset(name).map_err(|_| unknown())?;
        let (data, trainer) = if name.starts_with("sensorium") {
            (
                DataConfig {
                    exclude_images: false,
                    // The starter kit's `scale=0.25` on the 144×256 zips, found from the data.
                    image_size: Some([36, 64]),
                    ..DataConfig::default()
                },
                TrainerConfig::sensorium2022(),
            )
        } else {
            (
                DataConfig {
                    exclude_images: true,
                    ..DataConfig::default()
                },
                TrainerConfig::default(),
            )
        };
        Ok(Self {
            seed: 0,
            kernels: Default::default(),
            data,
            model,
            trainer,
            transfer: None,
        })
    }

    /// Parses a TOML text, applies `overrides` (`section.key=value`), deserializes and validates.
    /// `source_name` names the text in error messages (a file path or "preset lurz2020").
    pub fn from_toml_str(
        text: &str,
        source_name: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        Self::from_table(table, source_name, overrides)
    }

    /// Reads a config file, applies overrides, validates.
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string(), overrides)
    }

    /// Applies overrides to an already-typed config (e.g. a preset) through the TOML tree, so the
    /// same checks apply as for a file.
    pub fn with_overrides(
        &self,
        source_name: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let table = toml::Table::try_from(self).map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        Self::from_table(table, source_name, overrides)
    }

    fn from_table(
        mut table: toml::Table,
        source_name: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        for text in overrides {
            apply_override(&mut table, text)?;
        }
        let config: RunConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Schema {
                source_name: source_name.to_string(),
                key: e.path().to_string(),
                // toml appends "in `section`"; the key path already says where.
                message: e
                    .inner()
                    .to_string()
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("in `") && !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            })?;
        // Name the file (or preset) a contradictory value came from.
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message } => ConfigError::Schema {
                source_name: source_name.to_string(),
                key,
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Checks every section and the settings that span sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.data.validate().map_err(|e| match e {
            crate::data::DataError::Setting { key, message } => {
                ConfigError::Invalid { key, message }
            }
            other => ConfigError::invalid("data", other.to_string()),
        })?;
        self.trainer.validate()?;
        // The model section is checked when the model is built (its errors name `model.<key>`),
        // because some checks need the data (image size, behaviour present).
        Ok(())
    }

    /// The config as plain TOML (what `config.toml` in a run directory holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serializes to TOML")
    }

    /// The config as TOML with a comment above every key saying what it means.
    pub fn to_commented_toml(&self, header: &str) -> String {
        comments::annotate(&self.to_toml(), header)
    }
}

/// Applies one `section.key=value` override to the TOML tree; missing tables are created (an
/// unknown key is then reported by deserialization, naming it).
fn apply_override(table: &mut toml::Table, text: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override {
        text: text.to_string(),
        message: message.to_string(),
    };
    let (path, raw) = text
        .split_once('=')
        .ok_or_else(|| err("expected section.key=value, e.g. trainer.lr=0.003"))?;
    let path = path.trim();
    let keys: Vec<&str> = path.split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(err("the key path has an empty part"));
    }
    let raw = raw.trim();
    let (last, parents) = keys.split_last().expect("split yields at least one part");
    let mut node = table;
    for (i, key) in parents.iter().enumerate() {
        let entry = node
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(err(&format!(
                    "`{}` is a value, not a section",
                    keys[..=i].join(".")
                )));
            }
        };
    }
    if raw.is_empty() {
        // `key=` removes the key: optional settings become absent, others take their default.
        node.remove(*last);
    } else {
        node.insert(last.to_string(), parse_value(raw));
    }
    Ok(())
}

/// A TOML value (`0.003`, `true`, `[1,2]`, `"x"`, `{a = 1}`); anything else is a bare string.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_toml() {
        for name in PRESETS {
            let config = RunConfig::preset(name).unwrap();
            let text = config.to_toml();
            let back = RunConfig::from_toml_str(&text, name, &[]).unwrap();
            assert_eq!(back, config, "{name}");
            let commented = config.to_commented_toml("header");
            let back = RunConfig::from_toml_str(&commented, name, &[]).unwrap();
            assert_eq!(back, config, "{name} (commented)");
        }
    }

    #[test]
    fn every_key_of_every_preset_is_explained() {
        for name in PRESETS {
            let text = RunConfig::preset(name).unwrap().to_toml();
            let missing = comments::undocumented_keys(&text);
            assert!(
                missing.is_empty(),
                "{name}: keys without explanation: {missing:?}"
            );
        }
    }

    #[test]
    fn commented_optional_examples_are_valid_settings() {
        let base = RunConfig::preset("lurz2020").unwrap();
        let text = base.to_commented_toml("");
        for (section, key, example) in comments::OPTIONAL {
            assert!(
                text.contains(&format!("# {key} = {example}")),
                "{key} not listed"
            );
            base.with_overrides("t", &[format!("{section}.{key}={example}")])
                .unwrap_or_else(|e| panic!("{section}.{key}: {e}"));
        }
    }

    #[test]
    fn overrides_are_typed_and_validated() {
        let base = RunConfig::preset("lurz2020").unwrap();
        let c = base
            .with_overrides(
                "t",
                &[
                    "trainer.lr=0.003".into(),
                    "trainer.batch_size=32".into(),
                    "seed=7".into(),
                    "data.neuron_n=100".into(),
                ],
            )
            .unwrap();
        assert_eq!(c.trainer.lr, 0.003);
        assert_eq!(c.trainer.batch_size, 32);
        assert_eq!(c.seed, 7);
        assert_eq!(c.data.neuron_n, Some(100));
        let c = c.with_overrides("t", &["data.neuron_n=".into()]).unwrap();
        assert_eq!(c.data.neuron_n, None);
        // An integer where a float is expected is fine.
        let c = base.with_overrides("t", &["trainer.lr=1".into()]).unwrap();
        assert_eq!(c.trainer.lr, 1.0);
    }

    #[test]
    fn errors_name_the_key() {
        let base = RunConfig::preset("lurz2020").unwrap();
        let msg = |o: &str| {
            base.with_overrides("t", &[o.to_string()])
                .unwrap_err()
                .to_string()
        };
        let m = msg("trainer.lrr=0.1");
        assert!(m.contains("trainer") && m.contains("lrr"), "{m}");
        let m = msg("trainer.batch_size=\"big\"");
        assert!(m.contains("trainer.batch_size"), "{m}");
        let m = msg("trainer.min_lr=0.1");
        assert!(m.contains("trainer.min_lr"), "{m}");
        let m = msg("trainer.lr_decay_factor=1.5");
        assert!(m.contains("trainer.lr_decay_factor"), "{m}");
        let m = msg("data.normalize=false");
        assert!(m.contains("data.exclude_images"), "{m}");
        let m = msg("seed.x=1");
        assert!(m.contains("seed"), "{m}");
        let m = msg("nonsense");
        assert!(m.contains("section.key=value"), "{m}");
        let text = "seed = 1\n[model]\n[trainer]\npatience = 0\n";
        let e = RunConfig::from_toml_str(text, "run.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("run.toml") && e.contains("trainer.patience"),
            "{e}"
        );
        let e = RunConfig::from_toml_str("[trainer\n", "bad.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.toml"), "{e}");
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        let e = RunConfig::preset("lurz2021").unwrap_err().to_string();
        assert!(e.contains("lurz2020") && e.contains("sensorium2022"), "{e}");
    }
}
