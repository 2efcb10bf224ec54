"""The sweep on every executor: the same numbers, killed workers, no orphans, divergence.

Determinism class (docs/reliability.md): a tiny grid run in this process, on a local pool of 2
processes and on a loopback Dask ``LocalCluster`` of 2 workers gives the same records and the
same weights, array bytes for array bytes. Kill class: a Dask worker killed (SIGKILL, by its
pid) in the middle of a run, inside a checkpoint write, is replaced and its run retried; the
final summary is complete and identical. A ``--workers 2`` sweep whose parent is killed with -9
leaves no worker process behind. Marked ``dask`` / ``kill`` (not in the default selection; CI
runs them, see .ci/run).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import qcnn.experiments.executors as executors
from qcnn.experiments import sweep
from qcnn.nn.model import load_npz_strict
from qcnn.train import TrainingDiverged
from tests.conftest import REAL_DATA_DIR, needs_data

ROOT = Path(__file__).resolve().parents[2]
GRID = [
    "--grid",
    "quick",
    "--train-size",
    "200",
    "--test-size",
    "100",
    "--epochs",
    "2",
    "--batch-size",
    "20",
    "--quiet",
]
TIMING = {"train_seconds", "eval_seconds", "seconds"}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def sweep_outputs(out: Path) -> dict:
    """Everything a sweep produced that must not depend on where it ran: the records without
    timings, the weights as raw array bytes, and the summary without the time column."""
    runs = {}
    for run_dir in sorted((out / "runs").iterdir()):
        record = json.loads((run_dir / "run.json").read_text())
        weights = {
            k: (v.dtype.str, v.shape, v.tobytes())
            for k, v in load_npz_strict(run_dir / "model.npz").items()
        }
        runs[run_dir.name] = (_strip(record), weights)
    with open(out / "summary.csv", newline="") as fh:
        summary = [
            {k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(fh)
        ]
    return {"runs": runs, "summary": summary}


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    """The tiny grid run in this process (the default executor)."""
    if not REAL_DATA_DIR:
        pytest.skip("QCNN_DATA_DIR is not set")
    out = tmp_path_factory.mktemp("ref") / "sweep"
    assert sweep.main([*GRID, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference(reference_dir) -> dict:
    outputs = sweep_outputs(reference_dir)
    assert len(outputs["runs"]) == 3 and len(outputs["summary"]) == 4
    return outputs


@pytest.fixture
def local_cluster(tmp_path):
    """A LocalCluster of 2 single-threaded worker processes on 127.0.0.1 whose checkpoint
    writes pause 2 s inside the write window (test hook of qcnn.io) and report their pid."""
    distributed = pytest.importorskip("distributed")
    marker = tmp_path / "write-window"
    env = {
        "QCNN_TEST_SLOW_WRITE": "checkpoint.npz:2",
        "QCNN_TEST_SLOW_WRITE_MARKER": str(marker),
        "TMPDIR": str(tmp_path / "worker-tmp"),
    }
    (tmp_path / "worker-tmp").mkdir()
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env=env,
    ) as cluster:
        cluster.marker = marker
        yield cluster


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@needs_data
@pytest.mark.dask
def test_local_pool_and_local_cluster_give_the_same_numbers(reference, tmp_path):
    pool = tmp_path / "pool"
    assert sweep.main([*GRID, "--workers", "2", "--out", str(pool)]) == 0
    assert sweep_outputs(pool) == reference
    dask = tmp_path / "dask"
    assert sweep.main([*GRID, "--scheduler", "local:2", "--out", str(dask)]) == 0
    assert sweep_outputs(dask) == reference


@needs_data
@pytest.mark.dask
def test_a_worker_killed_mid_run_is_replaced_and_the_summary_is_identical(
    reference, local_cluster, tmp_path
):
    killed: list[int] = []

    def kill_one_worker_inside_a_checkpoint_write():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if local_cluster.marker.exists():
                pid = int(local_cluster.marker.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)  # in the middle of a run, inside a write
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_inside_a_checkpoint_write, daemon=True)
    killer.start()
    out = tmp_path / "dask"
    rc = sweep.main([*GRID, "--scheduler", local_cluster.scheduler_address, "--out", str(out)])
    killer.join(5)
    assert rc == 0
    assert killed and not _alive(killed[0])
    assert sweep_outputs(out) == reference  # complete and identical
    # the run results came back over the network: no scratch files of the workers in --out
    assert not list(out.rglob("checkpoint.npz")) and not list(out.rglob("*.tmp"))


@needs_data
@pytest.mark.dask
def test_a_rerun_on_dask_skips_finished_runs(reference, reference_dir, tmp_path, monkeypatch):
    out = tmp_path / "s"
    shutil.copytree(reference_dir, out)
    (out / "summary.csv").unlink()
    monkeypatch.setattr(executors, "train_run", lambda *a, **k: pytest.fail("ran again"))
    assert sweep.main([*GRID, "--scheduler", "local:1", "--out", str(out), "--resume"]) == 0
    assert sweep_outputs(out) == reference


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().split(") ")[-1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


@needs_data
@pytest.mark.kill
def test_killing_a_local_pool_sweep_leaves_no_orphan_workers(tmp_path):
    marker = tmp_path / "write-window"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QCNN_TEST_SLOW_WRITE": "checkpoint.npz:60",
        "QCNN_TEST_SLOW_WRITE_MARKER": str(marker),
    }
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qcnn.experiments.sweep",
            *GRID,
            "--workers",
            "2",
            "--out",
            str(tmp_path / "s"),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:  # a worker is mid-run
            time.sleep(0.1)
        assert marker.exists(), "no worker reached a checkpoint write"
        workers = _children(parent.pid)
        assert int(marker.read_text().split()[0]) in workers
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10  # the watchdog polls every 0.5 s
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "orphan workers still running"
    finally:
        for pid in [parent.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_watchdog_exits_when_the_parent_is_gone(tmp_path):
    """The pool's worker initializer on its own: a grandchild whose parent exits, exits."""
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys, time\\n"
        "from qcnn.experiments.executors import _watch_parent\\n"
        "_watch_parent(int(sys.argv[1]))\\n"
        "time.sleep(60)', str(os.getpid())])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(0.5)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not _alive(child)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def test_parse_scheduler():
    assert executors.parse_scheduler("local:3") == ("local", 3)
    assert executors.parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:", "tcp://h", "h:1", "udp://h:1", "tcp://h:0", "tcp://:80"):
        with pytest.raises(ValueError, match="scheduler"):
            executors.parse_scheduler(bad)


@needs_data
def test_a_diverged_run_is_reported_the_others_kept_and_the_status_is_1(
    tmp_path, monkeypatch, capsys
):
    real = executors.train_run

    def diverge_on_sigma_01(spec, *a, **k):
        if spec.config is not None and spec.config.sigma == 0.1:
            raise TrainingDiverged(spec.run_id, 1, 3, float("nan"), "likely cause: the lr")
        return real(spec, *a, **k)

    monkeypatch.setattr(executors, "train_run", diverge_on_sigma_01)
    out = tmp_path / "s"
    assert sweep.main([*GRID, "--epochs", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert (
        "qcnn-paper-eps0.01-C10-sigma0.1-delta0.01-seed1: training diverged at epoch 1, batch 3"
        in err
        and "1 of 3 runs diverged" in err
    )
    kept = sorted(p.name for p in (out / "runs").iterdir() if (p / "run.json").exists())
    assert kept == ["cnn-paper-seed1", "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-seed1"]
    assert (out / "summary.csv").is_file()
