//! `cortexfit import` / `export` end to end: the PyTorch fixtures imported into runs on a
//! simulated recording whose 96 neurons have the fixture neurons' cortical coordinates (what the
//! checkpoint's `source_grid` is checked against), then evaluated, predicted, exported, and
//! refused where they do not fit.

#![cfg_attr(not(cortexfit_pytorch_fixture), allow(dead_code, unused_imports))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::tensor::Device;
use cortexfit::run::Run;

use super::pytorch::{Npz, TOLERANCE, fixture_dir, max_abs_diff};

fn cortexfit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cortexfit"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out: Output = cmd.output().expect("running cortexfit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(cmd: &mut Command) -> String {
    let (ok, stdout, stderr) = run(cmd);
    assert!(ok, "{cmd:?} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

fn run_err(cmd: &mut Command) -> String {
    let (ok, stdout, stderr) = run(cmd);
    assert!(!ok, "{cmd:?} should fail:\nstdout:\n{stdout}");
    stderr
}

/// Writes a float64 `.npy` file.
fn write_f64_npy(path: &Path, shape: &[usize], values: &[f64]) {
    let shape_txt = format!(
        "({})",
        shape
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// A small simulated recording of 96 neurons (3 behaviour variables, pupil position) named
/// `name`; with `fixture_coordinates` its neurons sit where the fixture's neurons sit.
fn recording(dir: &Path, name: &str, io: &Npz, fixture_coordinates: bool) -> PathBuf {
    let data = dir.join(name);
    run_ok(cortexfit().args([
        "simulate",
        "--out",
        data.to_str().unwrap(),
        "--neurons",
        "96",
        "--train-images",
        "40",
        "--validation-images",
        "20",
        "--test-images",
        "4",
        "--repeats",
        "2",
        "--seed",
        "1",
    ]));
    if fixture_coordinates {
        let (shape, coords) = io.get("cell_motor_coordinates");
        write_f64_npy(
            &data.join("meta/neurons/cell_motor_coordinates.npy"),
            shape,
            coords,
        );
    }
    data
}

fn import_cmd(checkpoint: &str, preset: &str, data: &Path, out: &Path) -> Command {
    let mut cmd = cortexfit();
    cmd.arg("import")
        .arg("--checkpoint")
        .arg(fixture_dir().join(checkpoint))
        .args(["--preset", preset, "--data"])
        .arg(data)
        .arg("--out")
        .arg(out);
    cmd
}

#[test]
#[cfg_attr(
    not(cortexfit_pytorch_fixture),
    ignore = "the PyTorch fixtures ../shared/fixtures/pytorch were absent at build time (set CORTEXFIT_SHARED, then touch build.rs)"
)]
fn imported_runs_predict_as_pytorch_and_work_with_every_command() {
    let io = Npz::load();
    let dir = tempfile::tempdir().unwrap();
    let data = recording(dir.path(), "sim", &io, true);
    let device = Device::flex();

    // Lurz 2020, nested under `model_state`; its readout `20457-5-9-0` becomes data key `sim`.
    let lurz = dir.path().join("lurz");
    let stdout = run_ok(&mut import_cmd(
        "lurz2020_nested.pth.tar",
        "lurz2020",
        &data,
        &lurz,
    ));
    assert!(
        stdout.contains("(nested under `model_state`)")
            && stdout.contains("readout `20457-5-9-0` of the checkpoint is data key `sim`"),
        "{stdout}"
    );
    let imported = Run::open(&lurz, &device).unwrap();
    let got = imported
        .predict_arrays(0, &io.f32("lurz_images"), None, None)
        .unwrap();
    let diff = max_abs_diff(&got, &io.get("lurz_output").1);
    println!("imported lurz2020 run: max |cortexfit − PyTorch| = {diff:.3e}");
    assert!(diff <= TOLERANCE, "{diff:.3e}");

    // Sensorium 2022+: behaviour channels and the shifter, through the run API.
    let sens = dir.path().join("sens");
    run_ok(&mut import_cmd(
        "sensorium2022_plus.pth",
        "sensorium2022_plus",
        &data,
        &sens,
    ));
    let imported = Run::open(&sens, &device).unwrap();
    let (shape, x4) = io.get("sensorium_input");
    let (b, c, hw) = (shape[0], shape[1], shape[2] * shape[3]);
    let image: Vec<f32> = (0..b)
        .flat_map(|i| x4[i * c * hw..i * c * hw + hw].iter().map(|&v| v as f32))
        .collect();
    let behavior: Vec<f32> = (0..b)
        .flat_map(|i| (1..c).map(move |ch| x4[(i * c + ch) * hw] as f32))
        .collect();
    let pupil = io.f32("sensorium_pupil_center");
    let got = imported
        .predict_arrays(0, &image, Some(&behavior), Some(&pupil))
        .unwrap();
    let diff = max_abs_diff(&got, &io.get("sensorium_output").1);
    println!("imported sensorium2022_plus run: max |cortexfit − PyTorch| = {diff:.3e}");
    assert!(diff <= TOLERANCE, "{diff:.3e}");

    // The imported runs are ordinary runs.
    let d = data.to_str().unwrap();
    for run_dir in [&lurz, &sens] {
        let r = run_dir.to_str().unwrap();
        run_ok(cortexfit().args(["evaluate", "--run", r, "--data", d, "--tier", "test"]));
        let pred = dir.path().join("pred.npy");
        run_ok(
            cortexfit()
                .args([
                    "predict", "--run", r, "--data", d, "--tier", "test", "--out",
                ])
                .arg(&pred),
        );
        assert!(pred.is_file());
    }
    let err = run_err(cortexfit().args(["train", "--resume", lurz.to_str().unwrap()]));
    assert!(err.contains("imported from PyTorch"), "{err}");

    // Export: reference names, the fixture's weights, and the Python lines.
    let out = dir.path().join("lurz.safetensors");
    let python = run_ok(
        cortexfit()
            .args(["export", "--run", lurz.to_str().unwrap(), "--out"])
            .arg(&out),
    );
    assert!(
        python.contains("Stacked2dCore(input_channels=1, hidden_channels=64, input_kern=15")
            && python.contains("model.load_state_dict(state)"),
        "{python}"
    );
    let (exported, _) = cortexfit::model::checkpoint::read_state_dict(&out).unwrap();
    let torch = cortexfit::model::pytorch::read_pytorch_state_dict(
        &fixture_dir().join("lurz2020.pth"),
        None,
    )
    .unwrap();
    assert_eq!(exported.entries.len(), torch.state.entries.len());
    for (name, t) in &torch.state.entries {
        let name = name.replace("20457-5-9-0", "sim");
        assert_eq!(&exported.entries[&name], t, "{name}");
    }
    // The same as PyTorch's own format: what `torch.save` wrote, read back tensor for tensor.
    let pth = dir.path().join("lurz.pth");
    let python = run_ok(
        cortexfit()
            .args(["export", "--run", lurz.to_str().unwrap(), "--out"])
            .arg(&pth),
    );
    assert!(
        python.contains("torch.load(") && !python.contains("safetensors"),
        "{python}"
    );
    let back = cortexfit::model::pytorch::read_pytorch_state_dict(&pth, None).unwrap();
    assert_eq!(back.state.entries.len(), torch.state.entries.len());
    for (name, t) in &torch.state.entries {
        let name = name.replace("20457-5-9-0", "sim");
        assert_eq!(&back.state.entries[&name], t, "{name}");
    }
    let err = run_err(
        cortexfit()
            .args(["export", "--run", lurz.to_str().unwrap(), "--out"])
            .arg(dir.path().join("m.onnx")),
    );
    assert!(
        err.contains("m.onnx") && err.contains(".pth, .pt or .pth.tar"),
        "{err}"
    );
    assert!(!dir.path().join("m.onnx").exists());
}

#[test]
#[cfg_attr(
    not(cortexfit_pytorch_fixture),
    ignore = "the PyTorch fixtures ../shared/fixtures/pytorch were absent at build time (set CORTEXFIT_SHARED, then touch build.rs)"
)]
fn imports_that_do_not_fit_are_refused_and_write_nothing() {
    let io = Npz::load();
    let dir = tempfile::tempdir().unwrap();
    let data = recording(dir.path(), "sim", &io, true);

    // Another architecture: the Sensorium+ checkpoint as the Lurz 2020 model.
    let out = dir.path().join("wrong");
    let err = run_err(&mut import_cmd(
        "sensorium2022_plus.pth",
        "lurz2020",
        &data,
        &out,
    ));
    assert!(
        err.contains("sensorium2022_plus.pth does not fit the configured model")
            && err.contains("tensor `core.features.layer0.conv.weight` has shape [64, 4, 9, 9] in the checkpoint but [64, 1, 15, 15]")
            && err.contains("`shifter.sim.mlp.0.bias`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a refused import");

    // Data whose neurons are not the model's (the simulator's own coordinates).
    let other = recording(dir.path(), "other", &io, false);
    let err = run_err(&mut import_cmd("lurz2020.pth", "lurz2020", &other, &out));
    assert!(
        err.contains("`readout.other.source_grid`")
            && err.contains("not the ones the model was trained on"),
        "{err}"
    );
    assert!(!out.exists());

    // A truncated file, and an existing run that must not be overwritten.
    let bytes = std::fs::read(fixture_dir().join("lurz2020.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let mut cmd = cortexfit();
    cmd.args(["import", "--preset", "lurz2020", "--checkpoint"])
        .arg(&cut)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out);
    let err = run_err(&mut cmd);
    assert!(
        err.contains("cut.pth") && err.contains("not a readable PyTorch checkpoint"),
        "{err}"
    );
    let good = dir.path().join("good");
    run_ok(&mut import_cmd("lurz2020.pth", "lurz2020", &data, &good));
    let before = std::fs::read(good.join("best.safetensors")).unwrap();
    let err = run_err(&mut import_cmd(
        "lurz2020_nested.pth.tar",
        "lurz2020",
        &data,
        &good,
    ));
    assert!(err.contains("already holds a run"), "{err}");
    assert_eq!(
        std::fs::read(good.join("best.safetensors")).unwrap(),
        before
    );
}
