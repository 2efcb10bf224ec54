"""The data-set registry (qcnn.data.registry) and its loaders: Fashion-MNIST (download path with
a mocked opener and the published md5 checksums), scikit-learn's digits, ``npz:PATH`` files
(validation errors), normalisation, and MNIST through the registry (identical to preprocess).

Everything runs offline; the MNIST check on the real files runs when ``QCNN_DATA_DIR`` is set.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import urllib.error

import numpy as np
import pytest

from qcnn.data import fashion_mnist, idx, idx_dataset, mnist, preprocess
from qcnn.data.digits import load_digits_splits, split_by_class
from qcnn.data.registry import (
    DATASETS,
    DatasetSpec,
    dataset_names,
    dataset_spec,
    load_dataset,
    register_dataset,
)
from qcnn.data.splits import RawSplits
from tests.conftest import REAL_DATA_DIR

FILES = [
    ("train", "images", "train-images-idx3-ubyte.gz"),
    ("train", "labels", "train-labels-idx1-ubyte.gz"),
    ("test", "images", "t10k-images-idx3-ubyte.gz"),
    ("test", "labels", "t10k-labels-idx1-ubyte.gz"),
]


class FakeNet:
    """Stands in for urlopen: serves ``files`` (url -> bytes), fails like an offline machine."""

    def __init__(self, files=None):
        self.files = files or {}
        self.calls = []

    def __call__(self, url, timeout):
        self.calls.append(url)
        if url in self.files:
            return io.BytesIO(self.files[url])
        raise urllib.error.URLError(f"no route to {url} (offline test)")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fashion_mnist.ENV_FASHION_DIR, raising=False)
    net = FakeNet()
    monkeypatch.setattr(fashion_mnist, "_urlopen", net)
    monkeypatch.setattr(mnist, "_urlopen", net)
    return net


def fake_files(n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        ("train", "images"): rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        ("train", "labels"): (np.arange(n_train) % 10).astype(np.uint8),
        ("test", "images"): rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    blobs = {name: gzip.compress(idx.encode_idx(arrays[s, k]), mtime=0) for s, k, name in FILES}
    return arrays, blobs


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------


def test_registry_names_and_unknown_name():
    assert {"mnist", "fashion-mnist", "digits"} <= set(DATASETS)
    assert "npz:PATH" in dataset_names()
    with pytest.raises(ValueError, match=r"unknown data set 'cifar'.*mnist.*digits.*npz:PATH"):
        dataset_spec("cifar")
    with pytest.raises(ValueError, match="needs a path"):
        dataset_spec("npz:")
    with pytest.raises(ValueError, match="taken"):
        register_dataset(DATASETS["mnist"])


def test_a_new_data_set_is_one_entry(monkeypatch):
    rng = np.random.default_rng(1)

    def loader(data_dir, download):
        x = rng.integers(0, 256, (10, 3, 4, 5), dtype=np.uint8)
        return RawSplits(x[:8], np.arange(8) % 3, x[8:], np.array([0, 2]), "memory", "toy")

    monkeypatch.setattr(
        "qcnn.data.registry.DATASETS", dict(DATASETS)
    )  # registering must not leak into other tests
    register_dataset(DatasetSpec("toy", "three colour channels", loader, (3, 4, 5), 3))
    ds = load_dataset("toy", train_size=6)
    assert ds.x_train.shape == (6, 3, 4, 5) and ds.x_test.shape == (2, 3, 4, 5)
    assert ds.classes == 3 and ds.info()["shape"] == [3, 4, 5]
    # per-channel statistics of the kept training images
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1, atol=1e-5)
    assert len(ds.normalisation["mean"]) == 3 and ds.normalisation["scale"] == 255.0


def test_mnist_through_the_registry_is_preprocess_bit_for_bit():
    if REAL_DATA_DIR:
        raw = mnist.load_mnist_dataset(REAL_DATA_DIR, download=False)
        ds = load_dataset("mnist", REAL_DATA_DIR, download=False, train_size=2000)
    else:
        with pytest.warns(mnist.MNISTSubsetWarning):
            raw = mnist.load_mnist_dataset(download=False)
        with pytest.warns(mnist.MNISTSubsetWarning):
            ds = load_dataset("mnist", download=False, train_size=2000)
    assert ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train, preprocess(raw.train_images[:2000]))
    np.testing.assert_array_equal(ds.x_test, preprocess(raw.test_images))
    np.testing.assert_array_equal(ds.y_test, raw.test_labels)
    assert ds.name == raw.name and ds.source == raw.source and ds.classes == 10
    assert ds.normalisation == {"scale": 255.0, "mean": [0.1307], "std": [0.3081]}


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------------------------


def test_fashion_mnist_published_checksums():
    # the values Zalando Research publish (fashion-mnist README; torchvision FashionMNIST)
    assert fashion_mnist.FASHION_MNIST_MD5 == {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }


def test_fashion_mnist_download_rejects_files_that_do_not_match_the_published_md5(
    isolated, monkeypatch, tmp_path
):
    """A mirror serving anything but the published files is refused and nothing is written."""
    _, blobs = fake_files()
    base = fashion_mnist.FASHION_MNIST_MIRRORS[0]
    isolated.files.update({base + name: data for name, data in blobs.items()})
    with pytest.raises(FileNotFoundError) as err:
        fashion_mnist.load_fashion_mnist()
    assert "md5" in str(err.value) and "published" in str(err.value)
    assert not fashion_mnist.fashion_cache_dir().exists()


def test_fashion_mnist_download_lands_in_the_cache_and_loads_offline_afterwards(
    isolated, monkeypatch
):
    arrays, blobs = fake_files()
    monkeypatch.setattr(fashion_mnist, "_N_EXAMPLES", {"train": 12, "test": 6})
    monkeypatch.setattr(
        fashion_mnist,
        "FASHION_MNIST_MD5",
        {name: hashlib.md5(data).hexdigest() for name, data in blobs.items()},
    )
    second = fashion_mnist.FASHION_MNIST_MIRRORS[1]  # the first mirror is down
    isolated.files.update({second + name: data for name, data in blobs.items()})
    ds = load_dataset("fashion-mnist")
    assert ds.source == f"download:{second}" and ds.name == "fashion-mnist"
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.classes == 10
    cache = fashion_mnist.fashion_cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == sorted(blobs)  # no temp files left
    isolated.files.clear()  # offline now: the cache serves
    again = fashion_mnist.load_fashion_mnist()
    assert again.source == f"fashion-mnist-idx:{cache}"
    np.testing.assert_array_equal(again.train_images[:, 0], arrays["train", "images"])
    np.testing.assert_array_equal(again.test_labels, arrays["test", "labels"])
    # the statistics come from the training split
    np.testing.assert_allclose(ds.x_train.mean(), 0, atol=1e-6)


def test_fashion_mnist_survives_an_unwritable_cache_as_mnist_does(isolated, monkeypatch, capsys):
    """One loader for both: a verified download is used from memory when the cache cannot be
    written (Fashion-MNIST used to fail here while MNIST warned and went on)."""
    arrays, blobs = fake_files()
    monkeypatch.setattr(fashion_mnist, "_N_EXAMPLES", {"train": 12, "test": 6})
    monkeypatch.setattr(
        fashion_mnist,
        "FASHION_MNIST_MD5",
        {name: hashlib.md5(data).hexdigest() for name, data in blobs.items()},
    )
    base = fashion_mnist.FASHION_MNIST_MIRRORS[0]
    isolated.files.update({base + name: data for name, data in blobs.items()})

    def fail(path, data):
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(idx_dataset, "atomic_write_bytes", fail)
    with pytest.warns(UserWarning, match="could not write Fashion-MNIST into the cache"):
        ds = fashion_mnist.load_fashion_mnist()
    assert ds.source == f"download:{base}"
    np.testing.assert_array_equal(ds.train_images[:, 0], arrays["train", "images"])
    np.testing.assert_array_equal(ds.test_labels, arrays["test", "labels"])
    assert "using it from memory" in capsys.readouterr().err


def test_fashion_mnist_offline_says_it_cannot_be_fetched(isolated, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion-mnist")
    msg = str(err.value)
    assert "cannot be fetched" in msg and "no offline fallback" in msg
    assert fashion_mnist.ENV_FASHION_DIR in msg and "train-images-idx3-ubyte.gz" in msg
    assert len(isolated.calls) == len(fashion_mnist.FASHION_MNIST_MIRRORS)  # one try per mirror
    with pytest.raises(FileNotFoundError, match="not allowed"):
        load_dataset("fashion-mnist", download=False)


def test_fashion_mnist_partial_user_directory_is_an_error(tmp_path, monkeypatch):
    _, blobs = fake_files()
    (tmp_path / "fm").mkdir()
    (tmp_path / "fm" / "train-images-idx3-ubyte.gz").write_bytes(
        blobs["train-images-idx3-ubyte.gz"]
    )
    with pytest.raises(FileNotFoundError, match="some Fashion-MNIST files but not"):
        fashion_mnist.load_fashion_mnist(tmp_path / "fm")


# ----------------------------------------------------------------------------------------------
# digits
# ----------------------------------------------------------------------------------------------


def test_digits_split_is_deterministic_stratified_and_offline():
    raw = load_digits_splits()
    assert raw.train_images.shape == (1433, 1, 8, 8) and raw.test_images.shape == (364, 1, 8, 8)
    assert raw.train_images.max() == 16 and raw.train_images.dtype == np.uint8
    labels = np.concatenate([raw.train_labels, raw.test_labels])
    # the class counts of scikit-learn's digits (its documentation: about 180 per class)
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    train_idx, test_idx = split_by_class(np.array([0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0]))
    np.testing.assert_array_equal(train_idx, [0, 1, 2, 3, 4, 5, 7, 8])  # first 4/5 per class
    np.testing.assert_array_equal(test_idx, [6, 9, 10])
    ds = load_dataset("digits")
    assert ds.shape == (1, 8, 8) and ds.classes == 10 and ds.normalisation["scale"] == 16.0
    np.testing.assert_array_equal(ds.y_train, raw.train_labels)
    np.testing.assert_allclose(ds.x_train.mean(), 0, atol=1e-6)


@pytest.mark.slow
def test_digits_are_what_sklearn_load_digits_returns():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = load_digits_splits()
    train_idx, test_idx = split_by_class(bunch.target)
    np.testing.assert_array_equal(raw.train_images[:, 0], bunch.images[train_idx])
    np.testing.assert_array_equal(raw.test_images[:, 0], bunch.images[test_idx])
    np.testing.assert_array_equal(raw.test_labels, bunch.target[test_idx])


# ----------------------------------------------------------------------------------------------
# npz:PATH
# ----------------------------------------------------------------------------------------------


def good_arrays(rng, layout="NHWC"):
    shape = (10, 6, 5, 3) if layout == "NHWC" else (10, 3, 6, 5)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    return {
        "x_train": x[:7],
        "y_train": np.array([0, 1, 2, 3, 0, 1, 2]),
        "x_test": x[7:],
        "y_test": np.array([3, 1, 0]),
    }


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_npz_data_set_channels_last_and_first(tmp_path, layout):
    rng = np.random.default_rng(2)
    arrays = good_arrays(rng, layout)
    path = tmp_path / "set.npz"
    extra = {} if layout == "NHWC" else {"layout": np.array("NCHW")}
    np.savez(path, **arrays, **extra)
    ds = load_dataset(f"npz:{path}")
    assert ds.shape == (3, 6, 5) and ds.classes == 4 and ds.source == f"npz:{path}"
    expect = arrays["x_train"] if layout == "NCHW" else np.moveaxis(arrays["x_train"], 3, 1)
    mean = (expect / 255.0).mean(axis=(0, 2, 3))
    std = (expect / 255.0).std(axis=(0, 2, 3))
    ref = ((expect / 255.0) - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(ds.x_train, ref, rtol=1e-5, atol=1e-5)


def test_npz_grey_float_images(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "grey.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(5, 9, 9)),
        y_train=np.array([0, 1, 0, 1, 1]),
        x_test=rng.normal(size=(2, 9, 9)),
        y_test=np.array([1, 0]),
    )
    ds = load_dataset(f"npz:{path}")
    assert ds.shape == (1, 9, 9) and ds.classes == 2 and ds.normalisation["scale"] == 1.0


def _bad(arrays, **changes):
    out = dict(arrays)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(y_test=None), r"missing arrays \['y_test'\]"),
        (dict(x_train=np.zeros((7, 6), np.uint8)), "expected \\(N, H, W\\)"),
        (dict(y_train=np.arange(6)), "6 labels for 7 images"),
        (dict(y_train=np.zeros(7)), "integer class labels"),
        (dict(y_train=-np.ones(7, int)), "negative labels"),
        (dict(y_train=np.zeros((7, 1), int)), "1-D labels"),
        (dict(x_test=np.zeros((3, 6, 4, 3), np.uint8)), "differ"),
        (dict(x_test=np.zeros((3, 6, 5, 3))), "x_train is uint8 but x_test is float64"),
        (dict(x_train=np.zeros((7, 6, 5, 3), np.int32)), "uint8 or floating"),
        (dict(y_train=np.zeros(7, int), y_test=np.zeros(3, int)), "only 1 class"),
        (dict(x_train=np.zeros((0, 6, 5, 3), np.uint8), y_train=np.zeros(0, int)), "empty"),
        (dict(layout=np.array("HWCN")), "layout must be"),
    ],
)
def test_npz_malformed_files_give_clear_errors(tmp_path, change, message):
    arrays = _bad(good_arrays(np.random.default_rng(4)), **change)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(f"npz:{path}")


def test_npz_nan_pickles_and_non_npz_files(tmp_path):
    arrays = good_arrays(np.random.default_rng(5))
    f = {k: v.astype(np.float32) if k.startswith("x") else v for k, v in arrays.items()}
    f["x_test"][0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **f)
    with pytest.raises(ValueError, match="NaN"):
        load_dataset(f"npz:{tmp_path / 'nan.npz'}")
    obj = dict(arrays, y_test=np.array([1, "a", None], dtype=object))
    np.savez(tmp_path / "pickle.npz", **obj)
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset(f"npz:{tmp_path / 'pickle.npz'}")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz"):
        load_dataset(f"npz:{tmp_path / 'one.npy'}")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset(f"npz:{tmp_path / 'text.npz'}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    assert re.search("npz", dataset_spec(f"npz:{tmp_path}").description)
