"""``QuantumConfig``: every knob of the quantum layer and of quantum backprop (model §2-3).

A frozen, validated dataclass, and the one place where a quantum setting is declared: each field
carries its metadata (:class:`~qcnn.quantum.settings.Setting`: group, range or choices, help,
run-id tag, mode, the settings it requires), from which the validation, the command-line flags
of every command, the preset/override rules and the run tags are generated
(:mod:`qcnn.quantum.settings`). The presets are one registry, :data:`PRESETS`
(:meth:`QuantumConfig.preset`). Bad values raise ValueError naming the field and the allowed
range. It round-trips through JSON (``to_dict`` / ``from_dict``) because it goes into
``results.json`` next to the accuracy it produced.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from qcnn.quantum.settings import (
    Preset,
    Range,
    Requirement,
    Setting,
    option_tags,
    preset_like,
    preset_tag,
    resolve_overrides,
    setting,
    settings_of,
)
from qcnn.quantum.settings import (
    check_values as _check_values,
)

__all__ = [
    "QuantumConfig",
    "PRESETS",
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
# a record says which version it ran (its run-id tag names the older ones "theory-vN").
THEORY_PRESET_VERSIONS = {
    1: "AE IPE with eps a bound (failure_prob), noise before the cap, noise per shot, "
    "tomography values with an AE normaliser, l-infinity tomography (KP signs) of every gradient "
    "and of the one each quantum layer passes back; the tomography's norm ||g||_2 exact",
    2: "version 1 with the tomography's norm ||g||_2 estimated by amplitude estimation "
    "(gradient_norm='amplitude_estimation', issue 17)",
}
THEORY_PRESET_VERSION = max(THEORY_PRESET_VERSIONS)

# What some settings need from the others (Setting.requires).
AE_MODEL = Requirement(
    name="an amplitude-estimation model",
    holds=lambda v: (
        "amplitude_estimation" in (v["ipe"], v["tomography_normaliser"], v["gradient_norm"])
    ),
    unmet="unless an amplitude-estimation model is used "
    "(ipe, tomography_normaliser or gradient_norm 'amplitude_estimation')",
    flags="--ipe amplitude_estimation or --tomography-normaliser amplitude_estimation",
    state=lambda v: f"--ipe {v['ipe']}",
)
# amplitude estimation that runs: the IPE's, the normaliser's of tomography values, or the
# gradient norm's
AE_RUNS = Requirement(
    name="amplitude estimation",
    holds=lambda v: (
        v["ipe"] == "amplitude_estimation"
        or (v["sampled_value"] == "tomography" and v["tomography_normaliser"] != "exact")
        or v["gradient_norm"] != "exact"
    ),
    unmet="unless amplitude estimation runs (ipe 'amplitude_estimation', tomography values "
    "with tomography_normaliser 'amplitude_estimation', or gradient_norm "
    "'amplitude_estimation')",
    flags=AE_MODEL.flags,
    state=AE_MODEL.state,
)
SAMPLING = Requirement(
    name="sampling",
    holds=lambda v: v["sigma"] is not None or v["eta"] is not None,
    unmet="without sampling (sigma or eta)",
    flags="--sigma or --eta",
)
TOMOGRAPHY_VALUES = Requirement(
    name="tomography values",
    holds=lambda v: v["sampled_value"] == "tomography",
    unmet="unless sampled_value='tomography' (the normaliser scales tomography values only)",
    flags="--sampled-value tomography",
)


def _failure_prob_check(c: Any) -> str | None:
    if c.failure_prob is None:
        return None
    if c.ae_median != 1:
        return (
            f"QuantumConfig.ae_median={c.ae_median!r} conflicts with failure_prob="
            f"{c.failure_prob!r}, which derives the median count: pass one of them"
        )
    median_count(c.failure_prob)  # raises for a Delta needing absurdly many runs
    return None


def _noise_per_shot_check(c: Any) -> str | None:
    if c.noise_per_shot and c.sampling_power != 1:
        return (
            "QuantumConfig.noise_per_shot must be False with sampling_power 2 (the ablation has "
            f"no per-shot law), got {c.noise_per_shot!r}"
        )
    return None


def _normaliser_check(c: Any) -> str | None:
    if c.tomography_normaliser == "amplitude_estimation" and c.eps == 0 and c.ae_bits is None:
        return (
            "QuantumConfig.tomography_normaliser must be 'exact' when eps = 0 and ae_bits is "
            "None (no precision to estimate the normaliser with), got "
            f"{c.tomography_normaliser!r}"
        )
    return None


LINF_GRADIENTS = Requirement(
    name="l-infinity tomography of the gradients",
    holds=lambda v: v["gradient_model"] == "linf_tomography",
    unmet="unless gradient_model='linf_tomography' (the norm rescales the tomography estimate)",
    flags="--gradient-model linf_tomography",
)


def _gradient_norm_check(c: Any) -> str | None:
    if c.gradient_norm != "exact" and c.eps == 0 and c.ae_bits is None:
        return (
            "QuantumConfig.gradient_norm must be 'exact' when eps = 0 and ae_bits is None (no "
            f"precision to estimate the norm with), got {c.gradient_norm!r}"
        )
    return None


def _values_tag(config: Any) -> str:
    return "tomovalues" + ("-aenorm" if config.tomography_normaliser != "exact" else "")


_IPE = "inner-product estimation"
Config = TypeVar("Config", bound="QuantumConfig")  # a QuantumConfig, or a subclass's instance


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
    """

    # -- inner-product estimation (model §2.2) ---------------------------------------------------
    eps: float = setting(
        0.01,
        group=_IPE,
        range=Range(0.0),
        flag_range=Range(0.0, 1.0),
        help="inner-product precision eps in [0, 1]. A standard deviation with --ipe gaussian; "
        "with --ipe amplitude_estimation it sets the AE bits, and with --failure-prob it is a "
        "bound holding with probability >= 1 - failure_prob",
    )
    ipe: Literal["gaussian", "amplitude_estimation", "exact"] = setting(
        "gaussian",
        group=_IPE,
        choices=IPE_MODELS,
        help="inner-product estimation error model: gaussian (the authors' simulation), "
        "amplitude_estimation (the exact canonical AE outcome law) or exact (no error)",
    )
    ae_bits: int | None = setting(
        None,
        group=_IPE,
        range=Range(1, MAX_AE_BITS, integer=True),
        optional=True,
        requires=AE_RUNS,
        refused_by="command line",
        help="AE evaluation qubits m (default: from eps, the smallest m with pi/2^m <= eps, or "
        "pi/2^m + pi^2/4^m <= eps with --failure-prob)",
    )
    failure_prob: float | None = setting(
        None,
        group=_IPE,
        mode="theory",
        range=Range(0.0, 1.0, lo_open=True, hi_open=True),
        optional=True,
        requires=AE_MODEL,
        yields_to=("ae_median",),
        check=_failure_prob_check,
        tag="fp{value:g}",
        help="Delta in (0, 1): eps becomes a bound holding with probability >= 1 - Delta; the "
        "AE median count and bits are derived",
    )
    ae_median: int = setting(
        1,
        group=_IPE,
        range=Range(1, integer=True, odd=True),
        flag_range=Range(1, MAX_MEDIAN, integer=True, odd=True),
        requires=AE_RUNS,
        refused_by="command line",
        tag="k{value}",
        help=f"median of k AE runs (odd, 1..{MAX_MEDIAN})",
    )
    # -- non-linearity (model §2.3) --------------------------------------------------------------
    cap: float = setting(
        10.0,
        group="non-linearity",
        range=Range(0.0, lo_open=True),
        flag_range=Range(0.0, 1e6, lo_open=True),
        help="cap C of the capped ReLU, 0 < C <= 1e6",
    )
    noise_order: Literal["paper", "theory"] = setting(
        "paper",
        group="non-linearity",
        mode="theory",
        choices=("paper", "theory"),
        tag="ordertheory",
        help="paper: clamp(f(Y)+e, 0, C) as the authors' notebook; theory: f(Y+e)",
    )
    # -- sampling: l-infinity tomography of the output state (model §2.5) ------------------------
    sigma: float | None = setting(
        0.5,
        group="sampling",
        range=Range(0.0, 1.0, lo_open=True),
        optional=True,
        off=None,
        excludes=("eta",),
        exclusive_advice="pass sigma=None to size the sampling by eta",
        off_flag=("--no-sampling", "keep every pixel (no l-infinity tomography)"),
        help="fraction of output pixels drawn as shots, 0 < sigma <= 1 (unless --eta or "
        "--no-sampling)",
    )
    eta: float | None = setting(
        None,
        group="sampling",
        range=Range(0.0, lo_open=True),
        flag_range=Range(0.0, 1.0, lo_open=True, hi_open=True),
        optional=True,
        excludes=("sigma",),
        help="size the sampling by the tomography precision 0 < eta < 1: "
        "N = ceil(36 ln d / eta^2) (too small an eta is refused when N would not fit in memory)",
    )
    noise_per_shot: bool = setting(
        False,
        group="sampling",
        mode="theory",
        requires=SAMPLING,
        check=_noise_per_shot_check,
        tag="pershot",
        help="a fresh estimate per tomography shot (theory) instead of one per pixel (paper)",
    )
    sampled_value: Literal["exact", "tomography"] = setting(
        "exact",
        group="sampling",
        mode="theory",
        choices=("exact", "tomography"),
        tag=_values_tag,
        help="value of a drawn pixel: exact f, or the tomographic estimate (n/N) sum f",
    )
    tomography_normaliser: Literal["exact", "amplitude_estimation"] = setting(
        "exact",
        group="sampling",
        mode="theory",
        choices=("exact", "amplitude_estimation"),
        requires=TOMOGRAPHY_VALUES,
        check=_normaliser_check,
        help="sum f of the tomography values: exact (an oracle) or estimated by amplitude "
        "estimation of E[f]/C (theory)",
    )
    sampling_power: int = setting(
        1,
        group="sampling",
        choices=(1, 2),
        tag="power{value}",
        help="draw pixels with probability proportional to f^power (1: the algorithm)",
    )
    # -- gradients: quantum backpropagation (model §3) -------------------------------------------
    delta: float = setting(
        0.01,
        group="gradients",
        range=Range(0.0),
        flag_range=Range(0.0, 1.0),
        help="gradient precision delta in [0, 1]: a standard deviation with --gradient-model "
        "gaussian, a bound (with high probability) with linf_tomography",
    )
    gradient_model: Literal["gaussian", "linf_tomography"] = setting(
        "gaussian",
        group="gradients",
        mode="theory",
        choices=GRADIENT_MODELS,
        tag="gradlinf",
        help="quantum backprop: gaussian noise (paper) or l-infinity tomography (theory)",
    )
    gradient_norm: Literal["exact", "amplitude_estimation"] = setting(
        "exact",
        group="gradients",
        mode="theory",
        choices=("exact", "amplitude_estimation"),
        requires=LINF_GRADIENTS,
        check=_gradient_norm_check,
        tag="aegradnorm",
        help="norm ||g||_2 of the tomography gradients: exact (an oracle) or estimated by "
        "amplitude estimation with the normaliser's m and k (theory)",
    )
    gradient_signs: Literal["kp", "exact"] = setting(
        "kp",
        group="gradients",
        choices=("kp", "exact"),
        tag="exactsigns",
        help="signs of the tomography gradients: Kerenidis-Prakash sign step, or exact (ablation)",
    )
    gradient_on: Literal["all", "quantum"] = setting(
        "all",
        group="gradients",
        choices=("all", "quantum"),
        tag="gradquantum",
        former_names=("gradient_noise_on",),
        help="parameters whose gradients get the gradient model: all (paper) or quantum kernels",
    )
    input_gradient_noise: bool = setting(
        False,
        group="gradients",
        mode="theory",
        tag="inputgrad",
        help="also apply the gradient model to the gradient each quantum layer passes back",
    )
    # -- inner-product estimation, continued: declared last because its run-id tag comes last ----
    norms: Literal["per_image", "first_image"] = setting(
        "per_image",
        group=_IPE,
        choices=("per_image", "first_image"),
        tag="firstimage",
        help="patch norms of each image, or the notebook's shortcut: those of the first image",
    )

    def __post_init__(self) -> None:
        # numpy scalars (np.float32(0.5), np.int64(3), np.str_) are the same settings as the
        # Python values: store those, so the config compares, hashes and serialises alike.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                object.__setattr__(self, f.name, value.item())
        # each field alone (range or choices), the exclusive pairs, then per field the setting
        # it requires and its own check (Setting.check), in declaration order
        _check_values(self)
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
        return AE_RUNS.holds(vars(self))

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

    # -- presets, run tags ------------------------------------------------------------------------
    @classmethod
    def preset(cls: type[Config], name: str, /, **overrides: Any) -> Config:
        """The preset ``name`` of :data:`PRESETS` with the fields ``overrides`` (validated; an
        override that contradicts the preset raises, see :meth:`preset_values` for the command
        line's give-way rules)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name].values, **overrides})

    @classmethod
    def preset_values(cls: type[Config], name: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The field values of preset ``name`` with the settings ``given`` explicitly overriding
        it; a preset value that an explicit setting makes meaningless gives way (e.g. an
        explicit ``ae_median`` drops the preset's ``failure_prob``, which would derive it; a
        ``failure_prob`` with no amplitude estimation left is unset): the rules of
        :func:`~qcnn.quantum.settings.resolve_overrides`, read from the fields' metadata.
        Not validated: pass the result to :meth:`from_dict`."""
        return resolve_overrides(cls, cls.preset(name).to_dict(), given)

    @classmethod
    def paper(
        cls: type[Config],
        *,
        eps: float = 0.01,
        cap: float = 10.0,
        sigma: float = 0.5,
        delta: float = 0.01,
    ) -> Config:
        """The authors' simulation: Gaussian IPE, cap-noise-cap, exact values of sampled
        pixels, gradient noise on all parameters, per-image norms (the project's fix)."""
        return cls.preset("paper", eps=eps, cap=cap, sigma=sigma, delta=delta)

    @classmethod
    def theory(
        cls: type[Config],
        *,
        eps: float = 0.01,
        cap: float = 10.0,
        sigma: float = 0.5,
        delta: float = 0.01,
        failure_prob: float = 0.01,
        version: int = THEORY_PRESET_VERSION,
    ) -> Config:
        """The algorithm as the theorems state it (model §6, docs/theory.md): amplitude
        estimation with bits and median derived from (eps, Delta) so that eps is a bound holding
        with probability >= 1 - Delta, noise before the cap, a fresh estimate per tomography
        shot, tomography values with an estimated normaliser, and l-infinity tomography (KP signs)
        of every gradient, including the one passed back by each quantum layer, rescaled by a
        norm estimated with amplitude estimation (version 2). Sampling stays sized by sigma (so
        runs compare with the paper's grid). ``version`` (:data:`THEORY_PRESET_VERSIONS`) gives
        an earlier version of the preset, to read or rerun older records: the preset
        ``theory-v<version>`` of :data:`PRESETS`."""
        if version not in THEORY_PRESET_VERSIONS:
            raise ValueError(
                f"QuantumConfig.theory: version must be one of {sorted(THEORY_PRESET_VERSIONS)}, "
                f"got {version!r}"
            )
        return cls.preset(
            _theory_preset_name(version),
            eps=eps,
            cap=cap,
            sigma=sigma,
            delta=delta,
            failure_prob=failure_prob,
        )

    @classmethod
    def exact(cls: type[Config], *, cap: float = 1e30) -> Config:
        """No estimation error, no sampling, no gradient noise: equals Conv2D + capped ReLU."""
        return cls.preset("exact", cap=cap)

    @classmethod
    def command_line_presets(cls) -> dict[str, Preset]:
        """The presets a command's ``--preset`` offers (name -> :class:`Preset`)."""
        return {name: p for name, p in PRESETS.items() if p.command_line}

    @classmethod
    def setting(cls: type[Config], name: str) -> tuple[dataclasses.Field, Setting]:
        """The field ``name`` and its metadata (:class:`~qcnn.quantum.settings.Setting`)."""
        for f, s in settings_of(cls):
            if f.name == name:
                return f, s
        raise ValueError(f"{cls.__name__} has no setting {name!r}")

    def preset_like(self: Config, name: str) -> Config:
        """The preset ``name`` at this config's eps, C, sigma, delta, ... (the preset's free
        arguments, :attr:`Preset.arguments`); raises ValueError where there is none."""
        return preset_like(self, name, PRESETS)

    def preset_tag(self) -> str | None:
        """``'theory'`` (``'theory-v1'``, ...) when this config is that preset at its own free
        arguments (any eps, C, sigma, delta, Delta), else None."""
        return preset_tag(self, PRESETS)

    def option_tags(self) -> list[str]:
        """One tag per setting that differs from notebook mode (each field's ``tag``)."""
        return option_tags(self)

    def tags(self) -> list[str]:
        """The run-id tags beyond the run id's eps, C, sigma/eta, delta and IPE model: the
        preset's (:meth:`preset_tag`), else :meth:`option_tags`."""
        tag = self.preset_tag()
        return [tag] if tag is not None else self.option_tags()

    # -- serialisation ---------------------------------------------------------------------------
    def replace(self: Config, **changes: Any) -> Config:
        """A validated copy with ``changes`` (former field names are accepted too)."""
        for old, new in _former_names(type(self)).items():
            if old in changes:
                if new in changes:
                    raise ValueError(f"QuantumConfig.replace: pass {new} or {old}, not both")
                changes[new] = changes.pop(old)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[Config], d: Mapping[str, Any]) -> Config:
        """The inverse of :meth:`to_dict`; also reads configs written by earlier versions (fields
        added since take their defaults, renamed fields are read under their old names)."""
        d = dict(d)
        for old, new in _former_names(cls).items():
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
    def from_json(cls: type[Config], text: str) -> Config:
        return cls.from_dict(json.loads(text))


def _former_names(cls: type) -> dict[str, str]:
    """Former field names (read from results written before a rename) -> current names."""
    return {old: f.name for f, s in settings_of(cls) for old in s.former_names}


def _theory_preset_name(version: int) -> str:
    return "theory" if version == THEORY_PRESET_VERSION else f"theory-v{version}"


# The one preset registry: the fields each preset sets; its `arguments` are its free parameters
# (the keyword-only arguments of its classmethod: its run-id tag holds at any values of them).
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "the authors' notebook: Gaussian IPE, eps a standard deviation",
        values={},
        arguments=("eps", "cap", "sigma", "delta"),
    ),
    **{
        _theory_preset_name(version): Preset(
            "the theorems: AE with eps a bound holding with probability >= 1 - failure_prob, "
            "noise per shot, tomography values, l-infinity tomography of every gradient"
            + (" with an estimated norm" if version >= 2 else "")
            if version == THEORY_PRESET_VERSION
            else f"version {version} of the theory preset: {description}",
            values=dict(
                ipe="amplitude_estimation",
                failure_prob=0.01,
                noise_order="theory",
                noise_per_shot=True,
                sampled_value="tomography",
                tomography_normaliser="amplitude_estimation",
                gradient_model="linf_tomography",
                gradient_on="all",
                input_gradient_noise=True,
                gradient_norm="amplitude_estimation" if version >= 2 else "exact",
            ),
            tag=_theory_preset_name(version),
            arguments=("eps", "cap", "sigma", "delta", "failure_prob"),
            command_line=version == THEORY_PRESET_VERSION,
        )
        for version, description in sorted(THEORY_PRESET_VERSIONS.items(), reverse=True)
    },
    "exact": Preset(
        "no estimation error, no sampling, no gradient noise (Conv2D + capped ReLU)",
        values=dict(eps=0.0, cap=1e30, sigma=None, delta=0.0, ipe="exact"),
        arguments=("cap",),
        command_line=False,
    ),
}
