"""The committed tables of experiments/klp19-theory follow from its committed records:
make_tables.py, fed the folder's own results.json, writes the same tables.md and summary.csv byte
for byte, and the README holds tables.md verbatim (so a table edited by hand, or records changed
without the tables, fail here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[2] / "experiments" / "klp19-theory"


def _make_tables():
    spec = importlib.util.spec_from_file_location(
        "klp19_theory_make_tables", FOLDER / "make_tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["tables.md", "summary.csv"])
def test_klp19_theory_tables_follow_from_the_records(tmp_path, name):
    make_tables = _make_tables()
    assert make_tables.main([str(tmp_path), str(FOLDER / "results.json")]) == 0
    assert (tmp_path / name).read_text() == (FOLDER / name).read_text()


def test_klp19_theory_readme_holds_the_tables():
    tables = (FOLDER / "tables.md").read_text()
    assert tables in (FOLDER / "README.md").read_text()
