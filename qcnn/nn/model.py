"""``Sequential``: a list of layers with forward, backward, parameters and ``.npz`` persistence."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator

import numpy as np

from qcnn.io import atomic_savez
from qcnn.nn.layers import Layer, Parameter

__all__ = ["Sequential", "load_npz_strict"]


class Sequential:
    """Layers applied in order.

    Parameter names are ``"<layer index>.<param name>"`` (``"0.weight"``), as in PyTorch's
    ``nn.Sequential``. The first layer is told not to compute its input gradient (nobody needs
    the gradient with respect to the images), which saves the largest col2im of a CNN.
    """

    def __init__(self, *layers: Layer) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is {type(layer).__name__}, not a qcnn.nn Layer")
        self.layers: list[Layer] = list(layers)
        self.layers[0].need_input_grad = False
        for i, layer in enumerate(self.layers):
            for name, p in layer.params.items():
                p.name = f"{i}.{name}"

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """Run all layers: e.g. ``(N, C, H, W)`` images -> ``(N, K)`` logits."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    __call__ = forward

    def backward(self, dout: np.ndarray) -> None:
        """Back-propagate ``dL/d(output)``; fills ``param.grad`` of every parameter."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Logits for ``x`` in inference mode, in batches (bounded memory)."""
        outs = [
            self.forward(x[i : i + batch_size], training=False)
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outs)

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.params.values()]

    def named_parameters(self) -> Iterable[tuple[str, Parameter]]:
        return ((p.name, p) for p in self.parameters())

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    def astype(self, dtype: np.dtype) -> Sequential:
        """Cast every parameter to ``dtype`` in place (float64 for gradient checks); returns self."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters by name."""
        return {p.name: p.data.copy() for p in self.parameters()}

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
        """Load parameters saved by :meth:`save`; names and shapes are checked."""
        self.load_state_dict(load_npz_strict(path))

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


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
