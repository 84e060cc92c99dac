//! End-to-end tests of transfer learning: a core trained on several simulated animals (one readout
//! each), frozen and reused for a new animal with `cortexfit transfer`, and the data-efficiency
//! experiment over it. Included from `tests/cli.rs` (`#[path = "cli/transfer.rs"] mod transfer;`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{TINY, cortexfit, run_ok, summary};

#[path = "figure.rs"]
mod figure;

/// A tiny simulated animal (30 neurons, 200 training images, a repeated test tier).
fn animal(dir: &Path, animal: u32) -> PathBuf {
    let data = dir.join(format!("animal{animal}"));
    run_ok(cortexfit().args([
        "simulate",
        "--out",
        data.to_str().unwrap(),
        "--animal",
        &animal.to_string(),
        "--seed",
        &animal.to_string(),
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
    ]));
    data
}

/// The `core.*` tensors of a checkpoint, as raw bytes.
fn core_tensors(checkpoint: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(checkpoint).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(name, _)| name.starts_with("core."))
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

#[test]
fn core_from_two_animals_transfers_frozen_to_a_third() {
    let dir = tempfile::tempdir().unwrap();
    let (a1, a2, a3) = (
        animal(dir.path(), 1),
        animal(dir.path(), 2),
        animal(dir.path(), 3),
    );

    // One core, one readout per animal (round-robin).
    let source = dir.path().join("core12");
    run_ok(
        cortexfit()
            .args(["train", "--preset", "lurz2020", "--data"])
            .arg(&a1)
            .arg("--data")
            .arg(&a2)
            .arg("--out")
            .arg(&source)
            .args(TINY)
            .args(["--seed", "1", "--threads", "1", "--quiet"]),
    );
    let s = summary(&source);
    assert_eq!(s["data_keys"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["validation"].as_array().unwrap().len(), 2, "{s}");

    // Frozen core (batch norm frozen too), new readout on 100 images of animal 3.
    let frozen = dir.path().join("transfer");
    run_ok(
        cortexfit()
            .args(["transfer", "--core"])
            .arg(&source)
            .arg("--data")
            .arg(&a3)
            .arg("--out")
            .arg(&frozen)
            .args([
                "--train-images",
                "100",
                "--seed",
                "2",
                "--threads",
                "1",
                "--quiet",
            ])
            .args(TINY),
    );
    let t = summary(&frozen);
    assert_eq!(t["data_keys"].as_array().unwrap().len(), 1, "{t}");
    assert!(t["epochs"].as_u64().unwrap() >= 1, "{t}");
    let config = std::fs::read_to_string(frozen.join("config.toml")).unwrap();
    assert!(config.contains("detach_core = true"), "{config}");
    assert!(config.contains("freeze_core_batch_norm = true"), "{config}");
    assert!(config.contains("image_n = 100"), "{config}");
    assert!(config.contains("[transfer]"), "{config}");
    // Every core weight and batch-norm statistic is exactly the source run's.
    let src_core = core_tensors(&source.join("best.safetensors"));
    assert!(!src_core.is_empty());
    assert_eq!(core_tensors(&frozen.join("best.safetensors")), src_core);
    assert_eq!(core_tensors(&frozen.join("last.safetensors")), src_core);
    // A transferred run is an ordinary run: evaluate reads it.
    let out = run_ok(
        cortexfit()
            .args(["evaluate", "--run"])
            .arg(&frozen)
            .arg("--data")
            .arg(&a3)
            .args(["--tier", "test", "--json"]),
    );
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(eval[0]["fraction_oracle"].is_number(), "{eval}");

    // --update-bn: the weights stay, the running statistics follow the new animal.
    let updated = dir.path().join("transfer_bn");
    run_ok(
        cortexfit()
            .args(["transfer", "--update-bn", "--core"])
            .arg(&source)
            .arg("--data")
            .arg(&a3)
            .arg("--out")
            .arg(&updated)
            .args(["--seed", "2", "--threads", "1", "--quiet"])
            .args(TINY),
    );
    // (The model after the last epoch: the best state may be the untrained epoch 0 of a tiny run.)
    let upd = core_tensors(&updated.join("last.safetensors"));
    let mut weights_equal = 0;
    for (name, bytes) in &src_core {
        if name.contains("running_") {
            assert_ne!(
                &upd[name], bytes,
                "{name} should have followed the new data"
            );
        } else if !name.contains("num_batches_tracked") {
            assert_eq!(&upd[name], bytes, "{name} must stay frozen");
            weights_equal += 1;
        }
    }
    assert!(weights_equal > 0);

    // --fine-tune: readouts on the frozen core first (OUT/readouts), then the whole model (OUT).
    let tuned = dir.path().join("transfer_ft");
    run_ok(
        cortexfit()
            .args(["transfer", "--fine-tune", "--core"])
            .arg(&source)
            .arg("--data")
            .arg(&a3)
            .arg("--out")
            .arg(&tuned)
            .args(["--seed", "2", "--threads", "1", "--quiet"])
            .args(TINY),
    );
    assert!(tuned.join("readouts/summary.json").is_file());
    let config = std::fs::read_to_string(tuned.join("config.toml")).unwrap();
    assert!(config.contains("detach_core = false"), "{config}");
    let ft = core_tensors(&tuned.join("last.safetensors"));
    let first_conv = src_core.keys().find(|k| k.ends_with("weight")).unwrap();
    assert_ne!(
        &ft[first_conv], &src_core[first_conv],
        "fine-tuning trains the core"
    );

    // The data-efficiency experiment over both conditions, then resumed without refitting.
    let exp = dir.path().join("exp");
    let experiment = || {
        let mut cmd = cortexfit();
        cmd.args([
            "experiment",
            "data-efficiency",
            "--config",
            "lurz2020",
            "--data",
        ])
        .arg(&a3)
        .args([
            "--images",
            "50,all",
            "--conditions",
            "direct,transfer",
            "--core",
        ])
        .arg(&source)
        .args(["--seeds", "1,2", "--threads", "1", "--out"])
        .arg(&exp)
        .args(TINY);
        cmd
    };
    run_ok(&mut experiment());
    let csv = std::fs::read_to_string(exp.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");
    for row in [
        "transfer,all,200,1,fraction_oracle_test",
        "transfer,all,200,2,fraction_oracle_test",
        "direct,50,50,2,fraction_oracle_test",
    ] {
        assert!(csv.contains(row), "{row}: {csv}");
    }
    for f in [
        "data_efficiency.png",
        "data_efficiency.svg",
        "direct_50_s1/summary.json",
        "transfer_all_s2/summary.json",
    ] {
        assert!(exp.join(f).is_file(), "{f}");
    }
    figure::assert_figure_matches_results(&exp);
    let again = run_ok(&mut experiment());
    let log = String::from_utf8_lossy(&again.stderr);
    assert_eq!(log.matches("done before, skipped").count(), 8, "{log}");
    assert_eq!(
        std::fs::read_to_string(exp.join("results.csv")).unwrap(),
        csv
    );
}
