-- Migration 1: one row per fit, its per-tier metrics in a second table.
-- Shared by SQLite and PostgreSQL (only types both understand).
CREATE TABLE fits (
    id            TEXT PRIMARY KEY,          -- content hash of the resolved config + datasets
    sweep         TEXT NOT NULL,             -- the sweep's name
    label         TEXT NOT NULL,             -- axis values, e.g. "seed=1 trainer.lr=0.003"
    kind          TEXT NOT NULL,             -- train | transfer
    config        TEXT NOT NULL,             -- canonical JSON that was hashed into the id
    point         TEXT NOT NULL,             -- axis values as a JSON object
    status        TEXT NOT NULL,             -- submitted | running | finished | failed
    run_dir       TEXT NOT NULL,
    host          TEXT,
    job           TEXT,                      -- local:HOST:PID or slurm:JOB_TASK
    version       TEXT NOT NULL,             -- cortexfit version that made the fit
    submitted_at  DOUBLE PRECISION,          -- Unix seconds
    started_at    DOUBLE PRECISION,
    finished_at   DOUBLE PRECISION,
    seconds       DOUBLE PRECISION,          -- training seconds (summary.json)
    epochs        BIGINT,
    best_epoch    BIGINT,
    best_validation_correlation DOUBLE PRECISION,
    error         TEXT
);
CREATE TABLE metrics (
    fit_id    TEXT NOT NULL REFERENCES fits(id) ON DELETE CASCADE,
    tier      TEXT NOT NULL,                 -- validation | test
    data_key  TEXT NOT NULL,
    metric    TEXT NOT NULL,                 -- single_trial_correlation, fraction_oracle, ...
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (fit_id, tier, data_key, metric)
);
CREATE INDEX fits_sweep ON fits (sweep);
