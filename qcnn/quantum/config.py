"""``QuantumConfig``: every knob of the quantum layer and of quantum backprop (model §2-3).

A frozen, validated dataclass. Bad values raise ValueError naming the field and the allowed
range. It round-trips through JSON (``to_dict`` / ``from_dict``) because it goes into
``results.json`` next to the accuracy it produced.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "QuantumConfig",
    "IPE_MODELS",
    "GRADIENT_MODELS",
    "AE_SUCCESS_PROBABILITY",
    "ae_bound",
    "median_count",
    "median_failure_probability",
    "THEORY_PRESET_VERSION",
    "THEORY_PRESET_VERSIONS",
]

IPE_MODELS = ("gaussian", "amplitude_estimation", "exact")
GRADIENT_MODELS = ("gaussian", "linf_tomography")
_CHOICES = {
    "ipe": IPE_MODELS,
    "noise_order": ("paper", "theory"),
    "sampled_value": ("exact", "tomography"),
    "gradient_on": ("all", "quantum"),
    "norms": ("per_image", "first_image"),
    "gradient_model": GRADIENT_MODELS,
    "gradient_signs": ("kp", "exact"),
    "tomography_normaliser": ("exact", "amplitude_estimation"),
    "gradient_norm": ("exact", "amplitude_estimation"),
}
_BOOLEANS = ("input_gradient_noise", "noise_per_shot")
# Names results.json files written before a field was renamed; from_dict reads them.
_ALIASES = {"gradient_noise_on": "gradient_on"}

MAX_AE_BITS = 20
# One canonical AE run with M = 2^m points returns |a~ - a| <= 2 pi sqrt(a(1-a))/M + pi^2/M^2
# with probability at least 8/pi^2 (Brassard, Hoyer, Mosca, Tapp 2002, Theorem 12).
AE_SUCCESS_PROBABILITY = 8.0 / math.pi**2
MAX_MEDIAN = 999


def _bits_for(eps: float) -> int:
    """The smallest m >= 1 with ``pi / 2^m <= eps`` (exact comparison, no log rounding)."""
    m = 1
    while math.pi / 2**m > eps and m <= 64:
        m += 1
    return m


def ae_bound(m: int) -> float:
    """The bound of one AE run on ``|a~ - a|`` for any a: ``pi / 2^m + pi^2 / 4^m`` (the
    theorem's ``2 pi sqrt(a(1-a)) / M + pi^2 / M^2`` at its worst, a = 1/2)."""
    return math.pi / 2**m + math.pi**2 / 4**m


def _bound_bits_for(eps: float) -> int:
    """The smallest m >= 1 with :func:`ae_bound` ``(m) <= eps``: eps as a bound (theory mode)."""
    m = 1
    while ae_bound(m) > eps and m <= 64:
        m += 1
    return m


def median_failure_probability(k: int, p_success: float = AE_SUCCESS_PROBABILITY) -> float:
    """P(the median of k independent runs is outside the bound) <= P(Bin(k, 1 - p) >= (k+1)/2):
    the median can only leave the (convex) error interval if at least half the runs did."""
    q = 1.0 - p_success
    h = (k + 1) // 2
    return float(sum(math.comb(k, i) * q**i * (1 - q) ** (k - i) for i in range(h, k + 1)))


def median_count(failure_prob: float, p_success: float = AE_SUCCESS_PROBABILITY) -> int:
    """The smallest odd k whose median fails with probability <= ``failure_prob`` (exact binomial
    tail of :func:`median_failure_probability`, one run succeeding with ``p_success``).

    The median lemma's textbook form, ``k >= ln(1/Delta) / (2 (p - 1/2)^2)`` (Hoeffding), is an
    upper bound on this k (5.2 ln(1/Delta) for p = 8/pi^2); the exact tail meets the same
    guarantee with fewer runs (Delta = 0.01: k = 11 instead of 25).
    """
    k = 1
    while median_failure_probability(k, p_success) > failure_prob:
        k += 2
        if k > MAX_MEDIAN:
            raise ValueError(f"failure_prob={failure_prob!r} needs more than {MAX_MEDIAN} AE runs")
    return k


# The versions of QuantumConfig.theory(): what each one added. A run records its whole config, so
# a record says which version it ran (runner.config_tags names the older ones "theory-vN").
THEORY_PRESET_VERSIONS = {
    1: "AE IPE with eps a bound (failure_prob), noise before the cap, noise per shot, "
    "tomography values with an AE normaliser, l-infinity tomography (KP signs) of every gradient "
    "and of the one each quantum layer passes back; the tomography's norm ||g||_2 exact",
    2: "version 1 with the tomography's norm ||g||_2 estimated by amplitude estimation "
    "(gradient_norm='amplitude_estimation', issue 17)",
}
THEORY_PRESET_VERSION = max(THEORY_PRESET_VERSIONS)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class QuantumConfig:
    """Settings of the emulated quantum convolution layer and of quantum backprop.

    Defaults are the authors' notebook ("notebook mode", model §6); the fields marked [theory]
    switch on, one at a time, the algorithm as the theorems state it (:meth:`theory` combines
    them). docs/theory.md explains each.

    Attributes:
        eps: inner-product precision (>= 0). Its meaning depends on ``ipe``: in the Gaussian model
            [paper-sim] it is a *standard deviation*, ``Ybar = Y + 2 eps ||A_p|| ||F_q|| N(0, 1)``
            (model §2.2); in the amplitude-estimation model it fixes the AE qubits m, and with
            ``failure_prob`` set it is a *bound*: ``|Ybar - Y| <= 2 eps ||A_p|| ||F_q||`` with
            probability >= 1 - failure_prob.
        cap: ``C > 0``, the cap of the capped ReLU ``min(max(x, 0), C)``.
        sigma: fraction of the layer's ``D'H'W'`` outputs drawn as shots, ``0 < sigma <= 1``
            (``N = int(sigma D'H'W')``, the authors' simulation). None with ``eta`` None: no
            sampling, every pixel kept (for checks).
        eta: l-infinity tomography precision (> 0); ``N = ceil(36 ln(d) / eta^2)``. Exclusive
            with ``sigma`` (pass ``sigma=None``).
        delta: gradient precision (>= 0). Gaussian gradient model: ``g + delta ||g||_2 N(0, 1)``
            (a standard deviation); l-infinity tomography: ``||g~ - g||_inf <= delta ||g||_2`` with
            high probability (a bound) (model §3).
        ipe: ``'gaussian'`` [paper-sim], ``'amplitude_estimation'`` (exact canonical AE outcome
            distribution) or ``'exact'`` (no estimation error).
        ae_bits: AE evaluation qubits m (``2^m`` grid points). None: derived from eps, the smallest
            m with ``pi / 2^m <= eps``, or with ``failure_prob`` set the smallest m whose AE bound
            ``pi / 2^m + pi^2 / 4^m <= eps`` (:func:`ae_bound`).
        ae_median: k, the number of AE runs whose median is taken (odd, >= 1). Leave it at 1 when
            ``failure_prob`` is set: k is then derived (:func:`median_count`).
        noise_order: ``'paper'``: ``clamp(f(Y) + e, 0, C)`` as the authors' notebook;
            ``'theory'``: ``f(Y + e)``.
        sampling_power: pixel (p, q) is drawn with probability proportional to ``f^power``;
            1 is the algorithm, 2 an ablation.
        sampled_value: ``'exact'``: a drawn pixel keeps ``f`` [paper-sim]; ``'tomography'``: it
            takes the estimate ``(n/N) sum f`` (shot noise).
        gradient_on: ``'all'`` parameters [paper-sim] or ``'quantum'`` layer kernels only.
            (Results written before this field was renamed call it ``gradient_noise_on``;
            :meth:`from_dict` reads both.)
        norms: ``'per_image'`` patch norms, or ``'first_image'`` (the notebook's shortcut: norms
            of image 0, channel 0 of the batch used for every image).
        gradient_model: ``'gaussian'`` [paper-sim] or ``'linf_tomography'`` [theory]: each
            gradient tensor replaced by its emulated l-infinity tomography estimate
            (:func:`qcnn.quantum.tomography_estimate`, N = ceil(36 ln d / delta^2) shots).
        gradient_signs: signs of the tomography estimate: ``'kp'`` (the Kerenidis-Prakash sign
            step) or ``'exact'`` (ablation).
        input_gradient_noise: [theory] also apply the gradient model to the gradient a quantum
            layer passes back to the previous layer (``dL/dX``, one vector per image).
        failure_prob: [theory] Delta, 0 < Delta < 1: eps becomes a bound holding with probability
            >= 1 - Delta; the AE median count k and the AE bits are derived from (eps, Delta).
            Needs an amplitude-estimation model (``ipe`` or ``tomography_normaliser``).
        noise_per_shot: [theory] every tomography shot re-runs the estimation: a pixel is drawn
            with probability proportional to ``E[f(Ybar)]`` and carries a fresh estimate from the
            f-tilted law; a pixel drawn n times takes the mean of its n values (docs/theory.md).
        tomography_normaliser: with ``sampled_value='tomography'``, ``sum f`` is ``'exact'`` (an
            oracle, the default) or estimated by ``'amplitude_estimation'`` of ``E[f] / C`` at the
            configured precision [theory].
        gradient_norm: with ``gradient_model='linf_tomography'``, the norm ``||g||_2`` that
            rescales the tomography estimate is ``'exact'`` (an oracle, the default) or estimated
            by ``'amplitude_estimation'`` [theory], with the same m and k as the normaliser
            (:attr:`ae_bits_any`, :attr:`resolved_ae_median`; docs/theory.md §2).
    """

    eps: float = 0.01
    cap: float = 10.0
    sigma: float | None = 0.5
    eta: float | None = None
    delta: float = 0.01
    ipe: Literal["gaussian", "amplitude_estimation", "exact"] = "gaussian"
    ae_bits: int | None = None
    ae_median: int = 1
    noise_order: Literal["paper", "theory"] = "paper"
    sampling_power: int = 1
    sampled_value: Literal["exact", "tomography"] = "exact"
    gradient_on: Literal["all", "quantum"] = "all"
    norms: Literal["per_image", "first_image"] = "per_image"
    gradient_model: Literal["gaussian", "linf_tomography"] = "gaussian"
    gradient_signs: Literal["kp", "exact"] = "kp"
    input_gradient_noise: bool = False
    failure_prob: float | None = None
    noise_per_shot: bool = False
    tomography_normaliser: Literal["exact", "amplitude_estimation"] = "exact"
    gradient_norm: Literal["exact", "amplitude_estimation"] = "exact"

    def __post_init__(self) -> None:
        # numpy scalars (np.float32(0.5), np.int64(3), np.str_) are the same settings as the
        # Python values: store those, so the config compares, hashes and serialises alike.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                object.__setattr__(self, f.name, value.item())

        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(
                f"QuantumConfig.{name} must be {allowed}, got {getattr(self, name)!r}"
            )

        if not _is_number(self.eps) or self.eps < 0:
            raise bad("eps", "a finite number >= 0")
        if not _is_number(self.cap) or self.cap <= 0:
            raise bad("cap", "a finite number > 0")
        if self.sigma is not None and (not _is_number(self.sigma) or not 0 < self.sigma <= 1):
            raise bad("sigma", "None or a number with 0 < sigma <= 1")
        if self.eta is not None and (not _is_number(self.eta) or self.eta <= 0):
            raise bad("eta", "None or a finite number > 0")
        if self.sigma is not None and self.eta is not None:
            raise ValueError(
                f"QuantumConfig: sigma ({self.sigma!r}) and eta ({self.eta!r}) are exclusive; "
                "pass sigma=None to size the sampling by eta"
            )
        if not _is_number(self.delta) or self.delta < 0:
            raise bad("delta", "a finite number >= 0")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise bad(name, "one of " + ", ".join(repr(a) for a in allowed))
        if self.ae_bits is not None and (
            not isinstance(self.ae_bits, int)
            or isinstance(self.ae_bits, bool)
            or not 1 <= self.ae_bits <= MAX_AE_BITS
        ):
            raise bad("ae_bits", f"None or an integer in [1, {MAX_AE_BITS}]")
        if (
            not isinstance(self.ae_median, int)
            or isinstance(self.ae_median, bool)
            or self.ae_median < 1
            or self.ae_median % 2 == 0
        ):
            raise bad("ae_median", "an odd integer >= 1")
        if isinstance(self.sampling_power, bool) or self.sampling_power not in (1, 2):
            raise bad("sampling_power", "1 or 2")
        for name in _BOOLEANS:
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False")
        if self.failure_prob is not None:
            if not _is_number(self.failure_prob) or not 0 < self.failure_prob < 1:
                raise bad("failure_prob", "None or a number with 0 < failure_prob < 1")
            if (
                self.ipe != "amplitude_estimation"
                and self.tomography_normaliser != "amplitude_estimation"
                and self.gradient_norm != "amplitude_estimation"
            ):
                raise bad(
                    "failure_prob",
                    "None unless an amplitude-estimation model is used "
                    "(ipe, tomography_normaliser or gradient_norm 'amplitude_estimation')",
                )
            if self.ae_median != 1:
                raise ValueError(
                    f"QuantumConfig.ae_median={self.ae_median!r} conflicts with failure_prob="
                    f"{self.failure_prob!r}, which derives the median count: pass one of them"
                )
            median_count(self.failure_prob)  # raises for a Delta needing absurdly many runs
        if self.noise_per_shot:
            if not self.samples:
                raise bad("noise_per_shot", "False without sampling (sigma or eta)")
            if self.sampling_power != 1:
                raise bad(
                    "noise_per_shot",
                    "False with sampling_power 2 (the ablation has no per-shot law)",
                )
        if self.tomography_normaliser != "exact" and self.sampled_value != "tomography":
            raise bad(
                "tomography_normaliser",
                "'exact' unless sampled_value='tomography' (the "
                "normaliser scales tomography values only)",
            )
        if (
            self.tomography_normaliser == "amplitude_estimation"
            and self.eps == 0
            and self.ae_bits is None
        ):
            raise bad(
                "tomography_normaliser",
                "'exact' when eps = 0 and ae_bits is None (no "
                "precision to estimate the normaliser with)",
            )
        if self.gradient_norm != "exact":
            if self.gradient_model != "linf_tomography":
                raise bad(
                    "gradient_norm",
                    "'exact' unless gradient_model='linf_tomography' (the norm rescales the "
                    "tomography estimate)",
                )
            if self.eps == 0 and self.ae_bits is None:
                raise bad(
                    "gradient_norm",
                    "'exact' when eps = 0 and ae_bits is None (no precision to estimate the "
                    "norm with)",
                )
        if self.ipe == "amplitude_estimation" and self.ae_bits is None:
            if self.eps == 0:
                raise ValueError(
                    "QuantumConfig: ipe='amplitude_estimation' needs ae_bits or eps > 0"
                )
        if self.uses_ae and self.ae_bits is None and self.eps > 0:
            if self._derived_bits() > MAX_AE_BITS:
                rule = "pi/2^m + pi^2/4^m" if self.failure_prob is not None else "pi / 2^m"
                raise ValueError(
                    f"QuantumConfig.eps={self.eps!r} needs {self._derived_bits()} AE bits ({rule} <= eps); "
                    f"at most {MAX_AE_BITS} are supported: raise eps or pass ae_bits"
                )

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def samples(self) -> bool:
        """Whether the layer samples pixels (l-infinity tomography) at all."""
        return self.sigma is not None or self.eta is not None

    @property
    def uses_ae(self) -> bool:
        """Whether some step runs (emulated) amplitude estimation: the IPE, the normaliser or the
        gradient norm."""
        return (
            self.ipe == "amplitude_estimation"
            or (
                self.sampled_value == "tomography"
                and self.tomography_normaliser == "amplitude_estimation"
            )
            or self.gradient_norm == "amplitude_estimation"
        )

    def _derived_bits(self) -> int:
        return _bound_bits_for(self.eps) if self.failure_prob is not None else _bits_for(self.eps)

    @property
    def ae_bits_any(self) -> int | None:
        """m of every emulated AE (IPE and normaliser): ``ae_bits`` or derived from eps (the
        bound rule when ``failure_prob`` is set); None when no AE runs or eps = 0."""
        if not self.uses_ae:
            return None
        if self.ae_bits is not None:
            return self.ae_bits
        return self._derived_bits() if self.eps > 0 else None

    @property
    def resolved_ae_bits(self) -> int | None:
        """m used by the AE model of the IPE: ``ae_bits``, else the smallest m with
        ``pi / 2^m <= eps`` (or, with ``failure_prob``, with ``pi/2^m + pi^2/4^m <= eps``)."""
        if self.ipe != "amplitude_estimation":
            return None
        return self.ae_bits_any

    @property
    def resolved_ae_median(self) -> int:
        """k, the AE runs whose median is taken: ``ae_median``, or from ``failure_prob``."""
        if self.failure_prob is not None:
            return median_count(self.failure_prob)
        return self.ae_median

    @property
    def gradient_norm_ae(self) -> tuple[int, int] | None:
        """``(m, k)`` of the gradient norm's amplitude estimation (``gradient_norm``), the same
        as the tomography normaliser's; None when the norm is exact."""
        if self.gradient_norm == "exact":
            return None
        m = self.ae_bits_any
        assert m is not None  # validated: eps > 0 or ae_bits
        return m, self.resolved_ae_median

    @property
    def effective_eps(self) -> float:
        """Precision of the inner-product estimates on a: eps (Gaussian: a standard deviation),
        ``pi / 2^m`` for AE (``pi/2^m + pi^2/4^m``, a bound, with ``failure_prob``), 0 if exact."""
        if self.ipe == "exact":
            return 0.0
        m = self.resolved_ae_bits
        if m is not None:  # amplitude estimation
            return ae_bound(m) if self.failure_prob is not None else math.pi / 2**m
        return self.eps

    @property
    def gradient_noise_on(self) -> str:
        """Former name of :attr:`gradient_on` (read-only alias)."""
        return self.gradient_on

    # -- presets and serialisation --------------------------------------------------------------
    @classmethod
    def paper(
        cls, eps: float = 0.01, cap: float = 10.0, sigma: float = 0.5, delta: float = 0.01
    ) -> QuantumConfig:
        """The authors' simulation: Gaussian IPE, cap-noise-cap, exact values of sampled
        pixels, gradient noise on all parameters, per-image norms (the project's fix)."""
        return cls(eps=eps, cap=cap, sigma=sigma, delta=delta)

    @classmethod
    def theory(
        cls,
        eps: float = 0.01,
        cap: float = 10.0,
        delta: float = 0.01,
        sigma: float = 0.5,
        failure_prob: float = 0.01,
        *,
        version: int = THEORY_PRESET_VERSION,
    ) -> QuantumConfig:
        """The algorithm as the theorems state it (model §6, docs/theory.md): amplitude
        estimation with bits and median derived from (eps, Delta) so that eps is a bound holding
        with probability >= 1 - Delta, noise before the cap, a fresh estimate per tomography
        shot, tomography values with an estimated normaliser, and l-infinity tomography (KP signs)
        of every gradient, including the one passed back by each quantum layer, rescaled by a
        norm estimated with amplitude estimation (version 2). Sampling stays sized by sigma (so
        runs compare with the paper's grid). ``version`` (:data:`THEORY_PRESET_VERSIONS`) gives
        an earlier version of the preset, to read or rerun older records."""
        if version not in THEORY_PRESET_VERSIONS:
            raise ValueError(
                f"QuantumConfig.theory: version must be one of {sorted(THEORY_PRESET_VERSIONS)}, "
                f"got {version!r}"
            )
        return cls(
            eps=eps,
            cap=cap,
            sigma=sigma,
            delta=delta,
            ipe="amplitude_estimation",
            failure_prob=failure_prob,
            noise_order="theory",
            noise_per_shot=True,
            sampled_value="tomography",
            tomography_normaliser="amplitude_estimation",
            gradient_model="linf_tomography",
            gradient_on="all",
            input_gradient_noise=True,
            gradient_norm="amplitude_estimation" if version >= 2 else "exact",
        )

    @classmethod
    def exact(cls, cap: float = 1e30) -> QuantumConfig:
        """No estimation error, no sampling, no gradient noise: equals Conv2D + capped ReLU."""
        return cls(eps=0.0, cap=cap, sigma=None, delta=0.0, ipe="exact")

    def replace(self, **changes: Any) -> QuantumConfig:
        """A validated copy with ``changes`` (former field names are accepted too)."""
        for old, new in _ALIASES.items():
            if old in changes:
                if new in changes:
                    raise ValueError(f"QuantumConfig.replace: pass {new} or {old}, not both")
                changes[new] = changes.pop(old)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantumConfig:
        """The inverse of :meth:`to_dict`; also reads configs written by earlier versions (fields
        added since take their defaults, renamed fields are read under their old names)."""
        d = dict(d)
        for old, new in _ALIASES.items():
            if old in d:
                value = d.pop(old)
                if new in d and d[new] != value:
                    raise ValueError(
                        f"QuantumConfig: {old}={value!r} (the former name of {new}) conflicts "
                        f"with {new}={d[new]!r}"
                    )
                d.setdefault(new, value)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"QuantumConfig: unknown fields {unknown}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QuantumConfig:
        return cls.from_dict(json.loads(text))
