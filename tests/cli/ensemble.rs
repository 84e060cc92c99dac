//! End-to-end tests of ensembles: `train --seeds`, `cortexfit ensemble`, and evaluate / predict /
//! transfer taking an ensemble where they take a run. Included from `tests/cli.rs`.

use std::path::Path;

use super::{TINY, cortexfit, run_ok, simulate};

fn predictions(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec().unwrap()
}

fn predict(run: &Path, data: &Path, out: &Path) -> Vec<f32> {
    run_ok(
        cortexfit()
            .args(["predict", "--run"])
            .arg(run)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(out)
            .args(["--threads", "1"]),
    );
    predictions(out)
}

#[test]
fn an_ensemble_of_seeds_predicts_the_mean_of_its_members_everywhere_a_run_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());
    let ens = dir.path().join("ens");
    let train = || {
        let mut cmd = cortexfit();
        cmd.args(["train", "--preset", "lurz2020", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&ens)
            .args(TINY)
            .args(["--set", "trainer.max_epochs=2"])
            .args(["--seeds", "1,2", "--threads", "1", "--quiet"]);
        cmd
    };
    run_ok(&mut train());
    for seed in [1, 2] {
        assert!(ens.join(format!("seed-{seed}/summary.json")).is_file());
    }
    assert!(ens.join("ensemble.json").is_file());
    // Running the same command again trains nothing new.
    let before = std::fs::read(ens.join("seed-1/best.safetensors")).unwrap();
    run_ok(&mut train());
    assert_eq!(
        std::fs::read(ens.join("seed-1/best.safetensors")).unwrap(),
        before
    );

    // predict: the mean of the members' predictions.
    let p1 = predict(&ens.join("seed-1"), &data, &dir.path().join("p1.npy"));
    let p2 = predict(&ens.join("seed-2"), &data, &dir.path().join("p2.npy"));
    let pe = predict(&ens, &data, &dir.path().join("pe.npy"));
    assert_ne!(p1, p2, "different seeds give different members");
    assert_eq!(pe.len(), p1.len());
    for ((a, b), e) in p1.iter().zip(&p2).zip(&pe) {
        let mean = (*a as f64 + *b as f64) / 2.0;
        assert!(
            (*e as f64 - mean).abs() <= 1e-6 * mean.abs().max(1.0),
            "{e} vs {mean}"
        );
    }

    // evaluate: the ensemble's metrics beside each member's.
    let out = run_ok(
        cortexfit()
            .args(["evaluate", "--run"])
            .arg(&ens)
            .arg("--data")
            .arg(&data)
            .args(["--tier", "test", "--json", "--threads", "1"]),
    );
    let json: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["seed"], 1);
    let corr = |v: &serde_json::Value| v["single_trial_correlation"].as_f64().unwrap();
    let ensemble_corr = corr(&json["ensemble"][0]);
    let member_corr: Vec<f64> = members.iter().map(|m| corr(&m["summaries"][0])).collect();
    assert!(member_corr.iter().all(|c| (c - ensemble_corr).abs() > 0.0));
    let table = run_ok(
        cortexfit()
            .args(["evaluate", "--run"])
            .arg(&ens)
            .arg("--data")
            .arg(&data)
            .args(["--tier", "test", "--threads", "1"]),
    );
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("ensemble of 2"), "{text}");
    assert!(text.contains("member seed 2"), "{text}");

    // `cortexfit ensemble` over finished runs; members must share their configuration.
    let grouped = dir.path().join("grouped");
    run_ok(
        cortexfit()
            .args(["ensemble", "--runs"])
            .arg(ens.join("seed-1"))
            .arg(ens.join("seed-2"))
            .arg("--out")
            .arg(&grouped),
    );
    assert_eq!(
        predict(&grouped, &data, &dir.path().join("pg.npy")),
        pe,
        "the same members give the same ensemble"
    );
    let other = dir.path().join("other");
    run_ok(
        cortexfit()
            .args(["train", "--preset", "lurz2020", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&other)
            .args(TINY)
            .args(["--set", "trainer.max_epochs=1", "--set", "trainer.lr=0.001"])
            .args(["--seed", "3", "--threads", "1", "--quiet"]),
    );
    let out = cortexfit()
        .args(["ensemble", "--runs"])
        .arg(ens.join("seed-1"))
        .arg(&other)
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another configuration") && err.contains("seed"),
        "{err}"
    );

    // A wall-clock cap that stopped no member does not make it another configuration; one that
    // stopped a member does.
    let capped = |name: &str, minutes: &str| {
        let out = dir.path().join(name);
        run_ok(
            cortexfit()
                .args(["train", "--preset", "lurz2020", "--data"])
                .arg(&data)
                .arg("--out")
                .arg(&out)
                .args(TINY)
                .args(["--set", "trainer.max_epochs=2"])
                .args(["--set", &format!("trainer.max_minutes={minutes}")])
                .args(["--seed", "4", "--threads", "1", "--quiet"]),
        );
        out
    };
    let unused_cap = capped("cap-unused", "60");
    run_ok(
        cortexfit()
            .args(["ensemble", "--runs"])
            .arg(ens.join("seed-1"))
            .arg(&unused_cap)
            .arg("--out")
            .arg(dir.path().join("with-cap")),
    );
    let acting_cap = capped("cap-acting", "0.00001");
    let summary = std::fs::read_to_string(acting_cap.join("summary.json")).unwrap();
    assert!(summary.contains("time_budget"), "{summary}");
    let out = cortexfit()
        .args(["ensemble", "--runs"])
        .arg(ens.join("seed-1"))
        .arg(&acting_cap)
        .arg("--out")
        .arg(dir.path().join("bad-cap"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another configuration") && err.contains("max_minutes"),
        "{err}"
    );

    // In-silico experiments take the ensemble (the members' mean response is the objective).
    let meis = dir.path().join("meis");
    let out = run_ok(
        cortexfit()
            .args(["insilico", "mei", "--run"])
            .arg(&ens)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&meis)
            .args(["--top", "3", "--steps", "5", "--threads", "1"]),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("MEIs of 3 neurons"));
    let bytes = std::fs::read(meis.join("mei.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape()[0], 3);
    let csv = std::fs::read_to_string(meis.join("mei.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(meis.join("mei.png").is_file());
    let tuning = dir.path().join("tuning");
    run_ok(
        cortexfit()
            .args(["insilico", "tuning", "--run"])
            .arg(&ens)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&tuning)
            .args(["--units", "1,2", "--orientations", "12", "--threads", "1"]),
    );
    let csv = std::fs::read_to_string(tuning.join("tuning.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let rf = dir.path().join("rf");
    run_ok(
        cortexfit()
            .args(["insilico", "rf", "--run"])
            .arg(&ens)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&rf)
            .args(["--units", "3", "--samples", "2", "--threads", "1"]),
    );
    assert!(rf.join("rf_energy.npy").is_file() && rf.join("rf.png").is_file());
    let bad = cortexfit()
        .args(["insilico", "rf", "--run"])
        .arg(&ens)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("rf2"))
        .args(["--units", "999999"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("999999"));

    // transfer from an ensemble: one transferred member per source member, itself an ensemble.
    let moved = dir.path().join("moved");
    run_ok(
        cortexfit()
            .args(["transfer", "--core"])
            .arg(&ens)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&moved)
            .args(["--set", "trainer.max_epochs=1", "--threads", "1", "--quiet"]),
    );
    assert!(moved.join("ensemble.json").is_file());
    assert!(moved.join("seed-2/summary.json").is_file());
}
