//! End-to-end tests of the `cortexfit` binary: config, train, kill + resume, evaluate, predict,
//! demo. Everything runs on tiny simulated populations so the whole file takes about a minute.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cortexfit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cortexfit"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running cortexfit");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tiny simulated recording (30 neurons, 200 training images, a repeated test tier).
fn simulate(dir: &Path) -> PathBuf {
    let data = dir.join("sim");
    run_ok(cortexfit().args([
        "simulate",
        "--out",
        data.to_str().unwrap(),
        "--neurons",
        "30",
        "--train-images",
        "200",
        "--validation-images",
        "60",
        "--test-images",
        "10",
        "--repeats",
        "5",
        "--seed",
        "3",
    ]));
    data
}

/// `--set` overrides of a model small enough to train an epoch in well under a second.
const TINY: &[&str] = &[
    "--set",
    "model.core.hidden_channels=8",
    "--set",
    "model.core.layers=2",
    "--set",
    "model.core.input_kern=9",
    "--set",
    "model.core.hidden_kern=3",
    "--set",
    "trainer.batch_size=32",
    "--set",
    "trainer.max_epochs=6",
    "--set",
    "trainer.patience=2",
    "--set",
    "trainer.lr_decay_steps=2",
];

fn train_cmd(data: &Path, out: &Path) -> Command {
    train_cmd_on(data, out, 1)
}

fn train_cmd_on(data: &Path, out: &Path, threads: usize) -> Command {
    let mut cmd = cortexfit();
    cmd.args(["train", "--preset", "lurz2020", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(TINY)
        .args(["--seed", "5", "--threads", &threads.to_string(), "--quiet"]);
    cmd
}

fn summary(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).unwrap()
}

/// The numbers that must agree between an uninterrupted and a killed-and-resumed run
/// (everything except wall-clock time).
fn numbers(mut s: serde_json::Value) -> serde_json::Value {
    s.as_object_mut().unwrap().remove("seconds");
    s
}

/// The lines of `log.jsonl` without their wall-clock fields: epoch, round, learning rate,
/// training loss and objective, validation correlation, improved / lr_cut.
fn log_numbers(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("log.jsonl")).expect("log.jsonl");
    text.lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let record = v.as_object_mut().unwrap();
            for timing in ["train_seconds", "eval_seconds", "elapsed_seconds"] {
                assert!(record.remove(timing).is_some(), "{timing} missing: {line}");
            }
            v
        })
        .collect()
}

/// Asserts that two runs logged the same numbers, epoch by epoch, and saved identical models.
fn assert_same_run(a: &Path, b: &Path, what: &str) {
    let (la, lb) = (log_numbers(a), log_numbers(b));
    assert_eq!(la.len(), lb.len(), "{what}: number of log lines");
    for (i, (x, y)) in la.iter().zip(&lb).enumerate() {
        assert_eq!(x, y, "{what}: log.jsonl line {}", i + 1);
    }
    assert_eq!(
        numbers(summary(a)),
        numbers(summary(b)),
        "{what}: summary.json"
    );
    for checkpoint in ["best.safetensors", "last.safetensors"] {
        let (x, y) = (
            std::fs::read(a.join(checkpoint)).unwrap(),
            std::fs::read(b.join(checkpoint)).unwrap(),
        );
        assert!(x == y, "{what}: {checkpoint} differs");
    }
}

#[test]
fn config_prints_a_complete_commented_preset_and_rejects_unknown_keys() {
    let out = run_ok(cortexfit().args(["config", "--preset", "lurz2020"]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[trainer]") && text.contains("[model"),
        "{text}"
    );
    assert!(text.contains("# Initial Adam learning rate"), "{text}");
    assert!(text.contains("lr = 0.005"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(&file, &text).unwrap();
    let out = cortexfit()
        .args(["train", "--config"])
        .arg(&file)
        .args(["--data", "/nonexistent", "--out"])
        .arg(dir.path().join("run"))
        .args(["--set", "trainer.lrr=0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trainer.lrr"), "{err}");
    assert!(
        !dir.path().join("run").exists(),
        "a rejected config must not create the run"
    );

    // A bad value in the file: the message names the key and what is wrong. (It does not name
    // the file yet: the validation in src/config reports only the key.)
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("patience = ", "patience = 0 #")).unwrap();
    let out = cortexfit()
        .args(["train", "--config"])
        .arg(&bad)
        .args(["--data", "/nonexistent", "--out"])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trainer.patience") && err.contains("at least 1"),
        "{err}"
    );
    // An unknown key in the file, and an unknown preset.
    std::fs::write(&bad, text.replace("[trainer]", "[trainer]\nlrr = 0.1")).unwrap();
    let out = cortexfit()
        .args(["train", "--config"])
        .arg(&bad)
        .args(["--data", "/nonexistent", "--out"])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.toml") && err.contains("lrr"),
        "{err}"
    );
    let out = cortexfit()
        .args(["config", "--preset", "lurz2021"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("lurz2021") && err.contains("lurz2020"),
        "{err}"
    );
}

/// A killed and resumed run, and a run on two threads, log the same numbers line by line and
/// save byte-identical checkpoints as an uninterrupted one-thread run; evaluate and predict read it.
#[test]
fn killed_run_resumes_to_the_same_numbers_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());

    // Uninterrupted reference run.
    let full = dir.path().join("full");
    run_ok(&mut train_cmd(&data, &full));
    let reference = summary(&full);
    assert!(reference["epochs"].as_u64().unwrap() >= 2, "{reference}");
    // The best state must be a trained one, or resuming could go wrong unnoticed.
    assert!(
        reference["best_epoch"].as_u64().unwrap() >= 1,
        "{reference}"
    );
    let log = log_numbers(&full);
    assert_eq!(
        log.len() as u64,
        reference["epochs"].as_u64().unwrap() + 1,
        "one log line per epoch plus the initial evaluation"
    );
    for (epoch, line) in log.iter().enumerate() {
        assert_eq!(line["epoch"], epoch, "{line}");
        assert!(line["lr"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["val_corr"].as_f64().unwrap().is_finite(), "{line}");
        if epoch > 0 {
            assert!(line["train_loss"].as_f64().unwrap().is_finite(), "{line}");
        }
    }
    assert!(
        log.iter().any(|l| l["improved"] == true),
        "no epoch improved"
    );

    // Same run, killed as soon as the first epoch's checkpoint is complete.
    let killed = dir.path().join("killed");
    let mut child = train_cmd(&data, &killed).spawn().unwrap();
    let pointer = killed.join("state").join("last.json");
    let start = Instant::now();
    let mut killed_early = false;
    loop {
        if let Ok(text) = std::fs::read_to_string(&pointer)
            && serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|v| v["epoch"].as_u64() >= Some(1))
        {
            killed_early = child.try_wait().unwrap().is_none();
            child.kill().ok();
            child.wait().unwrap();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "training hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(killed_early, "the run finished before it could be killed");
    assert!(!killed.join("summary.json").exists());

    run_ok(cortexfit().args(["train", "--resume"]).arg(&killed).args([
        "--threads",
        "1",
        "--quiet",
    ]));
    assert_same_run(&full, &killed, "killed and resumed");

    // The README's promise: the thread count changes nothing but the speed.
    let threaded = dir.path().join("threads2");
    run_ok(&mut train_cmd_on(&data, &threaded, 2));
    assert_same_run(&full, &threaded, "--threads 2 vs --threads 1");

    // Evaluate: table, per-neuron CSV with readout positions, JSON line.
    let out = run_ok(
        cortexfit()
            .args(["evaluate", "--run"])
            .arg(&full)
            .arg("--data")
            .arg(&data)
            .args(["--tier", "test", "--json"]),
    );
    let json: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let test = &json[0];
    assert_eq!(test["neurons"], 30);
    assert_eq!(test["trials"], 50);
    assert!(test["oracle"].as_f64().unwrap() > 0.0);
    assert_eq!(
        test["single_trial_correlation"],
        reference["test"][0]["single_trial_correlation"]
    );
    let csv_text = std::fs::read_to_string(
        full.join("evaluation")
            .join(format!("{}_test.csv", test["data_key"].as_str().unwrap())),
    )
    .unwrap();
    let header = csv_text.lines().next().unwrap();
    for column in [
        "unit_id", "oracle", "feve", "mu_x", "mu_y", "sigma_xx", "sigma_yy",
    ] {
        assert!(header.split(',').any(|c| c == column), "{header}");
    }
    assert_eq!(csv_text.lines().count(), 31);

    // Validation tier has no repeats: the table says so.
    let out = run_ok(
        cortexfit()
            .args(["evaluate", "--run"])
            .arg(&full)
            .arg("--data")
            .arg(&data)
            .args(["--tier", "validation"]),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("no repeated images"), "{text}");

    // Predict: .npy trials × neurons and the submission CSV.
    let pred = dir.path().join("pred.npy");
    run_ok(
        cortexfit()
            .args(["predict", "--run"])
            .arg(&full)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&pred),
    );
    let bytes = std::fs::read(&pred).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[50, 30]);
    let values: Vec<f32> = npy.into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite() && *v > 0.0));
    let submission = std::fs::read_to_string(dir.path().join("pred.csv")).unwrap();
    assert!(submission.starts_with("trial_indices,image_ids,prediction,neuron_ids"));
    assert_eq!(submission.lines().count(), 51);
}

#[test]
fn demo_quick_reports_model_beside_ground_truth() {
    let out = run_ok(cortexfit().args(["demo", "--quick", "--threads", "1", "--quiet"]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("fraction oracle"), "{text}");
    assert!(text.contains("affine R²"), "{text}");
    // The model must have learned something in its few epochs.
    let line = text
        .lines()
        .find(|l| l.starts_with("fraction oracle"))
        .unwrap();
    let model: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(model > 0.1, "{text}");
}

/// `bench --versus-threads` times both thread counts on alternating steps and reports the
/// speed-up as a ratio of their times; a zero count is refused by name.
#[test]
fn bench_versus_threads_reports_the_speedup_on_alternating_steps() {
    let tiny = [
        "bench",
        "--preset",
        "lurz2020",
        "--batch",
        "2",
        "--neurons",
        "4",
    ];
    let out = run_ok(cortexfit().args(tiny).args([
        "--steps",
        "3",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--versus-threads",
        "2",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["threads"], 1, "{report}");
    assert_eq!(report["versus_threads"], 2, "{report}");
    for key in [
        "train_step_ms_median",
        "eval_batch_ms_median",
        "versus_train_step_ms_median",
        "versus_eval_batch_ms_median",
        "speedup_train",
        "speedup_eval",
    ] {
        let v = report[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key}: {report}");
    }
    let refused = cortexfit()
        .args(tiny)
        .args(["--steps", "1", "--versus-threads", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("--versus-threads must be at least 1"),
        "{stderr}"
    );
}

#[path = "cli/transfer.rs"]
mod transfer;

#[path = "cli/sweep.rs"]
mod sweep;

#[path = "cli/sweep_kinds.rs"]
mod sweep_kinds;

#[path = "cli/ensemble.rs"]
mod ensemble;

#[cfg(unix)]
#[path = "cli/pipes.rs"]
mod pipes;
