"""Layers with one protocol, each backward next to its forward.

- ``forward(x)`` computes the output; in training mode (``layer.training``, the default, as in
  PyTorch) it caches what ``backward`` needs and stochastic layers (dropout) draw their noise;
  in inference mode (after ``layer.eval()``) it keeps no cache and dropout is the identity;
- ``backward(dout)`` returns ``dx`` (or None when ``need_input_grad`` is False, which the
  :class:`~qcnn.nn.model.Sequential` sets on its first layer) and stores each parameter's
  gradient in ``param.grad``;
- ``layer(x)`` runs ``forward`` and then the forward hooks (:meth:`Layer.register_forward_hook`);
  containers call their sublayers this way, so a hook on a nested layer fires.

The mode is module state as in PyTorch: ``model.train()`` / ``model.eval()`` set it on the model
and every layer inside it (:func:`walk`) and return the model; :func:`inference` switches a model
to inference mode for a ``with`` block and restores every layer's previous mode.

Parameters are :class:`Parameter` objects (``.data``, ``.grad``, ``.name``, ``.tags``) so
optimizers and gradient hooks can treat every layer alike.

The hooks a layer declares for the machinery around it (training loop, checkpoints, data
parallelism), so that nothing needs to know what kind of layer it is:

- ``rng``: the layer's :class:`numpy.random.Generator` if it draws random numbers, else None. A
  training run checkpoints its state, evaluation reseeds it, data parallelism gives each shard
  its own stream drawn from it;
- ``thread_safe``: False if two replicas must not run ``forward`` at the same time in threads
  (e.g. a layer that drives an external simulator);
- ``sublayers()``: the layers a container holds (:func:`walk` visits them all);
- ``reset_stats()``: forget statistics gathered by forward passes (a no-op unless a layer keeps
  some).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

import numpy as np
from numpy.typing import DTypeLike

from qcnn.checks import check_finite, check_int
from qcnn.nn import functional as F
from qcnn.nn.init import kaiming_uniform, uniform_bias

__all__ = [
    "Parameter",
    "Layer",
    "walk",
    "inference",
    "ForwardHook",
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
]


def _default_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _plain(value):
    """A window argument (int, pair or string) with numpy integers turned into Python ints, so
    that ``np.int64(2)`` and ``2`` make identical layers (same repr, same checkpoints)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (tuple, list)):
        return type(value)(int(v) if isinstance(v, np.integer) else v for v in value)
    return value


class Parameter:
    """A trainable array and its gradient.

    ``tags`` are free-form labels that gradient hooks and optimizers may select on (a layer
    tags the parameters it wants treated apart; the engine gives them no meaning).
    """

    __slots__ = ("data", "grad", "name", "tags")

    def __init__(self, data: np.ndarray, name: str = "", tags: Iterable[str] = frozenset()) -> None:
        self.data = data
        self.grad: np.ndarray | None = None
        self.name = name
        self.tags: frozenset[str] = frozenset(tags)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        tags = f", tags={sorted(self.tags)}" if self.tags else ""
        return f"Parameter({self.name!r}, shape={self.data.shape}, dtype={self.data.dtype}{tags})"


# hook(layer, inputs, output) -> a replacement output, or None to keep the output (PyTorch's form)
ForwardHook = Callable[["Layer", tuple[np.ndarray, ...], np.ndarray], "np.ndarray | None"]


_L = TypeVar("_L", bound="Layer")


class RemovableHandle:
    """What :meth:`Layer.register_forward_hook` returns: ``handle.remove()`` unregisters the
    hook (idempotent); usable as a context manager that removes it on exit."""

    _next_id = 0

    def __init__(self, hooks: dict[int, ForwardHook]) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Layer:
    """Base class of every layer (and of containers such as :class:`~qcnn.nn.Sequential`).

    ``params`` holds the layer's own parameters by local name; a container's are in its
    sublayers. The class attributes below are the hooks of the module docstring; ``training``
    is the mode (True until :meth:`eval`, as in PyTorch).
    """

    need_input_grad: bool = True
    rng: np.random.Generator | None = None  # set by layers that draw random numbers
    thread_safe: bool = True
    training: bool = True

    def __init__(self) -> None:
        self.params: dict[str, Parameter] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``forward(x)``, then each forward hook in registration order (a hook that returns
        an array replaces the output the later hooks and the caller see)."""
        out = self.forward(x)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:
            for hook in list(hooks.values()):  # a hook may remove itself
                result = hook(self, (x,), out)
                if result is not None:
                    out = result
        return out

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Call ``hook(layer, inputs, output)`` after every ``layer(x)`` (``inputs`` is the
        tuple ``(x,)``, as in PyTorch); a returned array replaces the output. Returns a handle
        whose ``remove()`` unregisters it. Hooks fire when the layer is called, as containers
        call their sublayers; a direct ``layer.forward(x)`` runs no hook."""
        if not callable(hook):
            raise TypeError(f"a forward hook must be callable, got {type(hook).__name__}")
        hooks: dict[int, ForwardHook] = self.__dict__.setdefault("_forward_hooks", {})
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def train(self: _L, mode: bool = True) -> _L:
        """Set training mode (``mode=False``: inference) on this layer and every layer inside
        it; returns ``self``."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {mode!r}")
        for layer in walk(self):
            layer.training = mode
        return self

    def eval(self: _L) -> _L:
        """Set inference mode on this layer and every layer inside it (``train(False)``);
        returns ``self``."""
        return self.train(False)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one sample's output for one sample's ``input_shape`` (no batch axis)."""
        return input_shape

    def sublayers(self) -> tuple[Layer, ...]:
        """The layers this one contains, in order (a leaf layer contains none)."""
        return ()

    def reset_stats(self) -> None:
        """Forget the statistics gathered by forward passes (layers that keep some override)."""

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs: own parameters by local name, then sublayer ``i``'s
        as ``"<i>.<name>"`` (recursively, as in PyTorch)."""
        yield from self.params.items()
        for i, sub in enumerate(self.sublayers()):
            for name, p in sub.named_parameters():
                yield f"{i}.{name}", p

    def parameters(self) -> list[Parameter]:
        """Every parameter of the layer and its sublayers, in :meth:`named_parameters` order."""
        return [p for _, p in self.named_parameters()]

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def walk(layer: Layer) -> Iterator[Layer]:
    """``layer`` and every layer inside it, depth first in order (pre-order)."""
    yield layer
    for sub in layer.sublayers():
        yield from walk(sub)


@contextmanager
def inference(model: _L) -> Iterator[_L]:
    """``with inference(model):`` the model and every layer inside it in inference mode;
    afterwards each layer gets back the mode it had (mixed modes included)."""
    layers = list(walk(model))
    saved = [layer.training for layer in layers]
    try:
        model.eval()
        yield model
    finally:
        for layer, mode in zip(layers, saved, strict=True):
            layer.training = mode


class Conv2D(Layer):
    """2-D convolution ``(N, C, H, W) -> (N, O, H', W')`` (cross-correlation, PyTorch init).

    ``padding`` is an int, a pair, ``'same'``, ``'valid'`` or ``'full'``; see
    :mod:`qcnn.nn.functional`.

    ``derived_seed``: a :class:`numpy.random.SeedSequence` reserved at construction (the next
    child of the seed sequence the weights are drawn from), the seed of any random stream derived
    from this layer later, e.g. the noise of a stochastic layer that replaces it with the same
    weights; reserving it draws nothing, so the weights do not depend on it.

    Which input maps each output map sees is one concept, the connection table
    (:meth:`connection_table`, boolean ``(out_channels, in_channels)``), given in one of two
    forms:

    - ``groups`` g (PyTorch's ``groups``, AlexNet's two-GPU split): the block-diagonal table of
      g equal groups (:func:`qcnn.nn.functional.group_table`), stored compactly: the weight is
      ``(O, C / g, kh, kw)`` as in PyTorch and the convolution runs per group
      (:func:`qcnn.nn.functional.conv2d` with ``groups``). Initialised like PyTorch (fan-in
      ``C / g kh kw``);
    - ``connections``: any other table (LeNet-5's partial connection of C3). The weight keeps
      the dense shape ``(O, C, kh, kw)``; the table masks the kernel in the forward pass and the
      kernel's gradient in the backward pass, so the disconnected weights play no part whatever
      is added to them (e.g. gradient noise); they are zero from initialisation on.

    A ``connections`` table that *is* block-diagonal (:func:`~qcnn.nn.functional.table_groups`
    finds its g) is taken in the first form: ``Conv2D(connections=group_table(O, C, 2))`` is
    ``Conv2D(groups=2)``; a full table is no table. :meth:`dense_kernel` gives the
    ``(O, C, kh, kw)`` kernel of either form, zeros where there is no connection.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: F.Padding = 0,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike = np.float32,
        connections: np.ndarray | None = None,
        groups: int = 1,
    ) -> None:
        super().__init__()
        what = type(self).__name__
        in_channels = check_int(in_channels, f"{what}: in_channels", min=1)
        out_channels = check_int(out_channels, f"{what}: out_channels", min=1)
        groups = F.check_groups(groups, in_channels, out_channels, what)
        self.connections = _check_connections(connections, out_channels, in_channels)
        if self.connections is not None:
            table_g = F.table_groups(self.connections)
            if groups != 1 and table_g != groups:
                raise ValueError(
                    f"{what}: give groups={groups} or a connection table, not both (the table "
                    f"is {'not block-diagonal' if table_g is None else f'groups={table_g}'})"
                )
            if table_g is not None:  # block-diagonal (or full): the grouped form
                groups, self.connections = table_g, None
        self.groups = groups
        rng = _default_rng(rng)
        # cast: numpy types seed_seq as the ISeedSequence interface, which lacks spawn()
        (self.derived_seed,) = cast(np.random.SeedSequence, rng.bit_generator.seed_seq).spawn(1)
        kh, kw = F.pair(kernel_size, "kernel_size")
        F.check_window_args((kh, kw), stride, padding, what="Conv2D")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), _plain(stride), _plain(padding)
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = Parameter(kaiming_uniform(shape, rng, dtype=dtype), "weight")
        self.params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(uniform_bias(out_channels, shape, rng, dtype), "bias")
            self.params["bias"] = self.bias
        if self.connections is not None:
            self.weight.data *= self._mask()
        self._ws = F.Workspace()
        self._cache: F.ConvCache | None = None

    def _conv_forward(
        self, x: np.ndarray, bias: np.ndarray | None, training: bool
    ) -> tuple[np.ndarray, F.ConvCache]:
        """Checked convolution of ``x`` ``(N, C, H, W)``: ``(out (N, O, H', W'), cache)``.

        Refuses NaN/inf in ``x`` (one vectorised pass, see :func:`qcnn.checks.check_finite`):
        a non-finite pixel would otherwise spread through the network, or be silently zeroed
        by a layer that drops small values. An empty batch (N = 0) gives an empty output.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r} expects input (N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        check_finite(
            x, f"the input of {type(self).__name__}({self.in_channels}, {self.out_channels})"
        )
        # Inference gets its own buffer so it never clobbers the cache a backward still needs.
        return F.conv2d_forward(
            x,
            self.kernel(),
            bias,
            self.stride,
            self.padding,
            self.groups,
            workspace=self._ws,
            workspace_key="cols" if training else "cols_eval",
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        bias = None if self.bias is None else self.bias.data
        out, cache = self._conv_forward(x, bias, self.training)
        self._cache = cache if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        dx, dw, db = F.conv2d_backward(dout, self._cache, self.need_input_grad, workspace=self._ws)
        self._set_weight_grad(dw)
        if self.bias is not None and db is not None:  # db is None exactly when there is no bias
            self.bias.grad = db.astype(self.bias.data.dtype, copy=False)
        return dx

    def _mask(self) -> np.ndarray:
        """The connection table as a ``(O, C, 1, 1)`` 0/1 array of the kernel's dtype."""
        return self.connections[:, :, None, None].astype(self.weight.data.dtype)

    def kernel(self) -> np.ndarray:
        """The kernel the convolution uses ``(O, C / groups, kh, kw)``: the weight, masked by
        the connection table if there is one."""
        if self.connections is None:
            return self.weight.data
        return self.weight.data * self._mask()

    def connection_table(self) -> np.ndarray:
        """Which input maps each output map sees: boolean ``(O, C)`` (all True for a plain
        convolution, block-diagonal for ``groups`` > 1, the table given otherwise)."""
        if self.connections is not None:
            return self.connections.copy()
        return F.group_table(self.out_channels, self.in_channels, self.groups)

    def dense_kernel(self) -> np.ndarray:
        """The kernel as one dense ``(O, C, kh, kw)`` array, zero where there is no connection:
        ``conv2d(x, dense_kernel())`` is this layer's convolution, whatever its form."""
        return F.expand_groups(self.kernel(), self.groups)

    def _set_weight_grad(self, dw: np.ndarray) -> None:
        self.weight.grad = dw if self.connections is None else dw * self._mask()

    def kernel_volume(self) -> int:
        """Inputs of one output pixel, ``kh kw D`` (connected input maps only, at most)."""
        kh, kw = self.kernel_size
        return kh * kw * int(self.connection_table().sum(axis=1).max())

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        geom = F.conv_geometry(input_shape[1:], self.kernel_size, self.stride, self.padding)
        return (self.out_channels, *geom.out)

    def extra_repr(self) -> str:
        table = "" if self.connections is None else ", connections=partial"
        if self.groups != 1:
            table = f", groups={self.groups}"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={self.bias is not None}{table}"
        )


def _check_connections(table: np.ndarray | None, out_channels: int, in_channels: int):
    """Validate a connection table: boolean-like ``(O, C)``, every output sees some input."""
    if table is None:
        return None
    arr = np.asarray(table)
    if arr.shape != (out_channels, in_channels):
        raise ValueError(
            f"Conv2D: connections must have shape (out_channels, in_channels) = "
            f"{(out_channels, in_channels)}, got {arr.shape}"
        )
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError("Conv2D: connections must hold booleans or 0/1")
    arr = arr.astype(bool)
    if not arr.any(axis=1).all():
        raise ValueError(
            f"Conv2D: output maps {np.flatnonzero(~arr.any(axis=1)).tolist()} have no input"
        )
    return arr


class Conv1D(Layer):
    """1-D convolution of signals ``(N, C, L) -> (N, O, L')`` (cross-correlation, PyTorch init).

    Weight ``(O, C, k)``. ``stride`` is an int; ``padding`` an int, ``'same'``, ``'valid'`` or
    ``'full'`` (:func:`qcnn.nn.functional.conv1d`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"Conv1D: channels must be positive, got in={in_channels}, out={out_channels}"
            )
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)):
            raise TypeError(f"Conv1D: kernel_size must be an int, got {kernel_size!r}")
        stride2, padding2 = F._conv1d_args(stride, padding)
        F.check_window_args((1, int(kernel_size)), stride2, padding2, what="Conv1D")
        rng = _default_rng(rng)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), padding
        shape = (out_channels, in_channels, self.kernel_size)
        self.weight = Parameter(kaiming_uniform(shape, rng, dtype=dtype), "weight")
        self.params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(uniform_bias(out_channels, shape, rng, dtype), "bias")
            self.params["bias"] = self.bias
        self._ws = F.Workspace()
        self._cache: F.ConvCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self!r} expects input (N, {self.in_channels}, L), got shape {x.shape}"
            )
        out, cache = F.conv1d_forward(
            x,
            self.weight.data,
            None if self.bias is None else self.bias.data,
            self.stride,
            self.padding,
            workspace=self._ws,
            workspace_key="cols" if self.training else "cols_eval",
        )
        self._cache = cache if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        dx, dw, db = F.conv1d_backward(dout, self._cache, self.need_input_grad, workspace=self._ws)
        self.weight.grad = dw
        if self.bias is not None and db is not None:  # db is None exactly when there is no bias
            self.bias.grad = db.astype(self.bias.data.dtype, copy=False)
        return dx

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        stride2, padding2 = F._conv1d_args(self.stride, self.padding)
        geom = F.conv_geometry((1, input_shape[1]), (1, self.kernel_size), stride2, padding2)
        return (self.out_channels, geom.out[1])

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r}, bias={self.bias is not None}"
        )


class Dense(Layer):
    """Fully connected layer ``(N, in) -> (N, out)``; weight ``(out, in)`` as in PyTorch."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        in_features = check_int(in_features, "Dense: in_features", min=1)
        out_features = check_int(out_features, "Dense: out_features", min=1)
        rng = _default_rng(rng)
        self.in_features, self.out_features = in_features, out_features
        shape = (out_features, in_features)
        self.weight = Parameter(kaiming_uniform(shape, rng, dtype=dtype), "weight")
        self.params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(uniform_bias(out_features, shape, rng, dtype), "bias")
            self.params["bias"] = self.bias
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self!r} expects input (N, {self.in_features}), got {x.shape}")
        self._x = x if self.training else None
        out = x @ self.weight.data.T
        if self.bias is not None:
            out += self.bias.data
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        self.weight.grad = (dout.T @ self._x).astype(self.weight.data.dtype, copy=False)
        if self.bias is not None:
            self.bias.grad = dout.sum(axis=0).astype(self.bias.data.dtype, copy=False)
        return dout @ self.weight.data if self.need_input_grad else None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_features,)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Flatten(Layer):
    """``(N, ...) -> (N, prod(...))``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))  # explicit: -1 fails for N = 0

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(self._shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(input_shape)),)


class ReLU(Layer):
    """``max(x, 0)``; derivative 1 where x > 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.maximum(x, 0)
        self._mask = out > 0 if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._mask


class CapReLU(Layer):
    """Capped ReLU ``min(max(x, 0), cap)`` (model §2.3).

    Derivative 1 on ``(0, cap)`` and 0 elsewhere.
    """

    def __init__(self, cap: float) -> None:
        super().__init__()
        if not np.isfinite(cap) or cap <= 0:
            raise ValueError(f"CapReLU: cap must be a finite number > 0, got {cap!r}")
        self.cap = float(cap)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.clip(x, 0, self.cap)
        self._mask = ((x > 0) & (x < self.cap)) if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._mask

    def extra_repr(self) -> str:
        return f"cap={self.cap:g}"


class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``, computed without overflow."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp of a non-positive number only: no overflow for large |x|
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
        self._out = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._out * (1 - self._out)


class Tanh(Layer):
    """``tanh(x)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x)
        return self._out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self._out * self._out)


class Dropout(Layer):
    """Inverted dropout: zero each unit with probability ``p`` in training, scale by 1/(1-p)."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng: np.random.Generator = _default_rng(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        self._mask = keep.astype(x.dtype) / (1 - self.p)
        return x * self._mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._mask is None else dout * self._mask

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class _Pool2D(Layer):
    """Window, stride (default: the window) and padding of a pooling layer."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: F.Padding = 0,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = _plain(kernel_size), _plain(stride)
        self.padding = _plain(padding)
        F.check_window_args(
            kernel_size,
            kernel_size if stride is None else stride,
            padding,
            what=type(self).__name__,
        )

    def _no_cache(self) -> RuntimeError:
        return RuntimeError(f"{self!r}: backward called without a training forward pass")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        stride = self.kernel_size if self.stride is None else self.stride
        geom = F.conv_geometry(input_shape[1:], self.kernel_size, stride, self.padding)
        return (input_shape[0], *geom.out)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


class MaxPool2D(_Pool2D):
    """Max pooling; the gradient goes to the arg-max of each window."""

    _cache: F.MaxPoolCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._cache = cache if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_cache()
        return F.max_pool2d_backward(dout, self._cache)


class AvgPool2D(_Pool2D):
    """Average pooling; the gradient is spread evenly over each window."""

    _cache: F.AvgPoolCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._cache = cache if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise self._no_cache()
        return F.avg_pool2d_backward(dout, self._cache)


class GlobalAvgPool2D(Layer):
    """Mean of every channel over all positions: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x_shape = x.shape
        return F.global_avg_pool2d(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return F.global_avg_pool2d_backward(dout, self._x_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0],)


class Subsampling2D(Layer):
    """LeNet-5's trainable subsampling (S2, S4): ``y_c = weight_c * avgpool(x)_c + bias_c``.

    ``(N, C, H, W) -> (N, C, H / k, W / k)`` with non-overlapping ``k x k`` windows; one
    trainable coefficient and one bias per map (LeCun et al. 1998 sum the four inputs and
    multiply by a coefficient: the same up to a factor 4 absorbed into it). Initialised to the
    plain average (coefficient 1, bias 0). The squashing function (tanh or sigmoid) is the
    next layer.
    """

    def __init__(
        self, channels: int, kernel_size: int = 2, *, dtype: DTypeLike = np.float32
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"Subsampling2D: channels must be positive, got {channels}")
        F.check_window_args(kernel_size, kernel_size, 0, what="Subsampling2D")
        self.channels, self.kernel_size = channels, kernel_size
        self.weight = Parameter(np.ones(channels, dtype=dtype), "weight")
        self.bias = Parameter(np.zeros(channels, dtype=dtype), "bias")
        self.params.update(weight=self.weight, bias=self.bias)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{self!r} expects input (N, {self.channels}, H, W), got {x.shape}")
        pooled, pool_cache = F.avg_pool2d_forward(x, self.kernel_size)
        self._cache = (pool_cache, pooled) if self.training else None
        dtype = pooled.dtype
        w = self.weight.data.astype(dtype, copy=False)[:, None, None]
        return pooled * w + self.bias.data.astype(dtype, copy=False)[:, None, None]

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        pool_cache, pooled = self._cache
        pdtype = self.weight.data.dtype
        self.weight.grad = np.einsum("nchw,nchw->c", dout, pooled).astype(pdtype, copy=False)
        self.bias.grad = dout.sum(axis=(0, 2, 3)).astype(pdtype, copy=False)
        if not self.need_input_grad:
            return None
        dpooled = dout * self.weight.data.astype(dout.dtype, copy=False)[:, None, None]
        return F.avg_pool2d_backward(dpooled, pool_cache)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        geom = F.conv_geometry(input_shape[1:], self.kernel_size, self.kernel_size, 0)
        return (input_shape[0], *geom.out)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}"


class LocalResponseNorm(Layer):
    """Local response normalisation across channels (AlexNet), as ``torch.nn.LocalResponseNorm``:
    ``b_c = a_c / (k + alpha / size * sum of a^2 over the size channels around c)^beta``."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        F._check_lrn_args(size, alpha, beta, k)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    _cache: F.LRNCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, cache = F.local_response_norm_forward(x, self.size, self.alpha, self.beta, self.k)
        self._cache = cache if self.training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        return F.local_response_norm_backward(dout, self._cache)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g}"


class EuclideanRBF(Layer):
    """LeNet-5's output layer (LeCun et al. 1998, eq. 7): Euclidean radial basis units with
    fixed class codes. ``(N, D) -> (N, K)``, ``out_i = -sum_j (x_j - codes_ij)^2``.

    The paper's unit outputs the squared distance ``y_i`` itself, the penalty of class i; this
    layer returns ``-y_i`` so that the largest output is the predicted class and the softmax
    cross-entropy on it is the paper's MAP criterion (eq. 9) without its constant ``j``. The
    codes ``(K, D)`` are fixed (not parameters: the paper chose them by hand and kept them).
    """

    def __init__(self, codes: np.ndarray) -> None:
        super().__init__()
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
            raise ValueError(f"EuclideanRBF: codes must be a 2-D array (K, D), got {codes.shape}")
        check_finite(codes, "EuclideanRBF: codes")
        self.codes = codes.copy()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.codes.shape[1]:
            raise ValueError(f"{self!r} expects input (N, {self.codes.shape[1]}), got {x.shape}")
        c = self.codes.astype(x.dtype, copy=False)
        self._x = x if self.training else None
        diff = x[:, None, :] - c[None, :, :]  # (N, K, D): small (LeNet: K = 10, D = 84)
        return -np.einsum("nkd,nkd->nk", diff, diff)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        if not self.need_input_grad:
            return None
        x = self._x
        c = self.codes.astype(x.dtype, copy=False)
        # d out_i / d x = -2 (x - c_i), summed over i with weights dout_i
        return -2.0 * (dout.sum(axis=1)[:, None] * x - dout @ c)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.codes.shape[0],)

    def extra_repr(self) -> str:
        return f"{self.codes.shape[1]}, {self.codes.shape[0]}"
