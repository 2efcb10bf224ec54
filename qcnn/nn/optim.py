"""Optimizers with gradient hooks.

A *gradient hook* is a callable ``hook(param, grad) -> grad`` applied to every parameter's
gradient just before the update: gradient error models plug in here (the emulator's backprop
noise of model §3: ``SGD(params, lr, grad_hooks=[hook])``). A hook that draws random numbers
exposes its generator as ``hook.rng`` so training checkpoints its state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from qcnn.nn.layers import Parameter

__all__ = ["GradHook", "Optimizer", "SGD", "Adam"]

GradHook = Callable[[Parameter, np.ndarray], np.ndarray]


class Optimizer:
    """Base optimizer over a list of :class:`Parameter` (their ``.grad`` is read by ``step``)."""

    def __init__(self, params: Iterable[Parameter], lr: float, grad_hooks=()) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(
                "optimizer parameters must have unique names (use Sequential.parameters())"
            )
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr!r}")
        self.lr = float(lr)
        self.grad_hooks: list[GradHook] = list(grad_hooks)
        self.steps = 0

    def add_grad_hook(self, hook: GradHook) -> None:
        """Register ``hook(param, grad) -> grad``, applied in registration order before each step."""
        self.grad_hooks.append(hook)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _grads(self):
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad
            if g.shape != p.data.shape:
                raise ValueError(
                    f"gradient of {p.name} has shape {g.shape}, expected {p.data.shape}"
                )
            for hook in self.grad_hooks:
                g = hook(p, g)
            yield p, g

    def step(self) -> None:
        """Apply one update with the current gradients (parameters without a gradient are skipped)."""
        for p, g in self._grads():
            self._update(p, g)
        self.steps += 1

    def _update(self, p: Parameter, g: np.ndarray) -> None:
        raise NotImplementedError

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Optimizer state as flat named arrays (``.npz``-friendly)."""
        return {"steps": np.asarray(self.steps, dtype=np.int64), "lr": np.asarray(self.lr)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    Same update rule as ``torch.optim.SGD``: ``g += wd * w``; ``b = mu * b + g``;
    ``w -= lr * (g + mu * b if nesterov else b)`` (``b = g`` on the first step).
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        grad_hooks: Iterable[GradHook] = (),
    ) -> None:
        super().__init__(params, lr, grad_hooks)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = (
            float(momentum),
            nesterov,
            float(weight_decay),
        )
        self.buffers: dict[str, np.ndarray] = {}

    def _update(self, p: Parameter, g: np.ndarray) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = self.buffers.get(p.name)
            if buf is None:
                buf = self.buffers[p.name] = np.array(g, dtype=p.data.dtype)
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        # (scipy's BLAS axpy would fuse this into one pass, but it loads a second OpenBLAS whose
        # threads fight numpy's: training became much slower; docs/benchmarks.md)
        p.data -= (self.lr * g).astype(p.data.dtype, copy=False)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        state.update({f"momentum.{k}": v.copy() for k, v in self.buffers.items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        shapes = {p.name: p.data.shape for p in self.params}
        self.buffers = {}
        for key, value in state.items():
            if key.startswith("momentum."):
                name = key[len("momentum.") :]
                if shapes.get(name) != value.shape:
                    raise ValueError(f"optimizer state {key} does not match the model's parameters")
                self.buffers[name] = np.array(value)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as ``torch.optim.Adam`` (L2 weight decay)."""

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        grad_hooks: Iterable[GradHook] = (),
    ) -> None:
        super().__init__(params, lr, grad_hooks)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError(
                f"need eps > 0 and weight_decay >= 0, got eps={eps!r}, weight_decay={weight_decay!r}"
            )
        self.betas, self.eps, self.weight_decay = (
            (float(b1), float(b2)),
            float(eps),
            float(weight_decay),
        )
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self) -> None:
        self._t = self.steps + 1  # bias correction uses the index of the step being taken
        super().step()

    def _update(self, p: Parameter, g: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        m = self.m.setdefault(p.name, np.zeros_like(p.data))
        v = self.v.setdefault(p.name, np.zeros_like(p.data))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1**self._t)
        v_hat = v / (1 - b2**self._t)
        p.data -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.data.dtype, copy=False)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = super().state_dict()
        state.update({f"adam_m.{k}": v.copy() for k, v in self.m.items()})
        state.update({f"adam_v.{k}": v.copy() for k, v in self.v.items()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        super().load_state_dict(state)
        shapes = {p.name: p.data.shape for p in self.params}
        self.m, self.v = {}, {}
        for key, value in state.items():
            for prefix, target in (("adam_m.", self.m), ("adam_v.", self.v)):
                if key.startswith(prefix):
                    name = key[len(prefix) :]
                    if shapes.get(name) != value.shape:
                        raise ValueError(
                            f"optimizer state {key} does not match the model's parameters"
                        )
                    target[name] = np.array(value)
