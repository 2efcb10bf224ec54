"""``QuantumConv2D``: the KLP19 quantum convolution layer, emulated over a whole batch at once.

The forward pass is a short pipeline of named stages (:mod:`qcnn.quantum.stages`), in the order
of model §2 (one batch, no Python loop over images or pixels); every quantum step is a call on
the layer's executor (:class:`~qcnn.quantum.executor.Executor`), whoever performs it:

1. inner products (:meth:`QuantumConv2D.inner_products`): ``Y = A F`` (im2col + one GEMM), the
   norms ``||A_p||`` (all channels of the patch, per image) and ``||F_q||``, and the estimates
   ``Ybar`` (``executor.inner_products``);
2. non-linearity: the capped ReLU in the configured order
   (:func:`~qcnn.quantum.nonlinearity.noisy_cap_relu`);
3. sampling: l-infinity tomography, per image ``N`` shots over all channels and positions
   jointly with probability proportional to ``f`` (``executor.sample``); with noise per shot,
   stages 2 and 3 are one step, every shot a fresh estimate (``executor.sample_per_shot``);
4. values: undrawn pixels become 0; tomography values are scaled by ``sum f`` or by its
   amplitude-estimation estimate (``executor.normaliser``);
5. pooling (optional) while writing to the next layer's storage.

Backward (model §3): zero gradient where a pixel was not drawn, the cap's derivative, pooling
routing; the estimation noise is a constant. The bias is added classically after the estimate.
Statistics are not computed here: observers attached to the layer (:meth:`QuantumConv2D.observe`,
:mod:`qcnn.quantum.layer_stats`) receive every stage of each pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict, TypeVar

import numpy as np
from numpy.typing import DTypeLike
from typing_extensions import Unpack

from qcnn.nn import functional as F
from qcnn.nn.layers import Conv2D
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.executor import ConvProblem, Executor, make_executor
from qcnn.quantum.gradient_models import noisy_gradient
from qcnn.quantum.layer_stats import ForwardObserver, LayerStatistics, gaussian_shot_mean_f
from qcnn.quantum.nonlinearity import noisy_cap_relu
from qcnn.quantum.per_shot import ShotProblem
from qcnn.quantum.sampling import sampled_values, shots_from_sigma, tomography_shots
from qcnn.quantum.stages import (
    Activation,
    ForwardRecord,
    InnerProducts,
    Normaliser,
    Pooled,
    Sampling,
    Values,
)

__all__ = ["QuantumConv2D", "PoolOnWrite", "ConvOptions", "layer_shots", "QUANTUM_TAG"]

Observer = TypeVar("Observer", bound=ForwardObserver)

QUANTUM_TAG = "quantum"  # Parameter tag of the kernels a quantum computer holds (gradient noise)


def layer_shots(config: QuantumConfig, d: int) -> int | None:
    """Shots per image for a layer output of ``d = D'H'W'`` pixels (None: no sampling)."""
    if config.sigma is not None:
        return shots_from_sigma(d, config.sigma)
    if config.eta is not None:
        return tomography_shots(d, config.eta)
    return None


@dataclass(frozen=True)
class PoolOnWrite:
    """Pooling while the layer writes its output to the next layer's storage.

    Attributes:
        kind: ``'max'`` or ``'avg'``.
        size: pooling window (int or pair), default 2.
        stride: pooling stride, default ``size`` (non-overlapping windows).
        padding: int, pair, ``'same'`` or ``'valid'``, default 0; padded positions count as
            unwritten pixels (0; never the max of non-negative values).
    """

    kind: Literal["max", "avg"]
    size: int | tuple[int, int] = 2
    stride: int | tuple[int, int] | None = None
    padding: F.Padding = 0

    def __post_init__(self) -> None:
        if self.kind not in ("max", "avg"):
            raise ValueError(f"pool must be None, 'max' or 'avg', got {self.kind!r}")
        F.check_window_args(
            self.size,
            self.size if self.stride is None else self.stride,
            self.padding,
            what=f"{self.kind} pool",
        )


class ConvOptions(TypedDict, total=False):
    """The keyword options of :class:`~qcnn.nn.Conv2D` that the quantum layer passes on as
    they are: ``rng`` (generator or seed of the weights; the layer's runtime randomness comes
    from the child stream Conv2D reserves), ``dtype`` (default float32) and ``connections``
    (a partial connection table)."""

    rng: np.random.Generator | int | None
    dtype: DTypeLike
    connections: np.ndarray | None


class QuantumConv2D(Conv2D):
    """Quantum convolution + capped ReLU + sampling (+ pooling): ``(N, C, H, W) -> (N, O, H'', W'')``.

    Same constructor as :class:`~qcnn.nn.Conv2D` (so a network swaps one for the other, and the
    weights load either way; its keyword options are :class:`ConvOptions`) plus:

    Args:
        config: the :class:`QuantumConfig` (error models, cap, sigma/eta, ...).
        pool: ``None``, ``'max'`` or ``'avg'`` (a window of 2), or a :class:`PoolOnWrite`:
            pooling during the write to the next layer.
        executor: ``'emulator'`` (default), the name of another registered executor (e.g.
            ``'circuits'``: Qiskit circuits, small inputs only; see
            :mod:`qcnn.quantum.executor`), or an :class:`~qcnn.quantum.executor.Executor`
            (``make_executor(name, **options)`` makes one with options).

    Observers (:meth:`observe`) receive every stage of each forward pass; the statistics of the
    resource report are one (:class:`~qcnn.quantum.layer_stats.LayerStatistics`, attached by
    :func:`~qcnn.quantum.layer_stats.watch_statistics`).
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
        pool: PoolOnWrite | str | None = None,
        executor: str | Executor = "emulator",
        **conv: Unpack[ConvOptions],
    ) -> None:
        if not isinstance(config, QuantumConfig):
            raise TypeError(f"config must be a QuantumConfig, got {type(config).__name__}")
        if isinstance(pool, str):
            pool = PoolOnWrite(pool)  # type: ignore[arg-type]  # checked by PoolOnWrite
        elif pool is not None and not isinstance(pool, PoolOnWrite):
            raise ValueError(f"pool must be None, 'max', 'avg' or a PoolOnWrite, got {pool!r}")
        unknown = sorted(set(conv) - set(ConvOptions.__annotations__))
        if unknown:  # ConvOptions types them for a checker; at run time they are checked here
            raise TypeError(f"QuantumConv2D got unexpected keyword arguments {unknown}")
        rng = conv.get("rng")
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
            dtype=conv.get("dtype", np.float32),
            connections=conv.get("connections"),
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
        self.pool: PoolOnWrite | None = pool
        self.executor = make_executor(executor)
        # an executor says whether two shards may call it at once; unknown ones are assumed not
        self.thread_safe = bool(getattr(self.executor, "thread_safe", False))
        self.rng: np.random.Generator = np.random.default_rng(self.derived_seed)
        self.observers: list[ForwardObserver] = []
        self._qcache: tuple | None = None
        self.last_input_shape: tuple[int, ...] | None = None  # (C, H, W) of the last forward

    # -- observers -----------------------------------------------------------------------------
    def observe(self, observer: Observer) -> Observer:
        """Call ``observer(layer, record)`` after every forward pass of a non-empty batch;
        returns it (``layer.observers.remove(observer)`` detaches it)."""
        self.observers.append(observer)
        return observer

    @property
    def statistics(self) -> LayerStatistics | None:
        """The :class:`LayerStatistics` observing this layer, if one is attached."""
        return next((o for o in self.observers if isinstance(o, LayerStatistics)), None)

    def reset_stats(self) -> None:
        for observer in self.observers:
            observer.reset()

    # -- forward: the stages -------------------------------------------------------------------
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
        per_shot = self.config.noise_per_shot and self.config.samples
        products = self.inner_products(x, training, estimate=not per_shot)
        self.last_input_shape = x.shape[1:]
        if x.shape[0] == 0:
            # An empty batch: nothing to estimate or sample, no observation; an empty output.
            y_nb = products.exact_nb
            out = np.zeros((0, *self.output_shape(x.shape[1:])), dtype=y_nb.dtype)
            if stages is not None:
                stages.update(exact=y_nb, estimated=y_nb, activated=y_nb, sampled=y_nb)
            self._qcache = (products.conv, None, None) if training else None
            return out
        d = int(np.prod(products.exact.shape[1:]))
        shots = layer_shots(self.config, d)
        if per_shot:
            assert shots is not None  # validated: noise per shot needs sampling
            activation, sampling = self.sample_per_shot(products, shots)
        else:
            activation = self.nonlinearity(products)
            sampling = self.sample(activation, shots)
        values = self.values(activation, sampling)
        pooled = self.write(values.written)
        if stages is not None:
            stages.update(
                exact=products.exact,
                estimated=activation.estimated,
                activated=activation.values,
                sampled=values.written,
            )
        if self.observers:
            record = ForwardRecord(x, products, activation, sampling, values, training)
            for observer in self.observers:
                observer(self, record)
        self._qcache = (products.conv, values.mask, pooled.cache) if training else None
        return pooled.out

    def inner_products(self, x: np.ndarray, training: bool, estimate: bool) -> InnerProducts:
        """Stage 1: ``Y``, the norms and (``estimate``) ``Ybar`` by the executor."""
        cfg = self.config
        y_nb, cache = self._conv_forward(x, None, training)  # the bias is added after the estimate
        if x.shape[0] == 0:
            return InnerProducts(cache, y_nb, y_nb, y_nb, y_nb, y_nb, y_nb)
        y_nb = np.ascontiguousarray(y_nb)  # (N, O, H', W'); rows per image for the sampling
        a_norm, f_norm = self._norm_products(x)
        scale = a_norm[:, None, :, :] * f_norm[None, :, None, None]
        b = self._bias_map()
        y = y_nb if b is None else y_nb + b
        y_bar = None
        if estimate:
            if cfg.ipe == "exact":
                y_bar_nb = y_nb
            else:
                kernels = self.kernel().reshape(self.out_channels, -1)
                problem = ConvProblem(cache.cols, kernels, y_nb, scale)
                y_bar_nb = self.executor.inner_products(problem, cfg, self.rng)
            y_bar = y_bar_nb if b is None else y_bar_nb + b
        return InnerProducts(cache, y_nb, y, y_bar, scale, a_norm, f_norm)

    def nonlinearity(self, products: InnerProducts) -> Activation:
        """Stage 2 (one estimate per pixel): the capped ReLU of ``Ybar``."""
        assert products.estimated is not None  # estimated per pixel
        cfg = self.config
        f, df = noisy_cap_relu(products.exact, products.estimated, cfg.cap, cfg.noise_order)
        return Activation(f, df, products.estimated)

    def sample(self, activation: Activation, shots: int | None) -> Sampling:
        """Stage 3 (one estimate per pixel): ``shots`` measurements of each image's output
        state by the executor (None: no sampling)."""
        if shots is None:
            return Sampling(None, None)
        f = activation.values
        counts = self.executor.sample(f.reshape(f.shape[0], -1), shots, self.config, self.rng)
        # an executor may override N (e.g. CircuitExecutor(sample_shots=...)): report what ran
        return Sampling(counts, int(counts.sum(axis=1).max(initial=0)) or shots)

    def sample_per_shot(self, products: InnerProducts, shots: int) -> tuple[Activation, Sampling]:
        """Stages 2-3 with noise per shot (QuantumConfig.noise_per_shot, docs/theory.md): the
        executor draws ``shots`` (pixel, value) pairs per image, each from a fresh estimate;
        a pixel's value and mask are the means over its shots."""
        cfg = self.config
        y_nb, y = products.exact_nb, products.exact
        shape, dtype = y_nb.shape, y_nb.dtype
        flat = (shape[0], -1)
        b = self._bias_map()
        bias = np.zeros(shape) if b is None else np.broadcast_to(b, shape)
        problem = ShotProblem(
            y_nb.reshape(flat),
            bias.reshape(flat),
            np.broadcast_to(products.scale, shape).reshape(flat),
        )
        ps = self.executor.sample_per_shot(problem, shots, cfg, self.rng)
        kept = ps.counts > 0
        safe = np.maximum(ps.counts, 1)
        f = np.where(kept, ps.value_sum / safe, 0.0).astype(dtype).reshape(shape)
        df = np.where(kept, ps.linear_sum / safe, 0.0).astype(dtype).reshape(shape)
        y_bar = np.where(kept, y.reshape(flat) + ps.error_sum / safe, y.reshape(flat))
        mean_f = ps.mean_f
        if mean_f is None and cfg.sampled_value == "tomography":  # the values need it
            mean_f = gaussian_shot_mean_f(cfg, products)
        activation = Activation(f, df, y_bar.astype(dtype).reshape(shape))
        return activation, Sampling(ps.counts, shots, ps, mean_f)

    def values(self, activation: Activation, sampling: Sampling) -> Values:
        """Stage 4: the values written back: 0 where a pixel was not drawn; the value itself
        or the tomography estimate ``(n / N) sum f``, with ``sum f`` estimated by the executor
        (``tomography_normaliser``)."""
        counts = sampling.counts
        if counts is None:
            return Values(activation.values, activation.mask)
        cfg = self.config
        f = activation.values
        values = f.reshape(f.shape[0], -1)
        d = values.shape[1]
        total = None
        normaliser = None
        if cfg.sampled_value == "tomography":
            if sampling.mean_f is not None:  # per shot: E[f] under the estimator's law
                mean_f, true_total = sampling.mean_f, sampling.mean_f * d
                total = true_total
            elif cfg.tomography_normaliser != "exact":
                true_total = values.astype(np.float64).sum(axis=1)
                mean_f = true_total / d
            if cfg.tomography_normaliser != "exact":
                total = self.executor.normaliser(mean_f, d, cfg, self.rng)
                normaliser = Normaliser(total, true_total)
        out = sampled_values(values, counts, cfg.sampled_value, cfg.sampling_power, total=total)
        mask = activation.mask  # per shot: already the mean over the pixel's shots (0 if none)
        if sampling.per_shot is None:
            mask = mask & (counts > 0).reshape(f.shape)
        return Values(out.reshape(f.shape), mask, normaliser)

    def write(self, written: np.ndarray) -> Pooled:
        """Stage 5: the write to the next layer's storage, pooling on the way (the engine's
        pooling functions)."""
        p = self.pool
        if p is None:
            return Pooled(written, None)
        if p.kind == "max":
            return Pooled(*F.max_pool2d_forward(written, p.size, p.stride, p.padding))
        return Pooled(*F.avg_pool2d_forward(written, p.size, p.stride, p.padding))

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

    def _bias_map(self) -> np.ndarray | None:
        return None if self.bias is None else self.bias.data.reshape(1, -1, 1, 1)

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
        p = self.pool
        if p is None:
            return shape
        stride = p.size if p.stride is None else p.stride
        geom = F.conv_geometry(shape[1:], p.size, stride, p.padding, what=f"{p.kind} pool")
        return (shape[0], *geom.out)

    def extra_repr(self) -> str:
        pool = ""
        p = self.pool
        if p is not None:
            pool = f", pool={p.kind!r}, pool_size={F.pair(p.size, 'pool_size')}"
            if p.stride is not None:
                pool += f", pool_stride={p.stride}"
            if p.padding != 0:
                pool += f", pool_padding={p.padding!r}"
        return f"{super().extra_repr()}{pool}, config={self.config}"
