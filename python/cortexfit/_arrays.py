"""Conversions between the compiled module's little-endian bytes and numpy arrays."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


def f32(data: Optional[bytes], shape: Sequence[int]) -> Optional[np.ndarray]:
    """float32 array of ``shape`` from bytes (``None`` stays ``None``)."""
    if data is None:
        return None
    return np.frombuffer(data, dtype="<f4").reshape(tuple(shape)).astype(np.float32, copy=True)


def i64(data: Optional[bytes]) -> Optional[np.ndarray]:
    """int64 vector from bytes (``None`` stays ``None``)."""
    if data is None:
        return None
    return np.frombuffer(data, dtype="<i8").astype(np.int64, copy=True)


def to_bytes(name: str, values: Any, width: int, trials: Optional[int] = None) -> bytes:
    """C-order little-endian float32 bytes of a (trials × width) array-like; checks the shape."""
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected numbers, got an array of dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{name}: expected an array, got a scalar")
    rows = array.shape[0]
    if array.size != rows * width:
        raise ValueError(
            f"{name}: shape {array.shape} does not have {width} values per trial"
        )
    if trials is not None and rows != trials:
        raise ValueError(f"{name}: {rows} trials, but images has {trials}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name}: non-finite value {array[tuple(bad)]} at index {tuple(int(i) for i in bad)}, "
            "expected finite numbers"
        )
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def path(value: PathLike, name: str = "path") -> str:
    """A path argument as text."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{name}: expected a path (str or os.PathLike), got {type(value).__name__}")


def table(columns: dict) -> Any:
    """A pandas DataFrame of ``columns`` when pandas is installed, else a dict of arrays."""
    order = [
        "unit_id", "single_trial_correlation", "correlation_to_average", "oracle", "fev", "feve",
        "poisson_loss", "mu_x", "mu_y", "sigma_xx", "sigma_xy", "sigma_yx", "sigma_yy",
    ]
    names = [k for k in order if k in columns] + [k for k in columns if k not in order]
    arrays = {
        k: np.asarray(
            [np.nan if x is None else x for x in columns[k]],
            dtype=np.int64 if k == "unit_id" else np.float64,
        )
        for k in names
    }
    try:
        import pandas as pd
    except ImportError:
        return arrays
    return pd.DataFrame(arrays)
