"""cortexfit from Python: fit data-driven models of mouse V1 (Lurz et al. 2020) in a notebook.

The numbers are computed by the same Rust library as the ``cortexfit`` command line (its run
API, not the binary), with the GIL released; Ctrl-C stops a training run after the current
batch and keeps its last checkpoint (continue it with :func:`resume`).

Typical use::

    import cortexfit
    data, truth = cortexfit.simulate("sim", neurons=50)
    run = cortexfit.train("lurz2020", data=["sim"], out="run", seed=1,
                          overrides={"trainer.max_epochs": 5})
    summary, per_neuron = run.evaluate("sim", tier="test")
    positions = run.readout_positions()

Errors raise ``FileNotFoundError`` (a missing file or folder), ``ValueError`` (anything else
that is wrong with an input) or ``KeyboardInterrupt`` (an interrupted run), with the message the
command line prints.
"""

from ._cortexfit import presets, version
from .dataset import Dataset, GroundTruth, simulate
from .fitting import ensemble, resolve_config, resume, set_threads, train, transfer
from .progress import ProgressPrinter
from .run import Run, load_run

__version__ = version()

__all__ = [
    "Dataset",
    "GroundTruth",
    "ProgressPrinter",
    "Run",
    "ensemble",
    "load_run",
    "presets",
    "resolve_config",
    "resume",
    "set_threads",
    "simulate",
    "train",
    "transfer",
]
