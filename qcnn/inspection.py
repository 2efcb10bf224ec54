"""Seeing what a network learned: first-layer kernels, activation maximisation, and
penultimate-layer features projected to 2-D, for a classical network and its quantized twin.

- :func:`conv_targets`: every convolution of a classical network (nested ones too) with the
  layers that lead to it (its *prefix*: a path through a :class:`~qcnn.nn.Concat` enters one
  branch, which sees the Concat's input).
- :func:`maximise_activation`: gradient ascent on the input ``x (1, C, H, W)`` to maximise the
  mean activation of one filter, under an L2-norm constraint ``||x|| <= radius``, from seeded
  noise. The *reported* objective is the mean post-ReLU activation (quantum: the expected
  activation with the error models on, averaged over noisy forward passes with fixed seeds). The
  *gradient* is that of the filter's mean pre-activation (a straight-through step over the
  target's own ReLU, so a filter that starts inactive still gets a direction) and, for the
  quantum network, is computed with the error models off (exact inner products, no sampling:
  ``QuantumConfig.exact(cap=C)``, the cap of the earlier quantum layers kept).
- :func:`project_2d`: PCA (numpy SVD) or scikit-learn's t-SNE.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from qcnn.nn import Conv2D, ReLU, Sequential
from qcnn.nn.layers import Layer
from qcnn.quantum import QuantumConfig, QuantumConv2D, quantize

__all__ = [
    "ConvTarget",
    "AscentResult",
    "conv_targets",
    "maximise_activation",
    "project_2d",
    "reseed_quantum_layers",
]


@dataclass
class ConvTarget:
    """A convolution at ``path`` of a classical network and the layers computing its output:
    ``prefix`` ends with the convolution itself (copies: the network is left alone)."""

    path: str
    conv: Conv2D
    prefix: list[Layer] = field(repr=False)


def _prefixes(layers: list[Layer], path: str, before: list[Layer], out: list[ConvTarget]):
    for i, layer in enumerate(layers):
        here = f"{path}{i}"
        if isinstance(layer, Sequential):
            _prefixes(layer.layers, f"{here}.", before, out)
        elif layer.sublayers():  # Concat: every branch sees the container's input
            for j, branch in enumerate(layer.sublayers()):
                sub = branch.layers if isinstance(branch, Sequential) else [branch]
                _prefixes(sub, f"{here}.{j}.", before, out)
        elif isinstance(layer, Conv2D) and not isinstance(layer, QuantumConv2D):
            out.append(ConvTarget(here, layer, [*before, layer]))
        before = [*before, layer]


def conv_targets(model: Sequential) -> list[ConvTarget]:
    """Every classical convolution of ``model`` (walk order) with its prefix, as deep copies."""
    model = copy.deepcopy(model)
    out: list[ConvTarget] = []
    _prefixes(model.layers, "", [], out)
    return out


def reseed_quantum_layers(model: Layer, seed: int) -> None:
    """Give every quantum layer of ``model`` a fresh stream from ``seed`` (fixed pictures)."""
    from qcnn.nn import walk

    layers = [layer for layer in walk(model) if isinstance(layer, QuantumConv2D)]
    for layer, child in zip(layers, np.random.SeedSequence(seed).spawn(len(layers)), strict=True):
        layer.rng = np.random.default_rng(child)


@dataclass
class AscentResult:
    """The maximising input ``x (1, C, H, W)`` and the objective before and after."""

    x: np.ndarray
    start: float
    final: float
    history: list[float]


class _Chain:
    """Layers run in order with every input gradient computed (no renaming, no copies)."""

    def __init__(self, layers: list[Layer], training: bool) -> None:
        self.layers = layers
        for layer in layers:
            layer.need_input_grad = True
            layer.train(training)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        d: np.ndarray | None = dout
        for layer in reversed(self.layers):
            assert d is not None  # every layer here computes its input gradient
            d = layer.backward(d)
        assert d is not None
        return d


def _filter_mean(out: np.ndarray, q: int) -> float:
    return float(out[:, q].mean())


def maximise_activation(
    target: ConvTarget,
    q: int,
    input_shape: tuple[int, int, int],
    *,
    config: QuantumConfig | None = None,
    steps: int = 60,
    lr: float = 0.1,
    radius: float = 10.0,
    seed: int = 0,
    draws: int = 4,
) -> AscentResult:
    """Maximise the mean activation of filter ``q`` of ``target``: classical network when
    ``config`` is None, else its quantized twin under ``config`` (see the module docstring for
    what is maximised and how the gradient is taken). ``lr`` is the step as a fraction of the
    radius; every step moves ``x`` along the normalised gradient and projects it back onto
    ``||x|| <= radius``. Deterministic for a ``seed``."""
    if not 0 <= q < target.conv.out_channels:
        raise ValueError(f"filter {q} out of range for {target.conv.out_channels} filters")
    if radius <= 0 or steps < 0 or lr <= 0:
        raise ValueError("need radius > 0, lr > 0 and steps >= 0")
    base = [copy.deepcopy(layer) for layer in target.prefix]  # ends with the conv
    if config is None:
        grad_chain = _Chain(base, training=True)
        activation = _Chain([*copy.deepcopy(base), ReLU()], training=False)

        def objective(x: np.ndarray) -> float:
            return _filter_mean(activation.forward(x), q)

    else:
        # gradient: error models off, the caps of earlier quantum layers kept; the target conv
        # has no ReLU after it in this prefix, so it stays classical (its pre-activation)
        exact = quantize(Sequential(*copy.deepcopy(base)), QuantumConfig.exact(cap=config.cap))
        grad_chain = _Chain(list(exact.layers), training=True)
        noisy = quantize(Sequential(*copy.deepcopy(base), ReLU()), config, seed=seed)
        noisy_chain = _Chain(list(noisy.layers), training=False)

        def objective(x: np.ndarray) -> float:
            values = []
            for d in range(draws):  # the expected activation, errors on, fixed seeds
                reseed_quantum_layers(noisy, seed * 1000 + d)
                values.append(_filter_mean(noisy_chain.forward(x), q))
            return float(np.mean(values))

    dtype = target.conv.weight.data.dtype
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, *input_shape))
    x *= 0.1 * radius / np.linalg.norm(x)  # small noise inside the ball
    x = x.astype(dtype)
    history = [objective(x)]
    for _ in range(steps):
        out = grad_chain.forward(x)
        dout = np.zeros_like(out)
        dout[:, q] = 1.0 / out[:, q].size  # d mean(out[:, q]) / d out
        g = grad_chain.backward(dout)
        norm = float(np.linalg.norm(g))
        if norm == 0.0:
            break
        x = x + (lr * radius / norm) * g
        size = float(np.linalg.norm(x))
        if size > radius:
            x *= radius / size
        history.append(objective(x))
    return AscentResult(x=x, start=history[0], final=history[-1], history=history)


def project_2d(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(N, D)`` features (flattened if needed) -> ``(N, 2)``: PCA by numpy's SVD of the centred
    data, or t-SNE (scikit-learn, ``init='pca'``, seeded)."""
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if method == "pca":
        centred = f - f.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        components = vt[:2]
        # fix each component's sign (SVD's is arbitrary): largest loading positive
        signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
        proj = centred @ (components * signs[:, None]).T
        if proj.shape[1] < 2:  # one-dimensional features
            proj = np.hstack([proj, np.zeros((len(proj), 2 - proj.shape[1]))])
        return proj
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(f) - 1) / 3)))
        return TSNE(2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(f)
    raise ValueError(f"projection must be 'pca' or 'tsne', got {method!r}")
