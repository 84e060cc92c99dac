//! The PostgreSQL store: a lab-wide database that many nodes write at once
//! (`--store postgres://USER@HOST:PORT/DB`). The same schema migrations as SQLite; every write
//! is one transaction, rows are upserted (`ON CONFLICT`), and a conditional write locks the
//! fit's row (`SELECT … FOR UPDATE`) so two workers cannot both start a fit.

use anyhow::Context;
use postgres::{Client, NoTls, Transaction};

use super::record::{FitRecord, MetricValue, Status};
use super::{MIGRATIONS, Store};

/// A connection to a PostgreSQL results database.
pub struct PostgresStore {
    client: Client,
    url: String,
}

const COLUMNS: [&str; 19] = [
    "id",
    "sweep",
    "label",
    "kind",
    "config",
    "point",
    "status",
    "run_dir",
    "host",
    "job",
    "version",
    "submitted_at",
    "started_at",
    "finished_at",
    "seconds",
    "epochs",
    "best_epoch",
    "best_validation_correlation",
    "error",
];

/// The URL without its password (for messages).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.split_once(':') {
                Some((name, _)) => format!("{}{name}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PostgresStore {
    /// Connects and applies pending migrations (serialized between clients by an advisory lock).
    pub fn open(url: &str) -> anyhow::Result<Self> {
        let shown = redact(url);
        let client = Client::connect(url, NoTls)
            .with_context(|| format!("connecting to the store {shown}"))?;
        let mut store = Self { client, url: shown };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let name = self.url.clone();
        let mut tx = self.client.transaction()?;
        // One migrating client at a time (the key is arbitrary but fixed: "cortexfit").
        tx.execute("SELECT pg_advisory_xact_lock(6378767269787069)", &[])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)",
        )?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version],
                )?
                .is_some();
            if !done {
                tx.batch_execute(sql)
                    .with_context(|| format!("{name}: applying schema migration {version}"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn write(tx: &mut Transaction<'_>, r: &FitRecord) -> Result<(), postgres::Error> {
    let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = COLUMNS[1..]
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO fits ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        COLUMNS.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    );
    tx.execute(
        &sql,
        &[
            &r.id,
            &r.sweep,
            &r.label,
            &r.kind,
            &r.config,
            &r.point,
            &r.status.name(),
            &r.run_dir,
            &r.host,
            &r.job,
            &r.version,
            &r.submitted_at,
            &r.started_at,
            &r.finished_at,
            &r.seconds,
            &r.epochs,
            &r.best_epoch,
            &r.best_validation_correlation,
            &r.error,
        ],
    )?;
    tx.execute("DELETE FROM metrics WHERE fit_id = $1", &[&r.id])?;
    for m in &r.metrics {
        tx.execute(
            "INSERT INTO metrics (fit_id, tier, data_key, metric, value) VALUES ($1, $2, $3, $4, $5)",
            &[&r.id, &m.tier, &m.data_key, &m.metric, &m.value],
        )?;
    }
    Ok(())
}

fn read(
    client: &mut Client,
    rows: Vec<postgres::Row>,
    url: &str,
) -> anyhow::Result<Vec<FitRecord>> {
    let mut out = Vec::new();
    for row in rows {
        let status: String = row.get(6);
        let id: String = row.get(0);
        let metrics = client
            .query(
                "SELECT tier, data_key, metric, value FROM metrics WHERE fit_id = $1 \
                 ORDER BY tier, data_key, metric",
                &[&id],
            )?
            .into_iter()
            .map(|m| MetricValue {
                tier: m.get(0),
                data_key: m.get(1),
                metric: m.get(2),
                value: m.get(3),
            })
            .collect();
        out.push(FitRecord {
            status: status
                .parse::<Status>()
                .with_context(|| format!("{url}: fit {id}"))?,
            id,
            sweep: row.get(1),
            label: row.get(2),
            kind: row.get(3),
            config: row.get(4),
            point: row.get(5),
            run_dir: row.get(7),
            host: row.get(8),
            job: row.get(9),
            version: row.get(10),
            submitted_at: row.get(11),
            started_at: row.get(12),
            finished_at: row.get(13),
            seconds: row.get(14),
            epochs: row.get(15),
            best_epoch: row.get(16),
            best_validation_correlation: row.get(17),
            error: row.get(18),
            metrics,
        });
    }
    Ok(out)
}

impl Store for PostgresStore {
    fn put(&mut self, record: &FitRecord) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        write(&mut tx, record)
            .with_context(|| format!("{}: writing fit {}", self.url, record.id))?;
        tx.commit()
            .with_context(|| format!("{}: committing fit {}", self.url, record.id))
    }

    fn put_unless(&mut self, record: &FitRecord, unless: &[Status]) -> anyhow::Result<bool> {
        let mut tx = self.client.transaction()?;
        // Lock the row (or, when it does not exist yet, the fit's id) against concurrent writers.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&record.id])?;
        let status: Option<String> = tx
            .query_opt(
                "SELECT status FROM fits WHERE id = $1 FOR UPDATE",
                &[&record.id],
            )?
            .map(|r| r.get(0));
        if let Some(s) = status
            && unless.iter().any(|u| u.name() == s)
        {
            return Ok(false);
        }
        write(&mut tx, record)
            .with_context(|| format!("{}: writing fit {}", self.url, record.id))?;
        tx.commit()?;
        Ok(true)
    }

    fn get(&mut self, id: &str) -> anyhow::Result<Option<FitRecord>> {
        let rows = self.client.query(
            &format!("SELECT {} FROM fits WHERE id = $1", COLUMNS.join(", ")),
            &[&id],
        )?;
        Ok(read(&mut self.client, rows, &self.url)?.pop())
    }

    fn all(&mut self) -> anyhow::Result<Vec<FitRecord>> {
        let rows = self.client.query(
            &format!(
                "SELECT {} FROM fits ORDER BY sweep, submitted_at, id",
                COLUMNS.join(", ")
            ),
            &[],
        )?;
        read(&mut self.client, rows, &self.url)
    }

    fn clear(&mut self) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute("DELETE FROM metrics; DELETE FROM fits;")?;
        tx.commit()?;
        Ok(())
    }
}
