"""``docs/primer.ipynb`` and ``docs/primer.zh-CN.ipynb``: built from one source, committed with
their outputs, and both run from top to bottom.

``docs/build_primer.py`` declares every cell once (code shared, markdown in English and Chinese)
and executes the notebooks as ``docs/refresh_tutorial.py`` executes the tutorial: offline on the
MNIST subset, in a temporary directory, with this checkout first on the path.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 400_000  # figures at 60 dpi: the committed notebooks stay small
CJK = re.compile(r"[\u4e00-\u9fff]")


def _builder():
    spec = importlib.util.spec_from_file_location("build_primer", ROOT / "docs" / "build_primer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_notebooks_are_what_the_one_source_builds():
    b = _builder()
    committed = {lang: nbformat.read(path, as_version=4) for lang, path in b.NOTEBOOKS.items()}
    for lang, nb in committed.items():
        assert b.sources(nb) == b.sources(b.build(lang)), f"{lang}: run python docs/build_primer.py"
    en, zh = (b.sources(committed[lang]) for lang in ("en", "zh-CN"))
    assert [k for k, _ in en] == [k for k, _ in zh]
    assert [s for k, s in en if k == "code"] == [s for k, s in zh if k == "code"]  # one code
    for (kind, en_text), (_, zh_text) in zip(en, zh, strict=True):
        if kind == "markdown":  # every prose cell translated, none left in English
            assert CJK.search(zh_text) and not CJK.search(en_text) and zh_text != en_text


def test_the_committed_notebooks_have_their_outputs_and_stay_small():
    b = _builder()
    for path in b.NOTEBOOKS.values():
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.execution_count is not None for c in code), "commit it executed"
        assert all(c.outputs for c in code), "commit it with its outputs"
        assert all(o.output_type != "error" for c in code for o in c.outputs)
        assert sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {})) >= 4
        assert path.stat().st_size < MAX_BYTES
        assert not any("execution" in c.metadata for c in nb.cells)


def _text(nb) -> str:
    return "\n".join(t for cell in _builder().refresh_tutorial.text_outputs(nb) for t in cell)


@pytest.mark.notebook
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_primer_notebook_runs_and_states_the_identities(lang):
    nb, _seconds = _builder().execute(lang)
    text = _text(nb)
    assert "mnist-5k-subset (4000, 1, 28, 28) (1000, 1, 28, 28)" in text
    assert "kernels (6, 25) @ im2col == F.conv2d: True" in text
    assert "same weights in every row: True | M @ x == conv: True" in text
    assert "parameters: convolution 9, fully connected 64" in text
    for line in re.findall(r"max difference (\S+)", text):
        assert float(line) < 1e-12
    assert text.count("equal to numpy.convolve: True") == 3
    acc = re.search(r"test accuracy (\S+)%", text)
    assert acc is not None and float(acc.group(1)) > 60
