"""``docs/tutorial.ipynb`` runs from top to bottom and is committed with its outputs.

The notebook is executed by ``docs/refresh_tutorial.py`` (nbclient + ipykernel, both in the
``[dev]`` extra) exactly as ``python docs/refresh_tutorial.py`` refreshes it: offline on the
MNIST subset (no ``QCNN_DATA_DIR``, an empty cache, no download), in a temporary working
directory, with the notebook's fixed seed. Any cell error fails the test with the cell's traceback.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
MAX_BYTES = 400_000  # figures at 60 dpi: the committed notebook stays small


def _refresh_module():
    spec = importlib.util.spec_from_file_location(
        "refresh_tutorial", ROOT / "docs" / "refresh_tutorial.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(nb) -> str:
    return "\n".join(t for cell in _refresh_module().text_outputs(nb) for t in cell)


def test_the_committed_notebook_has_its_outputs_and_stays_small():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # executed and saved with its outputs (the setup cell is the only one that prints nothing)
    assert code and all(c.execution_count is not None for c in code), "commit it executed"
    assert sum(1 for c in code if c.outputs) >= len(code) - 1, "commit it with its outputs"
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    assert sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {})) >= 6
    assert NOTEBOOK.stat().st_size < MAX_BYTES
    assert not any("execution" in c.metadata for c in nb.cells)  # no timestamps in diffs


@pytest.mark.notebook
def test_the_tutorial_runs_offline_and_both_networks_learn():
    nb, _seconds = _refresh_module().execute_notebook(NOTEBOOK)
    text = _text(nb)
    assert "mnist-5k-subset (4000, 1, 28, 28) (1000, 1, 28, 28)" in text
    # the prose says both networks learn in 3 epochs: the last accuracy of each is >= 85 %
    for name in ("CNN ", "QCNN"):
        line = re.search(rf"^{name} test accuracy after each epoch: (.*)$", text, re.M)
        assert line is not None, name
        last = float(line.group(1).split(",")[-1].strip().rstrip("%"))
        assert last >= 85.0, line.group(0)
    assert "inner-product circuits of" in text  # the circuit section ran on Aer
    # the coherent circuit's law equals the emulator's (printed to one significant digit)
    line = re.search(r"largest difference to the emulator's law: (\S+)$", text, re.M)
    assert line is not None and float(line.group(1)) < 1e-9, line
