"""Conventions that no linter checks (docs/architecture.md, Conventions)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Pinned byte for byte (its module docstring): its one marker cannot be given a reason.
PINNED = {ROOT / "tests" / "test_regression_notebook.py"}


def _python_files() -> list[Path]:
    dirs = ("qcnn", "tests", "benchmarks", "experiments", "docs")
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if p not in PINNED)


def test_every_fmt_skip_says_why():
    """A ``# fmt: skip`` needs a reason: after the marker on its line, or in a comment just
    above the statement that says ``fmt: skip`` and why (as ``# fmt: skip below: ...``)."""
    unexplained = []
    for path in _python_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = re.search(r"#\s*fmt:\s*skip(.*)$", line)
            if m is None or m.group(1).strip(" :-()"):
                continue  # no marker, or a reason follows it
            above = lines[max(0, i - 4) : i]  # the statement may span a few lines
            if any(re.search(r"#\s*fmt:\s*skip\b.*\w+.*\w+", a) for a in above):
                continue
            unexplained.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert not unexplained, "fmt: skip without a reason: " + ", ".join(unexplained)
