"""Where the sweep's runs execute: in this process, a local process pool, or a Dask cluster.

Every executor yields one :class:`RunOutcome` per run, in the order the runs finish, and never
changes a number: a run's result depends on its :class:`~qcnn.experiments.runner.RunSpec` and the
data only. Each run owns its seeded generators, and every run uses exactly one BLAS thread
(:func:`one_blas_thread`) whatever the executor: OpenBLAS's matrix products round differently
with 1 and 2 threads, so without the pin a run would depend on the machine's core count.

- :func:`run_in_process`: one run after the other in this process (``--workers 1``).
- :func:`run_in_pool`: ``--workers N`` processes on this machine. They write each run's
  checkpoints, ``model.npz`` and ``run.json`` into ``--out`` directly (same disk). A watchdog
  thread in every worker exits it as soon as its parent is gone (killed with ``-9`` too), so no
  orphan keeps training.
- :func:`run_on_dask`: every run is a task on a ``dask.distributed`` cluster (``--scheduler
  tcp://HOST:PORT``, or ``local:N`` for a ``LocalCluster`` of N single-threaded worker
  processes). Workers need no shared disk: the prepared data set is scattered to each worker
  once, and each run comes back as its record (JSON text) and weights (``.npz`` bytes), which the
  client validates and writes atomically into ``--out``. A worker checkpoints into a scratch
  folder of its own machine (``$TMPDIR/qcnn-sweep/<run id>-<spec hash>``): a retry on the same
  machine resumes from it, a retry elsewhere starts over (the same numbers either way, because
  resume is exact); the folder is removed once the run's result is handed back. If a worker
  dies mid-run, the scheduler runs the task again on another worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.runner import Data, RunSpec, load_data, run_spec_of, train_run
from qcnn.io import atomic_write_bytes, atomic_write_json
from qcnn.train import TrainingDiverged

__all__ = [
    "RunOutcome",
    "parse_scheduler",
    "run_in_process",
    "run_in_pool",
    "run_on_dask",
    "write_outcome",
    "one_blas_thread",
    "WATCHDOG_INTERVAL_S",
]

WATCHDOG_INTERVAL_S = 0.5


@dataclass
class RunOutcome:
    """One finished run: its record, or the one-line error of a run that diverged.

    ``weights`` holds the ``.npz`` bytes of the trained network when the run's files were made
    on another machine (Dask); ``None`` when the worker wrote them into ``--out`` itself.
    """

    spec: RunSpec
    record: dict[str, Any] | None
    weights: bytes | None = None
    error: str | None = None


Todo = list[tuple[RunSpec, Path]]


# ----------------------------------------------------------------------------------------------
# In this process
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (restored afterwards): same numbers everywhere."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def run_in_process(todo: Todo, data: Data) -> Iterator[RunOutcome]:
    for spec, run_dir in todo:
        try:
            with one_blas_thread():
                record, _ = train_run(spec, data, run_dir, resume=True, progress=False)
        except TrainingDiverged as exc:
            yield RunOutcome(spec, None, error=str(exc))
            continue
        yield RunOutcome(spec, record)


# ----------------------------------------------------------------------------------------------
# Local process pool
# ----------------------------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit this process as soon as ``parent`` is no longer its parent.

    ``os.getppid()`` changes when the parent dies (the worker is re-parented), whatever killed
    it; polled by a daemon thread, so a worker in the middle of a run stops within
    :data:`WATCHDOG_INTERVAL_S` instead of training on for nobody.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(WATCHDOG_INTERVAL_S)

    threading.Thread(target=watch, name="qcnn-parent-watchdog", daemon=True).start()


def _pool_task(spec: RunSpec, data_args: dict[str, Any], run_dir: str) -> RunOutcome:
    data = load_data(**data_args)
    try:
        with one_blas_thread():
            record, _ = train_run(spec, data, run_dir, resume=True, progress=False)
    except TrainingDiverged as exc:
        return RunOutcome(spec, None, error=str(exc))
    return RunOutcome(spec, record)


def run_in_pool(todo: Todo, data_args: dict[str, Any], workers: int) -> Iterator[RunOutcome]:
    """``workers`` processes (spawned: a fresh interpreter each), each watching its parent."""
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_watch_parent, initargs=(os.getpid(),)
    )
    with pool:
        futures = [pool.submit(_pool_task, spec, data_args, str(rd)) for spec, rd in todo]
        for fut in cf.as_completed(futures):
            yield fut.result()


# ----------------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------------


def parse_scheduler(text: str) -> tuple[str, str | int]:
    """``'local:N'`` -> ``('local', N)``; ``'tcp://HOST:PORT'`` (or ``tls://``) ->
    ``('address', text)``. Raises ValueError with the accepted forms."""
    form = "tcp://HOST:PORT (an existing dask scheduler) or local:N (N local workers)"
    if text.startswith("local:"):
        n = text[len("local:") :]
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise ValueError(f"--scheduler {text!r}: N must be an integer 1..256 ({form})")
        return "local", int(n)
    scheme, sep, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    if sep and scheme in ("tcp", "tls") and host and port.isdigit() and 1 <= int(port) <= 65535:
        return "address", text
    raise ValueError(f"--scheduler {text!r} is not {form}")


def _scratch_dir(spec: RunSpec, data: Data) -> Path:
    key = json.dumps(run_spec_of(spec, data), sort_keys=True).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "qcnn-sweep" / f"{spec.run_id}-{digest}"


def _dask_task(spec: RunSpec, data: Data) -> dict[str, Any]:
    """Runs on a Dask worker: train (resuming from this machine's scratch checkpoint if a
    previous attempt left one), return the record as JSON text and the weights as npz bytes."""
    # Fresh, aligned, writable copies: arrays deserialised from the network may be read-only
    # views at any byte offset, and numpy's SIMD reductions round differently on unaligned data.
    data = Data(
        np.array(data.x_train, copy=True),
        np.array(data.y_train, copy=True),
        np.array(data.x_test, copy=True),
        np.array(data.y_test, copy=True),
        data.info,
    )
    scratch = _scratch_dir(spec, data)
    try:
        with one_blas_thread():
            record, model = train_run(spec, data, scratch, resume=True, progress=False)
    except TrainingDiverged as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        return {"status": "diverged", "error": str(exc)}
    buf = io.BytesIO()
    np.savez(buf, **model.state_dict())  # type: ignore[arg-type]  # numpy's stub: names -> arrays
    shutil.rmtree(scratch, ignore_errors=True)
    return {"status": "ok", "record": json.dumps(record), "weights": buf.getvalue()}


def _outcome_from_task(spec: RunSpec, result: Any) -> RunOutcome:
    if not isinstance(result, dict) or result.get("status") not in ("ok", "diverged"):
        raise ValueError(f"{spec.run_id}: a worker returned an unexpected result")
    if result["status"] == "diverged":
        return RunOutcome(spec, None, error=str(result["error"]))
    return RunOutcome(spec, json.loads(result["record"]), weights=bytes(result["weights"]))


@contextlib.contextmanager
def _dask_client(scheduler: str) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed: pip install 'qcnn[dask]'") from None
    kind, value = parse_scheduler(scheduler)
    if kind == "local":
        import logging

        with (
            LocalCluster(
                n_workers=int(value),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(str(value), timeout="15s")
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot reach the Dask scheduler at {value}: {exc}") from None
    with client:
        yield client


def run_on_dask(
    todo: Todo, data: Data, scheduler: str, *, on_start: Callable[[Any], None] | None = None
) -> Iterator[RunOutcome]:
    """Submit every run to the cluster; yield outcomes as they finish (see the module doc).

    ``on_start(client)`` is called once the tasks are submitted (tests use it to find the
    workers' process ids)."""
    from distributed import as_completed

    with _dask_client(scheduler) as client:
        shared = client.scatter(data, broadcast=True)  # the data set travels once per worker
        futures = {}
        for spec, _ in todo:
            key = f"qcnn-run-{spec.run_id}-{os.urandom(4).hex()}"
            futures[client.submit(_dask_task, spec, shared, key=key, pure=False)] = spec
        if on_start is not None:
            on_start(client)
        for fut in as_completed(futures):
            yield _outcome_from_task(futures[fut], fut.result())


# ----------------------------------------------------------------------------------------------
# Writing a result that came back from another machine
# ----------------------------------------------------------------------------------------------


def write_outcome(outcome: RunOutcome, run_dir: Path) -> None:
    """Write a run's ``model.npz`` (from ``outcome.weights``) and then ``run.json`` atomically
    into ``run_dir`` (``run.json`` last: its presence marks the run finished). The weights are
    read back with ``allow_pickle=False`` and must be finite."""
    if outcome.weights is None or outcome.record is None:
        return
    with np.load(io.BytesIO(outcome.weights), allow_pickle=False) as npz:
        for name in npz.files:
            value = npz[name]
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise ValueError(f"{outcome.spec.run_id}: parameter {name} came back non-finite")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "model.npz", outcome.weights)
    atomic_write_json(run_dir / "run.json", outcome.record)
