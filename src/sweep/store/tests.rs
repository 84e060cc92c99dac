//! Tests every store backend must pass (SQLite here; the same functions take any [`Store`]).

use super::*;

pub(crate) fn record(id: &str, status: Status) -> FitRecord {
    FitRecord {
        id: id.into(),
        sweep: "s".into(),
        label: format!("seed={id}"),
        kind: "train".into(),
        config: r#"{"config":{"seed":1,"trainer":{"lr":0.003}}}"#.into(),
        point: "{}".into(),
        status,
        run_dir: format!("/runs/{id}"),
        host: Some("h".into()),
        job: None,
        version: "0.1.0".into(),
        submitted_at: Some(1.0),
        started_at: None,
        finished_at: None,
        seconds: Some(2.5),
        epochs: Some(3),
        best_epoch: Some(2),
        best_validation_correlation: Some(0.25),
        error: None,
        metrics: vec![
            MetricValue {
                tier: "test".into(),
                data_key: "a".into(),
                metric: "fraction_oracle".into(),
                value: 0.5,
            },
            MetricValue {
                tier: "test".into(),
                data_key: "b".into(),
                metric: "fraction_oracle".into(),
                value: 0.7,
            },
        ],
    }
}

/// Round trip, `start` refusing finished fits, replacement of metrics.
pub(crate) fn round_trip(store: &mut dyn Store) {
    let r = record("f1", Status::Running);
    assert!(store.start(&r).unwrap());
    assert_eq!(store.get("f1").unwrap().unwrap(), r);
    let mut done = r.clone();
    done.status = Status::Finished;
    done.metrics.pop();
    store.put(&done).unwrap();
    let back = store.get("f1").unwrap().unwrap();
    assert_eq!(back, done);
    assert_eq!(back.metric("test.fraction_oracle"), Some(0.5));
    assert_eq!(back.key("trainer.lr"), Some(serde_json::json!(0.003)));
    assert!(
        !store.start(&r).unwrap(),
        "a finished fit is not started again"
    );
    assert_eq!(store.get("f1").unwrap().unwrap().status, Status::Finished);
    assert!(store.get("nope").unwrap().is_none());
}

/// `writers` threads, each with its own connection, write `per` rows each; none is lost.
pub(crate) fn concurrent_writers(
    open: impl Fn() -> Box<dyn Store> + Sync,
    writers: usize,
    per: usize,
) {
    std::thread::scope(|s| {
        for w in 0..writers {
            let open = &open;
            s.spawn(move || {
                let mut store = open();
                for i in 0..per {
                    let id = format!("w{w}-{i}");
                    store.start(&record(&id, Status::Running)).unwrap();
                    store.put(&record(&id, Status::Finished)).unwrap();
                }
            });
        }
    });
    let all = open().all().unwrap();
    assert_eq!(all.len(), writers * per);
    assert!(
        all.iter()
            .all(|r| r.status == Status::Finished && r.metrics.len() == 2)
    );
}

#[test]
fn sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("r.sqlite")).unwrap();
    round_trip(&mut store);
    // Reopening applies no migration twice and keeps the rows.
    let mut again = open(&format!("sqlite:{}", dir.path().join("r.sqlite").display())).unwrap();
    assert_eq!(again.all().unwrap().len(), 1);
    again.clear().unwrap();
    assert!(again.all().unwrap().is_empty());
}

#[test]
fn sqlite_eight_concurrent_writers_lose_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.sqlite");
    concurrent_writers(|| Box::new(SqliteStore::open(&path).unwrap()), 8, 25);
}

#[test]
fn sqlite_rolled_back_write_leaves_the_old_row() {
    // A write that fails half-way (a metric row that violates the primary key) leaves the
    // previous row and metrics as they were: the transaction is rolled back.
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("r.sqlite")).unwrap();
    let r = record("f", Status::Running);
    store.put(&r).unwrap();
    let mut bad = record("f", Status::Finished);
    bad.metrics.push(bad.metrics[0].clone());
    assert!(store.put(&bad).is_err());
    assert_eq!(store.get("f").unwrap().unwrap(), r);
}

#[test]
fn postgres_urls_are_not_taken_as_files() {
    let e = format!(
        "{:#}",
        open("postgres://u:secret@127.0.0.1:1/db").err().unwrap()
    );
    assert!(
        e.contains("connecting to the store postgres://u:***@127.0.0.1:1/db"),
        "{e}"
    );
}

/// A throwaway PostgreSQL server (`tests/sweep/postgres.sh`), stopped on drop; `None` (with
/// the reason printed) where it cannot start.
pub(crate) struct TestPostgres {
    dir: tempfile::TempDir,
    pub url: String,
}

impl TestPostgres {
    pub(crate) fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sweep/postgres.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .arg(dir.path().join("pg"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            println!(
                "skipping the PostgreSQL store test: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let url = text.lines().last().unwrap_or_default().to_string();
        Some(Self { dir, url })
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sweep/postgres.sh");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .status();
    }
}

#[test]
fn postgres_round_trip_and_eight_concurrent_writers() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let mut store = PostgresStore::open(&pg.url).unwrap();
    round_trip(&mut store);
    store.clear().unwrap();
    concurrent_writers(|| Box::new(PostgresStore::open(&pg.url).unwrap()), 8, 25);
    // A write that fails half-way leaves the previous row (the transaction is rolled back).
    let r = record("f", Status::Running);
    store.put(&r).unwrap();
    let mut bad = record("f", Status::Finished);
    bad.metrics.push(bad.metrics[0].clone());
    assert!(store.put(&bad).is_err());
    assert_eq!(store.get("f").unwrap().unwrap(), r);
}
