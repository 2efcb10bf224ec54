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
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qcnn import __version__
from qcnn.data import load_dataset
from qcnn.experiments.budget import eval_every
from qcnn.io import atomic_write_json
from qcnn.models import (
    architecture_info,
    build_model,
    make_optimizer,
    quantum_layers,
    transfer_weights,
)
from qcnn.nn import Sequential, walk
from qcnn.quantum import QuantumConfig, QuantumConv2D
from qcnn.train import History, evaluate, fit

__all__ = [
    "config_tags",
    "Data",
    "RunSpec",
    "load_data",
    "train_run",
    "quantum_forward_run",
    "environment_info",
]


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
        parts.append(f"seed{self.seed}")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config"] = None if self.config is None else self.config.to_dict()
        return d


def config_tags(c: QuantumConfig) -> list[str]:
    """Short names of the settings that differ from notebook mode, beyond eps, C, sigma/eta,
    delta and the IPE model (so that every distinct configuration has its own run id):
    ``['theory']`` for the theory preset, else one tag per option."""
    try:
        preset = QuantumConfig.theory(c.eps, c.cap, c.delta, c.sigma or 0.5, c.failure_prob or 0.01)
    except ValueError:  # e.g. eps = 0: no theory preset with these numbers
        preset = None
    if c == preset:
        return ["theory"]
    tags = []
    if c.failure_prob is not None:
        tags.append(f"fp{c.failure_prob:g}")
    if c.ae_median != 1:
        tags.append(f"k{c.ae_median}")
    if c.noise_order != "paper":
        tags.append("ordertheory")
    if c.noise_per_shot:
        tags.append("pershot")
    if c.sampled_value != "exact":
        tags.append("tomovalues" + ("-aenorm" if c.tomography_normaliser != "exact" else ""))
    if c.sampling_power != 1:
        tags.append(f"power{c.sampling_power}")
    if c.gradient_model != "gaussian":
        tags.append("gradlinf")
    if c.gradient_signs != "kp":
        tags.append("exactsigns")
    if c.gradient_on != "all":
        tags.append("gradquantum")
    if c.input_gradient_noise:
        tags.append("inputgrad")
    if c.norms != "per_image":
        tags.append("firstimage")
    return tags


def _layer_stats(model: Sequential) -> list[dict[str, Any]]:
    """Statistics of each quantum layer; ``layer`` is its position in :func:`qcnn.nn.walk` order
    after the model itself (for a flat model: its index in ``model.layers``)."""
    return [
        {"layer": i, "name": type(layer).__name__, "stats": layer.stats_mean()}
        for i, layer in enumerate(list(walk(model))[1:])
        if isinstance(layer, QuantumConv2D)
    ]


def _evaluate_with_stats(
    model: Sequential, data: Data
) -> tuple[float, float, list[dict[str, Any]]]:
    for layer in quantum_layers(model):
        layer.reset_stats()
    loss, acc = evaluate(model, data.x_test, data.y_test)
    return loss, acc, _layer_stats(model)


def train_run(
    spec: RunSpec,
    data: Data,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
) -> tuple[dict[str, Any], Sequential]:
    """Train ``spec`` on ``data``; checkpoints and ``model.npz`` go into ``run_dir``.

    Returns the run record and the trained model.
    """
    model = build_model(
        spec.arch, spec.config, seed=spec.seed, input_shape=data.shape, classes=data.classes
    )
    optimizer = make_optimizer(model, spec.lr, spec.momentum, spec.config, seed=spec.seed)
    history: History = fit(
        model,
        optimizer,
        (data.x_train, data.y_train),
        (data.x_test, data.y_test),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        seed=spec.seed,
        log_every=spec.log_every,
        shards=spec.shards,
        eval_every=eval_every(spec.epochs),
        checkpoint_dir=run_dir,
        resume=resume,
        progress=progress,
        desc=spec.model,
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


def quantum_forward_run(
    cnn: Sequential,
    cnn_record: dict[str, Any],
    config: QuantumConfig,
    data: Data,
    arch: str = "paper",
) -> dict[str, Any]:
    """Evaluate a trained CNN's weights under the quantum forward pass (no training)."""
    qcnn = build_model(
        arch, config, seed=cnn_record["seed"], input_shape=data.shape, classes=data.classes
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


def environment_info() -> dict[str, Any]:
    """Versions and machine, recorded next to every result."""
    return {
        "qcnn": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
