"""``QuantumConv2d``: the KLP19 quantum convolution layer as a ``torch.nn`` module.

The layer is the emulator's model (:class:`qcnn.quantum.QuantumConv2D`, model §2) on torch
tensors, for a whole batch at once:

1. ``Y = A F`` by ``torch.nn.functional.conv2d`` (any stride, padding, padding mode, dilation,
   groups) and the norms ``||A_p||`` (the patch the kernel sees: all channels of its group, per
   image, or the notebook's image-0 channel-0 shortcut) and ``||F_q||``;
2. inner-product estimation ``Ybar``: Gaussian on the device; amplitude estimation through the
   emulator's exact outcome law (:func:`qcnn.quantum.estimate_inner_products`, on the host);
3. the capped ReLU in the paper's or the theory's order;
4. l-infinity tomography: ``N`` shots per image over all its output pixels with probability
   proportional to ``f`` (``torch.multinomial`` on the device), undrawn pixels 0, drawn ones their
   value or the tomography estimate ``(n/N) sum f`` (the normaliser exact or estimated by AE);
   with ``noise_per_shot`` the emulator's per-shot sampler (:mod:`qcnn.quantum.per_shot`, host);
5. pooling while writing (any ``nn.MaxPool2d`` / ``nn.AvgPool2d``: undrawn pixels count as 0).

Backward (model §3) through :class:`QuantumWrite`: the gradient of the written map reaches ``Y``
only where a pixel was drawn and every cap was in its linear range (the estimation noise is a
constant), then flows through the convolution by autograd; the gradient passed back to the
previous layer is read out by tomography when ``input_gradient_noise`` is set
(:class:`~qcnn.torch.backprop.GradientReadout`). Parameter gradients: :class:`~qcnn.torch.QuantumBackprop`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as TF
from torch import nn

from qcnn.quantum import (
    QUANTUM_TAG,
    EmulatorExecutor,
    QuantumConfig,
    estimate_inner_products,
    layer_shots,
)
from qcnn.quantum.per_shot import ShotProblem, gaussian_mean_f, sample_per_shot
from qcnn.torch.backprop import GradientReadout
from qcnn.torch.random import Streams, multinomial_counts

__all__ = ["QuantumConv2d", "QuantumWrite", "cap_relu", "reseed", "QUANTUM_TAG"]

Pool = nn.MaxPool2d | nn.AvgPool2d
_EMULATOR = EmulatorExecutor()  # the emulator's normaliser (AE of E[f] / C), drawn on the host


class QuantumWrite(torch.autograd.Function):
    """``written`` forward; backward ``grad * mask`` to ``Y`` (the quantum layer's derivative:
    0 for undrawn pixels and where a cap was active, the per-shot fraction in the linear range
    with noise per shot)."""

    @staticmethod
    def forward(
        ctx: Any, y: torch.Tensor, written: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return written

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None


def cap_relu(
    y: torch.Tensor, y_bar: torch.Tensor, cap: float, order: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f, df)``: the capped ReLU of the estimate in the configured order and its derivative
    mask, as :func:`qcnn.quantum.noisy_cap_relu` (``'paper'``: ``clamp(f(Y) + e, 0, C)``;
    ``'theory'``: ``f(Ybar)``)."""
    if order == "theory":
        return y_bar.clamp(0.0, cap), (y_bar > 0) & (y_bar < cap)
    f = y.clamp(0.0, cap) + (y_bar - y)
    df = (y > 0) & (y < cap) & (f > 0) & (f < cap)
    return f.clamp_(0.0, cap), df


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class QuantumConv2d(nn.Conv2d):
    """Quantum convolution + capped ReLU + sampling (+ pooling on write):
    ``(N, C, H, W) -> (N, O, H'', W'')``.

    The arguments of ``nn.Conv2d`` (same parameters, so ``load_state_dict`` takes a Conv2d's
    weights) plus, keyword only:

    Args:
        config: the :class:`~qcnn.quantum.QuantumConfig` (error models, cap, sigma/eta, ...).
        pool: None, ``'max'``, ``'avg'``, or an ``nn.MaxPool2d`` / ``nn.AvgPool2d`` module:
            pooling during the write to the next layer (model §2.6).
        pool_size, pool_stride, pool_padding: window, stride (default ``pool_size``) and padding
            of a pool given by name.
        seed: int, SeedSequence, or None (fresh OS entropy, kept in ``streams.seed``): the
            layer's noise and sampling (:class:`~qcnn.torch.random.Streams`). The weights are
            initialised as ``nn.Conv2d``'s, from torch's generator.

    The layer stays random at evaluation (the quantum network is a stochastic function,
    model §2); :meth:`reseed` (or :func:`reseed` on a model) fixes the draws of an evaluation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        config: QuantumConfig,
        pool: str | Pool | None = None,
        pool_size: int | tuple[int, int] = 2,
        pool_stride: int | tuple[int, int] | None = None,
        pool_padding: int | tuple[int, int] = 0,
        seed: int | np.random.SeedSequence | None = None,
    ) -> None:
        if not isinstance(config, QuantumConfig):
            raise TypeError(f"config must be a QuantumConfig, got {type(config).__name__}")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
        self.config = config
        self.pool: Pool | None
        if pool is None or isinstance(pool, (nn.MaxPool2d, nn.AvgPool2d)):
            if isinstance(pool, nn.MaxPool2d) and pool.return_indices:
                raise ValueError("pool: a MaxPool2d with return_indices=True cannot be merged")
            self.pool = pool
        elif pool == "max":
            self.pool = nn.MaxPool2d(pool_size, pool_stride, pool_padding)
        elif pool == "avg":
            self.pool = nn.AvgPool2d(pool_size, pool_stride, pool_padding)
        else:
            raise ValueError(f"pool must be None, 'max', 'avg' or a pooling module, got {pool!r}")
        self.streams = Streams(seed)

    # -- randomness -----------------------------------------------------------------------------
    def reseed(self, seed: int | np.random.SeedSequence | None) -> None:
        """New noise and sampling streams from ``seed`` (see :class:`Streams`)."""
        self.streams = Streams(seed)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x, None)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One pass without gradients that also returns each intermediate map ``(N, O, H', W')``:
        ``exact`` (Y + bias), ``estimated`` (Ybar + bias), ``activated`` (after the cap),
        ``sampled`` (after tomography), ``mask`` (the derivative) and ``output`` (after pooling)."""
        stages: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            stages["output"] = self._forward(x, stages)
        return stages

    def _padded(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The input as the convolution reads it and the padding left to the conv: a padding
        mode other than zeros pads explicitly (the patches, hence their norms, hold the
        reflected / replicated / circular values)."""
        if self.padding_mode == "zeros":
            return x, self.padding
        return TF.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode), 0

    def _scale(self, xp: torch.Tensor, padding: Any) -> torch.Tensor:
        """``||A_p|| ||F_q||`` ``(N or 1, O, H', W')`` (no gradient: the noise is a constant)."""
        cfg, g = self.config, self.groups
        kh, kw = self.kernel_size
        with torch.no_grad():
            if cfg.norms == "first_image":  # the notebook's shortcut: image 0, channel 0
                sq_in, groups = xp[:1, :1].square(), 1
                ones = xp.new_ones((1, 1, kh, kw))
            else:
                sq_in, groups = xp.square(), g
                ones = xp.new_ones((g, self.in_channels // g, kh, kw))
            sq = TF.conv2d(sq_in, ones, None, self.stride, padding, self.dilation, groups)
            if groups > 1:  # each output channel sees the patch of its own group
                sq = sq.repeat_interleave(self.out_channels // g, dim=1)
            f_norm = torch.linalg.vector_norm(self.weight.detach().flatten(1), dim=1)
            return sq.clamp_min(0).sqrt() * f_norm[None, :, None, None]

    def _forward(self, x: torch.Tensor, stages: dict[str, torch.Tensor] | None) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4:
            raise ValueError(f"QuantumConv2d needs (N, C, H, W) input, got shape {tuple(x.shape)}")
        if cfg.input_gradient_noise and cfg.delta > 0 and x.requires_grad:
            x = GradientReadout.apply(x, cfg, self.streams)
        xp, padding = self._padded(x)
        y_nb = TF.conv2d(xp, self.weight, None, self.stride, padding, self.dilation, self.groups)
        y = y_nb if self.bias is None else y_nb + self.bias.view(1, -1, 1, 1)
        n = x.shape[0]
        if n == 0:
            written, mask = y.detach().clone(), torch.zeros_like(y)
        else:
            scale = self._scale(xp, padding)
            d = int(np.prod(y.shape[1:]))
            shots = layer_shots(cfg, d)
            with torch.no_grad():
                if cfg.noise_per_shot and shots is not None:
                    written, mask, y_bar, f = self._per_shot(y_nb, y, scale, shots)
                else:
                    written, mask, y_bar, f = self._per_pixel(y_nb, y, scale, shots)
            if stages is not None:
                stages.update(exact=y.detach(), estimated=y_bar, activated=f)
        if stages is not None:
            stages.update(sampled=written, mask=mask)
        out = QuantumWrite.apply(y, written, mask.to(y.dtype))
        return out if self.pool is None else self.pool(out)

    def _per_pixel(
        self, y_nb: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shots: int | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One estimate per pixel, frozen across the shots (the notebook's model):
        ``(written, mask, y_bar, f)``."""
        cfg, n = self.config, y.shape[0]
        y_nb, y = y_nb.detach(), y.detach()
        if cfg.ipe == "exact":
            y_bar = y
        else:
            if cfg.ipe == "gaussian":
                gen = self.streams.device(y.device)
                noise = torch.randn(y.shape, generator=gen, dtype=y.dtype, device=y.device)
                y_bar_nb = y_nb + noise * (2.0 * cfg.eps) * scale
            else:  # the emulator's exact AE outcome law (median of k), on the host
                est = estimate_inner_products(
                    _to_numpy(y_nb),
                    np.broadcast_to(_to_numpy(scale), y_nb.shape),
                    cfg,
                    self.streams.host,
                )
                y_bar_nb = torch.from_numpy(np.ascontiguousarray(est)).to(y.device, y.dtype)
            y_bar = (
                y_bar_nb if self.bias is None else y_bar_nb + self.bias.detach().view(1, -1, 1, 1)
            )
        f, df = cap_relu(y, y_bar, cfg.cap, cfg.noise_order)
        if shots is None:
            return f, df, y_bar, f
        values = f.reshape(n, -1)
        weights = values if cfg.sampling_power == 1 else values.square()
        counts = multinomial_counts(weights, shots, self.streams.device(y.device))
        kept = counts > 0
        if cfg.sampled_value == "exact":
            written = torch.where(kept, values, torch.zeros_like(values))
        else:
            total = None
            if cfg.tomography_normaliser != "exact":
                mean_f = _to_numpy(values.to(torch.float64).sum(dim=1)) / values.shape[1]
                total = self._estimated_normaliser(mean_f, values.shape[1], y.device)
            written = _tomography_values(values, counts, cfg.sampling_power, total)
        return written.view_as(f), df & kept.view_as(df), y_bar, f

    def _per_shot(
        self, y_nb: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shots: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fresh estimate per tomography shot (``noise_per_shot``, docs/theory.md), by the
        emulator's exact per-shot sampler on the host: ``(written, mask, y_bar, f)``."""
        cfg, n = self.config, y.shape[0]
        shape, device, dtype = tuple(y.shape), y.device, y.dtype
        flat = (n, -1)
        y_np = _to_numpy(y).astype(np.float64)
        scale_np = np.broadcast_to(_to_numpy(scale).astype(np.float64), shape)
        bias = np.zeros(shape)
        if self.bias is not None:
            bias = np.broadcast_to(_to_numpy(self.bias).reshape(1, -1, 1, 1), shape)
        problem = ShotProblem(
            _to_numpy(y_nb).reshape(flat), bias.reshape(flat), scale_np.reshape(flat)
        )  # y = y_nb + bias, as y_np
        ps = sample_per_shot(problem, cfg, shots, self.streams.host)
        kept = ps.counts > 0
        safe = np.maximum(ps.counts, 1)
        mean_value = np.where(kept, ps.value_sum / safe, 0.0)
        if cfg.sampled_value == "tomography":
            if ps.mean_f is not None:
                mean_f = ps.mean_f
            else:
                sd = 2.0 * cfg.eps * scale_np
                mu = y_np if cfg.noise_order == "theory" else np.clip(y_np, 0.0, cfg.cap)
                mean_f = gaussian_mean_f(mu, sd, cfg.cap).reshape(flat).mean(axis=1)
            d = ps.counts.shape[1]
            if cfg.tomography_normaliser == "exact":
                total = mean_f * d
            else:
                total = _to_numpy(self._estimated_normaliser(mean_f, d, device)).astype(np.float64)
            written = ps.counts / shots * total[:, None]
        else:
            written = mean_value
        mask = np.where(kept, ps.linear_sum / safe, 0.0)
        y_bar = np.where(kept, y_np.reshape(flat) + ps.error_sum / safe, y_np.reshape(flat))

        def back(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device, dtype).view(shape)

        return back(written), back(mask), back(y_bar), back(mean_value)

    def _estimated_normaliser(
        self, mean_f: np.ndarray, d: int, device: torch.device
    ) -> torch.Tensor:
        """``sum f`` per image ``(N,)`` from emulated amplitude estimation of ``E[f] / C`` (the
        ancilla's amplitude before amplification) with the configured bits and median count."""
        total = _EMULATOR.normaliser(mean_f, d, self.config, self.streams.host)
        return torch.from_numpy(total).to(device)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, config={self.config}"

    @classmethod
    def from_conv(
        cls,
        conv: nn.Conv2d,
        config: QuantumConfig,
        *,
        batch_norm: nn.BatchNorm2d | None = None,
        pool: Pool | None = None,
        seed: int | np.random.SeedSequence | None = None,
    ) -> QuantumConv2d:
        """The quantum twin of ``conv`` (same hyper-parameters, a copy of its weights), with an
        eval-mode ``batch_norm`` folded into its weights and bias and ``pool`` merged into the
        write."""
        weight = conv.weight.detach()
        bias = None if conv.bias is None else conv.bias.detach()
        if batch_norm is not None:
            weight, bias = fold_batch_norm(weight, bias, batch_norm)
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            conv.groups,
            bias is not None,
            conv.padding_mode,
            device=weight.device,
            dtype=weight.dtype,
            config=config,
            pool=pool,
            seed=seed,
        )
        with torch.no_grad():
            q.weight.copy_(weight)
            if bias is not None:
                assert q.bias is not None
                q.bias.copy_(bias)
        q.train(conv.training)
        return q


def fold_batch_norm(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` with ``bn`` in eval mode: ``W s`` and
    ``(b - mean) s + beta`` with ``s = gamma / sqrt(var + eps)`` (computed in float64)."""
    if bn.training or bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            "quantize folds BatchNorm2d with its running statistics: call model.eval() first "
            "(a batch norm without running statistics cannot be folded)"
        )
    var = bn.running_var.detach().to(torch.float64)
    s = 1.0 / torch.sqrt(var + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight.detach().to(torch.float64)
    b = torch.zeros_like(var) if bias is None else bias.to(torch.float64)
    new_bias = (b - bn.running_mean.detach().to(torch.float64)) * s
    if bn.bias is not None:
        new_bias = new_bias + bn.bias.detach().to(torch.float64)
    new_weight = weight.to(torch.float64) * s.view(-1, 1, 1, 1)
    return new_weight.to(weight.dtype), new_bias.to(weight.dtype)


def _tomography_values(
    values: torch.Tensor, counts: torch.Tensor, power: int, total: torch.Tensor | None
) -> torch.Tensor:
    """``(n/N)^(1/power) ||f||_power`` (or ``(n/N) total``), as
    :func:`qcnn.quantum.sampled_values` with ``mode='tomography'``; rows ``(B, d)``."""
    shots = counts.sum(dim=1, keepdim=True)
    freq = counts.to(torch.float64) / shots.clamp_min(1)
    if total is not None:
        norm = total.to(torch.float64).view(-1, 1)
    else:
        v = values.to(torch.float64)
        norm = (v**power).sum(dim=1, keepdim=True) ** (1.0 / power)
    est = freq * norm if power == 1 else freq.sqrt() * norm
    return est.to(values.dtype)


def reseed(model: nn.Module, seed: int | np.random.SeedSequence) -> None:
    """Re-seed every :class:`QuantumConv2d` of ``model``: the k-th (in ``model.modules()``
    order) from the k-th child of ``seed``'s SeedSequence, e.g. to fix an evaluation's draws."""
    from qcnn.torch.random import as_seed_sequence

    layers = [m for m in model.modules() if isinstance(m, QuantumConv2d)]
    for layer, child in zip(layers, as_seed_sequence(seed).spawn(len(layers)), strict=True):
        layer.reseed(child)
