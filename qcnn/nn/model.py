"""``Sequential``: layers in order, with forward, backward, parameters and ``.npz`` persistence."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator

import numpy as np
from numpy.typing import DTypeLike

from qcnn.io import atomic_savez
from qcnn.nn.layers import Dense, Layer, inference

__all__ = ["Sequential", "input_shapes", "load_npz_strict"]


class Sequential(Layer):
    """Layers applied in order; itself a :class:`Layer`, so it can be nested in a container.

    Parameter names are ``"<layer index>.<param name>"`` (``"0.weight"``), as in PyTorch's
    ``nn.Sequential``; a nested container adds its index (``"2.0.weight"``). The outermost
    container names them: :meth:`Layer.named_parameters` and ``param.name`` agree for the model.

    A network's first layer is told not to compute its input gradient (nobody needs the
    gradient with respect to the images), which saves the largest col2im of a CNN. Setting
    ``need_input_grad`` on a Sequential sets it on its first layer (an outer container does so).
    """

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is {type(layer).__name__}, not a qcnn.nn Layer")
        self.layers: list[Layer] = list(layers)
        for i, layer in enumerate(self.layers):
            layer.need_input_grad = i > 0
        for name, p in self.named_parameters():
            p.name = name

    @property
    def need_input_grad(self) -> bool:
        return self.layers[0].need_input_grad

    @need_input_grad.setter
    def need_input_grad(self, value: bool) -> None:
        self.layers[0].need_input_grad = value

    def sublayers(self) -> tuple[Layer, ...]:
        return tuple(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run all layers (each called, so their forward hooks fire): e.g. ``(N, C, H, W)``
        images -> ``(N, K)`` logits."""
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Back-propagate ``dL/d(output)``; fills ``param.grad`` of every parameter and returns
        ``dL/d(input)`` (None when ``need_input_grad`` is False)."""
        d: np.ndarray | None = dout
        for layer in reversed(self.layers):
            assert d is not None, "a layer after the first returned no input gradient"
            d = layer.backward(d)
        return d

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Logits for ``x`` in inference mode (each layer's mode restored afterwards), in
        batches (bounded memory)."""
        with inference(self):
            outs = [
                self(x[i : i + batch_size])
                for i in range(0, max(len(x), 1), batch_size)  # an empty x: one empty batch
            ]
        return np.concatenate(outs)

    # -- features and summary -------------------------------------------------------------------
    def _resolve(self, layer: int | str | None) -> tuple[int, str | None]:
        """``(top-level index, rest of a dotted path or None)`` of the layer after which
        :meth:`features` reads the activations."""
        n = len(self.layers)
        if layer is None:
            dense = [i for i, lay in enumerate(self.layers) if isinstance(lay, Dense)]
            if not dense:
                raise ValueError("features: the model has no Dense layer; pass layer=")
            if dense[-1] == 0:
                raise ValueError("features: the last Dense layer is the first layer; pass layer=")
            return dense[-1] - 1, None
        if isinstance(layer, str):
            head, _, rest = layer.partition(".")
            try:
                index = int(head)
            except ValueError:
                raise ValueError(
                    f"features: layer name {layer!r} is not a dotted index path such as '3' or "
                    "'2.1.0' (the prefixes of parameter names)"
                ) from None
            return self._resolve(index)[0], rest or None
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"features: layer must be an int, a dotted path or None, got {layer!r}")
        if not -n <= layer < n:
            raise ValueError(f"features: layer {layer} out of range for {n} layers")
        return int(layer) % n, None

    def features(
        self, x: np.ndarray, layer: int | str | None = None, batch_size: int = 1000
    ) -> np.ndarray:
        """Activations after ``layer`` for inputs ``x (N, ...)``, in inference mode, in batches.

        ``layer``: an index of :attr:`layers` (negative counts from the end), or a dotted path
        as in parameter names (``"2"``, ``"3.1.0"``: inside a container; a path through a
        :class:`~qcnn.nn.containers.Concat` enters one branch, which sees the Concat's input).
        Default: the input of the last top-level ``Dense`` layer, the "penultimate-layer
        features" of a classifier. Returns ``(N, ...)`` of the shape after that layer.
        """
        index, rest = self._resolve(layer)
        outs = []
        with inference(self):
            for start in range(0, len(x), batch_size):
                h = x[start : start + batch_size]
                for lay in self.layers[:index]:
                    h = lay(h)
                outs.append(_features_of(self.layers[index], h, rest))
        return np.concatenate(outs)

    def summary(self, input_shape: tuple[int, ...]) -> str:
        """A table of every layer (nested ones indented): name, layer, output shape (one sample,
        no batch axis) and parameter count, for one sample of ``input_shape``, e.g.
        ``(1, 28, 28)``; then the total."""
        rows: list[tuple[str, str, str, int]] = []
        _summary_rows(self, "", tuple(input_shape), rows, depth=-1)
        total = self.num_parameters()
        w = [
            max(len(str(r[k])) for r in rows + [("name", "layer", "output shape", 0)])
            for k in range(3)
        ]
        header = (
            f"{'name':<{w[0]}}  {'layer':<{w[1]}}  {'output shape':<{w[2]}}  {'parameters':>10}"
        )
        lines = [header, "-" * len(header)]
        lines += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d:>10,}" for a, b, c, d in rows]
        lines += ["-" * len(header), f"total parameters: {total:,}"]
        return "\n".join(lines)

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    def astype(self, dtype: DTypeLike) -> Sequential:
        """Cast every parameter to ``dtype`` in place (float64 for gradient checks); returns self."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters by name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True) -> None:
        """Load parameters by name; names and shapes must match (all of them when ``strict``)."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        new_values = {}
        for name, p in params.items():  # validate everything before touching any parameter
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(
                    f"parameter {name}: expected shape {p.data.shape}, got {value.shape}"
                )
            if not np.issubdtype(value.dtype, np.floating):
                raise ValueError(
                    f"parameter {name}: expected floating point data, got {value.dtype}"
                )
            new_values[name] = value.astype(p.data.dtype, copy=True)
        for name, value in new_values.items():
            params[name].data = value

    def save(self, path: str | os.PathLike) -> None:
        """Save the parameters to ``path`` (``.npz``, written atomically, no pickle)."""
        atomic_savez(path, self.state_dict())

    def load(self, path: str | os.PathLike) -> None:
        """Load parameters saved by :meth:`save`; names, shapes and finiteness are checked
        (ValueError naming the file: missing or extra parameters, NaN/inf weights)."""
        state = load_npz_strict(path)
        for name, value in state.items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"{os.fspath(path)!r}: parameter {name} holds NaN or infinity")
        try:
            self.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)!r} does not fit this network: {exc}") from None

    def __repr__(self) -> str:
        inner = "\n".join(
            f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers)
        )
        return f"Sequential(\n{inner}\n)"


def _features_of(layer: Layer, h: np.ndarray, path: str | None) -> np.ndarray:
    """Output of ``layer`` on ``h``, or of the sublayer at the dotted ``path`` inside it (the
    caller has set the mode)."""
    if path is None:
        return layer(h)
    if isinstance(layer, Sequential):
        index, rest = layer._resolve(path)
        for lay in layer.layers[:index]:
            h = lay(h)
        return _features_of(layer.layers[index], h, rest)
    subs = layer.sublayers()
    head, _, rest = path.partition(".")
    if not subs or not head.isdigit() or int(head) >= len(subs):
        raise ValueError(f"features: {type(layer).__name__} has no sublayer {head!r}")
    return _features_of(subs[int(head)], h, rest or None)


def input_shapes(model: Layer, input_shape: tuple[int, ...]) -> list[tuple[Layer, tuple[int, ...]]]:
    """``(layer, the shape of one sample it receives)`` for ``model`` and every layer inside it,
    in :func:`~qcnn.nn.walk` order, from shapes alone (no forward pass): a :class:`Sequential`
    chains its layers, any other container (:class:`~qcnn.nn.Concat`) gives each sublayer its
    own input."""
    out: list[tuple[Layer, tuple[int, ...]]] = [(model, tuple(input_shape))]
    shape = tuple(input_shape)
    for sub in model.sublayers():
        out += input_shapes(sub, shape)
        if isinstance(model, Sequential):
            shape = sub.output_shape(shape)
    return out


def _summary_rows(layer: Layer, name: str, shape: tuple[int, ...], rows: list, depth: int):
    """Append ``(name, layer, output shape, parameters)`` for ``layer`` and its sublayers."""
    out = layer.output_shape(shape)
    if depth >= 0:
        label = "  " * depth + (type(layer).__name__ if layer.sublayers() else repr(layer))
        n_params = sum(p.data.size for p in layer.parameters())
        rows.append((name, label, str(out), n_params))
    prefix = f"{name}." if name else ""
    sub_shape = shape
    for i, sub in enumerate(layer.sublayers()):
        # a Sequential chains its layers; other containers (Concat) feed each the same input
        _summary_rows(sub, f"{prefix}{i}", sub_shape, rows, depth + 1)
        if isinstance(layer, Sequential):
            sub_shape = sub.output_shape(sub_shape)
    return out


def load_npz_strict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file with ``allow_pickle=False``; clear error if corrupt."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        # allow_pickle=False turns object arrays into a ValueError too: never unpickle here.
        raise ValueError(f"cannot read {os.fspath(path)!r} as a numpy .npz file: {exc}") from exc
