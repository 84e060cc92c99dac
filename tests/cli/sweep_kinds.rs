//! End-to-end tests of `kind = "ensemble"` sweeps (members reused across sweeps, the ensemble
//! formed and evaluated after them, a failed member named) and of `cortexfit sweep cancel` on
//! the local engine; `slurm_ensemble_and_cancel` is the same on the SLURM cluster of
//! `tests/cli/sweep.rs`. Included from `tests/cli.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::sweep::results as rows;
use super::{cortexfit, run_ok, simulate};

const SMALL: &str = r#"set = ["model.core.hidden_channels=8", "model.core.layers=2",
       "model.core.input_kern=9", "model.core.hidden_kern=3", "trainer.batch_size=32",
       "trainer.lr_decay_steps=1", "trainer.max_epochs=2", "trainer.patience=1"]"#;

/// An ensemble sweep: seeds 1 and 2 at two learning rates, one of them broken.
pub fn write_ensemble_spec(dir: &Path, name: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.toml"));
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\nbase = \"lurz2020\"\ndata = [\"sim\"]\nkind = \"ensemble\"\n\
             seeds = [1, 2]\n{SMALL}\n[grid]\n\"trainer.lr\" = [0.005, \"fast\"]\n"
        ),
    )
    .unwrap();
    spec
}

fn plan(spec: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(cortexfit().args(["sweep", "plan", "--json"]).arg(spec));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["fits"].as_array().unwrap().clone()
}

#[test]
fn ensemble_sweep_reuses_finished_members_and_evaluates_each_ensemble() {
    let tmp = tempfile::tempdir().unwrap();
    simulate(tmp.path());
    let store = format!("sqlite:{}", tmp.path().join("lab.sqlite").display());

    // A seed sweep first: its fit of seed 1 at lr 0.005 is a member of the ensemble below.
    let seeds = tmp.path().join("seeds.toml");
    std::fs::write(
        &seeds,
        format!(
            "name = \"seeds\"\nbase = \"lurz2020\"\ndata = [\"sim\"]\n{SMALL}\n[grid]\n\
             seed = [1]\n\"trainer.lr\" = [0.005]\n"
        ),
    )
    .unwrap();
    run_ok(
        cortexfit()
            .args(["sweep", "run", "--threads", "2", "--store", &store])
            .arg(&seeds),
    );
    let seed_fit = plan(&seeds)[0]["id"].as_str().unwrap().to_string();

    // The plan: four `train` members, then two ensembles listing them.
    let spec = write_ensemble_spec(tmp.path(), "ens");
    let fits = plan(&spec);
    let kinds: Vec<&str> = fits.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["train", "train", "train", "train", "ensemble", "ensemble"]
    );
    let ensemble = fits
        .iter()
        .find(|f| f["kind"] == "ensemble" && f["label"] == "trainer.lr=0.005")
        .unwrap();
    let members: Vec<&str> = ensemble["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0], seed_fit, "the seed sweep's fit is member 1");
    let ensemble_id = ensemble["id"].as_str().unwrap().to_string();
    let broken = fits
        .iter()
        .find(|f| f["kind"] == "ensemble" && f["label"] == "trainer.lr=fast")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let table = run_ok(cortexfit().args(["sweep", "plan"]).arg(&spec));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("6 fits (ensemble)") && text.contains(&format!("members {seed_fit}")),
        "{text}"
    );

    // Run: the member that exists is not trained again; the broken ensemble names its member.
    let out = cortexfit()
        .args([
            "sweep",
            "run",
            "--jobs",
            "2",
            "--threads",
            "2",
            "--store",
            &store,
        ])
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("1 finished before"),
        "{stderr}"
    );
    assert!(
        stderr.contains("submitting 5") && stderr.contains("3 fits failed"),
        "{stderr}"
    );
    let ens_dir = tmp.path().join("ens");
    assert!(
        !ens_dir
            .join("logs")
            .join(format!("{seed_fit}.log"))
            .exists(),
        "the reused member ran again"
    );
    let all = rows(&["--store", &store, "--where", "sweep=ens"]);
    assert_eq!(all.len(), 5, "the reused member stays the seed sweep's row");
    let e = &all[&ensemble_id];
    assert_eq!(
        (&e["status"], &e["kind"]),
        (&"finished".into(), &"ensemble".into())
    );
    let failed = &all[&broken];
    let error = failed["error"].as_str().unwrap();
    assert!(
        failed["status"] == "failed"
            && error.contains("member fit")
            && error.contains("trainer.lr"),
        "{failed}"
    );

    // The recorded metrics are those `cortexfit evaluate` computes for the ensemble folder.
    let run = ens_dir.join("runs").join(&ensemble_id);
    let ensemble_file = std::fs::read_to_string(run.join("ensemble.json")).unwrap();
    assert!(
        ensemble_file.contains(&format!("seeds/runs/{seed_fit}")),
        "{ensemble_file}"
    );
    for (tier, metric) in [
        ("validation", "single_trial_correlation"),
        ("test", "fraction_oracle"),
    ] {
        let out = run_ok(
            cortexfit()
                .args([
                    "evaluate",
                    "--json",
                    "--threads",
                    "1",
                    "--tier",
                    tier,
                    "--run",
                ])
                .arg(&run)
                .arg("--data")
                .arg(tmp.path().join("sim")),
        );
        let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected = eval["ensemble"][0][metric].as_f64().unwrap();
        let stored = e[format!("{tier}.{metric}").as_str()].as_f64();
        assert_eq!(stored, Some(expected), "{tier}.{metric}: {e}");
    }

    // Filter and group by kind; rebuild keeps the ensemble rows; rerunning submits nothing.
    let only = rows(&["--store", &store, "--where", "kind=ensemble"]);
    assert_eq!(only.len(), 2);
    let rebuilt_store = format!("sqlite:{}", tmp.path().join("rebuilt.sqlite").display());
    let rebuilt = rows(&[
        "--sweep",
        ens_dir.to_str().unwrap(),
        "--store",
        &rebuilt_store,
        "--rebuild",
    ]);
    assert_eq!(
        rebuilt[&ensemble_id]["test.fraction_oracle"],
        e["test.fraction_oracle"]
    );
    assert_eq!(rebuilt[&broken]["status"], "failed");
    let out = run_ok(
        cortexfit()
            .args(["sweep", "run", "--store", &store])
            .arg(&spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("3 finished before") && stderr.contains("submitting 0"),
        "{stderr}"
    );
}

/// A sweep of `n` fits of `epochs` epochs each (no early stop), `cpus` per fit.
pub fn write_long_spec(dir: &Path, name: &str, n: usize, epochs: usize, cpus: usize) -> PathBuf {
    let spec = dir.join(format!("{name}.toml"));
    let seeds: Vec<String> = (1..=n).map(|s| s.to_string()).collect();
    std::fs::write(
        &spec,
        format!(
            "name = \"{name}\"\nbase = \"lurz2020\"\ndata = [\"sim\"]\n\
             set = [\"model.core.hidden_channels=8\", \"model.core.layers=2\", \
             \"model.core.input_kern=9\", \"model.core.hidden_kern=3\", \
             \"trainer.batch_size=32\", \"trainer.max_epochs={epochs}\", \
             \"trainer.patience={epochs}\"]\n[grid]\nseed = [{}]\n[resources]\ncpus = {cpus}\n",
            seeds.join(", ")
        ),
    )
    .unwrap();
    spec
}

/// Waits until `path` exists.
pub fn wait_for(path: &Path, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "{what} never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sweep_cancel_stops_a_local_run_and_retry_continues_the_fit() {
    let tmp = tempfile::tempdir().unwrap();
    simulate(tmp.path());
    // Two fits, one at a time: the first is long, the second waits for it.
    let spec = write_long_spec(tmp.path(), "long", 2, 100, 1);
    let ids: Vec<String> = plan(&spec)
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    let dir = tmp.path().join("long");
    let mut run = cortexfit()
        .args(["sweep", "run", "--jobs", "1", "--threads", "1"])
        .arg(&spec)
        .spawn()
        .unwrap();
    let first = dir.join("runs").join(&ids[0]);
    wait_for(&first.join("state/last.json"), "the first checkpoint");
    let out = run_ok(cortexfit().args(["sweep", "cancel"]).arg(&spec));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stopped processes") && stderr.contains("1 fits cancelled"),
        "{stderr}"
    );
    let status = run.wait().unwrap();
    assert!(!status.success(), "the sweep run was stopped: {status}");
    assert!(
        !first.join("summary.json").exists(),
        "the long fit finished before it was cancelled"
    );
    assert!(!dir.join("local-run.json").exists());
    let after = rows(&["--sweep", dir.to_str().unwrap()]);
    assert_eq!(after.len(), 1, "the second fit never started: {after:?}");
    let row = &after[&ids[0]];
    assert_eq!(row["status"], "failed");
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .contains("cancelled by `cortexfit sweep cancel`"),
        "{row}"
    );
    // No process of the sweep is left: the worker's pid is gone. (`--dir` instead of the spec.)
    let job = run_ok(cortexfit().args(["sweep", "status", "--dir"]).arg(&dir));
    let text = String::from_utf8_lossy(&job.stdout);
    assert!(
        text.contains("1 failed, 1 not submitted") && !text.contains("worker gone"),
        "{text}"
    );

    // `sweep run` leaves the cancelled fit alone (like any failed fit) and runs the other one.
    let out = run_ok(
        cortexfit()
            .args(["sweep", "run", "--threads", "1"])
            .arg(&spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 failed before") && stderr.contains("submitting 1"),
        "{stderr}"
    );
    // `sweep retry` continues the cancelled fit from its checkpoint to the end.
    let out = run_ok(
        cortexfit()
            .args(["sweep", "retry", "--threads", "2"])
            .arg(&spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("submitting 1"), "{stderr}");
    let log = std::fs::read_to_string(dir.join("logs").join(format!("{}.log", ids[0]))).unwrap();
    assert!(
        log.contains("resuming") && log.contains("after epoch"),
        "{log}"
    );
    let done = rows(&["--sweep", dir.to_str().unwrap(), "--metrics", "epochs"]);
    assert!(done.values().all(|r| r["status"] == "finished"), "{done:?}");
    assert_eq!(done[&ids[0]]["epochs"].as_f64(), Some(100.0), "{done:?}");
}

/// On the SLURM cluster of `tests/cli/sweep.rs` (`conf` = its slurm.conf): the ensemble sweep
/// gives the local engine's ids and metrics (its ensembles run in a second job array that
/// waits for the members' array), `experiment data-efficiency --engine slurm` gives the local
/// engine's results.csv, and `sweep cancel` cancels running and queued array tasks.
pub fn slurm_ensemble_and_cancel(tmp: &Path, conf: &Path) {
    let with_conf = |mut c: Command| {
        c.env("SLURM_CONF", conf);
        c
    };
    let wait_queue_empty = |job: &str| {
        let start = Instant::now();
        loop {
            let q = run_ok(with_conf(Command::new("squeue")).args(["-h", "-j", job]));
            if String::from_utf8_lossy(&q.stdout).trim().is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "job {job} did not end"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // The ensemble sweep locally (one thread per fit, as on SLURM), then on SLURM into another
    // folder.
    let spec = write_ensemble_spec(tmp, "ens");
    let _ = cortexfit()
        .args(["sweep", "run", "--jobs", "2", "--threads", "2"])
        .arg(&spec)
        .output()
        .unwrap();
    let local = rows(&["--sweep", tmp.join("ens").to_str().unwrap()]);
    let dir = tmp.join("ens-slurm");
    let out = run_ok(
        with_conf(cortexfit())
            .args(["sweep", "run", "--engine", "slurm", "--dir"])
            .arg(&dir)
            .arg(&spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let jobs: Vec<String> = std::fs::read_to_string(dir.join("slurm/jobs.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(jobs.len(), 2, "{stderr}");
    let second = std::fs::read_to_string(dir.join("slurm/array-1.sh")).unwrap();
    assert!(
        second.contains(&format!("--dependency=afterany:{}", jobs[0])),
        "{second}"
    );
    wait_queue_empty(&jobs[1]);
    let on_slurm = rows(&["--sweep", dir.to_str().unwrap()]);
    assert_eq!(
        on_slurm.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    for (id, r) in &on_slurm {
        for key in ["status", "kind", "test.fraction_oracle"] {
            assert_eq!(r[key], local[id][key], "{id} {key}: SLURM vs local");
        }
    }

    // The data-efficiency experiment: queued on SLURM, collected by the same command later.
    let experiment = |engine: &str, out: &str| {
        let mut c = with_conf(cortexfit());
        c.args([
            "experiment",
            "data-efficiency",
            "--config",
            "lurz2020",
            "--data",
        ])
        .arg(tmp.join("sim"))
        .args([
            "--images",
            "50,all",
            "--conditions",
            "direct",
            "--seeds",
            "1,2",
        ])
        .args(["--threads", "1", "--engine", engine, "--out"])
        .arg(tmp.join(out));
        for o in [
            "model.core.hidden_channels=8",
            "model.core.layers=2",
            "trainer.max_epochs=2",
        ] {
            c.args(["--set", o]);
        }
        c
    };
    let out = run_ok(&mut experiment("slurm", "exp-slurm"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("submitted job array") && stderr.contains("4 fits are queued or running"),
        "{stderr}"
    );
    let job = std::fs::read_to_string(tmp.join("exp-slurm/slurm/jobs.txt")).unwrap();
    wait_queue_empty(job.trim());
    let again = run_ok(&mut experiment("slurm", "exp-slurm"));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        stderr.matches("done before, skipped").count(),
        4,
        "{stderr}"
    );
    run_ok(&mut experiment("local", "exp-local"));
    let csv = |out: &str| std::fs::read_to_string(tmp.join(out).join("results.csv")).unwrap();
    assert_eq!(csv("exp-slurm").lines().count(), 5);
    assert_eq!(csv("exp-slurm"), csv("exp-local"), "SLURM vs local");

    // Cancel: one fit at a time fills the node (cpus = every core), the others wait queued.
    let cores = String::from_utf8(run_ok(&mut Command::new("nproc")).stdout).unwrap();
    let spec = write_long_spec(tmp, "long", 3, 200, cores.trim().parse().unwrap());
    let dir = tmp.join("long-slurm");
    run_ok(
        with_conf(cortexfit())
            .args(["sweep", "run", "--engine", "slurm", "--dir"])
            .arg(&dir)
            .arg(&spec),
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
    let checkpoints: Vec<PathBuf> = ids
        .iter()
        .map(|id| dir.join("runs").join(id).join("state/last.json"))
        .collect();
    let start = Instant::now();
    while !checkpoints.iter().any(|c| c.exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "no task checkpointed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run_ok(
        with_conf(cortexfit())
            .args(["sweep", "cancel", "--dir"])
            .arg(&dir)
            .arg(&spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cancelled SLURM job arrays {job}"))
            && stderr.contains("3 fits cancelled"),
        "{stderr}"
    );
    wait_queue_empty(&job);
    let cancelled = rows(&["--sweep", dir.to_str().unwrap()]);
    assert_eq!(cancelled.len(), 3);
    for r in cancelled.values() {
        assert_eq!(r["status"], "failed", "{r}");
        let e = r["error"].as_str().unwrap();
        assert!(
            e.contains(&format!(
                "cancelled by `cortexfit sweep cancel` (slurm:{job}_"
            )),
            "{e}"
        );
    }
    // Cancelled fits wait for `retry`: `sweep run` submits nothing.
    let out = run_ok(
        with_conf(cortexfit())
            .args(["sweep", "run", "--engine", "slurm", "--dir"])
            .arg(&dir)
            .arg(&spec),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("3 failed before") && stderr.contains("submitting 0"),
        "{stderr}"
    );
}

/// `--jobs` / `--threads` size the local engine only: with `--engine slurm` (where `[resources]`
/// of the spec, or `--threads` per array task, decide) they are refused by name before anything
/// is written or submitted.
#[test]
fn local_engine_options_are_refused_with_the_slurm_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("s.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"s\"\nbase = \"lurz2020\"\ndata = [\"sim\"]\n{SMALL}\n[grid]\nseed = [1]\n"
        ),
    )
    .unwrap();
    for extra in [["--jobs", "2"], ["--threads", "2"]] {
        let out = cortexfit()
            .args(["sweep", "run", "--engine", "slurm"])
            .args(extra)
            .arg(&spec)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(extra[0]) && err.contains("--engine local"),
            "{extra:?}: {err}"
        );
        assert!(
            !tmp.path().join("s").exists(),
            "{extra:?} wrote the sweep folder"
        );
    }
    let out = cortexfit()
        .args([
            "experiment",
            "data-efficiency",
            "--config",
            "lurz2020",
            "--data",
        ])
        .arg(tmp.path().join("sim"))
        .args([
            "--conditions",
            "direct",
            "--engine",
            "slurm",
            "--jobs",
            "2",
            "--out",
        ])
        .arg(tmp.path().join("exp"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--jobs") && err.contains("--engine local"),
        "{err}"
    );
    assert!(
        !tmp.path().join("exp").exists(),
        "the experiment folder was written"
    );
}
