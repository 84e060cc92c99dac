"""An opened run or ensemble: :class:`Run` and :func:`load_run`."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _cortexfit
from ._arrays import PathLike, f32, i64, path as _path, table, to_bytes


def _dataset_path(dataset: Any) -> str:
    """A :class:`Dataset` or a path, as a path."""
    from .dataset import Dataset

    if isinstance(dataset, Dataset):
        return dataset.path
    return _path(dataset, "dataset")


class Run:
    """A trained run (or an ensemble of runs) in evaluation mode.

    Attributes:
        path: the run directory.
        config: the run's configuration (a dict, as ``config.toml``).
        data_keys: the keys of its readouts, in order.
        is_ensemble: whether it averages several runs.
        member_seeds, member_dirs: the seed and directory of each member.
    """

    def __init__(self, path: PathLike, device: str = "cpu") -> None:
        self.path = _path(path)
        self._handle = _cortexfit.RunHandle(self.path, device)
        self.config: Dict[str, Any] = json.loads(self._handle.config_json())
        self.data_keys: List[str] = list(self._handle.data_keys())
        self.member_seeds: List[int] = list(self._handle.member_seeds())
        self.member_dirs: List[str] = list(self._handle.member_dirs())
        shape, n_behaviors, needs_behavior, needs_pupil = self._handle.inputs_needed()
        self.image_shape: Tuple[int, int, int] = tuple(shape)  # type: ignore[assignment]
        self.n_behaviors: int = n_behaviors
        self.needs_behavior: bool = needs_behavior
        self.needs_pupil_center: bool = needs_pupil

    @property
    def is_ensemble(self) -> bool:
        return len(self.member_seeds) > 1

    @property
    def config_toml(self) -> str:
        """The configuration as commented TOML."""
        return self._handle.config_toml()

    @property
    def summary(self) -> Optional[Dict[str, Any]]:
        """``summary.json`` of a finished run (``None`` for an unfinished run or an ensemble)."""
        p = os.path.join(self.path, "summary.json")
        if not os.path.exists(p):
            return None
        with open(p) as f:
            return json.load(f)

    def log(self) -> List[Dict[str, Any]]:
        """The epoch records of ``log.jsonl`` (one dict per epoch)."""
        p = os.path.join(self.path, "log.jsonl")
        with open(p) as f:
            return [json.loads(line) for line in f if line.strip()]

    def _key(self, data_key: Optional[str]) -> str:
        if data_key is None:
            if len(self.data_keys) != 1:
                raise ValueError(
                    f"data_key: the run has {len(self.data_keys)} readouts "
                    f"({', '.join(self.data_keys)}); say which one"
                )
            return self.data_keys[0]
        if data_key not in self.data_keys:
            raise ValueError(
                f"the run has no readout `{data_key}`; its data keys are {', '.join(self.data_keys)}"
            )
        return data_key

    def unit_ids(self, data_key: Optional[str] = None) -> np.ndarray:
        """The unit ids of a readout's neurons (int64, readout order)."""
        return i64(self._handle.unit_ids(self._key(data_key)))

    def predict(
        self,
        images: Any,
        behavior: Any = None,
        pupil_center: Any = None,
        data_key: Optional[str] = None,
    ) -> np.ndarray:
        """Predicted responses (float32, trials × neurons) of readout ``data_key`` (default: the
        only one) in the run's normalized response units; the mean over members for an ensemble.

        Inputs are in the model's units, i.e. normalized as the run normalized its training data
        (:meth:`inputs` returns a dataset's tier that way): ``images`` trials × C × H × W (or
        trials × H × W for one channel), ``behavior`` trials × behaviour variables and
        ``pupil_center`` trials × 2 where the model uses them.
        """
        key = self._key(data_key)
        c, h, w = self.image_shape
        images = np.asarray(images)
        if images.ndim == 3 and c == 1:
            images = images[:, None]
        if images.ndim != 4 or tuple(images.shape[1:]) != (c, h, w):
            raise ValueError(
                f"images: shape {images.shape}, expected trials × {c} × {h} × {w}"
            )
        trials = images.shape[0]
        image_bytes = to_bytes("images", images, c * h * w)
        behavior_bytes = None if behavior is None else to_bytes("behavior", behavior, self.n_behaviors, trials)
        pupil_bytes = None if pupil_center is None else to_bytes("pupil_center", pupil_center, 2, trials)
        out = self._handle.predict(key, image_bytes, behavior_bytes, pupil_bytes)
        return f32(out, (trials, self._handle.n_neurons(key)))

    def inputs(self, dataset: Any, tier: str = "test") -> Dict[str, Any]:
        """A dataset's tier as the run prepares it (its normalization and neurons): a dict with
        ``data_key``, ``trials`` (file indices), ``images``, ``behavior``, ``pupil_center`` and
        ``responses`` (float32 arrays, ``None`` where absent), ready for :meth:`predict`."""
        d = self._handle.inputs(_dataset_path(dataset), tier)
        trials = i64(d["trials"])
        n = len(trials)
        return {
            "data_key": d["data_key"],
            "trials": trials,
            "images": f32(d["images"], (n, *d["image_shape"])),
            "behavior": f32(d["behavior"], (n, d["n_behaviors"])),
            "pupil_center": f32(d["pupil_center"], (n, 2)),
            "responses": f32(d["responses"], (n, d["n_neurons"])),
        }

    def predict_tier(self, dataset: Any, tier: str = "test") -> Tuple[np.ndarray, np.ndarray]:
        """(predictions, trials) for a tier of a dataset, exactly as ``cortexfit predict``
        computes its ``.npy`` (float32, trials × neurons; trials are file indices)."""
        key, trials, predictions, n = self._handle.predict_tier(_dataset_path(dataset), tier)
        trials = i64(trials)
        return f32(predictions, (len(trials), n)), trials

    def evaluate(self, dataset: Any, tier: str = "test") -> Tuple[Dict[str, Any], Any]:
        """Every metric on a tier of a dataset, like ``cortexfit evaluate``: the summary (a dict:
        single-trial correlation, correlation to average, oracle, fraction oracle, FEVE, …; for an
        ensemble with ``members``) and a per-neuron table (a pandas DataFrame when pandas is
        installed, else a dict of arrays) with the readout positions μ and Σ."""
        result = json.loads(self._handle.evaluate(_dataset_path(dataset), tier))
        summary = result["summary"]
        if result["members"]:
            summary = dict(summary, members=result["members"])
        return summary, table(result["neurons"])

    def export(self, out: PathLike) -> Optional[str]:
        """Writes the best model for PyTorch, as ``cortexfit export``: float32 weights under
        neuralpredictors' state-dict names, in PyTorch's own format (``.pth``, ``.pt``,
        ``.pth.tar``; ``torch.load`` reads it) or as ``.safetensors``, by the name of ``out``.

        Returns the Python source that builds the matching neuralpredictors model and loads the
        file into it (``exec`` it: it defines ``model``), or ``None`` for a model without a
        generated counterpart (a warning says why; the state dict is written all the same).
        """
        _, code, why = self._handle.export(_path(out))
        if code is None:
            warnings.warn(f"no neuralpredictors lines for this model: {why}", stacklevel=2)
        return code

    def readout_positions(self, data_key: Optional[str] = None) -> Optional[np.ndarray]:
        """Readout positions μ (x, y) in grid coordinates ([-1, 1], as the simulator's
        ``rf_centers_grid``), neurons × 2 (float64); ``None`` without a Gaussian readout."""
        positions = self._handle.readout_positions(self._key(data_key))
        if positions is None:
            return None
        return np.asarray(positions, dtype=np.float64).reshape(-1, 2)

    def _insilico(self, kind: str, dataset: Any, out: PathLike, top: Optional[int],
                  units: Optional[Sequence[int]], params: Dict[str, float]) -> None:
        self._handle.insilico(kind, _dataset_path(dataset), str(out), top,
                              None if units is None else [int(u) for u in units],
                              {k: float(v) for k, v in params.items() if v is not None})

    def mei(self, dataset: Any, out: PathLike, *, top: Optional[int] = None,
            units: Optional[Sequence[int]] = None, seed: int = 0, blur_sigma: float = 1.0,
            steps: int = 300, contrast: float = 1.0, batch: int = 100) -> Dict[str, Any]:
        """Most exciting inputs of the chosen neurons (all, the ``top`` N by validation
        correlation, or ``units``) of the dataset's readout, by gradient ascent on the image
        (the ensemble mean for an ensemble; seeded; blurred gradient; fixed contrast, a
        fraction of the training images' mean norm; the training images' range). Writes
        ``mei.npy``, ``mei.csv`` and ``mei.png`` to ``out`` and returns ``images`` (neurons × C ×
        H × W, dataset units) and the per-neuron ``table`` (responses to the MEI and to the best
        natural image at the same norm, their ratio)."""
        self._insilico("mei", dataset, out, top, units, dict(
            seed=seed, blur_sigma=blur_sigma, steps=steps, contrast=contrast, batch=batch))
        return {"images": np.load(os.path.join(out, "mei.npy")),
                "table": _read_csv(os.path.join(out, "mei.csv"))}

    def tuning(self, dataset: Any, out: PathLike, *, top: Optional[int] = None,
               units: Optional[Sequence[int]] = None, orientations: int = 16, phases: int = 8,
               disc: Optional[float] = None, figure_neurons: int = 12) -> Dict[str, Any]:
        """Tuning to static gratings (orientations × 8 spatial frequencies × phases, full field
        or a ``disc`` of that radius in pixels on each neuron's readout position): preferred
        orientation and spatial frequency, orientation selectivity index, F1/F0. Writes
        ``tuning.csv``, ``tuning_responses.npy`` and the figure to ``out``; returns
        ``responses`` and the per-neuron ``table``."""
        self._insilico("tuning", dataset, out, top, units, dict(
            orientations=orientations, phases=phases, disc=disc, figure_neurons=figure_neurons))
        return {"responses": np.load(os.path.join(out, "tuning_responses.npy")),
                "table": _read_csv(os.path.join(out, "tuning.csv"))}

    def receptive_fields(self, dataset: Any, out: PathLike, *, top: Optional[int] = None,
                         units: Optional[Sequence[int]] = None, samples: int = 8,
                         seed: int = 0) -> Dict[str, Any]:
        """Receptive-field maps from the model: the input gradient at a grey image (``linear``)
        and the gradient energy over white noise (``energy``), with centre and extent per neuron
        (``table``). Writes ``rf_linear.npy``, ``rf_energy.npy``, ``rf.csv`` and ``rf.png``."""
        self._insilico("rf", dataset, out, top, units, dict(samples=samples, seed=seed))
        return {"linear": np.load(os.path.join(out, "rf_linear.npy")),
                "energy": np.load(os.path.join(out, "rf_energy.npy")),
                "table": _read_csv(os.path.join(out, "rf.csv"))}

    def __repr__(self) -> str:
        kind = f"ensemble of {len(self.member_seeds)}" if self.is_ensemble else "run"
        return f"Run({self.path!r}: {kind}, data keys {', '.join(self.data_keys)})"


def load_run(path: Union[PathLike, Run], device: str = "cpu") -> Run:
    """Opens a run or an ensemble directory (written by :func:`train`, ``cortexfit train`` or
    :func:`ensemble`)."""
    if isinstance(path, Run):
        return path
    return Run(path, device=device)


def _read_csv(path: str) -> Any:
    """A CSV as a pandas DataFrame when pandas is installed, else a dict of column lists."""
    try:
        import pandas
        return pandas.read_csv(path)
    except ImportError:
        import csv
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return {k: [r[k] for r in rows] for k in (rows[0].keys() if rows else [])}
