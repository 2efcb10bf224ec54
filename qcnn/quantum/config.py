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

__all__ = ["QuantumConfig", "IPE_MODELS"]

IPE_MODELS = ("gaussian", "amplitude_estimation", "exact")
_CHOICES = {
    "ipe": IPE_MODELS,
    "noise_order": ("paper", "theory"),
    "sampled_value": ("exact", "tomography"),
    "gradient_noise_on": ("all", "quantum"),
    "norms": ("per_image", "first_image"),
}


MAX_AE_BITS = 20


def _bits_for(eps: float) -> int:
    """The smallest m >= 1 with ``pi / 2^m <= eps`` (exact comparison, no log rounding)."""
    m = 1
    while math.pi / 2**m > eps and m <= 64:
        m += 1
    return m


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class QuantumConfig:
    """Settings of the emulated quantum convolution layer and of quantum backprop.

    Attributes:
        eps: inner-product precision (>= 0). The Gaussian model adds
            ``2 eps ||A_p|| ||F_q|| N(0, 1)`` to each output (model §2.2).
        cap: ``C > 0``, the cap of the capped ReLU ``min(max(x, 0), C)``.
        sigma: fraction of the layer's ``D'H'W'`` outputs drawn as shots, ``0 < sigma <= 1``
            (``N = int(sigma D'H'W')``, the authors' simulation). None with ``eta`` None: no
            sampling, every pixel kept (for checks).
        eta: l-infinity tomography precision (> 0); ``N = ceil(36 ln(d) / eta^2)``. Exclusive
            with ``sigma`` (pass ``sigma=None``).
        delta: gradient precision (>= 0): ``g + delta ||g||_2 N(0, 1)`` (model §3).
        ipe: ``'gaussian'`` [paper-sim], ``'amplitude_estimation'`` (exact canonical AE outcome
            distribution) or ``'exact'`` (no estimation error).
        ae_bits: AE evaluation qubits m (``2^m`` grid points). None: the smallest m with
            ``pi / 2^m <= eps``.
        ae_median: k, the number of AE runs whose median is taken (odd, >= 1).
        noise_order: ``'paper'``: ``clamp(f(Y) + e, 0, C)`` as the authors' notebook;
            ``'theory'``: ``f(Y + e)``.
        sampling_power: pixel (p, q) is drawn with probability proportional to ``f^power``;
            1 is the algorithm, 2 an ablation.
        sampled_value: ``'exact'``: a drawn pixel keeps ``f`` [paper-sim]; ``'tomography'``: it
            takes the estimate ``(n/N) sum f`` (shot noise).
        gradient_noise_on: ``'all'`` parameters [paper-sim] or ``'quantum'`` layer kernels only.
        norms: ``'per_image'`` patch norms, or ``'first_image'`` (the notebook's shortcut: norms
            of image 0, channel 0 of the batch used for every image).
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
    gradient_noise_on: Literal["all", "quantum"] = "all"
    norms: Literal["per_image", "first_image"] = "per_image"

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
            not isinstance(self.ae_median, int) or isinstance(self.ae_median, bool)
            or self.ae_median < 1 or self.ae_median % 2 == 0
        ):  # fmt: skip
            raise bad("ae_median", "an odd integer >= 1")
        if isinstance(self.sampling_power, bool) or self.sampling_power not in (1, 2):
            raise bad("sampling_power", "1 or 2")
        if self.ipe == "amplitude_estimation" and self.ae_bits is None:
            if self.eps == 0:
                raise ValueError(
                    "QuantumConfig: ipe='amplitude_estimation' needs ae_bits or eps > 0"
                )
            if _bits_for(self.eps) > MAX_AE_BITS:
                raise ValueError(
                    f"QuantumConfig.eps={self.eps!r} needs {_bits_for(self.eps)} AE bits (pi / 2^m <= eps); "
                    f"at most {MAX_AE_BITS} are supported: raise eps or pass ae_bits"
                )

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def samples(self) -> bool:
        """Whether the layer samples pixels (l-infinity tomography) at all."""
        return self.sigma is not None or self.eta is not None

    @property
    def resolved_ae_bits(self) -> int | None:
        """m used by the AE model: ``ae_bits`` or the smallest m with ``pi / 2^m <= eps``."""
        if self.ipe != "amplitude_estimation":
            return None
        if self.ae_bits is not None:
            return self.ae_bits
        return _bits_for(self.eps)

    @property
    def effective_eps(self) -> float:
        """Precision of the inner-product estimates on a: eps, ``pi / 2^m`` for AE, 0 if exact."""
        if self.ipe == "exact":
            return 0.0
        if self.ipe == "amplitude_estimation":
            return math.pi / 2**self.resolved_ae_bits
        return self.eps

    # -- presets and serialisation --------------------------------------------------------------
    @classmethod
    def paper(
        cls, eps: float = 0.01, cap: float = 10.0, sigma: float = 0.5, delta: float = 0.01
    ) -> QuantumConfig:
        """The authors' simulation: Gaussian IPE, cap-noise-cap, exact values of sampled
        pixels, gradient noise on all parameters, per-image norms (the project's fix)."""
        return cls(eps=eps, cap=cap, sigma=sigma, delta=delta)

    @classmethod
    def exact(cls, cap: float = 1e30) -> QuantumConfig:
        """No estimation error, no sampling, no gradient noise: equals Conv2D + capped ReLU."""
        return cls(eps=0.0, cap=cap, sigma=None, delta=0.0, ipe="exact")

    def replace(self, **changes: Any) -> QuantumConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantumConfig:
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
