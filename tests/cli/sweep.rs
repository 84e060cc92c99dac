//! End-to-end tests of sweeps: plan (content-hash ids), the local engine with the SQLite store,
//! rerunning (nothing submitted), a broken fit recorded as failed, `results` queries, rebuild
//! and plot; then the same sweep on a real single-node SLURM cluster started by
//! `tests/sweep/slurm.sh` (one task requeued midway continues from its checkpoint) with the same
//! ids and metrics, followed by an ensemble sweep and `sweep cancel` there
//! (`tests/cli/sweep_kinds.rs`). Included from `tests/cli.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{cortexfit, run_ok, simulate};

/// Seven fits: six that train (one of them longer, for the requeue test) and one whose
/// `trainer.lr` is not a number.
fn write_spec(dir: &Path, data: &str) -> PathBuf {
    let spec = dir.join("sweep.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "tiny"
base = "lurz2020"
data = ["{data}"]
set = ["model.core.hidden_channels=8", "model.core.layers=2", "model.core.input_kern=9",
       "model.core.hidden_kern=3", "trainer.batch_size=32", "trainer.lr_decay_steps=1"]
[zip]
seed = [1, 2, 3, 4, 5, 6, 7]
"trainer.max_epochs" = [2, 2, 2, 2, 2, 40, 2]
"trainer.patience" = [1, 1, 1, 1, 1, 40, 1]
"trainer.lr" = [0.005, 0.005, 0.01, 0.01, 0.02, 0.005, "fast"]
[resources]
cpus = 1
"#
        ),
    )
    .unwrap();
    spec
}

fn plan_ids(spec: &Path) -> Vec<String> {
    let out = run_ok(cortexfit().args(["sweep", "plan", "--json"]).arg(spec));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["fits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// `cortexfit results --format json` rows by id.
pub fn results(args: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let out = run_ok(
        cortexfit()
            .arg("results")
            .args(args)
            .args(["--format", "json"]),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect()
}

fn count_log_lines(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("logs"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                .map(|t| t.lines().count())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn sweep_runs_each_fit_once_locally_and_on_slurm_with_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let data = simulate(tmp.path());
    let spec = write_spec(tmp.path(), "sim");

    // Content-hash ids: the same fits asked for from another folder, with a copy of the data
    // under another name, have the same ids.
    let ids = plan_ids(&spec);
    assert_eq!(ids.len(), 7);
    assert!(
        ids.iter()
            .all(|i| i.len() == 16 && i.chars().all(|c| c.is_ascii_hexdigit()))
    );
    let other = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(&data)
            .arg(other.join("copy")),
    );
    assert_eq!(plan_ids(&write_spec(&other, "copy")), ids);
    let table = run_ok(cortexfit().args(["sweep", "plan"]).arg(&spec));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("7 fits") && text.contains("config error"),
        "{text}"
    );

    // Local engine, 2 fits at a time: the broken fit fails (non-zero exit), the others finish.
    let local = tmp.path().join("tiny");
    let out = cortexfit()
        .args([
            "sweep",
            "run",
            "--engine",
            "local",
            "--jobs",
            "2",
            "--threads",
            "2",
        ])
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a fit failed, so the sweep fails: {stderr}"
    );
    assert!(
        stderr.contains("1 fits failed") && stderr.contains("trainer.lr"),
        "{stderr}"
    );
    let rows = results(&["--sweep", local.to_str().unwrap()]);
    assert_eq!(rows.len(), 7);
    let failed: Vec<&serde_json::Value> =
        rows.values().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("trainer.lr"),
        "{failed:?}"
    );
    for r in rows.values().filter(|r| r["status"] != "failed") {
        assert_eq!(r["status"], "finished", "{r}");
        let v = r["validation.single_trial_correlation"].as_f64().unwrap();
        assert!(v.is_finite() && v > -1.0 && v < 1.0, "{r}");
        assert!(r["test.fraction_oracle"].is_number(), "{r}");
    }

    // Rerunning submits nothing (finished fits are done, the failed one waits for `retry`).
    let lines = count_log_lines(&local);
    let out = run_ok(cortexfit().args(["sweep", "run"]).arg(&spec));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("6 finished before") && stderr.contains("submitting 0"),
        "{stderr}"
    );
    assert_eq!(count_log_lines(&local), lines, "no worker ran");
    // `retry` runs the failed fit again (and it fails again, with the same message).
    let out = cortexfit()
        .args(["sweep", "retry"])
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("submitting 1"),
        "{stderr}"
    );

    // Queries: filter, group, CSV, plot; rebuild from the run directories into a fresh store.
    let picked = results(&[
        "--sweep",
        local.to_str().unwrap(),
        "--where",
        "trainer.lr=0.01",
    ]);
    assert_eq!(picked.len(), 2);
    let out = run_ok(
        cortexfit()
            .args(["results", "--sweep"])
            .arg(&local)
            .args([
                "--where",
                "status=finished",
                "--group-by",
                "trainer.lr",
                "--metrics",
                "test.fraction_oracle",
                "--format",
                "csv",
                "--plot",
            ])
            .arg(tmp.path().join("fig.svg"))
            .args(["--x", "seed"]),
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("trainer.lr,fits,test.fraction_oracle mean"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    let svg = std::fs::read_to_string(tmp.path().join("fig.svg")).unwrap();
    assert!(svg.contains("trainer.lr=0.005"), "legend");
    let rebuilt_store = format!("sqlite:{}", tmp.path().join("rebuilt.sqlite").display());
    let rebuilt = results(&[
        "--sweep",
        local.to_str().unwrap(),
        "--store",
        &rebuilt_store,
        "--rebuild",
    ]);
    assert_eq!(rebuilt.len(), 7);
    for (id, r) in &rows {
        for key in [
            "status",
            "test.fraction_oracle",
            "best_validation_correlation",
            "error",
        ] {
            assert_eq!(rebuilt[id][key], r[key], "{id} {key} after rebuild");
        }
    }

    slurm_part(tmp.path(), &spec, &rows);
}

/// The same sweep through a real SLURM cluster (skipped with the reason when none can start).
fn slurm_part(tmp: &Path, spec: &Path, local_rows: &BTreeMap<String, serde_json::Value>) {
    let cluster = tmp.join("slurm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sweep/slurm.sh");
    let up = Command::new(&script)
        .arg("start")
        .arg(&cluster)
        .output()
        .unwrap();
    if !up.status.success() {
        println!(
            "skipping the SLURM part: {}{}",
            String::from_utf8_lossy(&up.stdout).trim(),
            String::from_utf8_lossy(&up.stderr).trim()
        );
        return;
    }
    struct Stop(PathBuf, PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(&self.0).arg("stop").arg(&self.1).status();
        }
    }
    let _stop = Stop(script.clone(), cluster.clone());
    let conf = cluster.join("slurm.conf");
    let with_conf = |mut c: Command| {
        c.env("SLURM_CONF", &conf);
        c
    };
    let dir = tmp.join("tiny-slurm");
    let out = run_ok(
        with_conf(cortexfit())
            .args(["sweep", "run", "--engine", "slurm", "--dir"])
            .arg(&dir)
            .arg(spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("submitted job array") && stderr.contains("7 tasks"),
        "{stderr}"
    );
    let job = std::fs::read_to_string(dir.join("slurm/jobs.txt"))
        .unwrap()
        .trim()
        .to_string();
    let ids: Vec<String> = std::fs::read_to_string(dir.join("slurm/tasks-0.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();

    // Requeue the long fit once it has a checkpoint; it continues from it.
    let long_task = ids
        .iter()
        .position(|id| {
            let plan: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap())
                    .unwrap();
            plan["fits"].as_array().unwrap().iter().any(|f| {
                f["id"] == id.as_str() && f["label"].as_str().unwrap().contains("max_epochs=40")
            })
        })
        .unwrap();
    let long_id = &ids[long_task];
    let state = dir.join("runs").join(long_id).join("state/last.json");
    let start = Instant::now();
    while !state.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the long fit never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !dir.join("runs").join(long_id).join("summary.json").exists(),
        "the long fit finished before it could be requeued"
    );
    run_ok(with_conf(Command::new("scontrol")).args(["requeue", &format!("{job}_{long_task}")]));

    // Wait for every fit to leave the queue.
    let start = Instant::now();
    loop {
        let q = run_ok(with_conf(Command::new("squeue")).args(["-h", "-j", &job]));
        if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(400),
            "SLURM tasks did not end"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(dir.join("logs").join(format!("{long_id}.log"))).unwrap();
    assert!(
        log.contains("resuming") && log.contains("after epoch"),
        "{log}"
    );

    let rows = results(&["--sweep", dir.to_str().unwrap()]);
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        local_rows.keys().collect::<Vec<_>>(),
        "same ids"
    );
    for (id, r) in &rows {
        for key in [
            "status",
            "validation.single_trial_correlation",
            "test.fraction_oracle",
            "best_validation_correlation",
        ] {
            assert_eq!(r[key], local_rows[id][key], "{id} {key}: SLURM vs local");
        }
    }
    // Rerunning submits nothing.
    let out = run_ok(
        with_conf(cortexfit())
            .args(["sweep", "run", "--engine", "slurm", "--dir"])
            .arg(&dir)
            .arg(spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("submitting 0"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("slurm/jobs.txt"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    let status = run_ok(
        with_conf(cortexfit())
            .args(["sweep", "status", "--dir"])
            .arg(&dir)
            .arg(spec),
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("6 finished") && text.contains("1 failed"),
        "{text}"
    );

    super::sweep_kinds::slurm_ensemble_and_cancel(tmp, &conf);
}
