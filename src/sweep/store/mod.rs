//! The results database: one row per fit (id, config, status, host, timings, error) and its
//! per-tier summary metrics. SQLite by default (`SWEEP/results.sqlite`, no server);
//! PostgreSQL given a `postgres://` URL, for a lab-wide store that many nodes write at once.
//!
//! Every write is one transaction, so a killed worker leaves the previous row or the new one,
//! never half of one. The schema is created by the migrations in `migrations/` (numbered SQL
//! files, applied in order, recorded in `schema_migrations`). The run directories stay the
//! source of truth: [`super::rebuild`] recreates every row from them.

mod postgresql;
pub mod record;
mod sqlite;

use std::path::Path;

pub use postgresql::PostgresStore;
pub use record::{FitRecord, MetricValue, Status};
pub use sqlite::SqliteStore;

/// The schema migrations, in order: (version, SQL).
pub const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_fits.sql"))];

/// A results database.
pub trait Store: Send {
    /// Inserts or replaces a fit's row and its metrics, in one transaction.
    fn put(&mut self, record: &FitRecord) -> anyhow::Result<()>;
    /// Inserts or replaces a fit's row unless its current status is one of `unless`, in one
    /// transaction; `Ok(false)` when it was left alone.
    fn put_unless(&mut self, record: &FitRecord, unless: &[Status]) -> anyhow::Result<bool>;
    /// Marks a fit as running unless it is finished; `Ok(false)` when it is (nothing written).
    fn start(&mut self, record: &FitRecord) -> anyhow::Result<bool> {
        self.put_unless(record, &[Status::Finished])
    }
    /// Records a fit as submitted unless a worker already started or finished it.
    fn submitted(&mut self, record: &FitRecord) -> anyhow::Result<bool> {
        self.put_unless(record, &[Status::Running, Status::Finished])
    }
    /// The fit with id `id`.
    fn get(&mut self, id: &str) -> anyhow::Result<Option<FitRecord>>;
    /// Every fit (with metrics), ordered by sweep, then submission time, then id.
    fn all(&mut self) -> anyhow::Result<Vec<FitRecord>>;
    /// Deletes every row (before a rebuild).
    fn clear(&mut self) -> anyhow::Result<()>;
}

/// Opens the store named by `url`: `sqlite:PATH`, a path ending in `.sqlite`/`.db`, or
/// `postgres://…`.
pub fn open(url: &str) -> anyhow::Result<Box<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(PostgresStore::open(url)?));
    }
    let path = url.strip_prefix("sqlite:").unwrap_or(url);
    Ok(Box::new(SqliteStore::open(Path::new(path))?))
}

/// The default store of a sweep folder.
pub fn default_url(sweep_dir: &Path) -> String {
    format!("sqlite:{}", sweep_dir.join("results.sqlite").display())
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
pub(crate) use tests as tests_support;
