"""Recordings (:class:`Dataset`) and simulated sessions (:func:`simulate`, :class:`GroundTruth`)."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import _cortexfit
from ._arrays import PathLike, f32, i64, path as _path


class Dataset:
    """A recording in the FileTree layout (folder or ``.zip``), loaded into numpy arrays.

    Attributes (trials in file order):
        path: the folder or archive.
        data_key: the key of the recording (one readout per key).
        images: float32, trials × C × H × W (raw pixel values).
        responses: float32, trials × neurons (raw).
        behavior: float32, trials × behaviour variables, or ``None``.
        pupil_center: float32, trials × 2, or ``None``.
        tiers: str array, the tier of each trial (train, validation, test, final_test, …).
        frame_image_id: int64, the image shown on each trial (repeats share an id).
        trial_idx: int64 trial index in recording time, or ``None``.
        unit_ids: int64, one per neuron.
        cell_motor_coordinates: float64, neurons × 3 (µm), or ``None``.
        area, layer: str arrays, one per neuron, or ``None``.
        animal_ids: int64, one per neuron, or ``None``.
    """

    def __init__(self, path: PathLike, data_key: Optional[str] = None) -> None:
        self.path = _path(path)
        d = _cortexfit.load_dataset(self.path, data_key)
        self._info = d
        trials, neurons = d["n_trials"], d["n_neurons"]
        self.data_key: str = d["data_key"]
        self.image_shape: Tuple[int, int, int] = tuple(d["image_shape"])  # type: ignore[assignment]
        self.images: np.ndarray = f32(d["images"], (trials, *self.image_shape))
        self.responses: np.ndarray = f32(d["responses"], (trials, neurons))
        self.behavior: Optional[np.ndarray] = f32(d["behavior"], (trials, d["n_behaviors"]))
        self.pupil_center: Optional[np.ndarray] = f32(d["pupil_center"], (trials, 2))
        self.tiers: np.ndarray = np.asarray(d["tiers"], dtype=str)
        self.frame_image_id: np.ndarray = i64(d["frame_image_id"])
        self.trial_idx: Optional[np.ndarray] = i64(d["trial_idx"])
        self.unit_ids: np.ndarray = i64(d["unit_ids"])
        coords = d["cell_motor_coordinates"]
        self.cell_motor_coordinates: Optional[np.ndarray] = (
            None if coords is None else np.asarray(coords, dtype=np.float64).reshape(neurons, 3)
        )
        self.area: Optional[np.ndarray] = None if d["area"] is None else np.asarray(d["area"], dtype=str)
        self.layer: Optional[np.ndarray] = None if d["layer"] is None else np.asarray(d["layer"], dtype=str)
        self.animal_ids: Optional[np.ndarray] = i64(d["animal_ids"])

    @property
    def n_trials(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_neurons(self) -> int:
        return int(self.responses.shape[1])

    def tier_indices(self, tier: str) -> np.ndarray:
        """The trials (file indices) of ``tier``."""
        return np.flatnonzero(self.tiers == tier)

    def info(self) -> Dict[str, Any]:
        """What ``cortexfit info`` shows: data key, trials per tier, neurons, image size, which
        inputs are present and the repeated test images."""
        tiers, counts = np.unique(self.tiers, return_counts=True)
        return {
            "data_key": self.data_key,
            "source": self._info["source"],
            "trials": self.n_trials,
            "tiers": {str(t): int(c) for t, c in zip(tiers, counts)},
            "neurons": self.n_neurons,
            "image_shape": self.image_shape,
            "behavior": self.behavior is not None,
            "pupil_center": self.pupil_center is not None,
            "repeated_images": dict(self._info["repeated_images"]),
        }

    def __repr__(self) -> str:
        return (
            f"Dataset({self.data_key!r}: {self.n_trials} trials, {self.n_neurons} neurons, "
            f"images {'×'.join(map(str, self.image_shape))}, from {self.path!r})"
        )


class GroundTruth:
    """The truth behind a simulated dataset (``DIR/ground_truth/``).

    Attributes:
        rf_centers_grid: float64, neurons × 2: RF centres (x, y) in the readout's grid
            coordinates, comparable with :meth:`Run.readout_positions`.
        test_trials: int64, the file indices of the test trials (rows of ``test_rates``).
        test_rates: float32, test trials × neurons: noise-free expected responses.
        cell_types: str array, one per neuron (simple, complex, normalized).
        config, summary: the simulation's settings and summary (dicts).
        neurons: every neuron's parameters (list of dicts).
    """

    def __init__(self, path: PathLike) -> None:
        text, rates = _cortexfit.ground_truth(_path(path))
        raw = json.loads(text)
        self.raw: Dict[str, Any] = raw
        self.config: Dict[str, Any] = raw["config"]
        self.summary: Dict[str, Any] = raw["summary"]
        self.neurons: List[Dict[str, Any]] = raw["neurons"]
        self.rf_centers_grid: np.ndarray = np.asarray(raw["rf_centers_grid"], dtype=np.float64).reshape(-1, 2)
        self.test_trials: np.ndarray = np.asarray(raw["test_trials"], dtype=np.int64)
        self.test_rates: np.ndarray = f32(rates, (len(self.test_trials), len(self.neurons)))
        self.cell_types: np.ndarray = np.asarray(
            [str(n.get("cell_type", "")).lower() for n in self.neurons], dtype=str
        )

    def __repr__(self) -> str:
        return f"GroundTruth({len(self.neurons)} neurons, {len(self.test_trials)} test trials)"


def simulate(
    out: PathLike,
    neurons: Optional[int] = None,
    train_images: Optional[int] = None,
    validation_images: Optional[int] = None,
    test_images: Optional[int] = None,
    repeats: Optional[int] = None,
    seed: Optional[int] = None,
    animal: Optional[int] = None,
    height: Optional[int] = None,
    width: Optional[int] = None,
    force: bool = False,
) -> Tuple[Dataset, GroundTruth]:
    """Simulates a mouse-V1 session into ``out`` (like ``cortexfit simulate``) and returns the
    dataset and its ground truth. Unset options take the command line's defaults (200 neurons,
    2000/300 train/validation images, 50 test images × 10 repeats, 36×64 pixels, seed 0,
    animal 1). ``force`` replaces a non-empty ``out``."""
    options = {
        "neurons": neurons,
        "train_images": train_images,
        "validation_images": validation_images,
        "test_images": test_images,
        "repeats": repeats,
        "seed": seed,
        "animal": animal,
        "height": height,
        "width": width,
    }
    for name, value in options.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    config = {k: int(v) for k, v in options.items() if v is not None}
    out = _path(out, "out")
    _cortexfit.simulate(out, json.dumps(config), bool(force))
    return Dataset(out), GroundTruth(out)
