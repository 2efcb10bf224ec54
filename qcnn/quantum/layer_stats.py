"""Statistics of quantum layers, collected by an observer that an experiment attaches.

A :class:`~qcnn.quantum.layer.QuantumConv2D` computes nothing for statistics itself: after each
forward pass it hands a :class:`~qcnn.quantum.stages.ForwardRecord` (every stage's output) to its
observers. :class:`LayerStatistics` is the observer the resource report and the run records use:
per pass it measures ``M`` (model §4), ``E[f]``, the kept fraction, the shots and the precision
they imply, the estimation error, ``mu(F)`` (a spectral norm of the kernel matrix) and, when
``detailed``, ``mu(A)`` (an SVD of the first image's patch matrix); :meth:`LayerStatistics.mean`
averages them over the passes since :meth:`LayerStatistics.reset`, which the engine's
``reset_stats()`` hook calls (``fit`` does before each evaluation).

Usage::

    stats = watch_statistics(model, training=False)  # {layer: LayerStatistics}
    evaluate(model, x, y)
    stats[layer].mean()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from qcnn.nn import Layer, walk
from qcnn.nn import functional as F
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.ipe import estimate_inner_products
from qcnn.quantum.per_shot import gaussian_mean_f
from qcnn.quantum.sampling import implied_eta, tomography_shots
from qcnn.quantum.stages import ForwardRecord, InnerProducts

if TYPE_CHECKING:
    from qcnn.quantum.layer import QuantumConv2D

__all__ = [
    "ForwardObserver",
    "LayerStatistics",
    "watch_statistics",
    "gaussian_shot_mean_f",
    "ETA_REFERENCE",
]

ETA_REFERENCE = 0.1  # the precision the statistics quote the theorem's shot count for


class ForwardObserver(Protocol):
    """What a quantum layer calls after each forward pass of a non-empty batch."""

    def __call__(self, layer: QuantumConv2D, record: ForwardRecord) -> None: ...

    def reset(self) -> None:
        """Forget what was observed (the layer's ``reset_stats()``)."""
        ...


def _normaliser_stats(total: np.ndarray, true_total: np.ndarray) -> dict[str, float]:
    live = true_total > 0
    rel = total[live] / true_total[live] - 1.0
    return {"normaliser_rel_error_rms": float(np.sqrt(np.mean(rel**2))) if rel.size else 0.0}


def gaussian_shot_mean_f(config: QuantumConfig, products: InnerProducts) -> np.ndarray:
    """``(N,)``: the mean over each image's pixels of ``E[f(Ybar)]``, ``Ybar ~ N(Y, (2 eps s)^2)``
    (``f`` the cap in the configured order): the law's mean under the Gaussian per-shot model,
    not the draws'."""
    exact = products.exact
    mu = exact if config.noise_order == "theory" else np.clip(exact, 0.0, config.cap)
    sd = 2.0 * config.eps * np.broadcast_to(products.scale, exact.shape)
    return gaussian_mean_f(mu, sd, config.cap).reshape(exact.shape[0], -1).mean(axis=1)


class LayerStatistics:
    """The resource-report statistics of one quantum layer's forward passes (an observer).

    Args:
        detailed: also measure ``mu(A)`` (an SVD of the first image's patch matrix per pass).
        training: also record training passes (False: inference passes only, e.g. the test
            evaluations of a run, and training steps cost nothing).

    ``last`` holds the statistics of the last recorded pass, :meth:`mean` their mean since
    :meth:`reset`.
    """

    def __init__(self, *, detailed: bool = False, training: bool = True) -> None:
        self.detailed = detailed
        self.training = training
        self.last: dict[str, float] = {}
        self._sum: dict[str, float] = {}
        self._count = 0
        self._pixel_rng: np.random.Generator | None = None  # ipe_error_rms_pixel's own stream

    def __repr__(self) -> str:
        return f"LayerStatistics(detailed={self.detailed}, training={self.training})"

    def __call__(self, layer: QuantumConv2D, record: ForwardRecord) -> None:
        if record.training and not self.training:
            if record.sampling.per_shot is not None:
                # the per-pixel error statistic draws from its own stream, whose position
                # depends on every pass since the first: advanced here (one image's estimates)
                # so that the inference passes read the same numbers as if all were measured
                self._pixel_error_rms(layer, record)
            return
        stats = self.measure(layer, record)
        self.last = stats
        for k, v in stats.items():
            self._sum[k] = self._sum.get(k, 0.0) + v
        self._count += 1

    def reset(self) -> None:
        self._sum, self._count = {}, 0

    def mean(self) -> dict[str, float]:
        """Mean of each statistic over the passes since :meth:`reset` (``{}`` if none)."""
        if not self._count:
            return {}
        return {k: v / self._count for k, v in self._sum.items()}

    def measure(self, layer: QuantumConv2D, record: ForwardRecord) -> dict[str, float]:
        """The statistics of one pass."""
        ip, act, smp = record.products, record.activation, record.sampling
        n = record.x.shape[0]
        values = act.values.reshape(n, -1)
        d = values.shape[1]
        shots = smp.shots
        kept = None if smp.counts is None else smp.counts > 0
        a_norm, f_norm = ip.patch_norms, ip.kernel_norms
        # Reductions through BLAS dot products (docs/benchmarks.md)
        err = (act.estimated - ip.exact).ravel()
        flat = values.ravel()
        m_per_image = a_norm.reshape(a_norm.shape[0], -1).max(axis=1) * f_norm.max()
        w2d = layer.kernel().reshape(layer.out_channels, -1).astype(np.float64)
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
            # per pixel, one estimate each: the same as ipe_error_rms unless per shot (below)
            "ipe_error_rms_pixel": float(np.sqrt(np.dot(err, err) / max(err.size, 1))),
            "mu_F": float(np.linalg.norm(w2d) / spectral_f) if spectral_f > 0 else float("nan"),
        }
        if self.detailed:
            x = record.x
            geom = F.conv_geometry(x.shape[2:], layer.kernel_size, layer.stride, layer.padding)
            a0 = F.im2col(x[:1].astype(np.float64), geom).T  # (H'W', C kh kw) of the first image
            spectral_a = np.linalg.norm(a0, 2)
            stats["mu_A"] = (
                float(np.linalg.norm(a0) / spectral_a) if spectral_a > 0 else float("nan")
            )
        ps = smp.per_shot
        if ps is not None:
            stats["per_shot_fallbacks"] = float(ps.fallbacks)
            stats["ipe_error_rms_pixel"] = self._pixel_error_rms(layer, record)
            if ps.mean_f is not None and ps.mean_f_err is not None:
                stats["mean_f_bound"] = float(np.max(ps.mean_f_err, initial=0.0))
            # E[f] over the estimator's law, not the draws
            mean_f = smp.mean_f
            if mean_f is None:
                mean_f = gaussian_shot_mean_f(layer.config, ip)
            stats["mean_f"] = float(mean_f.mean())
        norm = record.values.normaliser
        if norm is not None:
            stats.update(_normaliser_stats(norm.estimated, norm.exact))
        return stats

    def _pixel_error_rms(self, layer: QuantumConv2D, record: ForwardRecord) -> float:
        """The RMS error of one estimate per pixel over every pixel of the batch's first image,
        drawn afresh from a statistics-only generator (never the training stream): in per-shot
        mode the recorded ``Ybar`` is 0-error at unsampled pixels and a mean of n draws at the
        others, so this is the figure comparable with notebook mode's ``ipe_error_rms``."""
        if self._pixel_rng is None:
            seq = getattr(layer.rng.bit_generator, "seed_seq", None)
            entropy = seq.entropy if isinstance(seq, np.random.SeedSequence) else 0
            key = seq.spawn_key if isinstance(seq, np.random.SeedSequence) else ()
            stats_seq = np.random.SeedSequence(entropy, spawn_key=(*key, 0x5747))
            self._pixel_rng = np.random.default_rng(stats_seq)
        y_nb = record.products.exact_nb
        y_first = y_nb[:1]
        s = np.broadcast_to(record.products.scale, y_nb.shape)[:1]
        err = estimate_inner_products(y_first, s, layer.config, self._pixel_rng) - y_first
        err = err.astype(np.float64).ravel()
        return float(np.sqrt(np.dot(err, err) / max(err.size, 1)))


def watch_statistics(
    model: Layer, *, detailed: bool = False, training: bool = True
) -> dict[Layer, LayerStatistics]:
    """Attach a :class:`LayerStatistics` to every quantum layer of ``model`` (nested ones too,
    in :func:`qcnn.nn.walk` order) and return each layer's. A layer that has one keeps it,
    with ``training`` as given and ``detailed`` if either asks for it."""
    from qcnn.quantum.layer import QuantumConv2D

    out: dict[Layer, LayerStatistics] = {}
    for layer in walk(model):
        if isinstance(layer, QuantumConv2D):
            stats = layer.statistics
            if stats is None:
                stats = LayerStatistics(detailed=detailed, training=training)
                layer.observe(stats)
            else:
                stats.detailed = stats.detailed or detailed
                stats.training = training
            out[layer] = stats
    return out
