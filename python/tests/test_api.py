"""The Python API: datasets, ground truth, runs, progress, Ctrl-C and bad inputs."""

import os
import signal
import threading

import numpy as np
import pytest

import cortexfit
from conftest import TINY


def test_dataset_arrays_and_metadata(sim):
    dataset, truth = sim
    assert dataset.images.shape == (310, 1, 36, 64) and dataset.images.dtype == np.float32
    assert dataset.responses.shape == (310, 30)
    assert dataset.behavior.shape == (310, 3)
    assert dataset.pupil_center.shape == (310, 2)
    assert len(dataset.tier_indices("test")) == 50
    assert dataset.unit_ids.shape == (30,) and dataset.unit_ids.dtype == np.int64
    assert dataset.cell_motor_coordinates.shape == (30, 3)
    info = dataset.info()
    assert info["neurons"] == 30 and info["tiers"]["train"] == 200
    assert info["repeated_images"] == {"test": 10}
    assert truth.rf_centers_grid.shape == (30, 2)
    assert truth.test_rates.shape == (50, 30)
    assert np.array_equal(np.sort(truth.test_trials), dataset.tier_indices("test"))


def test_run_attributes(trained, sim):
    dataset, _ = sim
    assert trained.data_keys == [dataset.data_key]
    assert trained.config["seed"] == 1
    assert trained.config["trainer"]["batch_size"] == 32
    assert not trained.is_ensemble
    assert np.array_equal(trained.unit_ids(), dataset.unit_ids)
    assert trained.readout_positions(dataset.data_key).shape == (30, 2)
    assert "[trainer]" in trained.config_toml


def test_progress_callback_gets_every_epoch(sim, tmp_path):
    dataset, _ = sim
    events = []
    cortexfit.train("lurz2020", data=dataset.path, out=tmp_path / "run", overrides=TINY,
                    seed=2, progress=False, callback=events.append)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "stopped"
    finished = [e for e in events if e["event"] == "epoch_finished"]
    assert [e["epoch"] for e in finished] == list(range(len(finished)))
    assert "batch" in kinds and "val_corr" in finished[-1]


def test_config_dict_round_trip(trained, sim, tmp_path):
    """A run's config dict trains the same run again."""
    dataset, _ = sim
    again = cortexfit.train(trained.config, out=tmp_path / "again", progress=False)
    assert again.config == trained.config
    strip = lambda log: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in log]
    assert strip(again.log()) == strip(trained.log())


def test_callback_exception_stops_and_keeps_checkpoint(sim, trained, tmp_path):
    dataset, _ = sim
    out = tmp_path / "run"
    seen = []

    def stop_in_epoch_two(event):
        seen.append(event["event"])
        if event["event"] == "batch" and seen.count("epoch_started") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=r"cortexfit.resume"):
        cortexfit.train("lurz2020", data=dataset.path, out=out, overrides=TINY, seed=1,
                        progress=False, callback=stop_in_epoch_two)
    assert os.path.isdir(out / "checkpoints") or os.path.exists(out / "best.safetensors")
    assert not (out / "summary.json").exists()
    run = cortexfit.resume(out, progress=False)
    assert (out / "summary.json").exists()
    # Interrupted + resumed = uninterrupted (the `trained` fixture: same config and seed).
    strip = lambda log: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in log]
    assert strip(run.log()) == strip(trained.log())


def test_ctrl_c_interrupts_a_long_fit(sim, tmp_path):
    """A real SIGINT while Rust computes (GIL released) stops the fit after the batch."""
    dataset, _ = sim
    out = tmp_path / "long"
    started, sent = threading.Event(), threading.Event()

    def on_event(event):
        if event["event"] == "epoch_started" and event["epoch"] == 2:
            started.set()

    def interrupt():
        if started.wait(60):
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()

    # A process started in the background by a non-interactive shell (`cmd &`, as some CI
    # runners do) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
    # a Ctrl-C could not reach it at all. Test with Python's own handler, as in a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Thread(target=interrupt, daemon=True)
    timer.start()
    overrides = dict(TINY, **{"trainer.max_epochs": 200, "trainer.patience": 200})
    try:
        with pytest.raises(KeyboardInterrupt):
            cortexfit.train("lurz2020", data=dataset.path, out=out, overrides=overrides, seed=1,
                            progress=False, callback=on_event)
            pytest.fail(f"no KeyboardInterrupt (epoch 2 started: {started.is_set()}, "
                        f"signal sent: {sent.is_set()})")
    finally:
        signal.signal(signal.SIGINT, previous)
    timer.join(5)
    log = cortexfit.load_run(out).log()
    assert 1 <= len(log) - 1 < 200


def test_ensemble(trained, sim, tmp_path):
    dataset, _ = sim
    other = cortexfit.train("lurz2020", data=dataset.path, out=tmp_path / "s2", overrides=TINY,
                            seed=2, progress=False)
    ens = cortexfit.ensemble([trained, other], out=tmp_path / "ens")
    assert ens.is_ensemble and ens.member_seeds == [1, 2]
    inputs = ens.inputs(dataset, "test")
    mean = ens.predict(inputs["images"], inputs["behavior"], inputs["pupil_center"])
    a = trained.predict(inputs["images"], inputs["behavior"], inputs["pupil_center"])
    b = other.predict(inputs["images"], inputs["behavior"], inputs["pupil_center"])
    assert np.allclose(mean, (a.astype(np.float64) + b) / 2, atol=1e-6)
    summary, _ = ens.evaluate(dataset)
    assert [m["seed"] for m in summary["members"]] == [1, 2]


# ---- bad inputs raise Python exceptions with the command line's messages ----


def test_missing_dataset_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        cortexfit.Dataset(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        cortexfit.train("lurz2020", data=tmp_path / "nope", out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_missing_run_and_config_file(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="not a cortexfit run"):
        cortexfit.load_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        cortexfit.train(tmp_path / "missing.toml", out=tmp_path / "run", progress=False)


def test_bad_configuration_raises_value_error(sim, tmp_path):
    dataset, _ = sim
    with pytest.raises(ValueError, match="unknown preset"):
        cortexfit.train("lurz2021", data=dataset.path, out=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="lrr"):
        cortexfit.train("lurz2020", data=dataset.path, out=tmp_path / "b",
                        overrides={"trainer.lrr": 0.1}, progress=False)
    with pytest.raises(ValueError, match="trainer.lr"):
        cortexfit.train("lurz2020", data=dataset.path, out=tmp_path / "c",
                        overrides={"trainer.lr": "fast"}, progress=False)
    with pytest.raises(ValueError, match="seed"):
        cortexfit.train("lurz2020", data=dataset.path, out=tmp_path / "d", seed=-1, progress=False)
    with pytest.raises(ValueError):
        cortexfit.train("lurz2020", data=dataset.path, out=tmp_path / "e",
                        overrides={"trainer.max_epochs": float("nan")}, progress=False)


def test_existing_run_is_not_overwritten(trained, sim):
    dataset, _ = sim
    with pytest.raises(ValueError):
        cortexfit.train("lurz2020", data=dataset.path, out=trained.path, overrides=TINY, progress=False)
    assert cortexfit.load_run(trained.path).log() == trained.log()


def test_bad_prediction_inputs(trained, sim):
    dataset, _ = sim
    inputs = trained.inputs(dataset, "test")
    images, behavior, pupil = inputs["images"], inputs["behavior"], inputs["pupil_center"]
    with pytest.raises(ValueError, match="images"):
        trained.predict(images[:, :, :30], behavior, pupil)
    with pytest.raises(ValueError, match="behavior"):
        trained.predict(images, behavior[:10], pupil)
    with pytest.raises(ValueError, match="images"):
        trained.predict(np.array(["a"] * 10), behavior, pupil)
    if trained.needs_behavior:
        with pytest.raises(ValueError, match="behavior"):
            trained.predict(images, None, pupil)
    with pytest.raises(ValueError, match="non-finite"):
        trained.predict(np.full_like(images, np.nan), behavior, pupil)
    with pytest.raises(ValueError, match="no readout"):
        trained.predict(images, behavior, pupil, data_key="other")
    with pytest.raises(ValueError, match="tier"):
        trained.evaluate(dataset, tier="tset")
    empty = trained.predict(images[:0], behavior[:0], pupil[:0])
    assert empty.shape == (0, 30)


def test_bad_simulation_options(tmp_path):
    with pytest.raises(ValueError, match="neurons"):
        cortexfit.simulate(tmp_path / "s", neurons=0)
    with pytest.raises(ValueError, match="repeats"):
        cortexfit.simulate(tmp_path / "s", repeats=1)
    with pytest.raises(ValueError, match="neurons"):
        cortexfit.simulate(tmp_path / "s", neurons=-3)
    with pytest.raises(TypeError):
        cortexfit.simulate(12)


def test_public_api_is_documented():
    """`help()` in a notebook shows a docstring for everything public."""
    for name in cortexfit.__all__:
        assert getattr(cortexfit, name).__doc__, name
    for name in ["predict", "inputs", "predict_tier", "evaluate", "readout_positions", "log",
                 "mei", "tuning", "receptive_fields", "export"]:
        assert getattr(cortexfit.Run, name).__doc__, name
    stub = __import__("pathlib").Path(cortexfit.__file__).with_name("__init__.pyi")
    assert stub.exists() and "def train(" in stub.read_text()


def test_insilico_experiments_match_the_cli_files(trained, sim, cli, tmp_path):
    """`Run.mei` / `tuning` / `receptive_fields` call the library's in-silico experiments and
    write the same files as `cortexfit insilico`."""
    dataset, _ = sim
    out = tmp_path / "mei_py"
    meis = trained.mei(dataset, out, top=3, steps=5, seed=2)
    assert meis["images"].shape == (3, 1, 36, 64) and meis["images"].dtype == np.float32
    assert len(meis["table"]) == 3
    cli_out = tmp_path / "mei_cli"
    cli("insilico", "mei", "--run", trained.path, "--data", dataset.path, "--out", cli_out,
        "--top", "3", "--steps", "5", "--seed", "2")
    assert np.array_equal(np.load(cli_out / "mei.npy"), meis["images"])
    tuning = trained.tuning(dataset, tmp_path / "tuning", units=[1, 2], orientations=12)
    assert len(tuning["table"]) == 2 and tuning["responses"].shape[0] == 2
    rf = trained.receptive_fields(dataset, tmp_path / "rf", units=[3], samples=2)
    assert rf["energy"].shape == (1, 36, 64)
    with pytest.raises(ValueError, match="unknown setting"):
        cortexfit.Run(trained.path)._insilico("rf", dataset, tmp_path / "x", None, None, {"sample": 2})
    with pytest.raises(ValueError, match="999999"):
        trained.receptive_fields(dataset, tmp_path / "rf2", units=[999999])


def test_export_writes_pytorch_and_safetensors_files(trained, cli, tmp_path):
    import zipfile

    code = trained.export(tmp_path / "m.pth")
    assert "torch.load(" in code and "Stacked2dCore" in code
    with zipfile.ZipFile(tmp_path / "m.pth") as z:
        names = z.namelist()
    assert "archive/data.pkl" in names and "archive/version" in names
    assert any(n.startswith("archive/data/") for n in names)
    # The same bytes as the command line writes.
    cli("export", "--run", trained.path, "--out", tmp_path / "cli.pth")
    assert (tmp_path / "m.pth").read_bytes() == (tmp_path / "cli.pth").read_bytes()
    code = trained.export(tmp_path / "m.safetensors")
    assert "load_file(" in code
    with pytest.raises(ValueError, match=r"m\.onnx.*\.pth, \.pt or \.pth\.tar"):
        trained.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
