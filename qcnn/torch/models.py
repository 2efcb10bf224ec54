"""The project's networks as torch modules: one definition of each network (``qcnn.models``),
moved to torch with its weights, so a torch run and a numpy run can start from the same
initial weights.

- :func:`from_engine`: a ``qcnn.nn`` model -> ``nn.Sequential`` with the same weights (layers
  with a torch counterpart: Conv2D, Dense, ReLU, Tanh, Sigmoid, Flatten, Dropout, max / average
  pooling; anything else is refused by name);
- :func:`paper_cnn` / :func:`paper_qcnn`: KLP19's network (model §5) built by
  :func:`qcnn.models.paper_cnn` from the seed, in torch; the QCNN is
  :func:`qcnn.torch.quantize` of it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from qcnn.models import paper_cnn as engine_paper_cnn
from qcnn.nn import (
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from qcnn.nn.layers import Layer
from qcnn.quantum import QuantumConfig
from qcnn.torch.quantize import quantize

__all__ = ["from_engine", "paper_cnn", "paper_qcnn"]


def _padding(p: object, what: str) -> int | tuple[int, int]:
    if isinstance(p, (int, np.integer)):
        return int(p)
    if isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, (int, np.integer)) for v in p):
        return (int(p[0]), int(p[1]))
    raise ValueError(f"from_engine: {what} padding {p!r} has no torch equivalent (integers only)")


def _param(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


def _layer(layer: Layer) -> nn.Module:
    if type(layer) is Conv2D:
        if layer.connections is not None:
            raise ValueError("from_engine: a Conv2D with a partial connection table")
        kh, kw = layer.kernel_size
        conv = nn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            (kh, kw),
            layer.stride,
            _padding(layer.padding, "Conv2D"),
            bias=layer.bias is not None,
            dtype=torch.from_numpy(layer.weight.data[:0]).dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(_param(layer.weight.data))
            if layer.bias is not None:
                assert conv.bias is not None
                conv.bias.copy_(_param(layer.bias.data))
        return conv
    if type(layer) is Dense:
        out_f, in_f = layer.weight.data.shape
        dense = nn.Linear(
            in_f,
            out_f,
            bias=layer.bias is not None,
            dtype=torch.from_numpy(layer.weight.data[:0]).dtype,
        )
        with torch.no_grad():
            dense.weight.copy_(_param(layer.weight.data))
            if layer.bias is not None:
                assert dense.bias is not None
                dense.bias.copy_(_param(layer.bias.data))
        return dense
    simple: dict[type, type[nn.Module]] = {
        ReLU: nn.ReLU,
        Tanh: nn.Tanh,
        Sigmoid: nn.Sigmoid,
        Flatten: nn.Flatten,
    }
    if type(layer) in simple:
        return simple[type(layer)]()
    if type(layer) is Dropout:
        return nn.Dropout(layer.p)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        cls = nn.MaxPool2d if isinstance(layer, MaxPool2D) else nn.AvgPool2d
        return cls(layer.kernel_size, layer.stride, _padding(layer.padding, "pool"))
    if type(layer) is Sequential:
        return from_engine(layer)
    raise ValueError(f"from_engine: {type(layer).__name__} has no torch counterpart here")


def from_engine(model: Sequential) -> nn.Sequential:
    """``model`` (a ``qcnn.nn.Sequential``) as ``nn.Sequential`` with a copy of its weights."""
    if not isinstance(model, Sequential):
        raise TypeError(f"from_engine needs a qcnn.nn.Sequential, got {type(model).__name__}")
    return nn.Sequential(OrderedDict((str(i), _layer(l)) for i, l in enumerate(model.layers)))


def paper_cnn(seed: int = 1) -> nn.Sequential:
    """KLP19's CNN in torch, with the initial weights :func:`qcnn.models.paper_cnn` draws."""
    return from_engine(engine_paper_cnn(seed))


def paper_qcnn(config: QuantumConfig, seed: int = 1) -> nn.Module:
    """KLP19's QCNN in torch: :func:`paper_cnn` quantized, the noise seeded from ``seed``."""
    return quantize(paper_cnn(seed), config, seed=seed)
