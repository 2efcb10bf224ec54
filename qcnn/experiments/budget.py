"""The default training budget of the commands: the paper's number of SGD steps, not its epochs.

KLP19 trains 2 epochs of full MNIST (60,000 images) in batches of 64: 2 x 938 = 1,876 SGD steps
(model §5). On a smaller training set, such as the 4,000-image subset qcnn falls back to offline
or a ``--train-size`` slice, 2 epochs are far fewer steps (126 on the subset) and neither network
learns much: plain SGD at lr 0.01 needs the steps, not the epochs. So when ``--epochs`` is not
given, a command trains ``ceil(paper steps / steps per epoch)`` epochs: 2 on full MNIST (the
paper's run, unchanged), 30 on the subset (1,890 steps). An explicit ``--epochs`` always wins.

Many short epochs would spend their time evaluating the test set after each one, so a run with
more than :data:`MAX_TEST_EVALUATIONS` epochs evaluates every k-th epoch (and always the last):
see :func:`eval_every`. Evaluation never changes training (it uses its own fixed seed).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "PAPER_EPOCHS",
    "PAPER_TRAIN_SIZE",
    "MAX_TEST_EVALUATIONS",
    "EpochBudget",
    "paper_steps",
    "resolve_epochs",
    "eval_every",
]

PAPER_EPOCHS = 2
PAPER_TRAIN_SIZE = 60_000
MAX_TEST_EVALUATIONS = 10


def paper_steps(batch_size: int) -> int:
    """SGD steps of the paper's run (2 epochs of 60,000 images) at ``batch_size``."""
    _check_positive(batch_size, "batch_size")
    return PAPER_EPOCHS * math.ceil(PAPER_TRAIN_SIZE / batch_size)


@dataclass(frozen=True)
class EpochBudget:
    """How many epochs a run trains, and why (recorded in ``results.json``)."""

    epochs: int
    steps_per_epoch: int  # ceil(train_size / batch_size): the last batch may be smaller
    steps: int  # epochs * steps_per_epoch
    paper_steps: int  # the paper's 2 epochs of 60,000 images at this batch size
    source: str  # "explicit" (--epochs), "paper" (2 epochs) or "scaled" (the paper's steps)
    reason: str  # one sentence for people

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_epochs(epochs: int | None, train_size: int, batch_size: int) -> EpochBudget:
    """The epochs to train on ``train_size`` images: ``epochs`` if given, else the paper's budget.

    Args:
        epochs: the user's ``--epochs`` (``None``: not given).
        train_size: number of training images actually used.
        batch_size: images per SGD step.

    Returns:
        The budget; with ``epochs=None``: ``max(2, ceil(paper_steps / steps_per_epoch))``
        epochs, which is 2 on full MNIST and at least the paper's steps on fewer images.
    """
    _check_positive(train_size, "train_size")
    budget = paper_steps(batch_size)
    per_epoch = math.ceil(train_size / batch_size)
    if epochs is not None:
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        return EpochBudget(
            epochs,
            per_epoch,
            epochs * per_epoch,
            budget,
            "explicit",
            f"--epochs {epochs} as given ({epochs * per_epoch:,} SGD steps)",
        )
    n = max(PAPER_EPOCHS, math.ceil(budget / per_epoch))
    if n == PAPER_EPOCHS:
        steps = PAPER_EPOCHS * per_epoch
        return EpochBudget(
            PAPER_EPOCHS,
            per_epoch,
            steps,
            budget,
            "paper",
            f"the paper's {PAPER_EPOCHS} epochs ({steps:,} SGD steps of {batch_size})",
        )
    reason = (
        f"{train_size:,} training images: {n} epochs = {n * per_epoch:,} SGD steps of {batch_size}, "
        f"the paper's budget ({PAPER_EPOCHS} epochs of {PAPER_TRAIN_SIZE:,} images = {budget:,} "
        f"steps; {PAPER_EPOCHS} epochs here would be only {PAPER_EPOCHS * per_epoch:,} steps); "
        f"--epochs N overrides"
    )
    return EpochBudget(n, per_epoch, n * per_epoch, budget, "scaled", reason)


def eval_every(epochs: int) -> int:
    """Evaluate the test set every k-th epoch (and the last): k = 1 up to
    :data:`MAX_TEST_EVALUATIONS` epochs; beyond, k grows so that a run makes at most that many
    evaluations plus the last one."""
    return max(1, math.ceil(epochs / MAX_TEST_EVALUATIONS))


def _check_positive(value: int, name: str) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
