"""The torch tests run tiny tensors: one intra-op thread (OpenMP threads that wait for a busy
core cost far more than they save on a shared 2-core machine, ~20x on a 6x6 conv)."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    if importlib.util.find_spec("torch") is None:  # the modules skip themselves
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
