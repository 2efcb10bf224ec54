"""Training checkpoints: one ``.npz`` file, no pickle; its format and its validation.

Arrays ``model/<parameter name>`` (the weights), ``optim/<name>`` (the optimizer's state) and one
unicode scalar ``meta``: JSON with ``format`` (1), ``epoch`` (epochs done), ``run`` (the settings
of the run that wrote it, compared whole on resume), ``history`` (:class:`qcnn.history.History`
as a dict) and ``rng`` (the bit-generator states: the batch order's first, then
:func:`generators_of` the model and optimizer). Written atomically; read all or nothing, every
part validated, so a damaged file gives one :class:`CheckpointError` naming the file and the
fault. Format 1 is the only format so far: files written before this module existed (issue 18)
are format 1 too and resume unchanged (``tests/test_checkpoint_format.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from qcnn.history import History, history_problem
from qcnn.io import atomic_savez, json_differences
from qcnn.nn.layers import walk
from qcnn.nn.model import Sequential, load_npz_strict
from qcnn.nn.optim import Optimizer

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "CheckpointError",
    "RunMismatchError",
    "generators_of",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_meta",
]

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = 1  # the format this qcnn writes and reads


class CheckpointError(ValueError):
    """A checkpoint file is damaged or not a qcnn checkpoint; the message names the file and
    what is wrong with it."""


class RunMismatchError(ValueError):
    """A checkpoint belongs to a run with other settings; the message names each setting."""


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


def _meta_problem(meta: Any) -> str | None:
    """What is wrong with a checkpoint's metadata, or None."""
    if not isinstance(meta, dict):
        return f"its metadata is a JSON {type(meta).__name__}, not an object"
    missing = sorted({"format", "epoch", "run", "history", "rng"} - set(meta))
    if missing:
        return f"its metadata lacks {missing}"
    if meta["format"] != FORMAT:
        return f"unknown format {meta['format']!r} (this qcnn reads format {FORMAT})"
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
        "format": FORMAT,
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
    ``migrate_spec(stored, current)`` reads the stored ``run_spec`` in today's form before it is
    compared with ``run_meta``'s (e.g. fields added since it was written; the caller knows how).

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
