"""Packaging: console scripts for every command, the version defined once, the license, the
type-hint marker and the changelog (what a user installing the package relies on)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import qcnn

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# every module of qcnn.experiments that runs as `python -m` is a command and needs a script
COMMANDS = tuple(
    sorted(
        p.stem
        for p in (ROOT / "qcnn" / "experiments").glob("*.py")
        if 'if __name__ == "__main__":' in p.read_text()
    )
)


def test_the_commands_are_found():
    assert {"mnist", "sweep", "circuits", "resources", "visualize"} <= set(COMMANDS)


def test_every_command_has_a_console_script_and_keeps_python_m():
    scripts = PROJECT["project"]["scripts"]
    assert scripts == {f"qcnn-{c}": f"qcnn.experiments.{c}:main" for c in COMMANDS}
    for command in COMMANDS:
        source = (ROOT / "qcnn" / "experiments" / f"{command}.py").read_text()
        assert 'if __name__ == "__main__":\n    sys.exit(main())' in source, command


@pytest.mark.parametrize("command", COMMANDS)
def test_console_script_targets_print_help(command, capsys):
    module_name, attr = PROJECT["project"]["scripts"][f"qcnn-{command}"].split(":")
    main = getattr(importlib.import_module(module_name), attr)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--out" in out and "--seed" in out


def test_version_is_defined_once_in_pyproject():
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["project"]["version"])
    assert qcnn.__version__ == PROJECT["project"]["version"]
    init = (ROOT / "qcnn" / "__init__.py").read_text()
    assert PROJECT["project"]["version"] not in init  # read from the metadata, not repeated


def test_license_type_marker_and_changelog_ship():
    assert PROJECT["project"]["license"] == {"text": "MIT"}
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the qcnn developers" in license_text
    assert (ROOT / "qcnn" / "py.typed").is_file()
    assert PROJECT["tool"]["setuptools"]["package-data"]["qcnn"] == ["py.typed"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(r"^## \[0\.1\.0\] - \d{4}-\d{2}-\d{2}$", changelog, flags=re.M)
