"""``Concat``: parallel branches on one input, outputs concatenated on channels (Inception).

A branch is any :class:`~qcnn.nn.layers.Layer`, typically a :class:`~qcnn.nn.Sequential`. The
container declares its branches through ``sublayers()``, so parameter names
(``"<i>.<branch>.<j>.<name>"``), ``state_dict``, save/load, :func:`qcnn.nn.walk` (random
streams, statistics, data parallelism) all reach inside it.
"""

from __future__ import annotations

import numpy as np

from qcnn.nn.layers import Layer

__all__ = ["Concat"]


class Concat(Layer):
    """Run every branch on the same input and concatenate the outputs on axis 1 (channels).

    ``(N, C, H, W) -> (N, sum_b C_b, H', W')``: every branch must produce the same shape apart
    from its channel count. Backward splits ``dout`` into the branches' channel blocks, runs each
    branch's backward and sums their input gradients (the input fans out to every branch).
    """

    def __init__(self, *branches: Layer) -> None:
        super().__init__()
        if len(branches) == 1 and isinstance(branches[0], (list, tuple)):
            branches = tuple(branches[0])
        if not branches:
            raise ValueError("Concat needs at least one branch")
        for i, b in enumerate(branches):
            if not isinstance(b, Layer):
                raise TypeError(f"branch {i} is {type(b).__name__}, not a qcnn.nn Layer")
        if len({id(b) for b in branches}) != len(branches):
            raise ValueError("Concat: the same layer object appears in two branches")
        self.branches: list[Layer] = list(branches)
        self._splits: list[int] | None = None

    @property
    def need_input_grad(self) -> bool:
        return any(b.need_input_grad for b in self.branches)

    @need_input_grad.setter
    def need_input_grad(self, value: bool) -> None:
        for b in self.branches:
            b.need_input_grad = value

    def sublayers(self) -> tuple[Layer, ...]:
        return tuple(self.branches)

    def forward(self, x: np.ndarray) -> np.ndarray:
        outs = [b(x) for b in self.branches]
        rest = {o.shape[:1] + o.shape[2:] for o in outs}
        if any(o.ndim < 2 for o in outs) or len(rest) != 1:
            shapes = ", ".join(f"branch {i}: {o.shape}" for i, o in enumerate(outs))
            raise ValueError(
                f"Concat: branch outputs must agree in every axis but 1 (channels); got {shapes}"
            )
        self._splits = [o.shape[1] for o in outs] if self.training else None
        return np.concatenate(outs, axis=1)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._splits is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        bounds = np.cumsum([0, *self._splits])
        dx = None
        for b, lo, hi in zip(self.branches, bounds[:-1], bounds[1:], strict=True):
            d = b.backward(np.ascontiguousarray(dout[:, lo:hi]))
            if d is not None:
                dx = d if dx is None else dx + d
        return dx

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shapes = [b.output_shape(input_shape) for b in self.branches]
        if len({s[1:] for s in shapes}) != 1:
            raise ValueError(f"Concat: branch output shapes {shapes} differ beyond the channels")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def __repr__(self) -> str:
        inner = "\n".join(
            f"  ({i}): " + repr(b).replace("\n", "\n  ") for i, b in enumerate(self.branches)
        )
        return f"Concat(\n{inner}\n)"
