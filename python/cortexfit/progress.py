"""Showing a fit's progress in a notebook or terminal, and the callback hook."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Dict, Optional, TextIO

Event = Dict[str, Any]
"""One event of a fit: ``{"event": kind, ...}`` with kind one of ``started``, ``resumed``,
``epoch_started``, ``batch``, ``epoch_trained``, ``epoch_finished`` (the epoch record of
``log.jsonl`` plus ``next_lr``), ``restored_best`` and ``stopped``."""


class ProgressPrinter:
    """Prints one line per epoch (as ``cortexfit train`` does) and, within an epoch, a line
    every ``every`` seconds with the batches done and the running loss."""

    def __init__(self, stream: Optional[TextIO] = None, every: float = 30.0) -> None:
        self.stream = stream
        self.every = every
        self._epoch: Optional[Event] = None
        self._batches = 0
        self._loss = 0.0
        self._last = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def __call__(self, event: Event) -> None:
        kind = event["event"]
        if kind == "started":
            self._print(
                f"training on {', '.join(event['data_keys'])} ({event['neurons']} neurons) in {event['run_dir']}"
            )
        elif kind == "resumed":
            self._print(
                f"resuming {event['run_dir']} after epoch {event['epoch']} "
                f"({event['minutes_trained']:.1f} min trained)"
            )
        elif kind == "epoch_started":
            self._epoch, self._batches, self._loss = event, 0, 0.0
            self._last = time.monotonic()
        elif kind == "batch":
            self._batches += 1
            self._loss += event["loss"]
            now = time.monotonic()
            if self._epoch is not None and now - self._last >= self.every:
                self._last = now
                self._print(
                    f"  epoch {self._epoch['epoch']}: {self._batches}/{self._epoch['batches']} batches, "
                    f"mean loss {self._loss / self._batches:.4f}"
                )
        elif kind == "epoch_finished":
            val = event.get("val_corr")
            val = float("nan") if val is None else val
            if event["epoch"] == 0:
                self._print(f"epoch 0: validation correlation {val:.4f}")
                return
            loss = event.get("train_loss")
            loss = float("nan") if loss is None else loss
            best = "  *best*" if event.get("improved") else ""
            cut = f"  lr → {event['next_lr']:.2e}" if event.get("lr_cut") else ""
            self._print(
                f"epoch {event['epoch']:3d}  lr {event['lr']:.2e}  train loss {loss:.4f}  "
                f"val corr {val:.4f}{best}{cut}  ({event['train_seconds']:.1f} s + {event['eval_seconds']:.1f} s)"
            )
        elif kind == "restored_best":
            self._print(
                f"round {event['finished_round'] + 1} ended: restored the best state (epoch "
                f"{event['best_epoch']}, validation correlation {event['best_objective']:.4f})"
            )
        elif kind == "stopped":
            self._print(
                f"stopped ({event['reason_text']}); best epoch {event['best_epoch']} with "
                f"validation correlation {event['best_objective']:.4f}"
            )


def relay(
    progress: bool, callback: Optional[Callable[[Event], Any]]
) -> Optional[Callable[[str, str], None]]:
    """The function the compiled module calls with ``(kind, payload_json)``."""
    printer = ProgressPrinter() if progress else None
    if printer is None and callback is None:
        return None

    def on_event(kind: str, payload: str) -> None:
        event = json.loads(payload)
        event["event"] = kind
        if printer is not None:
            printer(event)
        if callback is not None:
            callback(event)

    return on_event
