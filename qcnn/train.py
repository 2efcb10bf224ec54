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
from qcnn.data.augment import random_shifts
from qcnn.data.batches import iterate_minibatches, num_batches
from qcnn.io import (
    atomic_savez,
    atomic_write_json,
    atomic_write_text,
    json_differences,
    remove_stale_temp_files,
    to_jsonable,
)
from qcnn.nn.layers import Layer, inference, walk
from qcnn.nn.losses import softmax_cross_entropy
from qcnn.nn.model import Sequential, load_npz_strict
from qcnn.nn.optim import Optimizer
from qcnn.nn.parallel import DataParallel
from qcnn.seeding import seed_stream

__all__ = [
    "StepLog",
    "EpochLog",
    "BatchEnd",
    "BatchCallback",
    "History",
    "evaluate",
    "fit",
    "generators_of",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_meta",
    "history_problem",
    "CheckpointError",
    "RunMismatchError",
    "TrainingDiverged",
    "CHECKPOINT_NAME",
]

CHECKPOINT_NAME = "checkpoint.npz"
EVAL_SEED = 20200101  # evaluation noise seed: fixed, so reported accuracies are reproducible


class CheckpointError(ValueError):
    """A checkpoint file is damaged or not a qcnn checkpoint; the message names the file and
    what is wrong with it."""


class RunMismatchError(ValueError):
    """A checkpoint belongs to a run with other settings; the message names each setting."""


class TrainingDiverged(FloatingPointError):
    """The training loss (or a weight) became NaN or infinite.

    Attributes: ``run`` (the ``desc`` of :func:`fit`), ``epoch`` and ``batch`` (1-based),
    ``loss``. The message is one line naming them and the likely cause.
    """

    def __init__(self, run: str, epoch: int, batch: int, loss: float, cause: str) -> None:
        self.run, self.epoch, self.batch, self.loss = run, epoch, batch, loss
        super().__init__(
            f"{run}: training diverged at epoch {epoch}, batch {batch} (loss {loss}); {cause}"
        )


@dataclass
class StepLog:
    """One training-loss log, every ``log_every`` batches (the paper logs every 10)."""

    epoch: int
    batch: int
    images_seen: int
    loss: float  # loss of this batch, as the paper logs it
    loss_avg: float  # mean loss of the batches since the previous log


@dataclass(frozen=True)
class BatchEnd:
    """What a per-batch callback of :func:`fit` receives after each optimizer step."""

    epoch: int  # 1-based
    batch: int  # 1-based, within the epoch
    batches_per_epoch: int
    epochs: int  # the run's total
    loss: float  # this batch's mean loss
    images_seen: int  # since the run started (epochs restored from a checkpoint included)
    batches_done: int  # in this call of fit


# A per-batch callback; returning True stops the training right after this batch.
BatchCallback = Callable[[BatchEnd], bool | None]


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
        # a gradient hook is any callable; one that draws random numbers exposes ``hook.rng``
        gens += [
            rng
            for h in optimizer.grad_hooks
            if isinstance(rng := getattr(h, "rng", None), np.random.Generator)
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

    Runs in inference mode; stochastic layers draw from generators seeded with ``seed`` (the
    same numbers every call). The model's own generators and every layer's mode are restored
    afterwards.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"evaluate needs matching, non-empty x and y, got {len(x)} and {len(y)}")
    total_loss, correct = 0.0, 0
    with inference(model), _EvalRandomness(model, seed):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb)
            loss, _ = softmax_cross_entropy(logits, yb)
            total_loss += loss * len(xb)
            correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def _augment_rng(seed: int, epoch: int) -> np.random.Generator:
    """Epoch ``epoch``'s generator of the augmentation: child ``epoch`` of the seed's
    ``"augment"`` stream (no state to checkpoint)."""
    return np.random.default_rng(seed_stream(seed, "augment").spawn(epoch + 1)[epoch])


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
    callbacks: Iterable[BatchCallback] = (),
    shards: int = 1,
    run_spec: dict[str, Any] | None = None,
    eval_every: int = 1,
    augment: int = 0,
    migrate_spec: Callable[[Any, Any], Any] | None = None,
) -> History:
    """Train ``model`` with ``optimizer`` on ``train = (x (N, C, H, W), y (N,))``.

    Logs the batch loss every ``log_every`` batches, evaluates on ``test`` after each epoch,
    and (with ``checkpoint_dir``) writes a checkpoint atomically at the end of every epoch.
    ``resume=True`` continues from that checkpoint when it exists; it refuses one written for a
    run with other settings (:class:`RunMismatchError` naming them) and a damaged one
    (:class:`CheckpointError` naming the file). ``run_spec`` is the caller's complete,
    JSON-serialisable description of the run (every training and quantum setting, the data set
    and its sizes, the architecture): it is stored in the checkpoint and compared whole on
    resume, so settings added later are covered without touching this function.
    ``migrate_spec(stored, current)`` reads a checkpoint's stored ``run_spec`` in today's form
    before that comparison (e.g. fields added since it was written; the caller knows how).
    ``shards > 1`` runs each training step on that many slices of the batch in threads
    (:class:`qcnn.nn.parallel.DataParallel`); results depend on ``shards``, which is recorded.

    ``callbacks`` are called in order after every batch with a :class:`BatchEnd` (a progress
    display, a logger, an early stop...). If one returns True, training stops right there: the
    current epoch is abandoned (no epoch log, no checkpoint for it; the model keeps the weights
    of the last step) and the history of the finished epochs is returned. ``on_epoch_end(log,
    model)`` is called after each finished epoch. ``eval_every=k`` evaluates ``test`` only after
    every k-th epoch and the last (the other epochs' test figures are ``None``); evaluation never
    changes training.

    ``augment=m`` (default 0: off) shifts every training image by a random ``(dy, dx)`` in
    ``[-m, m]^2`` pixels (:func:`qcnn.data.augment.random_shifts`, background entering at the
    border) before each step; epoch e draws from its own child of ``seed_stream(seed,
    "augment")``, so a resumed run shifts exactly as an uninterrupted one. The test set is
    never shifted.

    Raises:
        TrainingDiverged: the loss or a weight became NaN/inf (the checkpoint of the last
            finished epoch is kept).
    """
    epochs = check_int(epochs, "epochs", min=0)
    batch_size = check_int(batch_size, "batch_size", min=1)
    log_every = check_int(log_every, "log_every", min=1)
    shards = check_int(shards, "shards", min=1)
    eval_every = check_int(eval_every, "eval_every", min=1)
    augment = check_int(augment, "augment", min=0)
    x_train, y_train = train
    if len(x_train) != len(y_train) or len(x_train) == 0:
        raise ValueError(
            f"train x and y must be non-empty and match, got {len(x_train)} and {len(y_train)}"
        )

    shuffle_rng = np.random.default_rng(seed_stream(seed, "shuffle"))
    history = History()
    start_epoch = 0
    run_meta = {
        "batch_size": batch_size,
        "seed": seed,
        "train_size": len(x_train),
        "test_size": None if test is None else len(test[0]),
        "optimizer": type(optimizer).__name__,
        "lr": optimizer.lr,
        "shards": shards,
        "optimizer_settings": _optimizer_settings(optimizer),
    }
    if augment:  # absent when off: checkpoints of runs without augmentation stay as they were
        run_meta["augment"] = augment
    if run_spec is not None:
        run_meta["spec"] = run_spec
    run_meta = json.loads(json.dumps(to_jsonable(run_meta)))  # as a checkpoint stores it
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if ckpt_path is not None:
        remove_stale_temp_files(ckpt_path.parent, recursive=False)  # left by a kill mid-write
    if resume:
        if ckpt_path is None:
            raise ValueError("resume=True needs checkpoint_dir")
        if ckpt_path.exists():
            start_epoch, history = load_checkpoint(
                ckpt_path, model, optimizer, shuffle_rng, run_meta, migrate_spec=migrate_spec
            )

    parallel = DataParallel(model, shards)
    per_epoch = num_batches(len(x_train), batch_size)
    images_seen = history.epochs[-1].images_seen if history.epochs else 0
    callbacks = list(callbacks)
    batches_done = 0
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        bar = _progress(per_epoch, f"{desc} epoch {epoch + 1}/{epochs}", progress)
        loss_sum, correct, seen, window = 0.0, 0, 0, []
        augment_rng = _augment_rng(seed, epoch) if augment else None
        for b, (xb, yb) in enumerate(
            iterate_minibatches(x_train, y_train, batch_size, rng=shuffle_rng)
        ):
            if augment_rng is not None:
                xb = random_shifts(xb, augment, augment_rng)
            loss, logits = parallel.train_step(xb, yb, softmax_cross_entropy)
            if not np.isfinite(loss):
                raise TrainingDiverged(desc, epoch + 1, b + 1, loss, _divergence_cause(optimizer))
            optimizer.step()
            if not _weights_finite(model):  # a finite loss with a step that blew up the weights
                raise TrainingDiverged(desc, epoch + 1, b + 1, loss, _divergence_cause(optimizer))
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
            if callbacks:
                info = BatchEnd(
                    epoch + 1, b + 1, per_epoch, epochs, loss, images_seen, batches_done
                )
                if any([bool(callback(info)) for callback in callbacks]):  # all of them see it
                    if bar is not None:
                        bar.close()
                    return history
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t0
        test_loss = test_acc = None
        t_eval = time.perf_counter()
        if test is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
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


def _optimizer_settings(optimizer: Optimizer) -> dict[str, Any]:
    """The optimizer's hyper-parameters (momentum, weight decay, ...) and gradient hooks."""
    settings = {
        k: getattr(optimizer, k)
        for k in ("momentum", "nesterov", "weight_decay", "betas", "eps")
        if hasattr(optimizer, k)
    }
    # every public scalar setting of a hook (delta, on, model, ...): new ones are covered too
    settings["grad_hooks"] = [
        {
            "type": type(h).__name__,
            **{
                k: v
                for k, v in sorted(vars(h).items())
                if not k.startswith("_") and isinstance(v, (str, int, float, bool))
            },
        }
        for h in optimizer.grad_hooks
    ]
    return settings


def _divergence_cause(optimizer: Optimizer) -> str:
    deltas = [delta for h in optimizer.grad_hooks if (delta := getattr(h, "delta", 0))]
    cause = f"likely cause: the learning rate ({optimizer.lr:g}) is too large"
    if deltas:
        cause += f", or the gradient noise delta ({deltas[0]:g}) is"
    return cause + "; lower it and start a new run"


def _weights_finite(model: Sequential) -> bool:
    # one pass over ~30k parameters: negligible next to a training step
    return all(np.isfinite(p.data).all() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# Checkpoints: one .npz, no pickle. Arrays for weights/optimizer; JSON text for the rest.
# ----------------------------------------------------------------------------------------------

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


def _meta_problem(meta: Any) -> str | None:
    """What is wrong with a checkpoint's metadata, or None."""
    if not isinstance(meta, dict):
        return f"its metadata is a JSON {type(meta).__name__}, not an object"
    missing = sorted({"format", "epoch", "run", "history", "rng"} - set(meta))
    if missing:
        return f"its metadata lacks {missing}"
    if meta["format"] != 1:
        return f"unknown format {meta['format']!r} (this qcnn reads format 1)"
    epoch = meta["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        return f"epoch = {epoch!r} is not a non-negative integer"
    if not isinstance(meta["run"], dict):
        return f"run = {meta['run']!r} is not an object"
    hist = meta["history"]
    if not isinstance(hist, dict) or not {"steps", "epochs"} <= set(hist):
        return "history is not an object with 'steps' and 'epochs'"
    problem = history_problem(hist["steps"], hist["epochs"])
    if problem:
        return problem
    if len(hist["epochs"]) != epoch:
        return f"epoch = {epoch} but the history holds {len(hist['epochs'])} epochs"
    rng = meta["rng"]
    if not isinstance(rng, list) or not all(
        isinstance(g, dict) and isinstance(g.get("bit_generator"), str) and "state" in g
        for g in rng
    ):
        return "rng is not a list of generator states"
    return None


def _read_checkpoint(
    path: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(meta, model arrays, optimizer arrays)`` of a checkpoint, every part validated.

    Raises:
        CheckpointError: anything is wrong (naming the file and what): not a readable .npz, no
            or unreadable metadata, missing keys, wrong types, unknown entries, NaN/inf arrays.
    """
    name = os.fspath(path)

    def damaged(what: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {name!r} is damaged: {what}. Delete it to train this run from the "
            "start, or restore a good copy"
        )

    try:
        data = load_npz_strict(path)
    except ValueError as exc:
        raise damaged(f"not a readable .npz file ({exc.__cause__ or exc})") from None
    if "meta" not in data:
        raise damaged("no 'meta' entry (not a qcnn checkpoint)")
    raw = data.pop("meta")
    if raw.dtype.kind != "U" or raw.shape != ():
        raise damaged(f"'meta' is a {raw.dtype} array of shape {raw.shape}, not text")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise damaged(
            f"its metadata is not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    problem = _meta_problem(meta)
    if problem:
        raise damaged(problem)
    model_state: dict[str, np.ndarray] = {}
    optim_state: dict[str, np.ndarray] = {}
    for key, value in data.items():
        prefix, _, rest = key.partition("/")
        if prefix not in ("model", "optim") or not rest:
            raise damaged(f"unexpected entry {key!r}")
        if value.dtype.kind not in "fiu":
            raise damaged(f"entry {key!r} has dtype {value.dtype}, not numbers")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise damaged(f"entry {key!r} holds NaN or infinity")
        (model_state if prefix == "model" else optim_state)[rest] = value
    if not model_state:
        raise damaged("it holds no model weights")
    return meta, model_state, optim_state


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The validated metadata of a checkpoint (``epoch`` done, ``run`` settings, ``history``).

    Raises:
        CheckpointError: the file is damaged (see :func:`load_checkpoint`).
    """
    return _read_checkpoint(path)[0]


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
    *,
    migrate_spec: Callable[[Any, Any], Any] | None = None,
) -> tuple[int, History]:
    """Restore a checkpoint into ``model``, ``optimizer`` and the generators; returns
    ``(epochs_done, history)``. All or nothing: on any error nothing is changed.

    Raises:
        CheckpointError: the file is damaged in any way (message names the file and the fault).
        RunMismatchError: it was written by a run whose settings differ from ``run_meta`` (the
            message names every differing setting with both values).
        ValueError: it does not fit this model or optimizer.
    """
    name = os.fspath(path)
    meta, model_state, optim_state = _read_checkpoint(path)
    if run_meta is not None and migrate_spec is not None and "spec" in meta["run"]:
        meta["run"] = {
            **meta["run"],
            "spec": migrate_spec(meta["run"]["spec"], run_meta.get("spec")),
        }
    if run_meta is not None and meta["run"] != run_meta:
        diffs = json_differences(meta["run"], run_meta, names=("checkpoint", "this run"))
        raise RunMismatchError(
            f"checkpoint {name!r} was written by a run with other settings: "
            + "; ".join(diffs)
            + ". Use a new output folder, or the checkpoint's settings"
        )
    gens = [shuffle_rng, *generators_of(model, optimizer)]
    states = meta["rng"]
    if len(states) != len(gens):
        raise CheckpointError(
            f"checkpoint {name!r} has {len(states)} generator states, the run has {len(gens)}"
        )
    for i, (g, state) in enumerate(zip(gens, states, strict=True)):
        probe = type(g.bit_generator)()  # validate on a throw-away generator first
        try:
            probe.state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {name!r} is damaged: generator state {i} is invalid ({exc})"
            ) from None
    try:
        history = History.from_dict(meta["history"])
    except TypeError as exc:  # unreachable after validation; kept as the last line of defence
        raise CheckpointError(f"checkpoint {name!r} is damaged: history ({exc})") from None
    # All or nothing: a checkpoint that fails half-way leaves model and optimizer as they were.
    saved_model, saved_optim = model.state_dict(), optimizer.state_dict()
    try:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
    except (ValueError, KeyError, TypeError) as exc:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optim)
        raise ValueError(f"checkpoint {name!r} does not fit this model/optimizer: {exc}") from exc
    for g, state in zip(gens, states, strict=True):
        g.bit_generator.state = state
    return meta["epoch"], history


def write_history(out_dir: str | os.PathLike, history: History) -> None:
    """Write ``history.json`` and ``history.csv`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    atomic_write_json(out / "history.json", history.to_dict())
    atomic_write_text(out / "history.csv", history.to_csv())
