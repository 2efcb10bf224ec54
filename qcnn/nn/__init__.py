"""Classical CNN engine in numpy: functional ops, layers, losses, optimizers, ``Sequential``.

The engine knows only generic layers; packages built on it (the emulator) add their layers
through the hooks declared on :class:`Layer` (``rng``, ``thread_safe``, ``sublayers``,
``reset_stats``, parameter ``tags``). Training and inference are module state
(``model.train()``, ``model.eval()``, :func:`inference`); ``register_forward_hook`` observes or
replaces a layer's output, as in PyTorch.
"""

from qcnn.nn import functional
from qcnn.nn.containers import Concat
from qcnn.nn.layers import (
    AvgPool2D,
    CapReLU,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    EuclideanRBF,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LocalResponseNorm,
    MaxPool2D,
    Parameter,
    ReLU,
    RemovableHandle,
    Sigmoid,
    Subsampling2D,
    Tanh,
    inference,
    walk,
)
from qcnn.nn.losses import log_softmax, softmax, softmax_cross_entropy
from qcnn.nn.model import Sequential
from qcnn.nn.optim import SGD, Adam, Optimizer

__all__ = [
    "functional",
    "Layer",
    "Parameter",
    "walk",
    "inference",
    "RemovableHandle",
    "Conv2D",
    "Conv1D",
    "Dense",
    "Flatten",
    "ReLU",
    "CapReLU",
    "Sigmoid",
    "Tanh",
    "Dropout",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAvgPool2D",
    "Subsampling2D",
    "LocalResponseNorm",
    "EuclideanRBF",
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "Sequential",
    "Concat",
    "Optimizer",
    "SGD",
    "Adam",
]
