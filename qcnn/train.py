"""Training loop: ``fit`` / ``evaluate``, the training history, checkpoints and resume.

Randomness: ``fit`` takes one ``seed``. The batch order comes from a generator spawned from it;
stochastic layers (dropout, quantum layers) and gradient hooks (quantum backprop noise) own their
generators, which the model builders spawn from the same root. A checkpoint stores the state of
every one of these generators, so a run resumed after a crash produces exactly the weights of an
uninterrupted run.

Evaluation of a stochastic network (the quantum layers keep their noise at test time) uses a
fixed evaluation seed and restores the training generators afterwards, so the reported accuracy
is reproducible and evaluating never perturbs training.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.checks import check_int
from qcnn.data.batches import iterate_minibatches, num_batches
from qcnn.io import atomic_savez, atomic_write_json, atomic_write_text
from qcnn.nn.layers import Layer, walk
from qcnn.nn.losses import softmax_cross_entropy
from qcnn.nn.model import Sequential, load_npz_strict
from qcnn.nn.optim import Optimizer
from qcnn.nn.parallel import DataParallel
from qcnn.seeding import seed_stream

__all__ = [
    "StepLog",
    "EpochLog",
    "History",
    "evaluate",
    "fit",
    "generators_of",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_NAME",
]

CHECKPOINT_NAME = "checkpoint.npz"
EVAL_SEED = 20200101  # evaluation noise seed: fixed, so reported accuracies are reproducible


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
        "kind", "epoch", "batch", "images_seen", "loss", "loss_avg", "train_loss",
        "train_accuracy", "test_loss", "test_accuracy", "seconds", "eval_seconds",
    )  # fmt: skip

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


# ----------------------------------------------------------------------------------------------
# Random generators owned by the model and the optimizer
# ----------------------------------------------------------------------------------------------


def _random_layers(model: Layer) -> list[Layer]:
    """The layers of ``model`` that draw random numbers (``layer.rng`` set), in walk order."""
    return [layer for layer in walk(model) if layer.rng is not None]


def generators_of(
    model: Sequential, optimizer: Optimizer | None = None
) -> list[np.random.Generator]:
    """Every generator a training step draws from, in a fixed order: the layers' ``rng``
    (:func:`qcnn.nn.walk` order), then the random gradient hooks' ``rng``."""
    gens = [layer.rng for layer in walk(model) if layer.rng is not None]
    if optimizer is not None:
        gens += [
            h.rng
            for h in optimizer.grad_hooks
            if isinstance(getattr(h, "rng", None), np.random.Generator)
        ]
    return gens


class _EvalRandomness:
    """Context manager: reseed the model's generators for evaluation, restore them afterwards."""

    def __init__(self, model: Layer, seed: int) -> None:
        self.layers = _random_layers(model)
        self.seed = seed

    def __enter__(self) -> None:
        self.saved = [layer.rng for layer in self.layers]
        children = np.random.SeedSequence(self.seed).spawn(len(self.layers))
        for layer, child in zip(self.layers, children, strict=True):
            layer.rng = np.random.default_rng(child)

    def __exit__(self, *exc: object) -> None:
        for layer, rng in zip(self.layers, self.saved, strict=True):
            layer.rng = rng


# ----------------------------------------------------------------------------------------------
# evaluate / fit
# ----------------------------------------------------------------------------------------------


def evaluate(
    model: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 1000,
    seed: int = EVAL_SEED,
) -> tuple[float, float]:
    """Mean loss and accuracy (fraction in [0, 1]) of ``model`` on ``(x (N, ...), y (N,))``.

    Stochastic layers draw from generators seeded with ``seed`` (the same numbers every call);
    the model's own generators are restored afterwards.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"evaluate needs matching, non-empty x and y, got {len(x)} and {len(y)}")
    total_loss, correct = 0.0, 0
    with _EvalRandomness(model, seed):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model.forward(xb, training=False)
            loss, _ = softmax_cross_entropy(logits, yb)
            total_loss += loss * len(xb)
            correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def fit(
    model: Sequential,
    optimizer: Optimizer,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    epochs: int = 2,
    batch_size: int = 64,
    seed: int = 1,
    log_every: int = 10,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    desc: str = "train",
    on_epoch_end: Callable[[EpochLog, Sequential], None] | None = None,
    stop_after_batches: int | None = None,
    shards: int = 1,
) -> History:
    """Train ``model`` with ``optimizer`` on ``train = (x (N, C, H, W), y (N,))``.

    Logs the batch loss every ``log_every`` batches, evaluates on ``test`` after each epoch,
    and (with ``checkpoint_dir``) writes a checkpoint atomically at the end of every epoch.
    ``resume=True`` continues from that checkpoint when it exists; it refuses one written for a
    different model, batch size or seed. ``stop_after_batches`` simulates a crash (tests).
    ``shards > 1`` runs each training step on that many slices of the batch in threads
    (:class:`qcnn.nn.parallel.DataParallel`); results depend on ``shards``, which is recorded.
    """
    epochs = check_int(epochs, "epochs", min=0)
    batch_size = check_int(batch_size, "batch_size", min=1)
    log_every = check_int(log_every, "log_every", min=1)
    shards = check_int(shards, "shards", min=1)
    x_train, y_train = train
    if len(x_train) != len(y_train) or len(x_train) == 0:
        raise ValueError(
            f"train x and y must be non-empty and match, got {len(x_train)} and {len(y_train)}"
        )

    shuffle_rng = np.random.default_rng(seed_stream(seed, "shuffle"))
    history = History()
    start_epoch = 0
    run_meta = {
        "batch_size": batch_size, "seed": seed, "train_size": len(x_train),
        "optimizer": type(optimizer).__name__, "lr": optimizer.lr, "shards": shards,
    }  # fmt: skip
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if resume:
        if ckpt_path is None:
            raise ValueError("resume=True needs checkpoint_dir")
        if ckpt_path.exists():
            start_epoch, history = load_checkpoint(
                ckpt_path, model, optimizer, shuffle_rng, run_meta
            )

    parallel = DataParallel(model, shards)
    per_epoch = num_batches(len(x_train), batch_size)
    images_seen = history.epochs[-1].images_seen if history.epochs else 0
    batches_done = 0
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        bar = _progress(per_epoch, f"{desc} epoch {epoch + 1}/{epochs}", progress)
        loss_sum, correct, seen, window = 0.0, 0, 0, []
        for b, (xb, yb) in enumerate(
            iterate_minibatches(x_train, y_train, batch_size, rng=shuffle_rng)
        ):
            if stop_after_batches is not None and batches_done >= stop_after_batches:
                if bar is not None:
                    bar.close()
                return history
            loss, logits = parallel.train_step(xb, yb, softmax_cross_entropy)
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged: loss {loss} at epoch {epoch + 1}, batch {b + 1}"
                )
            optimizer.step()
            batches_done += 1
            images_seen += len(xb)
            loss_sum += loss * len(xb)
            seen += len(xb)
            correct += int((logits.argmax(axis=1) == yb).sum())
            window.append(loss)
            if (b + 1) % log_every == 0:
                history.steps.append(
                    StepLog(epoch + 1, b + 1, images_seen, loss, float(np.mean(window)))
                )
                window = []
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t0
        test_loss = test_acc = None
        t_eval = time.perf_counter()
        if test is not None:
            for layer in walk(model):  # layer statistics then describe the test evaluation
                layer.reset_stats()
            test_loss, test_acc = evaluate(model, *test)
        log = EpochLog(
            epoch + 1,
            images_seen,
            loss_sum / seen,
            correct / seen,
            test_loss,
            test_acc,
            train_seconds,
            time.perf_counter() - t_eval,
        )
        history.epochs.append(log)
        if on_epoch_end is not None:
            on_epoch_end(log, model)
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, model, optimizer, shuffle_rng, history, epoch + 1, run_meta)
    return history


# ----------------------------------------------------------------------------------------------
# Checkpoints: one .npz, no pickle. Arrays for weights/optimizer; JSON text for the rest.
# ----------------------------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike,
    model: Sequential,
    optimizer: Optimizer,
    shuffle_rng: np.random.Generator,
    history: History,
    epoch: int,
    run_meta: dict[str, Any],
) -> None:
    """Write model, optimizer, generator states and history to ``path`` atomically."""
    meta = {
        "epoch": epoch,
        "run": run_meta,
        "history": history.to_dict(),
        "rng": [g.bit_generator.state for g in (shuffle_rng, *generators_of(model, optimizer))],
        "format": 1,
    }
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.array(json.dumps(meta))  # a unicode scalar, not an object array
    atomic_savez(path, arrays)


def load_checkpoint(
    path: str | os.PathLike,
    model: Sequential,
    optimizer: Optimizer,
    shuffle_rng: np.random.Generator,
    run_meta: dict[str, Any] | None = None,
) -> tuple[int, History]:
    """Restore a checkpoint into ``model``, ``optimizer`` and the generators; returns
    ``(epochs_done, history)``. Raises ValueError if it belongs to a different run."""
    data = load_npz_strict(path)
    if "meta" not in data:
        raise ValueError(f"{os.fspath(path)!r} is not a qcnn checkpoint (no 'meta' entry)")
    meta = json.loads(str(data["meta"]))
    if run_meta is not None and meta.get("run") != run_meta:
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} was written by a different run: {meta.get('run')} != {run_meta}; "
            "use a new output directory or the same settings"
        )
    gens = [shuffle_rng, *generators_of(model, optimizer)]
    states = meta["rng"]
    if len(states) != len(gens):
        raise ValueError(f"checkpoint has {len(states)} generator states, the run has {len(gens)}")
    # All or nothing: a checkpoint that fails half-way leaves model and optimizer as they were.
    saved_model, saved_optim = model.state_dict(), optimizer.state_dict()
    try:
        model.load_state_dict(
            {k[len("model/") :]: v for k, v in data.items() if k.startswith("model/")}
        )
        optimizer.load_state_dict(
            {k[len("optim/") :]: v for k, v in data.items() if k.startswith("optim/")}
        )
    except (ValueError, KeyError) as exc:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optim)
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} does not fit this model/optimizer: {exc}"
        ) from exc
    for g, state in zip(gens, states, strict=True):
        g.bit_generator.state = state
    return int(meta["epoch"]), History.from_dict(meta["history"])


def write_history(out_dir: str | os.PathLike, history: History) -> None:
    """Write ``history.json`` and ``history.csv`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    atomic_write_json(out / "history.json", history.to_dict())
    atomic_write_text(out / "history.csv", history.to_csv())
