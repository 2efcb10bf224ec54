"""``QuantumConv2D``: the KLP19 quantum convolution layer, emulated over a whole batch at once.

Forward pass, in the order of model §2 (one batch, no Python loop over images or pixels):

1. the exact products ``Y = A F`` (im2col + one GEMM) and, when the error model needs them, the
   norms ``||A_p||`` (all channels of the patch, per image) and ``||F_q||``;
2. inner-product estimation ``Ybar`` by the executor (Gaussian / AE error model, or circuits);
3. the capped ReLU in the configured order (:func:`~qcnn.quantum.nonlinearity.noisy_cap_relu`);
4. l-infinity tomography: per image, ``N`` shots over all channels and positions jointly with
   probability proportional to ``f`` (with replacement); undrawn pixels become 0;
5. pooling (optional) while writing to the next layer's storage.

Backward (model §3): zero gradient where a pixel was not drawn, the cap's derivative, pooling
routing; the estimation noise is a constant. The bias is added classically after the estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from qcnn.nn import functional as F
from qcnn.nn.layers import Conv2D
from qcnn.quantum.ae_law import median_ae_estimate
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.executor import ConvProblem, EmulatorExecutor, Executor, make_executor
from qcnn.quantum.gradient_models import noisy_gradient
from qcnn.quantum.ipe import estimate_inner_products
from qcnn.quantum.nonlinearity import noisy_cap_relu
from qcnn.quantum.per_shot import gaussian_mean_f, sample_per_shot
from qcnn.quantum.sampling import implied_eta, sampled_values, shots_from_sigma, tomography_shots

__all__ = ["QuantumConv2D", "layer_shots", "QUANTUM_TAG"]

QUANTUM_TAG = "quantum"  # Parameter tag of the kernels a quantum computer holds (gradient noise)


ETA_REFERENCE = 0.1  # the precision the statistics quote the theorem's shot count for


def ps_mu(config: QuantumConfig, y: np.ndarray) -> np.ndarray:
    """Centre of the noisy value before the cap: Y (theory order) or clip(Y, 0, C) (paper)."""
    return y if config.noise_order == "theory" else np.clip(y, 0.0, config.cap)


def _normaliser_stats(total: np.ndarray, true_total: np.ndarray) -> dict[str, float]:
    live = true_total > 0
    rel = total[live] / true_total[live] - 1.0
    return {"normaliser_rel_error_rms": float(np.sqrt(np.mean(rel**2))) if rel.size else 0.0}


def layer_shots(config: QuantumConfig, d: int) -> int | None:
    """Shots per image for a layer output of ``d = D'H'W'`` pixels (None: no sampling)."""
    if config.sigma is not None:
        return shots_from_sigma(d, config.sigma)
    if config.eta is not None:
        return tomography_shots(d, config.eta)
    return None


class QuantumConv2D(Conv2D):
    """Quantum convolution + capped ReLU + sampling (+ pooling): ``(N, C, H, W) -> (N, O, H'', W'')``.

    Same constructor as :class:`~qcnn.nn.Conv2D` (so a network swaps one for the other, and the
    weights load either way) plus:

    Args:
        config: the :class:`QuantumConfig` (error models, cap, sigma/eta, ...).
        pool: ``None``, ``'max'`` or ``'avg'``: pooling during the write to the next layer.
        pool_size: pooling window, default 2.
        pool_stride: pooling stride, default ``pool_size`` (non-overlapping windows).
        pool_padding: pooling padding (int, pair, ``'same'``, ``'valid'``), default 0; padded
            positions count as unwritten pixels (0; never the max of non-negative values).
        executor: ``'emulator'`` (default), the name of another registered executor (e.g.
            ``'circuits'``: Qiskit circuits, small inputs only; see
            :mod:`qcnn.quantum.executor`) or an :class:`~qcnn.quantum.executor.Executor`.
        executor_options: keyword arguments for a named executor's factory (e.g. ``backend``).
        rng: generator for the layer's randomness (estimation noise and sampling).
        detailed_stats: also compute ``mu(A)`` (an SVD of the first image's patch matrix).

    After each forward pass ``stats`` holds the measurements the resource report needs
    (``M``, ``E[f]``, kept fraction, shots, ``mu``); ``stats_mean()`` averages them over the
    passes since ``reset_stats()``.
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
        config: QuantumConfig,
        pool: str | None = None,
        pool_size: int | tuple[int, int] = 2,
        pool_stride: int | tuple[int, int] | None = None,
        pool_padding: F.Padding = 0,
        executor: str | Executor = "emulator",
        executor_options: dict[str, Any] | None = None,
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike = np.float32,
        detailed_stats: bool = False,
        connections: np.ndarray | None = None,
    ) -> None:
        if not isinstance(config, QuantumConfig):
            raise TypeError(f"config must be a QuantumConfig, got {type(config).__name__}")
        if pool not in (None, "max", "avg"):
            raise ValueError(f"pool must be None, 'max' or 'avg', got {pool!r}")
        if pool is not None:
            F.check_window_args(
                pool_size,
                pool_size if pool_stride is None else pool_stride,
                pool_padding,
                what=f"{pool} pool",
            )
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        # The weights come from ``gen`` exactly as in Conv2D (same seed, same initial weights as
        # the classical twin); the runtime noise from the child stream of its seed that Conv2D
        # reserves (``derived_seed``), which is what ``quantize`` gives the classical twin too.
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            bias,
            rng=gen,
            dtype=dtype,
            connections=connections,
        )
        if self.groups != 1:
            # One dense quantum layer would estimate every inner product against the whole
            # patch (all groups' channels), not the group's; per-group layers are not built.
            raise ValueError(
                f"QuantumConv2D: a grouped convolution (groups={self.groups}, or a "
                "block-diagonal connection table) has no quantum layer; quantize() keeps it "
                "classical"
            )
        self.weight.tags |= {QUANTUM_TAG}
        self.config = config
        self.pool, self.pool_size = pool, F.pair(pool_size, "pool_size")
        self.pool_stride, self.pool_padding = pool_stride, pool_padding
        self.executor = make_executor(executor, **(executor_options or {}))
        # an executor says whether two shards may call it at once; unknown ones are assumed not
        self.thread_safe = bool(getattr(self.executor, "thread_safe", False))
        self.rng: np.random.Generator = np.random.default_rng(self.derived_seed)
        self.detailed_stats = detailed_stats
        self.stats: dict[str, float] = {}
        self._stats_sum: dict[str, float] = {}
        self._stats_rng: np.random.Generator | None = None
        self._stats_count = 0
        self._qcache: tuple | None = None
        self.last_input_shape: tuple[int, ...] | None = None  # (C, H, W) of the last forward

    # ------------------------------------------------------------------------------------------
    def _norm_products(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(patch norms (N or 1, H', W'), kernel norms (O,))``."""
        cfg = self.config
        if cfg.norms == "first_image":
            # The notebook's shortcut: image 0, channel 0 stands for every image and channel.
            sq = F.patch_sq_norms(x[:1, :1], self.kernel_size, self.stride, self.padding)
        else:
            sq = F.patch_sq_norms(x, self.kernel_size, self.stride, self.padding)
        w2d = self.kernel().reshape(self.out_channels, -1)
        return np.sqrt(sq), np.sqrt(np.einsum("ok,ok->o", w2d, w2d))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, self.training, None)

    def forward_stages(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Inference pass that also returns every intermediate map, each ``(N, O, H', W')``:
        ``exact`` (Y + bias), ``estimated`` (Ybar + bias), ``activated`` (after the cap),
        ``sampled`` (after tomography), and ``output`` (after pooling)."""
        stages: dict[str, np.ndarray] = {}
        stages["output"] = self._forward(x, False, stages)
        return stages

    def _forward(self, x: np.ndarray, training: bool, stages: dict | None) -> np.ndarray:
        cfg = self.config
        y_nb, cache = self._conv_forward(x, None, training)  # the bias is added after the estimate
        self.last_input_shape = x.shape[1:]
        if x.shape[0] == 0:
            # An empty batch: nothing to estimate or sample, no statistics; an empty output.
            out = np.zeros((0, *self.output_shape(x.shape[1:])), dtype=y_nb.dtype)
            if stages is not None:
                stages.update(exact=y_nb, estimated=y_nb, activated=y_nb, sampled=y_nb)
            self._qcache = (cache, None, None) if training else None
            return out
        y_nb = np.ascontiguousarray(y_nb)  # (N, O, H', W'); rows per image for the sampling
        n = x.shape[0]
        a_norm, f_norm = self._norm_products(x)
        scale = a_norm[:, None, :, :] * f_norm[None, :, None, None]

        d = int(np.prod(y_nb.shape[1:]))
        shots = layer_shots(cfg, d)
        extra: dict[str, float] = {}
        if cfg.noise_per_shot and shots is not None:
            y, y_bar, f, out, df, kept, extra = self._per_shot(y_nb, scale, n, shots)
            values = f.reshape(n, -1)
        else:
            y, y_bar, f, out, df, kept, shots, extra = self._per_pixel(y_nb, scale, cache, n, shots)
            values = f.reshape(n, -1)
        if stages is not None:
            stages.update(exact=y, estimated=y_bar, activated=f, sampled=out)

        pool_cache: F.MaxPoolCache | F.AvgPoolCache | None = None
        if self.pool == "max":
            out, pool_cache = F.max_pool2d_forward(
                out, self.pool_size, self.pool_stride, self.pool_padding
            )
        elif self.pool == "avg":
            out, pool_cache = F.avg_pool2d_forward(
                out, self.pool_size, self.pool_stride, self.pool_padding
            )

        self._record_stats(x, values, kept, shots, d, a_norm, f_norm, y, y_bar, extra)
        self._qcache = (cache, df, pool_cache) if training else None
        return out

    def _bias_map(self, like: np.ndarray) -> np.ndarray | None:
        return None if self.bias is None else self.bias.data.reshape(1, -1, 1, 1)

    def _per_pixel(self, y_nb, scale, cache, n, shots):
        """One estimate per pixel, frozen across the shots (the notebook's model)."""
        cfg = self.config
        if cfg.ipe == "exact":
            y_bar_nb = y_nb
        else:
            problem = ConvProblem(
                cache.cols, self.kernel().reshape(self.out_channels, -1), y_nb, scale
            )
            y_bar_nb = self.executor.inner_products(problem, cfg, self.rng)
        b = self._bias_map(y_nb)
        y, y_bar = (y_nb, y_bar_nb) if b is None else (y_nb + b, y_bar_nb + b)
        f, df = noisy_cap_relu(y, y_bar, cfg.cap, cfg.noise_order)
        values = f.reshape(n, -1)
        extra: dict[str, float] = {}
        if shots is None:
            return y, y_bar, f, f, df, None, None, extra
        counts = self.executor.sample(values, shots, cfg, self.rng)
        kept = counts > 0
        # an executor may override N (e.g. CircuitExecutor(sample_shots=...)): report what ran
        shots = int(counts.sum(axis=1).max(initial=0)) or shots
        total = None
        if cfg.sampled_value == "tomography" and cfg.tomography_normaliser != "exact":
            true_total = values.astype(np.float64).sum(axis=1)
            total = self._estimated_normaliser(true_total / values.shape[1], values.shape[1])
            extra.update(_normaliser_stats(total, true_total))
        out = sampled_values(values, counts, cfg.sampled_value, cfg.sampling_power, total=total)
        df &= kept.reshape(df.shape)
        return y, y_bar, f, out.reshape(f.shape), df, kept, shots, extra

    def _per_shot(self, y_nb, scale, n, shots):
        """A fresh estimate per tomography shot (QuantumConfig.noise_per_shot, docs/theory.md)."""
        cfg = self.config
        if not isinstance(self.executor, EmulatorExecutor):
            raise ValueError(
                f"QuantumConfig.noise_per_shot needs the emulator executor, got {self.executor!r}"
            )
        b = self._bias_map(y_nb)
        y = y_nb if b is None else y_nb + b
        shape, dtype = y_nb.shape, y_nb.dtype
        flat = (n, -1)
        bias = np.zeros(shape) if b is None else np.broadcast_to(b, shape)
        ps = sample_per_shot(
            cfg.ipe,
            y_nb.reshape(flat),
            y.reshape(flat),
            np.broadcast_to(scale, shape).reshape(flat),
            bias.reshape(flat),
            cfg,
            shots,
            self.rng,
        )
        counts = ps.counts
        kept = counts > 0
        safe = np.maximum(counts, 1)
        mean_value = np.where(kept, ps.value_sum / safe, 0.0)
        extra: dict[str, float] = {"per_shot_fallbacks": float(ps.fallbacks)}
        extra["ipe_error_rms_pixel"] = self._pixel_error_rms(y_nb[:1], scale, shape)
        d = counts.shape[1]
        if ps.mean_f is not None and ps.mean_f_err is not None:
            mean_f = ps.mean_f
            extra["mean_f_bound"] = float(np.max(ps.mean_f_err, initial=0.0))
        else:
            mean_f = (
                gaussian_mean_f(
                    ps_mu(cfg, y), 2.0 * cfg.eps * np.broadcast_to(scale, shape), cfg.cap
                )
                .reshape(flat)
                .mean(axis=1)
            )
        extra["mean_f"] = float(mean_f.mean())  # E[f] over the estimator's law, not the draws
        if cfg.sampled_value == "tomography":
            true_total = mean_f * d
            total = true_total
            if cfg.tomography_normaliser != "exact":
                total = self._estimated_normaliser(mean_f, d)
                extra.update(_normaliser_stats(total, true_total))
            out = counts / shots * total[:, None]
        else:
            out = mean_value
        df = np.where(kept, ps.linear_sum / safe, 0.0).astype(dtype).reshape(shape)
        y_bar = np.where(kept, y.reshape(flat) + ps.error_sum / safe, y.reshape(flat))
        f = mean_value.astype(dtype).reshape(shape)
        return (
            y,
            y_bar.astype(dtype).reshape(shape),
            f,
            out.astype(dtype).reshape(shape),
            df,
            kept,
            extra,
        )

    def _pixel_error_rms(self, y_first: np.ndarray, scale: np.ndarray, shape: tuple) -> float:
        """The RMS error of one estimate per pixel over every pixel of the batch's first image,
        drawn afresh from a statistics-only generator (never the training stream): in per-shot
        mode the recorded ``Ybar`` is 0-error at unsampled pixels and a mean of n draws at the
        others, so this is the figure comparable with notebook mode's ``ipe_error_rms``."""
        if self._stats_rng is None:
            seq = getattr(self.rng.bit_generator, "seed_seq", None)
            entropy = seq.entropy if isinstance(seq, np.random.SeedSequence) else 0
            key = seq.spawn_key if isinstance(seq, np.random.SeedSequence) else ()
            stats_seq = np.random.SeedSequence(entropy, spawn_key=(*key, 0x5747))
            self._stats_rng = np.random.default_rng(stats_seq)
        s = np.broadcast_to(scale, shape)[:1]
        err = estimate_inner_products(y_first, s, self.config, self._stats_rng) - y_first
        err = err.astype(np.float64).ravel()
        return float(np.sqrt(np.dot(err, err) / max(err.size, 1)))

    def _estimated_normaliser(self, mean_f: np.ndarray, d: int) -> np.ndarray:
        """``sum f`` per image from emulated amplitude estimation of ``E[f] / C`` (the ancilla's
        amplitude before amplification) with the configured bits and median count."""
        cfg = self.config
        a = np.clip(mean_f / cfg.cap, 0.0, 1.0)
        bits = cfg.ae_bits_any
        assert bits is not None  # validated: the normaliser's AE has eps > 0 or ae_bits
        a_hat = median_ae_estimate(a, bits, cfg.resolved_ae_median, self.rng).amplitude
        return d * cfg.cap * a_hat

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if self._qcache is None:
            raise RuntimeError(f"{self!r}: backward called without a training forward pass")
        cache, df, pool_cache = self._qcache
        if df is None:  # the forward pass had an empty batch
            self.weight.grad = np.zeros_like(self.weight.data)
            if self.bias is not None:
                self.bias.grad = np.zeros_like(self.bias.data)
            return np.zeros(cache.x_shape, dtype=dout.dtype) if self.need_input_grad else None
        if isinstance(pool_cache, F.MaxPoolCache):
            dout = F.max_pool2d_backward(dout, pool_cache)
        elif isinstance(pool_cache, F.AvgPoolCache):
            dout = F.avg_pool2d_backward(dout, pool_cache)
        dpre = dout * df  # unsampled pixels and capped pixels get no gradient
        dx, dw, _ = F.conv2d_backward(dpre, cache, self.need_input_grad, workspace=self._ws)
        cfg = self.config
        if dx is not None and cfg.input_gradient_noise and cfg.delta > 0:
            # the gradient passed back is itself read out of a quantum state (model §3): one
            # vector per image, each with its own norm
            dx = noisy_gradient(
                dx,
                cfg.delta,
                self.rng,
                cfg.gradient_model,
                signs=cfg.gradient_signs,
                batch_dims=1,
                norm_ae=cfg.gradient_norm_ae,
            )
        self._set_weight_grad(dw)
        if self.bias is not None:
            self.bias.grad = dpre.sum(axis=(0, 2, 3)).astype(self.bias.data.dtype, copy=False)
        return dx

    def gradient_matrices(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matrices quantum backprop multiplies (model §3, §4), for the last training forward
        pass and the gradient ``dout`` of its output: ``A (N, H'W', V)`` (each image's patches),
        ``dY (N, H'W', D')`` (dL/dY after pooling, sampling and the cap's mask) and
        ``F (V, D')``; then ``dL/dF = A_n^T dY_n`` and ``dL/dX = dY_n F^T`` per image."""
        if self._qcache is None or self._qcache[1] is None:
            raise RuntimeError(f"{self!r}: gradient_matrices needs a training forward pass")
        cache, df, pool_cache = self._qcache
        if isinstance(pool_cache, F.MaxPoolCache):
            dout = F.max_pool2d_backward(dout, pool_cache)
        elif isinstance(pool_cache, F.AvgPoolCache):
            dout = F.avg_pool2d_backward(dout, pool_cache)
        dpre = dout * df
        n, o = dpre.shape[:2]
        cols = cache.cols.reshape(cache.cols.shape[0], n, -1)  # (V, N, H'W')
        a = np.ascontiguousarray(cols.transpose(1, 2, 0))
        dy = np.ascontiguousarray(dpre.reshape(n, o, -1).transpose(0, 2, 1))
        return a, dy, self.kernel().reshape(o, -1).T

    def conv_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(O, H', W')``: the convolution's output for one ``(C, H, W)`` input, before the
        pooling on write (the pixels the output state holds)."""
        return super().output_shape(input_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = self.conv_output_shape(input_shape)
        if self.pool is None:
            return shape
        stride = self.pool_size if self.pool_stride is None else self.pool_stride
        geom = F.conv_geometry(
            shape[1:], self.pool_size, stride, self.pool_padding, what=f"{self.pool} pool"
        )
        return (shape[0], *geom.out)

    # ------------------------------------------------------------------------------------------
    def _record_stats(self, x, values, kept, shots, d, a_norm, f_norm, y, y_bar, extra) -> None:
        # Reductions through BLAS dot products: cheap enough (docs/benchmarks.md) for the
        # statistics to stay on during training.
        err = (y_bar - y).ravel()
        flat = values.ravel()
        m_per_image = a_norm.reshape(a_norm.shape[0], -1).max(axis=1) * f_norm.max()
        w2d = self.kernel().reshape(self.out_channels, -1).astype(np.float64)
        spectral_f = np.linalg.norm(w2d, 2)
        stats = {
            "M": float(m_per_image.mean()),
            "M_max": float(m_per_image.max()),
            "mean_f": float(np.dot(flat, np.ones_like(flat))) / flat.size,
            "pixels": float(d),
            "shots": float(shots) if shots is not None else float("nan"),
            "implied_eta": implied_eta(d, shots) if shots is not None else float("nan"),
            # the theorem's shot count for the reference precision, next to the shots used
            "eta_reference": ETA_REFERENCE,
            "shots_for_eta_reference": float(tomography_shots(d, ETA_REFERENCE)),
            "kept_fraction": float(np.count_nonzero(kept)) / kept.size if kept is not None else 1.0,
            "zero_images": float((values.max(axis=1) <= 0).sum()),
            "ipe_error_rms": float(np.sqrt(np.dot(err, err) / max(err.size, 1))),
            # per pixel, one estimate each: the same as ipe_error_rms unless per shot (extra)
            "ipe_error_rms_pixel": float(np.sqrt(np.dot(err, err) / max(err.size, 1))),
            "mu_F": float(np.linalg.norm(w2d) / spectral_f) if spectral_f > 0 else float("nan"),
        }
        if self.detailed_stats:
            geom = F.conv_geometry(x.shape[2:], self.kernel_size, self.stride, self.padding)
            a0 = F.im2col(x[:1].astype(np.float64), geom).T  # (H'W', C kh kw) of the first image
            spectral_a = np.linalg.norm(a0, 2)
            stats["mu_A"] = (
                float(np.linalg.norm(a0) / spectral_a) if spectral_a > 0 else float("nan")
            )
        stats.update(extra)
        self.stats = stats
        for k, v in stats.items():
            self._stats_sum[k] = self._stats_sum.get(k, 0.0) + v
        self._stats_count += 1

    def reset_stats(self) -> None:
        self._stats_sum, self._stats_count = {}, 0

    def stats_mean(self) -> dict[str, float]:
        """Mean of each statistic over the forward passes since :meth:`reset_stats`."""
        if not self._stats_count:
            return {}
        return {k: v / self._stats_count for k, v in self._stats_sum.items()}

    def extra_repr(self) -> str:
        pool = ""
        if self.pool:
            pool = f", pool={self.pool!r}, pool_size={self.pool_size}"
            if self.pool_stride is not None:
                pool += f", pool_stride={self.pool_stride}"
            if self.pool_padding != 0:
                pool += f", pool_padding={self.pool_padding!r}"
        return f"{super().extra_repr()}{pool}, config={self.config}"
