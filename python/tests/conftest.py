"""Shared fixtures: a tiny simulated recording, the command-line binary, a tiny model."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import cortexfit

# One thread: the numbers do not depend on it, and CI machines are small.
cortexfit.set_threads(1)

# `--set` overrides of a model small enough to train an epoch in well under a second
# (the same as tests/cli.rs).
TINY = {
    "model.core.hidden_channels": 8,
    "model.core.layers": 2,
    "model.core.input_kern": 9,
    "model.core.hidden_kern": 3,
    "trainer.batch_size": 32,
    "trainer.max_epochs": 4,
    "trainer.patience": 2,
    "trainer.lr_decay_steps": 2,
}


def tiny_set_args(overrides=TINY):
    args = []
    for k, v in overrides.items():
        args += ["--set", f"{k}={v}"]
    return args


def _find_cli():
    candidates = [os.environ.get("CORTEXFIT_BIN")]
    repo = Path(__file__).resolve().parents[2]
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        candidates.append(str(Path(target) / "release" / "cortexfit"))
    candidates.append(str(repo / "target" / "release" / "cortexfit"))
    candidates.append(shutil.which("cortexfit"))
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


@pytest.fixture(scope="session")
def cli():
    """The `cortexfit` binary (CORTEXFIT_BIN, $CARGO_TARGET_DIR/release or target/release)."""
    path = _find_cli()
    if path is None:
        pytest.skip(
            "the cortexfit binary was not found: build it with `cargo build --release` or set "
            "CORTEXFIT_BIN"
        )

    def run(*args, cwd=None):
        result = subprocess.run(
            [path, *map(str, args)], cwd=cwd, capture_output=True, text=True
        )
        assert result.returncode == 0, f"cortexfit {' '.join(map(str, args))}:\n{result.stderr}"
        return result

    run.path = path
    return run


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """A tiny simulated recording (30 neurons, 200 training images, a repeated test tier)."""
    out = tmp_path_factory.mktemp("data") / "sim"
    dataset, truth = cortexfit.simulate(
        out, neurons=30, train_images=200, validation_images=60, test_images=10, repeats=5, seed=3
    )
    return dataset, truth


@pytest.fixture(scope="session")
def trained(sim, tmp_path_factory):
    """A tiny run trained from Python (seed 1)."""
    dataset, _ = sim
    out = tmp_path_factory.mktemp("runs") / "py"
    return cortexfit.train("lurz2020", data=[dataset.path], out=out, overrides=TINY, seed=1, progress=False)
