"""``quantize``: any classical network made quantum, layer by layer (KLP19's claim that the
quantum layer reproduces a classical CNN's convolutions).

Rules, applied to every :class:`~qcnn.nn.Sequential` of the model (nested ones and the branches
of a :class:`~qcnn.nn.Concat` included):

- a :class:`~qcnn.nn.Conv2D` immediately followed by a :class:`~qcnn.nn.ReLU` becomes a
  :class:`~qcnn.quantum.QuantumConv2D` with the same hyper-parameters (channels, kernel,
  stride, padding, bias, partial connection table) and a copy of the same weights; the ReLU
  becomes the layer's capped ReLU ``min(max(x, 0), C)`` (model §2.3);
- a :class:`~qcnn.nn.MaxPool2D` or :class:`~qcnn.nn.AvgPool2D` right after that ReLU is merged
  into the quantum layer as pooling during the QRAM write (model §2.6), with its window, stride
  and padding;
- everything else stays classical (a copy): dense layers, and the layers the quantum algorithm
  has no counterpart for: a ``Conv2D`` *not* followed by a ReLU (the output state encodes a
  non-negative, bounded activation, model §2.4, so a conv feeding tanh/sigmoid has none), a
  *grouped* ``Conv2D`` (``groups`` > 1, AlexNet's split: it is refused as a quantum layer and
  kept classical, ReLU and pooling too: one quantum layer per group is not built, and one dense
  quantum layer would estimate each inner product against the whole patch of every group's
  channels, a larger error than the group's own patch gives; see :class:`QuantumConv2D`),
  ``Conv1D``, ``LocalResponseNorm``, LeNet's trainable ``Subsampling2D``, tanh / sigmoid,
  global average pooling, pooling that does not follow a quantum layer. ``Concat`` stays the
  classical container of its (converted) branches.

:func:`quantization_plan` lists what happens to every layer.

Seeding of the quantum layers' noise (estimation noise and sampling), deterministic:

- ``seed=None`` (default): each quantum layer draws from ``conv.derived_seed``, the child stream
  its classical twin reserved when it was built (the first child of the seed sequence its
  weights came from). So ``quantize(paper_cnn(seed=s), config)`` *is* the network that
  ``QuantumConv2D(..., rng=r)`` layers built from the same generators give: same weights, same
  noise streams, bit for bit;
- ``seed=s``: the k-th quantum layer (in :func:`qcnn.nn.walk` order) draws from the k-th child
  of ``seed_stream(s, "quantum_noise")``, independent of how the classical model was built.

With ``QuantumConfig.exact()`` (no estimation error, no sampling, cap 1e30) the quantized
network computes what the classical one does (up to float rounding).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qcnn.nn import AvgPool2D, Concat, Conv2D, MaxPool2D, ReLU, Sequential
from qcnn.nn.layers import Layer
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.layer import PoolOnWrite, QuantumConv2D
from qcnn.seeding import seed_stream

__all__ = ["QuantizeNote", "quantize", "quantization_plan"]

_NO_COUNTERPART = {
    "Conv2D": "not followed by a ReLU: the quantum layer's output state needs the capped ReLU",
    "Conv1D": "no quantum counterpart (the quantum layer is a 2-D convolution)",
    "LocalResponseNorm": "no quantum counterpart (cross-channel normalisation)",
    "Subsampling2D": "no quantum counterpart (trainable coefficient and bias per map)",
    "Tanh": "no quantum counterpart (classical activation)",
    "Sigmoid": "no quantum counterpart (classical activation)",
    "GlobalAvgPool2D": "classical (not pooling during a quantum layer's write)",
    "MaxPool2D": "classical (does not follow a quantum layer's ReLU)",
    "AvgPool2D": "classical (does not follow a quantum layer's ReLU)",
}


@dataclass(frozen=True)
class QuantizeNote:
    """What :func:`quantize` does with one layer: ``path`` is its dotted index in the classical
    model, ``action`` one of ``quantum``, ``absorbed``, ``merged``, ``classical``,
    ``container``."""

    path: str
    layer: str
    action: str
    detail: str = ""


@dataclass
class _Group:
    """One step of a Sequential: a quantum layer (conv + relu [+ pool]) or one other layer."""

    layers: tuple[Layer, ...]
    path: str
    children: list[list[_Group]] | None = None  # a container's converted children


def _is_classical_conv(layer: Layer) -> bool:
    """A classical convolution that can become a quantum layer (grouped ones cannot)."""
    return isinstance(layer, Conv2D) and not isinstance(layer, QuantumConv2D) and layer.groups == 1


def _classical_detail(layer: Layer) -> str:
    if isinstance(layer, Conv2D) and layer.groups != 1:
        return f"grouped convolution (groups={layer.groups}): no quantum layer, kept classical"
    return _NO_COUNTERPART.get(type(layer).__name__, "classical layer")


def _plan_sequence(layers: list[Layer], prefix: str) -> list[_Group]:
    groups, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if _is_classical_conv(layer) and i + 1 < len(layers) and isinstance(layers[i + 1], ReLU):
            n = 2
            if i + 2 < len(layers) and isinstance(layers[i + 2], (MaxPool2D, AvgPool2D)):
                n = 3
            groups.append(_Group(tuple(layers[i : i + n]), f"{prefix}{i}"))
            i += n
            continue
        groups.append(_plan_layer(layer, f"{prefix}{i}"))
        i += 1
    return groups


def _plan_layer(layer: Layer, path: str) -> _Group:
    if isinstance(layer, Sequential):
        return _Group((layer,), path, [_plan_sequence(layer.layers, f"{path}.")])
    if isinstance(layer, Concat):
        return _Group(
            (layer,), path, [[_plan_layer(b, f"{path}.{j}")] for j, b in enumerate(layer.branches)]
        )
    if layer.sublayers():
        raise TypeError(
            f"quantize: cannot rebuild the container {type(layer).__name__} at {path!r} "
            "(it knows Sequential and Concat)"
        )
    return _Group((layer,), path)


def _notes(groups: list[_Group], out: list[QuantizeNote]) -> None:
    for g in groups:
        if g.children is not None:
            out.append(QuantizeNote(g.path, type(g.layers[0]).__name__, "container"))
            for child in g.children:
                _notes(child, out)
        elif len(g.layers) > 1:
            conv, *rest = g.layers
            out.append(QuantizeNote(g.path, repr(conv), "quantum", "QuantumConv2D"))
            base = g.path.rsplit(".", 1)
            head = f"{base[0]}." if len(base) == 2 else ""
            index = int(base[-1])
            out.append(
                QuantizeNote(
                    f"{head}{index + 1}",
                    repr(rest[0]),
                    "absorbed",
                    "the quantum layer's capped ReLU",
                )
            )
            if len(rest) == 2:
                out.append(
                    QuantizeNote(
                        f"{head}{index + 2}",
                        repr(rest[1]),
                        "merged",
                        "pooling during the quantum layer's write",
                    )
                )
        else:
            detail = _classical_detail(g.layers[0])
            out.append(QuantizeNote(g.path, repr(g.layers[0]), "classical", detail))


def quantization_plan(model: Layer) -> list[QuantizeNote]:
    """What :func:`quantize` does with every layer of ``model`` (nothing is built)."""
    groups = (
        _plan_sequence(model.layers, "")
        if isinstance(model, Sequential)
        else [_plan_layer(model, "0")]
    )
    out: list[QuantizeNote] = []
    _notes(groups, out)
    return out


class _Builder:
    def __init__(self, config: QuantumConfig, seed: int | None, options: dict[str, Any]):
        self.config, self.options = config, options
        self.noise_parent = None if seed is None else seed_stream(seed, "quantum_noise")

    def noise_seed(self, conv: Conv2D) -> np.random.SeedSequence:
        if self.noise_parent is None:
            return conv.derived_seed
        return self.noise_parent.spawn(1)[0]  # the k-th call gives the k-th child

    def quantum(self, conv: Conv2D, pool: MaxPool2D | AvgPool2D | None) -> QuantumConv2D:
        on_write = None
        if pool is not None:
            kind: Literal["max", "avg"] = "avg" if isinstance(pool, AvgPool2D) else "max"
            on_write = PoolOnWrite(kind, pool.kernel_size, pool.stride, pool.padding)
        q = QuantumConv2D(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.bias is not None,
            config=self.config,
            rng=0,
            dtype=conv.weight.data.dtype,
            connections=conv.connections,
            pool=on_write,
            **self.options,
        )
        q.weight.data = conv.weight.data.copy()
        if conv.bias is not None and q.bias is not None:  # both or neither have one
            q.bias.data = conv.bias.data.copy()
        q.derived_seed = self.noise_seed(conv)
        q.rng = np.random.default_rng(q.derived_seed)
        return q

    def build(self, groups: list[_Group]) -> list[Layer]:
        out: list[Layer] = []
        for g in groups:
            if g.children is not None:
                container = g.layers[0]
                if isinstance(container, Sequential):
                    out.append(Sequential(*self.build(g.children[0])))
                else:
                    out.append(Concat(*[self.build(child)[0] for child in g.children]))
            elif len(g.layers) > 1:
                conv = g.layers[0]
                pool = g.layers[2] if len(g.layers) == 3 else None
                assert isinstance(conv, Conv2D) and isinstance(
                    pool, (MaxPool2D, AvgPool2D, type(None))
                )
                out.append(self.quantum(conv, pool))
            else:
                out.append(copy.deepcopy(g.layers[0]))
        return out


def quantize(
    model: Layer, config: QuantumConfig, *, seed: int | None = None, **layer_options: Any
) -> Sequential:
    """A quantum copy of ``model`` (see the module docstring for the rules and the seeding).

    ``model`` is left untouched. ``layer_options`` go to every :class:`QuantumConv2D`
    (e.g. ``executor="circuits"``). Parameters keep their order, so
    :func:`qcnn.models.transfer_weights` moves weights between the two networks.
    """
    if not isinstance(config, QuantumConfig):
        raise TypeError(f"config must be a QuantumConfig, got {type(config).__name__}")
    if not isinstance(model, Layer):
        raise TypeError(f"model must be a qcnn.nn Layer, got {type(model).__name__}")
    builder = _Builder(config, seed, layer_options)
    if isinstance(model, Sequential):
        return Sequential(*builder.build(_plan_sequence(model.layers, "")))
    return Sequential(*builder.build([_plan_layer(model, "0")]))
