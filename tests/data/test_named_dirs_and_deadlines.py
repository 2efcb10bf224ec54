"""Folders and network classes (docs/reliability.md) for every downloadable data set.

- A directory the user names (``data_dir`` / ``--data-dir``, or the data set's environment
  variable) is the only place looked at: missing, a file, empty or holding unrelated files is an
  error naming it, with no download attempted (MNIST: tests/data/test_mnist.py).
- A slow mirror (trickling bytes, or accepting and never answering, on 127.0.0.1) ends at the
  total download deadline instead of hanging.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from qcnn.data import fashion_mnist


class NoNet:
    def __init__(self):
        self.calls = []

    def __call__(self, url, timeout):
        self.calls.append(url)
        raise urllib.error.URLError("offline test")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fashion_mnist.ENV_FASHION_DIR, raising=False)
    net = NoNet()
    monkeypatch.setattr(fashion_mnist, "_urlopen", net)
    return net


@pytest.mark.parametrize("state", ["missing", "a file", "empty", "unrelated files"])
@pytest.mark.parametrize("how", ["data_dir", "env"])
def test_fashion_mnist_named_dir_must_hold_the_data(tmp_path, monkeypatch, isolated, state, how):
    named = tmp_path / "named"
    if state == "a file":
        named.write_text("x")
    elif state != "missing":
        named.mkdir()
        if state == "unrelated files":
            (named / "README").write_text("x")
    if how == "env":
        monkeypatch.setenv(fashion_mnist.ENV_FASHION_DIR, str(named))
        call = fashion_mnist.load_fashion_mnist
    else:
        call = lambda: fashion_mnist.load_fashion_mnist(named)  # noqa: E731
    with pytest.raises(FileNotFoundError) as info:
        call()
    msg = str(info.value)
    assert str(named) in msg
    assert ("--data-dir" if how == "data_dir" else fashion_mnist.ENV_FASHION_DIR) in msg
    assert isolated.calls == []


def test_fashion_mnist_slow_mirror_ends_at_the_deadline(slow_server, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_MIRRORS", (slow_server,))
    monkeypatch.setattr(fashion_mnist, "_urlopen", urllib.request.urlopen)
    monkeypatch.setattr(fashion_mnist, "DOWNLOAD_DEADLINE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="did not finish within|deadline|timed out"):
        fashion_mnist.load_fashion_mnist()
    assert time.monotonic() - start < 4.0
    assert not fashion_mnist.fashion_cache_dir().exists()
