"""Python and the command line compute the same numbers."""

import json

import numpy as np

import cortexfit
from conftest import TINY, tiny_set_args

TIMING = {"train_seconds", "eval_seconds", "elapsed_seconds"}


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_training_from_python_and_cli_gives_identical_logs(cli, sim, trained, tmp_path):
    dataset, _ = sim
    out = tmp_path / "cli"
    cli("train", "--preset", "lurz2020", "--data", dataset.path, "--out", out, "--seed", 1,
        "--threads", 1, "--quiet", *tiny_set_args())
    from_cli = cortexfit.load_run(out)
    assert len(trained.log()) >= 2
    assert _without_timing(from_cli.log()) == _without_timing(trained.log())
    assert from_cli.config == trained.config
    py_summary, cli_summary = trained.summary, from_cli.summary
    for s in (py_summary, cli_summary):
        s.pop("seconds")
    assert py_summary == cli_summary


def test_predict_equals_cli_npy_bit_for_bit(cli, sim, trained, tmp_path):
    dataset, _ = sim
    npy = tmp_path / "pred.npy"
    cli("predict", "--run", trained.path, "--data", dataset.path, "--tier", "test", "--out", npy,
        "--threads", 1)
    expected = np.load(npy)
    inputs = trained.inputs(dataset, "test")
    predicted = trained.predict(inputs["images"], inputs["behavior"], inputs["pupil_center"])
    assert predicted.dtype == np.float32
    assert predicted.shape == expected.shape == (50, 30)
    assert predicted.tobytes() == expected.tobytes()
    by_tier, trials = trained.predict_tier(dataset, "test")
    assert by_tier.tobytes() == expected.tobytes()
    assert np.array_equal(trials, dataset.tier_indices("test"))


def test_evaluate_equals_cli(cli, sim, trained):
    dataset, _ = sim
    result = cli("evaluate", "--run", trained.path, "--data", dataset.path, "--json", "--threads", 1)
    expected = json.loads(result.stdout)[0]
    summary, table = trained.evaluate(dataset, tier="test")
    assert summary == expected
    assert len(table["unit_id"]) == 30
    assert np.array_equal(np.asarray(table["unit_id"]), dataset.unit_ids)
    positions = trained.readout_positions()
    assert np.allclose(np.asarray(table["mu_x"]), positions[:, 0])


def test_transfer_from_python_matches_cli(cli, sim, trained, tmp_path):
    dataset, _ = sim
    overrides = {"trainer.max_epochs": 2}
    run = cortexfit.transfer(core=trained, data=[dataset.path], out=tmp_path / "py",
                             train_images=100, overrides=overrides, progress=False)
    cli("transfer", "--core", trained.path, "--data", dataset.path, "--out", tmp_path / "cli",
        "--train-images", 100, "--set", "trainer.max_epochs=2", "--threads", 1, "--quiet")
    from_cli = cortexfit.load_run(tmp_path / "cli")
    assert _without_timing(run.log()) == _without_timing(from_cli.log())
    assert run.config["model"]["detach_core"] is True
