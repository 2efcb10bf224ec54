"""The training history: loss logs, epoch summaries, their JSON and CSV forms and validation.

:func:`qcnn.train.fit` returns a :class:`History`; checkpoints (:mod:`qcnn.checkpoint`) and run
records (:mod:`qcnn.experiments.runner`) store its ``to_dict()`` form, which
:func:`history_problem` validates.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.io import atomic_write_json, atomic_write_text

__all__ = [
    "StepLog",
    "EpochLog",
    "History",
    "rows_to_csv",
    "history_problem",
    "write_history",
]


@dataclass
class StepLog:
    """One training-loss log, every ``log_every`` batches (the paper logs every 10)."""

    epoch: int
    batch: int
    images_seen: int
    loss: float  # loss of this batch, as the paper logs it
    loss_avg: float  # mean loss of the batches since the previous log


@dataclass
class EpochLog:
    """End-of-epoch summary. Train figures are running means over the epoch's batches."""

    epoch: int
    images_seen: int
    train_loss: float
    train_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    seconds: float  # training time of the epoch (evaluation excluded)
    eval_seconds: float = 0.0


@dataclass
class History:
    """Everything ``fit`` measured; serialises to JSON and CSV."""

    steps: list[StepLog] = field(default_factory=list)
    epochs: list[EpochLog] = field(default_factory=list)

    @property
    def train_seconds(self) -> float:
        return float(sum(e.seconds for e in self.epochs))

    def final_loss(self, last: int = 12) -> float | None:
        """Mean of the last ``last`` logged batch losses (the paper's 'final training loss')."""
        if not self.steps:
            return None
        return float(np.mean([s.loss for s in self.steps[-last:]]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [asdict(s) for s in self.steps],
            "epochs": [asdict(e) for e in self.epochs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            steps=[StepLog(**s) for s in d.get("steps", [])],
            epochs=[EpochLog(**e) for e in d.get("epochs", [])],
        )

    CSV_COLUMNS = (
        "kind",
        "epoch",
        "batch",
        "images_seen",
        "loss",
        "loss_avg",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
        "eval_seconds",
    )

    def csv_rows(self, **extra: Any) -> list[dict[str, Any]]:
        """Rows for a CSV: ``kind`` is ``'step'`` (a loss log) or ``'epoch'`` (a summary)."""
        rows = [{**extra, "kind": "step", **asdict(s)} for s in self.steps]
        rows += [{**extra, "kind": "epoch", **asdict(e)} for e in self.epochs]
        return rows

    def to_csv(self) -> str:
        return rows_to_csv(self.csv_rows(), self.CSV_COLUMNS)


def rows_to_csv(rows: Iterable[dict[str, Any]], columns: Iterable[str]) -> str:
    """Serialise dict rows to CSV text (missing cells empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


_STEP_TYPES = {"epoch": int, "batch": int, "images_seen": int, "loss": float, "loss_avg": float}
_EPOCH_TYPES = {
    "epoch": int,
    "images_seen": int,
    "train_loss": float,
    "train_accuracy": float,
    "test_loss": (float, None),
    "test_accuracy": (float, None),
    "seconds": float,
    "eval_seconds": float,
}


def _fits(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is None and value is None:
            return True
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if k is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return bool(np.isfinite(value))
    return False


def _check_records(items: Any, types: dict[str, Any], what: str) -> str | None:
    if not isinstance(items, list):
        return f"history.{what} is {type(items).__name__}, not a list"
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != set(types):
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            return f"history.{what}[{i}] has keys {keys}, expected {sorted(types)}"
        for key, kind in types.items():
            if not _fits(item[key], kind):
                return f"history.{what}[{i}].{key} = {item[key]!r} is not a finite number"
    return None


def history_problem(steps: Any, epochs: Any) -> str | None:
    """What is wrong with serialised loss logs and epoch summaries (``History.to_dict`` parts:
    key sets, types, finite numbers), or None; used to validate checkpoints and run records."""
    return _check_records(steps, _STEP_TYPES, "steps") or _check_records(
        epochs, _EPOCH_TYPES, "epochs"
    )


def write_history(out_dir: str | os.PathLike, history: History) -> None:
    """Write ``history.json`` and ``history.csv`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    atomic_write_json(out / "history.json", history.to_dict())
    atomic_write_text(out / "history.csv", history.to_csv())
