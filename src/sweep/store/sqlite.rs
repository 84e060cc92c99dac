//! The SQLite store: one file, no server; safe for many processes on one machine (WAL journal,
//! writers wait for each other up to a minute). On a cluster file system that does not honour
//! file locks (some NFS setups), use PostgreSQL instead.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::record::{FitRecord, MetricValue, Status};
use super::{MIGRATIONS, Store};

/// A connection to an SQLite results file.
pub struct SqliteStore {
    conn: Connection,
    path: String,
}

const COLUMNS: &str = "id, sweep, label, kind, config, point, status, run_dir, host, job, version, \
    submitted_at, started_at, finished_at, seconds, epochs, best_epoch, \
    best_validation_correlation, error";

/// How long a writer waits for the others.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Sets the WAL journal mode. Switching needs an exclusive lock, and SQLite answers "database is
/// locked" at once instead of calling the busy handler when several connections open a new file
/// together (eight sweep workers starting at once), so this retries for up to [`BUSY_TIMEOUT`].
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    /// Opens (creating when absent) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let name = path.display().to_string();
        let conn = Connection::open(path).with_context(|| format!("opening the store {name}"))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        switch_to_wal(&conn).with_context(|| format!("{name}: switching to WAL journal"))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Self { conn, path: name };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let name = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)",
            [],
        )?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> = tx
                .query_row(
                    "SELECT version FROM schema_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()?;
            if done.is_none() {
                tx.execute_batch(sql)
                    .with_context(|| format!("{name}: applying schema migration {version}"))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES (?1)",
                    [version],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn write(tx: &rusqlite::Transaction<'_>, r: &FitRecord) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO fits ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        ),
        params![
            r.id,
            r.sweep,
            r.label,
            r.kind,
            r.config,
            r.point,
            r.status.name(),
            r.run_dir,
            r.host,
            r.job,
            r.version,
            r.submitted_at,
            r.started_at,
            r.finished_at,
            r.seconds,
            r.epochs,
            r.best_epoch,
            r.best_validation_correlation,
            r.error
        ],
    )?;
    tx.execute("DELETE FROM metrics WHERE fit_id = ?1", [&r.id])?;
    for m in &r.metrics {
        tx.execute(
            "INSERT INTO metrics (fit_id, tier, data_key, metric, value) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.id, m.tier, m.data_key, m.metric, m.value],
        )?;
    }
    Ok(())
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(FitRecord, String)> {
    let status: String = row.get(6)?;
    Ok((
        FitRecord {
            id: row.get(0)?,
            sweep: row.get(1)?,
            label: row.get(2)?,
            kind: row.get(3)?,
            config: row.get(4)?,
            point: row.get(5)?,
            status: super::Status::Submitted,
            run_dir: row.get(7)?,
            host: row.get(8)?,
            job: row.get(9)?,
            version: row.get(10)?,
            submitted_at: row.get(11)?,
            started_at: row.get(12)?,
            finished_at: row.get(13)?,
            seconds: row.get(14)?,
            epochs: row.get(15)?,
            best_epoch: row.get(16)?,
            best_validation_correlation: row.get(17)?,
            error: row.get(18)?,
            metrics: Vec::new(),
        },
        status,
    ))
}

impl SqliteStore {
    fn fill(&self, rows: Vec<(FitRecord, String)>) -> anyhow::Result<Vec<FitRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT tier, data_key, metric, value FROM metrics WHERE fit_id = ?1 \
             ORDER BY tier, data_key, metric",
        )?;
        rows.into_iter()
            .map(|(mut r, status)| {
                r.status = status
                    .parse()
                    .with_context(|| format!("{}: fit {}", self.path, r.id))?;
                r.metrics = stmt
                    .query_map([&r.id], |m| {
                        Ok(MetricValue {
                            tier: m.get(0)?,
                            data_key: m.get(1)?,
                            metric: m.get(2)?,
                            value: m.get(3)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(r)
            })
            .collect()
    }
}

impl Store for SqliteStore {
    fn put(&mut self, record: &FitRecord) -> anyhow::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write(&tx, record).with_context(|| format!("{}: writing fit {}", self.path, record.id))?;
        tx.commit()
            .with_context(|| format!("{}: committing fit {}", self.path, record.id))
    }

    fn put_unless(&mut self, record: &FitRecord, unless: &[Status]) -> anyhow::Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM fits WHERE id = ?1", [&record.id], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(s) = status
            && unless.iter().any(|u| u.name() == s)
        {
            return Ok(false);
        }
        write(&tx, record).with_context(|| format!("{}: writing fit {}", self.path, record.id))?;
        tx.commit()?;
        Ok(true)
    }

    fn get(&mut self, id: &str) -> anyhow::Result<Option<FitRecord>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM fits WHERE id = ?1"),
                [id],
                read_row,
            )
            .optional()?;
        Ok(self.fill(row.into_iter().collect())?.pop())
    }

    fn all(&mut self) -> anyhow::Result<Vec<FitRecord>> {
        let rows = {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {COLUMNS} FROM fits ORDER BY sweep, submitted_at, id"
            ))?;
            stmt.query_map([], read_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        self.fill(rows)
    }

    fn clear(&mut self) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM metrics", [])?;
        tx.execute("DELETE FROM fits", [])?;
        tx.commit()?;
        Ok(())
    }
}
