"""qcnn: classical CNN engine, quantum CNN emulator and circuits for KLP19 (ICLR 2020).

Layers, from the bottom up (each depends only on those above it in this list):

- ``qcnn.nn``: classical numpy CNN engine (knows nothing of quantum).
- ``qcnn.data``: MNIST loading and batching.
- ``qcnn.quantum``: emulator of the quantum algorithm at dataset scale (numpy only).
- ``qcnn.circuits``: the sub-routines as Qiskit circuits (imports qiskit; never imported by
  the emulator).
- ``qcnn.models``, ``qcnn.train`` (with ``qcnn.history`` and ``qcnn.checkpoint``),
  ``qcnn.plotting``, ``qcnn.experiments``: on top.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qcnn")  # defined once, in pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

del PackageNotFoundError, version
