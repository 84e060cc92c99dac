//! `cortexfit results`: the store's fits filtered (`--where key=value`), optionally grouped by
//! config keys (mean and standard deviation of each metric per group), as a table, CSV or JSON.
//!
//! Keys are dotted config keys of the resolved configuration (`trainer.lr`, `seed`,
//! `data.image_n`, `model.readout.type`) or columns (`id`, `status`, `sweep`, `kind`, `host`,
//! `version`, `label`, `error`). Metrics are `TIER.METRIC` averaged over the fit's datasets
//! (`validation.single_trial_correlation`, `test.fraction_oracle`, `test.feve`,
//! `test.oracle`, `test.correlation_to_average`) or the columns `best_validation_correlation`,
//! `seconds`, `epochs`, `best_epoch`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use super::store::FitRecord;

/// The metrics shown when none are asked for.
pub const DEFAULT_METRICS: &[&str] = &[
    "best_validation_correlation",
    "validation.single_trial_correlation",
    "test.single_trial_correlation",
    "test.fraction_oracle",
];

/// One `--where key=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Filter {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (key, value) = s
            .split_once('=')
            .with_context(|| format!("--where `{s}`: expected KEY=VALUE, e.g. trainer.lr=0.003"))?;
        Ok(Self {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
        })
    }
}

/// A key's value as text (`all` for an absent subset size, `-` for nothing).
pub fn value_text(value: Option<&serde_json::Value>) -> String {
    match value {
        None => "-".into(),
        Some(serde_json::Value::Null) => "all".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Whether `value` (a record's key) equals the filter's text: numbers compare as numbers,
/// `all`/`null` match an absent value.
fn matches(value: Option<&serde_json::Value>, text: &str) -> bool {
    match value {
        Some(serde_json::Value::Number(n)) => match (n.as_f64(), text.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Some(serde_json::Value::Null) => matches!(text, "all" | "null" | "none"),
        other => value_text(other) == text,
    }
}

/// The records that pass every filter.
pub fn filter<'a>(records: &'a [FitRecord], filters: &[Filter]) -> Vec<&'a FitRecord> {
    records
        .iter()
        .filter(|r| {
            filters
                .iter()
                .all(|f| matches(r.key(&f.key).as_ref(), &f.value))
        })
        .collect()
}

/// A result table: column names and rows of JSON cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A metric's cell: counts (`epochs`, `best_epoch`) as integers, everything else as a float.
fn metric_cell(record: &FitRecord, metric: &str) -> serde_json::Value {
    match (metric, record.metric(metric)) {
        ("epochs" | "best_epoch", Some(v)) => serde_json::Value::from(v as i64),
        (_, v) => number(v),
    }
}

fn number(v: Option<f64>) -> serde_json::Value {
    v.and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// The axis keys of the records' sweeps (the keys their points vary), sorted.
pub fn axis_keys(records: &[&FitRecord]) -> Vec<String> {
    let mut keys = std::collections::BTreeSet::new();
    for r in records {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&r.point) {
            keys.extend(map.keys().cloned());
        }
    }
    keys.into_iter().collect()
}

/// One row per fit: id, sweep, status, kind, the given keys, the metrics, the error.
pub fn per_fit(records: &[&FitRecord], keys: &[String], metrics: &[String]) -> Table {
    let mut header: Vec<String> = vec!["id".into(), "sweep".into(), "status".into(), "kind".into()];
    header.extend(keys.iter().cloned());
    header.extend(metrics.iter().cloned());
    header.push("version".into());
    header.push("error".into());
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![
                r.id.clone().into(),
                r.sweep.clone().into(),
                r.status.name().into(),
                r.kind.clone().into(),
            ];
            row.extend(
                keys.iter()
                    .map(|k| serde_json::Value::String(value_text(r.key(k).as_ref()))),
            );
            row.extend(metrics.iter().map(|m| metric_cell(r, m)));
            row.push(r.version.clone().into());
            row.push(
                r.error
                    .as_ref()
                    .map_or(serde_json::Value::Null, |e| e.clone().into()),
            );
            row
        })
        .collect();
    Table { header, rows }
}

/// Groups of finished fits with equal values of `keys`, in sorted order of those values.
pub fn groups<'a>(
    records: &[&'a FitRecord],
    keys: &[String],
) -> BTreeMap<Vec<String>, Vec<&'a FitRecord>> {
    let mut out: BTreeMap<Vec<String>, Vec<&FitRecord>> = BTreeMap::new();
    for r in records {
        let values = keys.iter().map(|k| value_text(r.key(k).as_ref())).collect();
        out.entry(values).or_default().push(*r);
    }
    out
}

/// Mean and (sample) standard deviation of the values that exist.
pub fn mean_std(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(mean), std)
}

/// One row per group of `keys`: the keys, the number of fits, and each metric's mean and
/// standard deviation over the group's finished fits.
pub fn grouped(records: &[&FitRecord], keys: &[String], metrics: &[String]) -> Table {
    let mut header: Vec<String> = keys.to_vec();
    header.push("fits".into());
    for m in metrics {
        header.push(format!("{m} mean"));
        header.push(format!("{m} std"));
    }
    let rows = groups(records, keys)
        .into_iter()
        .map(|(values, members)| {
            let mut row: Vec<serde_json::Value> = values.into_iter().map(Into::into).collect();
            row.push(members.len().into());
            for m in metrics {
                let v: Vec<f64> = members.iter().filter_map(|r| r.metric(m)).collect();
                let (mean, std) = mean_std(&v);
                row.push(number(mean));
                row.push(number(std));
            }
            row
        })
        .collect();
    Table { header, rows }
}

fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

impl Table {
    /// An aligned text table (numbers to 4 decimals).
    pub fn render(&self) -> String {
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        let mut t = crate::report::Table::new(&header);
        for row in &self.rows {
            t.row(row.iter().map(cell_text).collect());
        }
        t.render()
    }

    /// CSV with a header line (numbers in full precision).
    pub fn to_csv(&self) -> anyhow::Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.header)?;
        for row in &self.rows {
            w.write_record(row.iter().map(|v| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }))?;
        }
        Ok(String::from_utf8(w.into_inner()?)?)
    }

    /// A JSON array of objects, one per row.
    pub fn to_json(&self) -> String {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                serde_json::Value::Object(
                    self.header
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect(),
                )
            })
            .collect();
        serde_json::to_string_pretty(&rows).expect("JSON values serialize")
    }
}

/// Checks metric names, so a typo is an error instead of an empty column.
pub fn check_metrics(metrics: &[String]) -> anyhow::Result<()> {
    const TIERS: &[&str] = &["validation", "test"];
    const NAMES: &[&str] = &[
        "single_trial_correlation",
        "correlation_to_average",
        "oracle",
        "fraction_oracle",
        "feve",
    ];
    for m in metrics {
        let ok = matches!(
            m.as_str(),
            "best_validation_correlation" | "seconds" | "epochs" | "best_epoch"
        ) || m
            .split_once('.')
            .is_some_and(|(t, n)| TIERS.contains(&t) && NAMES.contains(&n));
        if !ok {
            bail!(
                "--metrics: unknown metric `{m}` (expected TIER.METRIC with TIER one of {} and \
                 METRIC one of {}, or one of best_validation_correlation, seconds, epochs, \
                 best_epoch)",
                TIERS.join(", "),
                NAMES.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::store::Status;

    fn rec(id: &str, lr: f64, seed: u64, fo: f64) -> FitRecord {
        let mut r = crate::sweep::store::tests_support::record(id, Status::Finished);
        r.config = format!(
            r#"{{"config":{{"seed":{seed},"trainer":{{"lr":{lr}}},"data":{{"image_n":null}}}}}}"#
        );
        r.point = format!(r#"{{"seed":{seed},"trainer.lr":{lr}}}"#);
        r.metrics[0].value = fo;
        r.metrics[1].value = fo;
        r
    }

    #[test]
    fn filter_group_and_format() {
        let records = vec![
            rec("a", 0.001, 1, 0.5),
            rec("b", 0.001, 2, 0.7),
            rec("c", 0.003, 1, 0.9),
        ];
        let lr: Filter = "trainer.lr=0.001".parse().unwrap();
        let picked = filter(&records, &[lr]);
        assert_eq!(
            picked.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let all: Filter = "data.image_n=all".parse().unwrap();
        assert_eq!(filter(&records, &[all]).len(), 3);
        let refs: Vec<&FitRecord> = records.iter().collect();
        assert_eq!(axis_keys(&refs), ["seed", "trainer.lr"]);
        let metrics = vec!["test.fraction_oracle".to_string()];
        let t = grouped(&refs, &["trainer.lr".into()], &metrics);
        assert_eq!(
            t.header,
            [
                "trainer.lr",
                "fits",
                "test.fraction_oracle mean",
                "test.fraction_oracle std"
            ]
        );
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0][0], "0.001");
        assert_eq!(t.rows[0][1], 2);
        assert!((t.rows[0][2].as_f64().unwrap() - 0.6).abs() < 1e-12);
        assert!((t.rows[0][3].as_f64().unwrap() - 0.2f64.sqrt() / 10f64.sqrt() * 1.0).abs() < 1e-9);
        assert_eq!(t.rows[1][3], serde_json::Value::Null, "one fit: no std");
        let csv = t.to_csv().unwrap();
        assert!(
            csv.starts_with("trainer.lr,fits,test.fraction_oracle mean"),
            "{csv}"
        );
        let json: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(json[1]["trainer.lr"], "0.003");
        let text = per_fit(&refs, &axis_keys(&refs), &metrics).render();
        assert!(text.contains("0.9000"), "{text}");
        let t = per_fit(&refs, &[], &["epochs".into()]);
        assert_eq!(t.header[3], "kind");
        assert_eq!(t.rows[0][3], serde_json::json!(refs[0].kind));
        assert_eq!(t.rows[0][4], serde_json::json!(3), "epochs are counts");
        assert!(check_metrics(&["test.fraction_orcale".into()]).is_err());
        assert!("trainer.lr".parse::<Filter>().is_err());
    }
}
