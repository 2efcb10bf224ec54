"""Quantum backpropagation for torch models (model §3): the gradient models of
:mod:`qcnn.quantum.gradient_models` applied to torch gradients.

- ``'gaussian'`` [paper-sim]: ``g + delta ||g||_2 N(0, 1)`` elementwise, drawn on the gradient's
  device (one norm per vector);
- ``'linf_tomography'`` [theory]: the emulator's l-infinity tomography estimate
  (:func:`qcnn.quantum.tomography_estimate`: exact multinomial counts, KP or exact signs), run on
  the host with the caller's numpy generator; the estimate comes back to the gradient's device.

Where they apply:

- parameter gradients: :class:`QuantumBackprop`, a step pre-hook of any ``torch.optim``
  optimizer (every parameter it updates [paper-sim], or only the kernels of the
  :class:`~qcnn.torch.QuantumConv2d` layers, ``QuantumConfig.gradient_on``);
- the gradient a quantum layer passes back to the previous layer (one vector per image,
  ``QuantumConfig.input_gradient_noise``): :class:`GradientReadout`, an ``autograd.Function``
  the layer puts on its input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from qcnn.quantum import QuantumConfig
from qcnn.quantum import noisy_gradient as emulator_noisy_gradient
from qcnn.quantum.gradient_models import GRADIENT_MODELS
from qcnn.torch.random import Streams

__all__ = ["noisy_gradient", "GradientReadout", "QuantumBackprop"]


def noisy_gradient(
    grad: torch.Tensor,
    delta: float,
    streams: Streams,
    model: str = "gaussian",
    *,
    signs: str = "kp",
    batch_dims: int = 0,
    norm_ae: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The quantum estimate of ``grad`` (same shape, dtype and device) under the gradient
    ``model``; ``batch_dims`` leading axes index independent vectors, each with its own norm.
    ``norm_ae = (m, k)``: the tomography's norm estimated by amplitude estimation
    (``QuantumConfig.gradient_norm_ae``). ``delta = 0`` returns ``grad`` itself."""
    if model not in GRADIENT_MODELS:
        raise ValueError(f"model must be one of {GRADIENT_MODELS}, got {model!r}")
    if delta == 0 or grad.numel() == 0:
        return grad
    if model == "linf_tomography":  # the emulator's own model, on the host
        est = emulator_noisy_gradient(
            grad.detach().cpu().numpy(),
            delta,
            streams.host,
            model,
            signs=signs,
            batch_dims=batch_dims,
            norm_ae=norm_ae,
        )
        return torch.from_numpy(np.ascontiguousarray(est)).to(grad.device, grad.dtype)
    if norm_ae is not None:
        raise ValueError("norm_ae is a setting of the 'linf_tomography' gradient model")
    rows = grad.detach().reshape(int(np.prod(grad.shape[:batch_dims], dtype=np.int64)), -1)
    norms = torch.linalg.vector_norm(rows.to(torch.float64), dim=1).to(grad.dtype)
    noise = torch.randn(
        rows.shape, generator=streams.device(grad.device), dtype=grad.dtype, device=grad.device
    )
    return (rows + noise * (delta * norms)[:, None]).reshape(grad.shape)


class GradientReadout(torch.autograd.Function):
    """Identity forward; backward replaces the incoming gradient by its quantum estimate, one
    vector per image (the gradient a quantum layer passes back is read out of a quantum state
    by l-infinity tomography, model §3)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, config: QuantumConfig, streams: Streams) -> torch.Tensor:
        ctx.config, ctx.streams = config, streams
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cfg: QuantumConfig = ctx.config
        out = noisy_gradient(
            grad,
            cfg.delta,
            ctx.streams,
            cfg.gradient_model,
            signs=cfg.gradient_signs,
            batch_dims=1,
            norm_ae=cfg.gradient_norm_ae,
        )
        return out, None, None


class QuantumBackprop:
    """Quantum backprop on parameter gradients: before every ``optimizer.step()`` each
    parameter's ``.grad`` is replaced by its quantum estimate (:func:`noisy_gradient`, the whole
    tensor one vector), so any torch optimizer trains with the quantum gradients.

    Args:
        optimizer: the optimizer whose parameters it acts on (its ``param_groups`` at each step).
        model: the model, to know which parameters are quantum kernels (the ``weight`` of every
            :class:`~qcnn.torch.QuantumConv2d`) for ``gradient_on='quantum'``.
        config: the gradient settings (``delta``, ``gradient_model``, ``gradient_signs``,
            ``gradient_on``, ``gradient_norm``); default: the config of the model's quantum layers (they must agree
            on these fields).
        seed: int, SeedSequence or None (fresh OS entropy): the noise streams.

    ``remove()`` detaches the hook; ``apply()`` applies the model once, by hand.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        config: QuantumConfig | None = None,
        *,
        seed: int | np.random.SeedSequence | None = None,
    ) -> None:
        from qcnn.torch.layer import QuantumConv2d

        self.quantum_layers = [m for m in model.modules() if isinstance(m, QuantumConv2d)]
        if config is None:
            if not self.quantum_layers:
                raise ValueError("QuantumBackprop: the model has no QuantumConv2d; pass a config")
            fields = ("delta", "gradient_model", "gradient_signs", "gradient_on", "gradient_norm")
            seen = {tuple(getattr(m.config, f) for f in fields) for m in self.quantum_layers}
            if len(seen) > 1:
                raise ValueError(
                    f"QuantumBackprop: the quantum layers disagree on {fields} ({sorted(seen)}); "
                    "pass a config"
                )
            config = self.quantum_layers[0].config
        if not isinstance(config, QuantumConfig):
            raise TypeError(f"config must be a QuantumConfig, got {type(config).__name__}")
        self.config, self.optimizer = config, optimizer
        self.streams = Streams(seed)
        self._handle = optimizer.register_step_pre_hook(self._pre_step)

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.apply()

    def _params(self) -> Iterable[torch.Tensor]:
        quantum = {id(m.weight) for m in self.quantum_layers}
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and (self.config.gradient_on == "all" or id(p) in quantum):
                    yield p

    @torch.no_grad()
    def apply(self) -> None:
        cfg = self.config
        if cfg.delta == 0:
            return
        for p in self._params():
            assert p.grad is not None
            p.grad = noisy_gradient(
                p.grad,
                cfg.delta,
                self.streams,
                cfg.gradient_model,
                signs=cfg.gradient_signs,
                norm_ae=cfg.gradient_norm_ae,
            )

    def remove(self) -> None:
        self._handle.remove()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"QuantumBackprop(delta={c.delta:g}, model={c.gradient_model!r}, on={c.gradient_on!r})"
        )
