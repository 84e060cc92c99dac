"""Type stubs of the cortexfit Python package (completion and `help()` in Jupyter)."""

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .progress import Event as Event, ProgressPrinter as ProgressPrinter

PathLike = Union[str, os.PathLike[str]]
Overrides = Union[Mapping[str, Any], Sequence[str], None]
__version__: str

def presets() -> List[str]:
    """The names of the published configurations (``train(preset_or_config=...)``)."""

def version() -> str: ...
def set_threads(threads: int) -> int:
    """Sizes the CPU thread pool once per process (like ``--threads``)."""

class Dataset:
    """A recording in the FileTree layout (folder or ``.zip``), loaded into numpy arrays."""

    path: str
    data_key: str
    image_shape: Tuple[int, int, int]
    images: np.ndarray
    """float32, trials × C × H × W (raw)."""
    responses: np.ndarray
    """float32, trials × neurons (raw)."""
    behavior: Optional[np.ndarray]
    pupil_center: Optional[np.ndarray]
    tiers: np.ndarray
    frame_image_id: np.ndarray
    trial_idx: Optional[np.ndarray]
    unit_ids: np.ndarray
    cell_motor_coordinates: Optional[np.ndarray]
    area: Optional[np.ndarray]
    layer: Optional[np.ndarray]
    animal_ids: Optional[np.ndarray]
    def __init__(self, path: PathLike, data_key: Optional[str] = None) -> None: ...
    @property
    def n_trials(self) -> int: ...
    @property
    def n_neurons(self) -> int: ...
    def tier_indices(self, tier: str) -> np.ndarray:
        """The trials (file indices) of ``tier``."""
    def info(self) -> Dict[str, Any]:
        """What ``cortexfit info`` shows."""

class GroundTruth:
    """The truth behind a simulated dataset."""

    raw: Dict[str, Any]
    config: Dict[str, Any]
    summary: Dict[str, Any]
    neurons: List[Dict[str, Any]]
    rf_centers_grid: np.ndarray
    """float64, neurons × 2, grid coordinates (compare with ``Run.readout_positions``)."""
    test_trials: np.ndarray
    test_rates: np.ndarray
    cell_types: np.ndarray
    def __init__(self, path: PathLike) -> None: ...

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
    """Simulates a mouse-V1 session into ``out``; returns the dataset and its ground truth."""

class Run:
    """A trained run (or ensemble) in evaluation mode."""

    path: str
    config: Dict[str, Any]
    data_keys: List[str]
    member_seeds: List[int]
    member_dirs: List[str]
    image_shape: Tuple[int, int, int]
    n_behaviors: int
    needs_behavior: bool
    needs_pupil_center: bool
    def __init__(self, path: PathLike, device: str = "cpu") -> None: ...
    @property
    def is_ensemble(self) -> bool: ...
    @property
    def config_toml(self) -> str: ...
    @property
    def summary(self) -> Optional[Dict[str, Any]]: ...
    def log(self) -> List[Dict[str, Any]]:
        """The epoch records of ``log.jsonl``."""
    def unit_ids(self, data_key: Optional[str] = None) -> np.ndarray: ...
    def predict(
        self,
        images: Any,
        behavior: Any = None,
        pupil_center: Any = None,
        data_key: Optional[str] = None,
    ) -> np.ndarray:
        """float32 predictions (trials × neurons) for inputs in the model's (normalized) units."""
    def inputs(self, dataset: Union[Dataset, PathLike], tier: str = "test") -> Dict[str, Any]:
        """A tier of a dataset as the run prepares it (arrays ready for ``predict``)."""
    def predict_tier(
        self, dataset: Union[Dataset, PathLike], tier: str = "test"
    ) -> Tuple[np.ndarray, np.ndarray]:
        """(predictions, trials) exactly as ``cortexfit predict`` writes them."""
    def evaluate(self, dataset: Union[Dataset, PathLike], tier: str = "test") -> Tuple[Dict[str, Any], Any]:
        """(summary dict, per-neuron DataFrame or dict of arrays), like ``cortexfit evaluate``."""
    def export(self, out: PathLike) -> Optional[str]:
        """Writes the best model for PyTorch (.pth / .pt / .pth.tar or .safetensors); returns the
        neuralpredictors Python lines that load it, or None."""
    def readout_positions(self, data_key: Optional[str] = None) -> Optional[np.ndarray]:
        """Readout positions μ (x, y), neurons × 2, grid coordinates."""
    def mei(
        self,
        dataset: Union[Dataset, PathLike],
        out: PathLike,
        *,
        top: Optional[int] = None,
        units: Optional[Sequence[int]] = None,
        seed: int = 0,
        blur_sigma: float = 1.0,
        steps: int = 300,
        contrast: float = 1.0,
        batch: int = 100,
    ) -> Dict[str, Any]:
        """Most exciting inputs (``images``, ``table``); files as ``cortexfit insilico mei``."""
    def tuning(
        self,
        dataset: Union[Dataset, PathLike],
        out: PathLike,
        *,
        top: Optional[int] = None,
        units: Optional[Sequence[int]] = None,
        orientations: int = 16,
        phases: int = 8,
        disc: Optional[float] = None,
        figure_neurons: int = 12,
    ) -> Dict[str, Any]:
        """Grating tuning (``responses``, ``table``); files as ``cortexfit insilico tuning``."""
    def receptive_fields(
        self,
        dataset: Union[Dataset, PathLike],
        out: PathLike,
        *,
        top: Optional[int] = None,
        units: Optional[Sequence[int]] = None,
        samples: int = 8,
        seed: int = 0,
    ) -> Dict[str, Any]:
        """RF maps (``linear``, ``energy``, ``table``); files as ``cortexfit insilico rf``."""

def load_run(path: Union[PathLike, Run], device: str = "cpu") -> Run:
    """Opens a run or ensemble directory."""

def train(
    preset_or_config: Union[str, PathLike, Mapping[str, Any]],
    data: Union[PathLike, Iterable[PathLike], None] = None,
    out: Optional[PathLike] = None,
    overrides: Overrides = None,
    seed: Optional[int] = None,
    max_minutes: Optional[float] = None,
    progress: bool = True,
    callback: Optional[Callable[[Event], Any]] = None,
    device: str = "cpu",
) -> Run:
    """Trains a run like ``cortexfit train``; Ctrl-C stops it keeping the last checkpoint."""

def resume(
    run: Union[PathLike, Run],
    progress: bool = True,
    callback: Optional[Callable[[Event], Any]] = None,
    device: str = "cpu",
) -> Run:
    """Continues a killed or interrupted run."""

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
    """New readouts on a frozen core, like ``cortexfit transfer``."""

def ensemble(runs: Iterable[Union[PathLike, Run]], out: PathLike, device: str = "cpu") -> Run:
    """Groups finished runs (different seeds) into an ensemble."""

def resolve_config(
    preset_or_config: Union[str, PathLike, Mapping[str, Any]],
    data: Union[PathLike, Iterable[PathLike], None] = None,
    overrides: Overrides = None,
    seed: Optional[int] = None,
    max_minutes: Optional[float] = None,
) -> Dict[str, Any]:
    """The configuration ``train`` would use, as a dict."""
