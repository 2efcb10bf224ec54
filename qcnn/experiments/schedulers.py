"""Where the sweep's runs execute: in this process, a local process pool, or a Dask cluster.

(Named ``schedulers``, formerly ``executors``, so as not to be confused with
:mod:`qcnn.quantum.executor`, which performs a layer's quantum steps.) Every way of running yields
one :class:`RunOutcome` per run, in the order the runs finish, and never changes a number: a
run's result depends on its :class:`~qcnn.experiments.runner.RunSpec` and the data only. Each run
owns its seeded generators, and every run uses exactly one BLAS thread
(:func:`qcnn.nn.parallel.one_blas_thread`) wherever it runs: OpenBLAS's matrix products round
differently with 1 and 2 threads, so without the pin a run would depend on the machine's core
count.

- :func:`run_in_process`: one run after the other in this process (``--workers 1``).
- :func:`run_in_pool`: ``--workers N`` processes on this machine. The parent hands each worker
  the data set it loaded (so every process trains on the same arrays, whatever the data
  source); the workers write each run's checkpoints, ``model.npz`` and ``run.json`` into
  ``--out`` directly (same disk). A watchdog thread in every worker exits it as soon as its
  parent is gone (killed with ``-9`` too), so no orphan keeps training.
- :func:`run_on_dask`: every run is a task on a ``dask.distributed`` cluster (``--scheduler
  tcp://HOST:PORT``, or ``local:N`` for a ``LocalCluster`` of N single-threaded worker
  processes). First the client checks that the scheduler and every worker run the same Python,
  numpy and qcnn source files as itself (:func:`environment_fingerprint`; the scheduler
  unpickles the tasks, the workers train), and refuses the cluster naming each difference;
  every task checks it again (for workers that join later). Workers need no shared disk and no
  data files: the prepared data set is scattered to each worker once (and sent again if every
  worker that held it died), and each run comes back as its record (JSON text) and weights
  (``.npz`` bytes), which the client validates and writes atomically into ``--out``. A worker
  checkpoints into a scratch folder of its own machine (``$TMPDIR/qcnn-sweep/<run id>-<spec
  hash>``): a retry on the same machine resumes from it, a retry elsewhere starts over (the
  same numbers either way, because resume is exact); the folder is removed once the run's result
  is handed back. If a worker dies mid-run, the scheduler runs the task again on another worker
  (or on the worker its nanny restarts). A task that fails on the cluster for another reason
  (e.g. it killed three workers) is reported like a diverged run; the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.runner import Data, RunSpec, run_spec_of, train_run
from qcnn.io import atomic_write_bytes, atomic_write_json
from qcnn.nn.parallel import one_blas_thread
from qcnn.train import TrainingDiverged

__all__ = [
    "ClusterMismatch",
    "RunOutcome",
    "check_cluster",
    "environment_fingerprint",
    "fingerprint_differences",
    "parse_scheduler",
    "run_in_process",
    "run_in_pool",
    "run_on_dask",
    "write_outcome",
    "MAX_DATA_RESENDS",
    "WATCHDOG_INTERVAL_S",
]

WATCHDOG_INTERVAL_S = 0.5
# How often the data set is scattered again after every worker that held it died (each resend
# restarts the unfinished runs, which resume from their scratch checkpoints where they can).
MAX_DATA_RESENDS = 3


@dataclass
class RunOutcome:
    """One finished run: its record, or the one-line error of a run that did not finish.

    ``weights`` holds the ``.npz`` bytes of the trained network when the run's files were made
    on another machine (Dask); ``None`` when the worker wrote them into ``--out`` itself.
    ``failed`` tells an error of the cluster (the task could not run) from a run that diverged.
    """

    spec: RunSpec
    record: dict[str, Any] | None
    weights: bytes | None = None
    error: str | None = None
    failed: bool = False


Todo = list[tuple[RunSpec, Path]]


def _own_copy(data: Data) -> Data:
    """Fresh, aligned, writable copies of the arrays: arrays deserialised from a pipe or the
    network may be read-only views at any byte offset, and numpy's SIMD reductions round
    differently on unaligned data."""
    return Data(
        np.array(data.x_train, copy=True),
        np.array(data.y_train, copy=True),
        np.array(data.x_test, copy=True),
        np.array(data.y_test, copy=True),
        data.info,
    )


# ----------------------------------------------------------------------------------------------
# In this process
# ----------------------------------------------------------------------------------------------


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


_pool_data: Data | None = None  # the parent's data set, in each pool worker


def _pool_init(parent: int, data: Data) -> None:
    global _pool_data
    _watch_parent(parent)
    _pool_data = _own_copy(data)


def _pool_task(spec: RunSpec, run_dir: str) -> RunOutcome:
    if _pool_data is None:
        raise RuntimeError("a pool worker started without the data set (_pool_init)")
    try:
        with one_blas_thread():
            record, _ = train_run(spec, _pool_data, run_dir, resume=True, progress=False)
    except TrainingDiverged as exc:
        return RunOutcome(spec, None, error=str(exc))
    return RunOutcome(spec, record)


def run_in_pool(todo: Todo, data: Data, workers: int) -> Iterator[RunOutcome]:
    """``workers`` processes (spawned: a fresh interpreter each), each watching its parent and
    training on ``data`` (sent once per worker: loading it again there could find other data,
    e.g. a download that the parent could not make)."""
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_pool_init, initargs=(os.getpid(), data)
    )
    with pool:
        futures = [pool.submit(_pool_task, spec, str(rd)) for spec, rd in todo]
        for fut in cf.as_completed(futures):
            yield fut.result()


# ----------------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------------


class ClusterMismatch(RuntimeError):
    """The Dask scheduler or a worker cannot compute the runs as this machine would."""


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


@functools.lru_cache(maxsize=1)
def environment_fingerprint() -> dict[str, Any]:
    """What must be the same wherever a sweep's runs are computed: the Python and numpy
    versions, qcnn's version and the sha256 of each of its source files (``qcnn/...py``, a
    prefix of 16 hex digits). Two checkouts of the same version with one file edited differ."""
    import qcnn

    root = Path(qcnn.__file__).resolve().parent
    files = {
        path.relative_to(root.parent).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(root.rglob("*.py"))
    }
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "qcnn": qcnn.__version__,
        "files": files,
    }


def _few(names: list[str], most: int = 3) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def fingerprint_differences(here: dict[str, Any], there: dict[str, Any]) -> list[str]:
    """What ``there`` (another machine's :func:`environment_fingerprint`) has that differs from
    ``here``, one phrase each (empty: the same)."""
    out = [
        f"{key} {there.get(key)} (here {here.get(key)})"
        for key in ("python", "numpy", "qcnn")
        if there.get(key) != here.get(key)
    ]
    mine, theirs = here.get("files", {}), there.get("files", {})
    changed = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
    if changed:
        out.append(f"other contents of {_few(changed)}")
    if missing := sorted(mine.keys() - theirs.keys()):
        out.append(f"no {_few(missing)}")
    if extra := sorted(theirs.keys() - mine.keys()):
        out.append(f"an extra {_few(extra)}")
    return out


def _worker_threads() -> int:
    """Threads of the Dask worker this runs on (1 when not on a worker)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def _remote_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def check_cluster(client: Any) -> None:
    """Refuse a cluster whose scheduler or workers would not compute what this machine computes
    (:class:`ClusterMismatch` naming every difference): each must import the same qcnn (same
    source files), Python and numpy (the scheduler unpickles the tasks, so it needs qcnn too),
    and every worker must run one thread (several runs in one process would share the BLAS
    thread setting, and the numbers would depend on the core count)."""
    here = environment_fingerprint()
    problems = []
    try:
        there = client.run_on_scheduler(environment_fingerprint)
    except Exception as exc:  # whatever the scheduler raised: it is named below
        problems.append(f"the scheduler cannot run qcnn ({_remote_error(exc)})")
    else:
        if diff := fingerprint_differences(here, there):
            problems.append("the scheduler has " + ", ".join(diff))
    answers = client.run(environment_fingerprint, on_error="return")
    threads = client.nthreads()
    for address in sorted(answers):
        there = answers[address]
        if isinstance(there, BaseException):
            problems.append(f"worker {address} cannot run qcnn ({_remote_error(there)})")
            continue
        diff = fingerprint_differences(here, there)
        if threads.get(address, 1) != 1:
            diff.append(f"{threads[address]} threads (start workers with --nthreads 1)")
        if diff:
            problems.append(f"worker {address} has " + ", ".join(diff))
    if problems:
        raise ClusterMismatch(
            "the Dask cluster would not compute the runs as this machine does: "
            + "; ".join(problems)
            + ". Install the same qcnn (same Python and numpy) on the scheduler and on every "
            "worker (README, section Running a sweep on a cluster)"
        )


def _scratch_dir(spec: RunSpec, data: Data) -> Path:
    key = json.dumps(run_spec_of(spec, data), sort_keys=True).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "qcnn-sweep" / f"{spec.run_id}-{digest}"


def _dask_task(spec: RunSpec, data: Data, expected: dict[str, Any]) -> dict[str, Any]:
    """Runs on a Dask worker: check that this worker computes like the client (``expected``:
    the client's :func:`environment_fingerprint`; workers may join after the client's check),
    train (resuming from this machine's scratch checkpoint if a previous attempt left one),
    return the record as JSON text and the weights as npz bytes."""
    diff = fingerprint_differences(expected, environment_fingerprint())
    if _worker_threads() != 1:
        diff.append(f"{_worker_threads()} threads (start workers with --nthreads 1)")
    if diff:
        raise ClusterMismatch(f"{spec.run_id}: this worker has " + ", ".join(diff))
    data = _own_copy(data)
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
    todo: Todo,
    data: Data,
    scheduler: str,
    *,
    on_start: Callable[[Any], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> Iterator[RunOutcome]:
    """Submit every run to the cluster; yield outcomes as they finish (see the module doc).

    Raises :class:`ClusterMismatch` before any run starts if the cluster does not run this
    machine's software (:func:`check_cluster`), and if the data set had to be sent again more
    than :data:`MAX_DATA_RESENDS` times. ``say(message)`` receives the notes for the user
    (waiting for workers, data sent again); ``on_start(client)`` is called once the tasks are
    submitted (tests use it to find the workers' process ids)."""
    from distributed import as_completed

    say = say or (lambda message: None)
    with _dask_client(scheduler) as client:
        if not client.nthreads():
            say(
                f"waiting for a Dask worker to join {scheduler} (start one: dask worker "
                f"{client.scheduler.address} --nthreads 1)"
            )
            client.wait_for_workers(1)
        check_cluster(client)
        expected = environment_fingerprint()
        generations = [client.scatter(data, broadcast=True, hash=False)]  # once per worker
        pending: dict[Any, tuple[RunSpec, int]] = {}

        def submit(spec: RunSpec) -> Any:
            key = f"qcnn-run-{spec.run_id}-{os.urandom(4).hex()}"
            shared = generations[-1]
            fut = client.submit(_dask_task, spec, shared, expected, key=key, pure=False)
            pending[fut] = (spec, len(generations) - 1)
            return fut

        finished = as_completed([submit(spec) for spec, _ in todo])
        if on_start is not None:
            on_start(client)
        for fut in finished:
            spec, generation = pending.pop(fut)
            if fut.status == "cancelled" and generations[generation].status != "finished":
                # The scattered data set died with every worker that held it (e.g. a lone
                # worker restarted by its nanny): send it again and resubmit the run.
                if generation == len(generations) - 1:
                    if len(generations) > MAX_DATA_RESENDS:
                        raise ClusterMismatch(
                            f"the data set was lost {len(generations)} times with the workers "
                            "that held it; are the workers dying (memory)? The finished runs "
                            "are kept: rerun with --resume"
                        )
                    say(
                        f"the data set was lost with the workers that held it; sending it "
                        f"again ({len(generations)} of {MAX_DATA_RESENDS})"
                    )
                    generations.append(client.scatter(data, broadcast=True, hash=False))
                finished.add(submit(spec))
                continue
            if fut.status != "finished":
                try:
                    fut.result()
                    why = f"status {fut.status}"
                except Exception as exc:  # reported like a diverged run; the others go on
                    why = f"{type(exc).__name__}: {_remote_error(exc)}"
                yield RunOutcome(
                    spec,
                    None,
                    error=f"{spec.run_id}: failed on the Dask cluster: {why}",
                    failed=True,
                )
                continue
            yield _outcome_from_task(spec, fut.result())


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
