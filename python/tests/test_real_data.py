"""The real recording in ../shared (licensed: never copied into the repository); skipped when absent."""

from pathlib import Path

import numpy as np
import pytest

import cortexfit

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "lurz2020_static20457-5-9"


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real dataset is not at {REAL}")
def test_real_dataset_arrays_and_neuron_metadata():
    ds = cortexfit.Dataset(REAL)
    assert ds.data_key == "20457-5-9"
    assert ds.responses.shape == (ds.n_trials, 5335)
    assert ds.images.shape == (ds.n_trials, 1, 36, 64)
    assert ds.behavior is not None and ds.pupil_center is not None
    assert ds.unit_ids.shape == (5335,)
    assert ds.cell_motor_coordinates is not None and ds.cell_motor_coordinates.shape == (5335, 3)
    for meta in (ds.area, ds.layer):
        assert meta is None or meta.shape == (5335,)
    info = ds.info()
    assert info["neurons"] == 5335 and sum(info["tiers"].values()) == ds.n_trials
    assert np.isfinite(ds.responses).all()
