"""Training runs from Python: :func:`train`, :func:`resume`, :func:`transfer`, :func:`ensemble`."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _cortexfit
from ._arrays import PathLike, path as _path
from .progress import Event, relay
from .run import Run

Overrides = Union[Mapping[str, Any], Sequence[str], None]


def set_threads(threads: int) -> int:
    """Sizes the CPU thread pool (like ``--threads``). It can be set once per process, before the
    first computation; returns the number of threads in use."""
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise ValueError(f"threads: expected a positive integer, got {threads!r}")
    return _cortexfit.init_threads(threads)


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"overrides: `{key}` = {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, (str, os.PathLike)):
        return json.dumps(os.fspath(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    if hasattr(value, "item"):  # numpy scalars
        return _toml_value(key, value.item())
    raise ValueError(f"overrides: `{key}` = {value!r}: unsupported type {type(value).__name__}")


def _overrides(overrides: Overrides) -> List[str]:
    """``{"trainer.lr": 0.003}`` or ``["trainer.lr=0.003"]`` → ``--set`` strings."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={_toml_value(k, v)}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        raise ValueError("overrides: expected a dict or a list of 'key=value' strings, got a string")
    return [str(o) for o in overrides]


def _source(preset_or_config: Any) -> tuple:
    """(text, kind) of a preset name, a configuration file or a configuration dict."""
    if isinstance(preset_or_config, Mapping):
        return json.dumps(dict(preset_or_config)), "json"
    if isinstance(preset_or_config, os.PathLike) or (
        isinstance(preset_or_config, str) and preset_or_config not in _cortexfit.presets()
    ):
        text = os.fspath(preset_or_config)
        if not isinstance(preset_or_config, os.PathLike) and not (
            os.path.exists(text) or text.endswith(".toml") or os.sep in text
        ):
            raise ValueError(
                f"unknown preset `{text}`; known presets: {', '.join(_cortexfit.presets())} "
                "(or give a configuration file or dict)"
            )
        return text, "file"
    if isinstance(preset_or_config, str):
        return preset_or_config, "preset"
    raise TypeError(
        "preset_or_config: expected a preset name, a configuration file or a dict, got "
        f"{type(preset_or_config).__name__}"
    )


def _paths(values: Union[PathLike, Iterable[PathLike], None], name: str) -> List[str]:
    if values is None:
        return []
    if isinstance(values, (str, os.PathLike)):
        return [_path(values, name)]
    return [_path(v, name) for v in values]


def _seed(seed: Optional[int]) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return seed


def _minutes(max_minutes: Optional[float]) -> Optional[float]:
    if max_minutes is None:
        return None
    if isinstance(max_minutes, bool) or not isinstance(max_minutes, (int, float)):
        raise ValueError(f"max_minutes: expected a number, got {max_minutes!r}")
    return float(max_minutes)


def resolve_config(
    preset_or_config: Any,
    data: Union[PathLike, Iterable[PathLike], None] = None,
    overrides: Overrides = None,
    seed: Optional[int] = None,
    max_minutes: Optional[float] = None,
) -> Dict[str, Any]:
    """The configuration :func:`train` would use (as ``cortexfit train`` resolves it), as a dict."""
    text, kind = _source(preset_or_config)
    return json.loads(
        _cortexfit.resolve_config(
            text, kind, _overrides(overrides), _paths(data, "data"), _seed(seed), _minutes(max_minutes)
        )
    )


def train(
    preset_or_config: Any,
    data: Union[PathLike, Iterable[PathLike], None] = None,
    out: Optional[PathLike] = None,
    overrides: Overrides = None,
    seed: Optional[int] = None,
    max_minutes: Optional[float] = None,
    progress: bool = True,
    callback: Optional[Callable[[Event], Any]] = None,
    device: str = "cpu",
) -> Run:
    """Trains a run, like ``cortexfit train``, and returns it opened.

    Args:
        preset_or_config: a preset name (``cortexfit.presets()``), a configuration file (TOML, as
            ``cortexfit config`` writes) or a configuration dict (e.g. ``Run.config``).
        data: dataset folders or ``.zip`` files (one readout each); default: the configuration's
            ``data.paths``.
        out: the run directory to create.
        overrides: ``{"trainer.lr": 0.003}`` or ``["trainer.lr=0.003"]`` (``--set``).
        seed: the run seed (same configuration + seed → same numbers as the command line).
        max_minutes: wall-clock budget (stops after the epoch that crosses it).
        progress: print one line per epoch.
        callback: called with every event (a dict, see :data:`cortexfit.progress.Event`); raising
            an exception in it stops the run after the current batch, keeping the checkpoint.
        device: ``"cpu"`` or ``"cuda"`` (a CUDA build).

    Ctrl-C stops after the current batch with ``KeyboardInterrupt``; the run keeps its last
    completed epoch (:func:`resume` continues it).
    """
    if out is None:
        raise ValueError("out: the run directory to create is required")
    text, kind = _source(preset_or_config)
    out = _path(out, "out")
    _cortexfit.train(
        text,
        kind,
        _overrides(overrides),
        _paths(data, "data"),
        out,
        _seed(seed),
        _minutes(max_minutes),
        relay(progress, callback),
        device,
    )
    return Run(out, device=device)


def resume(
    run: Union[PathLike, Run],
    progress: bool = True,
    callback: Optional[Callable[[Event], Any]] = None,
    device: str = "cpu",
) -> Run:
    """Continues a killed or interrupted run from its last completed epoch (``train --resume``);
    the result equals an uninterrupted run's."""
    path = run.path if isinstance(run, Run) else _path(run, "run")
    _cortexfit.resume(path, relay(progress, callback), device)
    return Run(path, device=device)


def transfer(
    core: Union[PathLike, Run],
    data: Union[PathLike, Iterable[PathLike]],
    out: PathLike,
    train_images: Optional[int] = None,
    update_bn: bool = False,
    fine_tune: bool = False,
    overrides: Overrides = None,
    seed: Optional[int] = None,
    max_minutes: Optional[float] = None,
    progress: bool = True,
    callback: Optional[Callable[[Event], Any]] = None,
    device: str = "cpu",
) -> Run:
    """Fits new readouts on the frozen core of ``core`` (a run or ensemble), like
    ``cortexfit transfer``; ``train_images`` fits on a seeded subset of that many training images,
    ``fine_tune`` then trains the whole model, ``update_bn`` lets the core's batch norm adapt."""
    if train_images is not None and (isinstance(train_images, bool) or not isinstance(train_images, int) or train_images < 1):
        raise ValueError(f"train_images: expected a positive integer, got {train_images!r}")
    core_path = core.path if isinstance(core, Run) else _path(core, "core")
    out = _path(out, "out")
    _cortexfit.transfer(
        core_path,
        _paths(data, "data"),
        out,
        train_images,
        bool(update_bn),
        bool(fine_tune),
        _overrides(overrides),
        _seed(seed),
        _minutes(max_minutes),
        relay(progress, callback),
        device,
    )
    return Run(out, device=device)


def ensemble(runs: Iterable[Union[PathLike, Run]], out: PathLike, device: str = "cpu") -> Run:
    """Groups finished runs of one configuration (different seeds) into an ensemble folder and
    opens it; its predictions are the mean of the members'."""
    paths = [r.path if isinstance(r, Run) else _path(r, "runs") for r in runs]
    out = _path(out, "out")
    _cortexfit.ensemble(paths, out, device)
    return Run(out, device=device)
