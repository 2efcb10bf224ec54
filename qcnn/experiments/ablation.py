"""Ablation options as named groups of ``QuantumConfig`` settings, defined once.

An ablation cell must differ from its base in exactly the option it names. An option is often
several fields at once ("tomography values" = the sampled value, the normaliser, and the
normaliser's AE bits m and median count k, which ``failure_prob`` derives as in the preset), and
one field can feed several options (``failure_prob`` derives the m and k of every amplitude
estimation). So an option is compared by its **effective settings** (:attr:`OptionGroup.view`,
derived values included), and a cell is built by :func:`with_option`, which applies the changes
and checks that the views of every other group are those of the base
(:func:`differing_groups`): a cell that also changed something else raises instead of running.

experiments/klp19-theory's grid (:func:`qcnn.experiments.grids.klp19_theory_specs`) builds every
ablation cell this way; ``tests/experiments/test_ablation.py`` checks the property on the grid and
that the groups together see every field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qcnn.quantum import QuantumConfig

__all__ = ["OptionGroup", "OPTION_GROUPS", "COMMON", "differing_groups", "with_option"]


@dataclass(frozen=True)
class OptionGroup:
    """One ablation option.

    Attributes:
        name: short name (run folders, tables).
        title: what the option is, for tables.
        view: the option's effective settings in a config (derived values included).
    """

    name: str
    title: str
    view: Callable[[QuantumConfig], tuple[Any, ...]]


def _ae_of(c: QuantumConfig, used: bool) -> tuple[int | None, int | None]:
    """(m, k) of an amplitude estimation that runs when ``used``, else (None, None)."""
    return (c.ae_bits_any, c.resolved_ae_median) if used else (None, None)


def _ipe(c: QuantumConfig) -> tuple[Any, ...]:
    return (c.ipe, *_ae_of(c, c.ipe == "amplitude_estimation"), c.effective_eps)


def _values(c: QuantumConfig) -> tuple[Any, ...]:
    tomo = c.sampled_value == "tomography"
    normaliser = c.tomography_normaliser if tomo else None
    return (c.sampled_value, normaliser, *_ae_of(c, normaliser == "amplitude_estimation"))


def _gradient_norm(c: QuantumConfig) -> tuple[Any, ...]:
    return (c.gradient_norm, c.gradient_norm_ae)


OPTION_GROUPS: dict[str, OptionGroup] = {
    g.name: g
    for g in (
        OptionGroup("eps-bound", "eps as a bound (AE, m from the bound, median of k)", _ipe),
        OptionGroup("noise-order", "noise before the cap, f(Y + e)", lambda c: (c.noise_order,)),
        OptionGroup(
            "noise-per-shot", "a fresh estimate per tomography shot", lambda c: (c.noise_per_shot,)
        ),
        OptionGroup(
            "tomography-values", "tomography values (n/N) sum f, with their normaliser", _values
        ),
        OptionGroup(
            "gradient-tomography",
            "l-infinity tomography of every gradient (+ the one passed back)",
            lambda c: (c.gradient_model, c.input_gradient_noise),
        ),
        OptionGroup("gradient-norm", "the tomography gradients' norm by AE", _gradient_norm),
        OptionGroup(
            "gradient-signs", "signs of the tomography gradients", lambda c: (c.gradient_signs,)
        ),
        OptionGroup(
            "gradient-on", "parameters read out by the gradient model", lambda c: (c.gradient_on,)
        ),
        OptionGroup(
            "shots",
            "shots of the forward tomography (sigma d or 36 ln d / eta^2)",
            lambda c: (c.sigma, c.eta),
        ),
    )
}
# the settings no ablation changes: every cell shares them with its base
COMMON = OptionGroup(
    "common",
    "eps, C, delta, norms, sampling power",
    lambda c: (c.eps, c.cap, c.delta, c.norms, c.sampling_power),
)


def differing_groups(a: QuantumConfig, b: QuantumConfig) -> set[str]:
    """The names of the groups (and ``'common'``) whose effective settings differ."""
    groups = [*OPTION_GROUPS.values(), COMMON]
    return {g.name for g in groups if g.view(a) != g.view(b)}


def with_option(base: QuantumConfig, group: str, **changes: Any) -> QuantumConfig:
    """``base`` with the fields ``changes`` set, checked to differ from ``base`` in the group
    ``group`` and in no other (effective settings, :func:`differing_groups`).

    Raises:
        ValueError: an unknown group, a cell equal to its base in that group, or one that
            differs in another group too (the message names them).
    """
    if group not in OPTION_GROUPS:
        raise ValueError(f"unknown option group {group!r}; known: {', '.join(OPTION_GROUPS)}")
    cell = base.replace(**changes)
    diff = differing_groups(base, cell)
    if diff != {group}:
        raise ValueError(
            f"ablation cell {changes} from its base differs in {sorted(diff) or 'nothing'}, "
            f"not in {group!r} alone"
        )
    return cell
