"""Classical CNN engine in numpy: functional ops, layers, losses, optimizers, ``Sequential``.

This package knows nothing of quantum computing; the emulator in :mod:`qcnn.quantum` builds on it.
"""

from qcnn.nn import functional
from qcnn.nn.layers import (
    AvgPool2D,
    CapReLU,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LocalResponseNorm,
    MaxPool2D,
    Parameter,
    ReLU,
    Sigmoid,
    Subsampling2D,
    Tanh,
)
from qcnn.nn.losses import log_softmax, softmax, softmax_cross_entropy
from qcnn.nn.model import Sequential
from qcnn.nn.optim import SGD, Adam, Optimizer

__all__ = [
    "functional",
    "Layer",
    "Parameter",
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
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "Sequential",
    "Optimizer",
    "SGD",
    "Adam",
]
