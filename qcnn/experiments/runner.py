"""One training run, shared by the ``mnist`` command and the ``sweep``: spec, data, train, record.

A run record is a plain dict (the ``runs[*]`` entries of ``results.json``)::

    {"model": "cnn" | "qcnn" | "cnn-weights-quantum-forward", "arch",
     "architecture": {"parameters", "input_shape", "conv_layers": [{kernel, kernel_volume, ...}]},
     "quantum": null | {...},
     "seed", "epochs", "batch_size", "lr", "momentum", "test_accuracy", "test_loss",
     "final_train_loss", "train_seconds", "history": [epoch records], "loss_log": [step logs]}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qcnn import __version__
from qcnn.checkpoint import CHECKPOINT_NAME, RunMismatchError, read_checkpoint_meta
from qcnn.data import load_dataset
from qcnn.data.registry import migrate_dataset_info
from qcnn.experiments.ablation import differing_groups
from qcnn.experiments.budget import eval_every
from qcnn.history import History, history_problem
from qcnn.io import atomic_write_json, json_differences, to_jsonable
from qcnn.models import (
    architecture_info,
    build_model,
    make_optimizer,
    quantum_layers,
    transfer_weights,
)
from qcnn.nn import Sequential, walk
from qcnn.nn.model import load_npz_strict
from qcnn.quantum import QuantumConfig, QuantumConv2D
from qcnn.quantum.layer_stats import watch_statistics
from qcnn.train import TrainConfig, evaluate, fit

__all__ = [
    "config_tags",
    "Data",
    "RunSpec",
    "RecordError",
    "load_data",
    "train_run",
    "run_spec_of",
    "load_finished_record",
    "quantum_forward_run",
    "environment_info",
    "portable_paths",
]


class RecordError(ValueError):
    """A run record (``run.json``) or its weights (``model.npz``) are damaged; the message
    names the file and what is wrong."""


@dataclass(frozen=True, eq=False)
class Data:
    """A normalised data set: x ``(N, C, H, W)`` float32, y ``(N,)`` int64, and its provenance
    (``info``: name, source, sizes, ``shape`` ``[C, H, W]``, ``classes``, normalisation)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: dict[str, Any]

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def classes(self) -> int:
        return int(self.info.get("classes", 10))


def load_data(
    data_dir: str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    dataset: str = "mnist",
) -> Data:
    """Load ``dataset`` from the registry (:func:`qcnn.data.load_dataset`: ``mnist``,
    ``fashion-mnist``, ``digits``, ``npz:PATH``) and keep the first ``*_size`` images."""
    ds = load_dataset(dataset, data_dir, train_size=train_size, test_size=test_size)
    info = {**ds.info(), "normalisation": ds.normalisation}
    return Data(ds.x_train, ds.y_train, ds.x_test, ds.y_test, info)


@dataclass(frozen=True)
class RunSpec:
    """What to train: a classical (``config`` None) or quantum network and its optimisation."""

    arch: str = "paper"
    config: QuantumConfig | None = None
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.0
    seed: int = 1
    log_every: int = 10
    shards: int = 1  # batch slices trained in parallel threads (qcnn.nn.parallel); part of the run
    tags: dict[str, Any] = field(default_factory=dict, compare=False)
    activation: str | None = None  # the architecture's squashing function (None: its own)
    augment: int = 0  # random shifts of up to this many pixels per training image (0: off)

    @property
    def model(self) -> str:
        return "cnn" if self.config is None else "qcnn"

    @property
    def run_id(self) -> str:
        """A file-system friendly name that identifies the run's settings."""
        parts = [self.model, self.arch]
        if self.config is not None:
            c = self.config
            samp = (
                f"sigma{c.sigma:g}"
                if c.sigma is not None
                else (f"eta{c.eta:g}" if c.eta else "nosample")
            )
            parts += [f"eps{c.eps:g}", f"C{c.cap:g}", samp, f"delta{c.delta:g}"]
            if c.ipe != "gaussian":
                parts.append(c.ipe if c.ipe == "exact" else f"ae{c.resolved_ae_bits}")
            parts += config_tags(c)
        if self.activation is not None:
            parts.append(self.activation)
        if self.augment:
            parts.append(f"aug{self.augment}")
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config"] = None if self.config is None else self.config.to_dict()
        # omitted when off: the specs (and so the checkpoints) of runs before these options
        # existed stay what they were, and resume
        for name, off in (("activation", None), ("augment", 0)):
            if d[name] == off:
                del d[name]
        return d


def config_tags(c: QuantumConfig) -> list[str]:
    """Short names of the settings that differ from notebook mode, beyond eps, C, sigma/eta,
    delta and the IPE model (so that every distinct configuration has its own run id):
    :meth:`QuantumConfig.tags` (generated from the fields' metadata: ``['theory']`` for the
    theory preset, ``['theory-vN']`` for its earlier version N, else one tag per option), and
    ``['theory', ...]`` for the preset with one option group changed
    (:mod:`qcnn.experiments.ablation`; the tags that the change adds, and ``no-TAG`` for those
    it removes)."""
    if c.preset_tag() is not None:
        return c.tags()
    mine = c.option_tags()
    try:
        current = c.preset_like("theory")
    except ValueError:  # e.g. eps = 0: no theory preset with these numbers
        return mine
    diff = differing_groups(current, c)
    if len(diff) == 1 and "common" not in diff:
        theirs = current.option_tags()
        return [
            "theory",
            *(t for t in mine if t not in theirs),
            *(f"no-{t}" for t in theirs if t not in mine),
        ]
    return mine


def _layer_stats(model: Sequential) -> list[dict[str, Any]]:
    """Statistics of each quantum layer; ``layer`` is its position in :func:`qcnn.nn.walk` order
    after the model itself (for a flat model: its index in ``model.layers``)."""
    return [
        {"layer": i, "name": type(layer).__name__, "stats": _observed(layer)}
        for i, layer in enumerate(list(walk(model))[1:])
        if isinstance(layer, QuantumConv2D)
    ]


def _observed(layer: QuantumConv2D) -> dict[str, float]:
    return {} if layer.statistics is None else layer.statistics.mean()


def _evaluate_with_stats(
    model: Sequential, data: Data
) -> tuple[float, float, list[dict[str, Any]]]:
    watch_statistics(model, training=False)
    for layer in quantum_layers(model):
        layer.reset_stats()
    loss, acc = evaluate(model, data.x_test, data.y_test)
    return loss, acc, _layer_stats(model)


def run_spec_of(spec: RunSpec, data: Data) -> dict[str, Any]:
    """The complete specification of a run as JSON: every training and quantum setting, the
    architecture and shards (``spec``) and the data set with its sizes and source (``data``).

    Stored in checkpoints and records and compared whole on resume, so a field that anyone adds
    to :class:`RunSpec`, :class:`~qcnn.quantum.QuantumConfig` or ``Data.info`` is covered
    without further code."""
    return json.loads(json.dumps(to_jsonable({"run": spec.to_dict(), "dataset": data.info})))


def migrate_run_spec(stored: Any, current: Any) -> Any:
    """A stored :func:`run_spec_of` (a checkpoint's or a record's) in today's form, for the
    comparison ``--resume`` makes: the quantum configuration through
    :meth:`QuantumConfig.from_dict` (fields added since take their defaults, former names are
    read), the data set through :func:`~qcnn.data.registry.migrate_dataset_info` (entries
    written with the machine's path and no checksum). Anything else unchanged."""
    if not isinstance(stored, dict):
        return stored
    out = dict(stored)
    run = out.get("run")
    if isinstance(run, dict) and isinstance(run.get("config"), dict):
        try:
            run = {**run, "config": QuantumConfig.from_dict(run["config"]).to_dict()}
        except (TypeError, ValueError):
            pass  # left as it is: the comparison names the difference
        out["run"] = run
    now = current.get("dataset") if isinstance(current, dict) else None
    if isinstance(out.get("dataset"), dict) and isinstance(now, dict):
        out["dataset"] = migrate_dataset_info(out["dataset"], now)
    return out


def _describe_resume(spec: RunSpec, ckpt: Path) -> str:
    done = read_checkpoint_meta(ckpt)["epoch"]
    if done >= spec.epochs:
        return f"{spec.run_id}: finished ({done} of {spec.epochs} epochs); using its checkpoint"
    return (
        f"{spec.run_id}: resuming after epoch {done} of {spec.epochs} from {ckpt} "
        f"(continues at epoch {done + 1}, batch 1)"
    )


def train_run(
    spec: RunSpec,
    data: Data,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Sequential]:
    """Train ``spec`` on ``data``; checkpoints and ``model.npz`` go into ``run_dir``.

    With ``resume`` an existing checkpoint in ``run_dir`` is continued; ``log`` (e.g. a print to
    stderr) is told from which epoch, or that the run had finished. The checkpoint must have been
    written for the same complete specification (:func:`run_spec_of`), else
    :class:`~qcnn.train.RunMismatchError` names the settings that differ.

    Returns the run record and the trained model.
    """
    model = build_model(
        spec.arch,
        spec.config,
        seed=spec.seed,
        input_shape=data.shape,
        classes=data.classes,
        activation=spec.activation,
    )
    optimizer = make_optimizer(model, spec.lr, spec.momentum, spec.config, seed=spec.seed)
    # the records hold the statistics of the test evaluations (fit resets them before each)
    watch_statistics(model, training=False)
    if resume and run_dir is not None and (Path(run_dir) / CHECKPOINT_NAME).exists() and log:
        log(_describe_resume(spec, Path(run_dir) / CHECKPOINT_NAME))
    config = TrainConfig(
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        seed=spec.seed,
        log_every=spec.log_every,
        shards=spec.shards,
        eval_every=eval_every(spec.epochs),
        augment=spec.augment,
        checkpoint_dir=run_dir,
        resume=resume,
        run_spec=run_spec_of(spec, data),
        migrate_spec=migrate_run_spec,
        progress=progress,
        desc=spec.run_id,
    )
    history: History = fit(
        model, optimizer, (data.x_train, data.y_train), (data.x_test, data.y_test), config
    )
    t0 = time.perf_counter()
    eval_seconds = sum(e.eval_seconds for e in history.epochs)
    stats = _layer_stats(model)
    test_loss: float | None
    test_acc: float | None
    if not history.epochs or any(not s["stats"] for s in stats):
        # e.g. a finished run restored from its checkpoint: evaluate again (same fixed seed)
        test_loss, test_acc, stats = _evaluate_with_stats(model, data)
    else:
        test_loss, test_acc = history.epochs[-1].test_loss, history.epochs[-1].test_accuracy
    eval_seconds += time.perf_counter() - t0
    if run_dir is not None:
        model.save(Path(run_dir) / "model.npz")
    record = {
        "model": spec.model,
        "arch": spec.arch,
        "spec": spec.to_dict(),
        "dataset": data.info,
        "architecture": architecture_info(model, data.shape),
        "quantum": None
        if spec.config is None
        else {"config": spec.config.to_dict(), "layers": stats},
        "seed": spec.seed,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "momentum": spec.momentum,
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "final_train_loss": history.final_loss(12),
        "train_seconds": history.train_seconds,
        "eval_seconds": eval_seconds,
        "history": [dataclasses.asdict(e) for e in history.epochs],
        "loss_log": [dataclasses.asdict(s) for s in history.steps],
        **({"tags": spec.tags} if spec.tags else {}),
    }
    if run_dir is not None:
        atomic_write_json(Path(run_dir) / "run.json", record)
    return record, model


_RECORD_TYPES: dict[str, Any] = {
    "model": str,
    "spec": dict,
    "dataset": dict,
    "seed": int,
    "history": list,
    "loss_log": list,
}


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"it is a JSON {type(record).__name__}, not an object"
    required = set(_RECORD_TYPES) | {"test_accuracy", "test_loss", "quantum", "train_seconds"}
    missing = sorted(required - set(record))
    if missing:
        return f"it lacks {missing}"
    for key, kind in _RECORD_TYPES.items():
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            return f"{key} = {record[key]!r} is not a {kind.__name__}"
    for key, lo, hi in (
        ("test_accuracy", 0.0, 1.0),
        ("test_loss", 0.0, math.inf),
        ("train_seconds", 0.0, math.inf),
    ):
        v = record[key]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            return f"{key} = {v!r} is not a finite number in [{lo:g}, {hi:g}]"
    if record["quantum"] is not None and not (
        isinstance(record["quantum"], dict) and isinstance(record["quantum"].get("config"), dict)
    ):
        return "quantum is neither null nor an object with a config"
    return history_problem(record["loss_log"], record["history"])


def load_finished_record(run_dir: Path, spec: RunSpec, data: Data) -> dict[str, Any] | None:
    """The record of the finished run in ``run_dir`` (``run.json`` + ``model.npz``), or None if
    it has not finished (no ``run.json``).

    Raises:
        RecordError: ``run.json`` or ``model.npz`` is damaged (not JSON, missing keys, wrong
            types, accuracy outside [0, 1], NaN/inf weights, ...): the message names the file.
        RunMismatchError: it was written for other settings or data (naming each of them).
    """
    path = run_dir / "run.json"
    if not path.exists():
        return None

    def damaged(file: Path, what: str) -> RecordError:
        return RecordError(
            f"run record {str(file)!r} is damaged: {what}. Delete the folder "
            f"{str(run_dir)!r} to train this run again"
        )

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise damaged(path, f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise damaged(path, f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    problem = _record_problem(record)
    if problem:
        raise damaged(path, problem)
    stored_spec = dict(record["spec"])
    stored_spec.setdefault("shards", 1)  # records written before sharding existed ran unsharded
    if isinstance(stored_spec.get("config"), dict):
        # records written before a QuantumConfig field existed (its default then applied) or
        # under a former field name: read as the same configuration
        try:
            stored_spec["config"] = QuantumConfig.from_dict(stored_spec["config"]).to_dict()
        except (TypeError, ValueError) as exc:
            raise damaged(path, f"its quantum configuration is invalid ({exc})") from None
    current = run_spec_of(spec, data)
    dataset = record["dataset"]
    if isinstance(dataset, dict):  # written before records carried a checksum: migrate
        dataset = migrate_dataset_info(dataset, current["dataset"])
    stored = {"run": stored_spec, "dataset": dataset}
    if stored != current:
        diffs = json_differences(stored, current, names=("record", "this run"))
        raise RunMismatchError(
            f"run record {str(path)!r} was written by a run with other settings: "
            + "; ".join(diffs)
            + ". Use a new output folder, or the record's settings"
        )
    weights = run_dir / "model.npz"
    try:
        state = load_npz_strict(weights)
    except FileNotFoundError:
        raise damaged(weights, "the finished run's weights are missing") from None
    except ValueError as exc:
        raise damaged(weights, str(exc.__cause__ or exc)) from None
    for name, value in state.items():
        if value.dtype.kind != "f" or not np.isfinite(value).all():
            raise damaged(weights, f"parameter {name} is not finite floating point data")
    return record


def quantum_forward_run(
    cnn: Sequential,
    cnn_record: dict[str, Any],
    config: QuantumConfig,
    data: Data,
    arch: str = "paper",
) -> dict[str, Any]:
    """Evaluate a trained CNN's weights under the quantum forward pass (no training)."""
    qcnn = build_model(
        arch,
        config,
        seed=cnn_record["seed"],
        input_shape=data.shape,
        classes=data.classes,
        activation=cnn_record.get("spec", {}).get("activation"),
    )
    transfer_weights(cnn, qcnn)
    t0 = time.perf_counter()
    test_loss, test_acc, stats = _evaluate_with_stats(qcnn, data)
    return {
        "model": "cnn-weights-quantum-forward",
        "arch": arch,
        "architecture": architecture_info(qcnn, data.shape),
        "quantum": {"config": config.to_dict(), "layers": stats},
        "seed": cnn_record["seed"],
        "epochs": cnn_record["epochs"],
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "final_train_loss": None,
        "train_seconds": 0.0,
        "eval_seconds": time.perf_counter() - t0,
        "history": [],
        "loss_log": [],
    }


def portable_paths(value: Any, run_dir: str | os.PathLike[str]) -> Any:
    """``value`` (a string, or lists and dicts of them, recursively) with every absolute path
    written relative to ``run_dir`` (``--flag=/abs``, ``kind:/abs`` too; URLs not), so that a record carries no path of
    the machine that wrote it (issue 17); other values unchanged."""
    if isinstance(value, dict):
        return {k: portable_paths(v, run_dir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(portable_paths(v, run_dir) for v in value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return value
    if os.path.isabs(value):
        return os.path.relpath(value, run_dir)
    # "--flag=/abs" and "kind:/abs" (e.g. --dataset npz:/abs/file.npz), but not URLs
    for sep in ("=", ":"):
        head, found, rest = value.partition(sep)
        if found and os.path.isabs(rest) and not rest.startswith("//") and "/" not in head:
            return f"{head}{sep}{os.path.relpath(rest, run_dir)}"
    return value


def environment_info(run_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Versions and machine, recorded next to every result; the command's absolute paths are
    written relative to ``run_dir`` (default: the working directory)."""
    base = os.getcwd() if run_dir is None else run_dir
    argv = portable_paths(list(sys.argv[1:]), base)
    return {
        "qcnn": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "command": " ".join([Path(sys.argv[0]).name, *argv]),
    }
