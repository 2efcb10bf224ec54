"""Helpers shared by the test modules (import them: ``from tests.conftest import ...``)."""

from __future__ import annotations

from qcnn.train import BatchCallback, BatchEnd


def stop_after(batches: int) -> BatchCallback:
    """A ``fit`` callback that stops training after ``batches`` batches: simulates a crash
    (the unfinished epoch leaves no checkpoint)."""

    def callback(info: BatchEnd) -> bool:
        return info.batches_done >= batches

    return callback
