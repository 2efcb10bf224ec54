"""Training loop: ``fit`` / ``evaluate``, its settings (:class:`TrainConfig`) and callbacks.

Randomness: ``fit`` takes one ``seed``. The batch order comes from a generator spawned from it;
stochastic layers (dropout, quantum layers) and gradient hooks (quantum backprop noise) own their
generators, which the model builders spawn from the same root. A checkpoint
(:mod:`qcnn.checkpoint`) stores the state of every one of these generators, so a run resumed
after a crash produces exactly the weights of an uninterrupted run.

Evaluation of a stochastic network (the quantum layers keep their noise at test time) uses a
fixed evaluation seed and restores the training generators afterwards, so the reported accuracy
is reproducible and evaluating never perturbs training.

The history (:mod:`qcnn.history`) and the checkpoint names (:mod:`qcnn.checkpoint`) are
re-exported here, where callers of ``fit`` have always found them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    RunMismatchError,
    generators_of,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from qcnn.checks import check_int
from qcnn.data.augment import random_shifts
from qcnn.data.batches import iterate_minibatches, num_batches
from qcnn.history import (
    EpochLog,
    History,
    StepLog,
    history_problem,
    rows_to_csv,
    write_history,
)
from qcnn.io import remove_stale_temp_files, to_jsonable
from qcnn.nn.layers import Layer, inference, walk
from qcnn.nn.losses import softmax_cross_entropy
from qcnn.nn.model import Sequential
from qcnn.nn.optim import Optimizer
from qcnn.nn.parallel import DataParallel
from qcnn.seeding import seed_stream

__all__ = [
    "TrainConfig",
    "Callback",
    "ProgressBar",
    "BatchEnd",
    "BatchCallback",
    "evaluate",
    "fit",
    "TrainingDiverged",
    "EVAL_SEED",
    "EVAL_BATCH",
    # re-exported from qcnn.history and qcnn.checkpoint
    "StepLog",
    "EpochLog",
    "History",
    "rows_to_csv",
    "history_problem",
    "write_history",
    "CHECKPOINT_NAME",
    "CheckpointError",
    "RunMismatchError",
    "generators_of",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_meta",
]

EVAL_SEED = 20200101  # evaluation noise seed: fixed, so reported accuracies are reproducible
# The batch of :func:`evaluate` (and of fit's test evaluations): a quantum layer samples up to
# this many images at once, which the commands' memory check (check_sampling_memory) uses.
EVAL_BATCH = 1000


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


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of :func:`fit`, validated on construction (``ValueError``/``TypeError``
    naming the setting).

    ``epochs`` in total (a resumed run counts the restored ones); mini-batches of ``batch_size``
    in an order drawn from ``seed``; the batch loss logged every ``log_every`` batches; the test
    set evaluated after every ``eval_every``-th epoch and the last (the other epochs' test
    figures are None; evaluation never changes training); ``shards > 1`` trains each batch as
    that many slices in threads (:class:`qcnn.nn.parallel.DataParallel`; results depend on
    ``shards``, which is recorded). With ``checkpoint_dir`` a checkpoint is written atomically
    after every epoch; ``resume`` continues from it (refusing one written for other settings).
    ``run_spec``: the caller's complete, JSON-serialisable description of the run (training and
    quantum settings, data set and sizes, architecture), stored in the checkpoint and compared
    whole on resume, so settings added later are covered without touching :func:`fit`.
    ``migrate_spec(stored, current)`` reads a checkpoint's stored ``run_spec`` in today's form
    before that comparison (e.g. fields added since it was written; the caller knows how).
    ``augment=m`` (default 0: off) shifts every training image by a random ``(dy, dx)`` in
    ``[-m, m]^2`` pixels (:func:`qcnn.data.augment.random_shifts`, background entering at the
    border) before each step; epoch e draws from its own child of ``seed_stream(seed,
    "augment")``, so a resumed run shifts exactly as an uninterrupted one. The test set is never
    shifted. ``progress`` shows a progress bar (:class:`ProgressBar`) labelled ``desc``;
    ``desc`` also names the run in :class:`TrainingDiverged`.
    """

    epochs: int = 2
    batch_size: int = 64
    seed: int = 1
    log_every: int = 10
    shards: int = 1
    eval_every: int = 1
    checkpoint_dir: str | os.PathLike | None = None
    resume: bool = False
    run_spec: dict[str, Any] | None = None
    migrate_spec: Callable[[Any, Any], Any] | None = None
    augment: int = 0
    progress: bool = False
    desc: str = "train"

    def __post_init__(self) -> None:
        for name, low in (
            ("epochs", 0),
            ("batch_size", 1),
            ("log_every", 1),
            ("shards", 1),
            ("eval_every", 1),
            ("augment", 0),
        ):
            object.__setattr__(self, name, check_int(getattr(self, name), name, min=low))
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (field names), validated; TypeError for an unknown name."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"TrainConfig has no setting {', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **changes)


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


class Callback:
    """What :func:`fit` calls as it trains; override the methods you need (each a no-op here).

    A plain function is accepted wherever a callback is and is called as :meth:`on_batch_end`.
    """

    def on_epoch_begin(self, epoch: int, epochs: int, batches: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` starts; it has ``batches`` batches."""

    def on_batch_end(self, info: BatchEnd) -> bool | None:
        """After each optimizer step; return True to stop training right after this batch (the
        epoch is abandoned: no epoch log, no checkpoint for it)."""
        return None

    def on_epoch_end(self, log: EpochLog, model: Sequential) -> None:
        """After each finished epoch (and its evaluation), before its checkpoint is written."""

    def on_train_end(self) -> None:
        """When :func:`fit` returns or raises (always, once)."""


class ProgressBar(Callback):
    """A tqdm bar per epoch with the last batch loss (what ``TrainConfig.progress`` shows)."""

    def __init__(self, desc: str = "train") -> None:
        self.desc = desc
        self._bar: Any = None

    def on_epoch_begin(self, epoch: int, epochs: int, batches: int) -> None:
        from tqdm.auto import tqdm

        self.on_train_end()
        self._bar = tqdm(
            total=batches,
            desc=f"{self.desc} epoch {epoch}/{epochs}",
            unit="batch",
            leave=False,
            dynamic_ncols=True,
        )

    def on_batch_end(self, info: BatchEnd) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{info.loss:.4f}", refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, log: EpochLog, model: Sequential) -> None:
        self.on_train_end()

    def on_train_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _FunctionCallback(Callback):
    """A plain per-batch function as a :class:`Callback`."""

    def __init__(self, fn: BatchCallback) -> None:
        self.fn = fn

    def on_batch_end(self, info: BatchEnd) -> bool | None:
        return self.fn(info)


def _as_callbacks(callbacks: Iterable[Callback | BatchCallback]) -> list[Callback]:
    out: list[Callback] = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_FunctionCallback(cb))
        else:
            raise TypeError(f"a callback must be a Callback or a function, got {cb!r}")
    return out


# ----------------------------------------------------------------------------------------------
# Random generators owned by the model, in evaluation
# ----------------------------------------------------------------------------------------------


def _random_layers(model: Layer) -> list[Layer]:
    """The layers of ``model`` that draw random numbers (``layer.rng`` set), in walk order."""
    return [layer for layer in walk(model) if layer.rng is not None]


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
    batch_size: int = EVAL_BATCH,
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


def _augment_rng(seed: int, epoch: int) -> np.random.Generator:
    """Epoch ``epoch``'s generator of the augmentation: child ``epoch`` of the seed's
    ``"augment"`` stream (no state to checkpoint)."""
    return np.random.default_rng(seed_stream(seed, "augment").spawn(epoch + 1)[epoch])


def fit(
    model: Sequential,
    optimizer: Optimizer,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None = None,
    config: TrainConfig | None = None,
    *,
    callbacks: Iterable[Callback | BatchCallback] = (),
    **settings: Any,
) -> History:
    """Train ``model`` with ``optimizer`` on ``train = (x (N, C, H, W), y (N,))`` as ``config``
    says (:class:`TrainConfig`; default settings when None), evaluating on ``test``.

    ``settings`` are :class:`TrainConfig` fields given by name, applied over ``config``: the
    call form ``fit(model, opt, train, test, epochs=2, batch_size=64, seed=1, ...)`` is the same
    as passing ``TrainConfig(epochs=2, batch_size=64, seed=1, ...)``; an unknown name is a
    TypeError.

    Logs the batch loss every ``log_every`` batches, evaluates on ``test`` after each epoch (see
    ``eval_every``) and, with ``checkpoint_dir``, writes a checkpoint after every epoch.
    ``resume`` refuses a checkpoint written for a run with other settings
    (:class:`~qcnn.checkpoint.RunMismatchError` naming them) and a damaged one
    (:class:`~qcnn.checkpoint.CheckpointError` naming the file).

    ``callbacks`` (:class:`Callback` objects or per-batch functions taking a :class:`BatchEnd`)
    are called in order; each sees every event. If one returns True after a batch, training stops
    right there: the current epoch is abandoned (no epoch log, no checkpoint for it; the model
    keeps the weights of the last step) and the history of the finished epochs is returned.

    Raises:
        TrainingDiverged: the loss or a weight became NaN/inf (the checkpoint of the last
            finished epoch is kept).
    """
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"fit: config must be a TrainConfig, got {type(config).__name__}")
    try:
        cfg = (config if config is not None else TrainConfig()).replace(**settings)
    except TypeError as exc:
        raise TypeError(f"fit: {exc}") from None
    handlers = _as_callbacks(callbacks)
    if cfg.progress:
        handlers.insert(0, ProgressBar(cfg.desc))
    try:
        return _train(model, optimizer, train, test, cfg, handlers)
    finally:
        for cb in handlers:
            cb.on_train_end()


def _run_meta(
    cfg: TrainConfig,
    optimizer: Optimizer,
    train_size: int,
    test: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    """The settings a checkpoint records and a resume compares (checkpoint format 1: these
    keys and values exactly, or older checkpoints would no longer resume)."""
    run_meta = {
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "train_size": train_size,
        "test_size": None if test is None else len(test[0]),
        "optimizer": type(optimizer).__name__,
        "lr": optimizer.lr,
        "shards": cfg.shards,
        "optimizer_settings": _optimizer_settings(optimizer),
    }
    if cfg.augment:  # absent when off: checkpoints of runs without augmentation stay as they were
        run_meta["augment"] = cfg.augment
    if cfg.run_spec is not None:
        run_meta["spec"] = cfg.run_spec
    return json.loads(json.dumps(to_jsonable(run_meta)))  # as a checkpoint stores it


def _train(
    model: Sequential,
    optimizer: Optimizer,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    cfg: TrainConfig,
    callbacks: list[Callback],
) -> History:
    """The loop of :func:`fit`, with validated settings."""
    x_train, y_train = train
    if len(x_train) != len(y_train) or len(x_train) == 0:
        raise ValueError(
            f"train x and y must be non-empty and match, got {len(x_train)} and {len(y_train)}"
        )
    epochs, batch_size, desc = cfg.epochs, cfg.batch_size, cfg.desc
    shuffle_rng = np.random.default_rng(seed_stream(cfg.seed, "shuffle"))
    history = History()
    start_epoch = 0
    run_meta = _run_meta(cfg, optimizer, len(x_train), test)
    ckpt_path = None
    if cfg.checkpoint_dir is not None:
        ckpt_path = Path(cfg.checkpoint_dir) / CHECKPOINT_NAME
        remove_stale_temp_files(ckpt_path.parent, recursive=False)  # left by a kill mid-write
    if cfg.resume and ckpt_path is not None and ckpt_path.exists():
        start_epoch, history = load_checkpoint(
            ckpt_path, model, optimizer, shuffle_rng, run_meta, migrate_spec=cfg.migrate_spec
        )

    parallel = DataParallel(model, cfg.shards)
    per_epoch = num_batches(len(x_train), batch_size)
    images_seen = history.epochs[-1].images_seen if history.epochs else 0
    batches_done = 0
    for epoch in range(start_epoch, epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch + 1, epochs, per_epoch)
        t0 = time.perf_counter()
        loss_sum, correct, seen, window = 0.0, 0, 0, []
        augment_rng = _augment_rng(cfg.seed, epoch) if cfg.augment else None
        for b, (xb, yb) in enumerate(
            iterate_minibatches(x_train, y_train, batch_size, rng=shuffle_rng)
        ):
            if augment_rng is not None:
                xb = random_shifts(xb, cfg.augment, augment_rng)
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
            if (b + 1) % cfg.log_every == 0:
                history.steps.append(
                    StepLog(epoch + 1, b + 1, images_seen, loss, float(np.mean(window)))
                )
                window = []
            if callbacks:
                info = BatchEnd(
                    epoch + 1, b + 1, per_epoch, epochs, loss, images_seen, batches_done
                )
                if any([bool(cb.on_batch_end(info)) for cb in callbacks]):  # all of them see it
                    return history
        train_seconds = time.perf_counter() - t0
        test_loss = test_acc = None
        t_eval = time.perf_counter()
        if test is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs):
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
        for cb in callbacks:
            cb.on_epoch_end(log, model)
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
