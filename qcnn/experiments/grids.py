"""The sweep's grids: which runs a sweep trains (``--grid``), and the configurations under which
the trained CNN's weights are evaluated.

- :data:`GRIDS`: the paper's grid (eps x C x sigma x delta, model §5) and a quick one, with the
  ``--preset``'s configuration at each point (:func:`grid_specs`);
- :data:`NAMED_GRIDS`: grids that define their own configurations: ``klp19-theory``
  (:func:`klp19_theory_configs`: the theory preset, notebook mode and the one-option ablation of
  experiments/klp19-theory, every cell built by :func:`qcnn.experiments.ablation.with_option`);
- :func:`forward_configs`: the quantum forward passes of the CNN's weights at the end of a sweep.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

from qcnn.experiments.ablation import with_option
from qcnn.experiments.runner import RunSpec
from qcnn.quantum import QuantumConfig

__all__ = [
    "GRIDS",
    "NAMED_GRIDS",
    "THEORY_ABLATION",
    "THEORY_VARIANTS",
    "GRADIENT_NORM",
    "ETA_SHOTS",
    "grid_specs",
    "klp19_theory_cells",
    "klp19_theory_configs",
    "klp19_theory_specs",
    "forward_configs",
]

GRIDS: dict[str, dict[str, list[float]]] = {
    "paper": {
        "eps": [0.01, 0.1],
        "cap": [2.0, 10.0],
        "sigma": [0.1, 0.2, 0.3, 0.4, 0.5],
        "delta": [0.01, 0.1],
    },
    "quick": {"eps": [0.01], "cap": [10.0], "sigma": [0.1, 0.5], "delta": [0.01]},
}


def grid_specs(
    grid: dict[str, list[float]],
    replicate_seeds: tuple[int, ...] = (),
    preset: str = "paper",
    **common: Any,
) -> list[RunSpec]:
    """The CNN first, then one QCNN run per grid point (the ``preset`` otherwise: paper or
    theory), then the CNN and the preset's QCNN at (eps 0.01, C 10, sigma 0.5, delta 0.01) again
    for each replicate seed."""
    make = functools.partial(QuantumConfig.preset, preset)
    specs = [RunSpec(config=None, **common)]
    for eps, cap, delta, sigma in itertools.product(
        grid["eps"], grid["cap"], grid["delta"], grid["sigma"]
    ):
        specs.append(RunSpec(config=make(eps=eps, cap=cap, sigma=sigma, delta=delta), **common))
    for seed in replicate_seeds:
        if seed == common.get("seed"):
            continue
        rep = {**common, "seed": seed}
        specs += [RunSpec(config=None, **rep), RunSpec(config=make(), **rep)]
    return specs


_EPS = (0.01, 0.1)
# The ablation of experiments/klp19-theory, from notebook mode at delta 0.01: name -> (option
# group, changes) (qcnn.experiments.ablation: each cell differs from its base in that group
# alone). "failure_prob" gives an AE option the preset's m and k (derived from eps and Delta).
THEORY_ABLATION: dict[str, tuple[str, dict[str, Any]]] = {
    "eps-bound": ("eps-bound", {"ipe": "amplitude_estimation", "failure_prob": 0.01}),
    "noise-order": ("noise-order", {"noise_order": "theory"}),
    "noise-per-shot": ("noise-per-shot", {"noise_per_shot": True}),
    "tomography-values": (
        "tomography-values",
        {
            "sampled_value": "tomography",
            "tomography_normaliser": "amplitude_estimation",
            "failure_prob": 0.01,
        },
    ),
    "tomography-values-exact-normaliser": ("tomography-values", {"sampled_value": "tomography"}),
    "gradient-tomography": (
        "gradient-tomography",
        {"gradient_model": "linf_tomography", "input_gradient_noise": True},
    ),
}
# From the theory preset at eps 0.01, delta in {0.01, 0.1}: one option changed.
THEORY_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "exact-signs": ("gradient-signs", {"gradient_signs": "exact"}),
    "gradient-on-quantum": ("gradient-on", {"gradient_on": "quantum"}),
}
# The gradient norm: notebook mode + the gradient read-out, with and without the estimated norm.
GRADIENT_NORM = ("gradient-norm", {"gradient_norm": "amplitude_estimation", "failure_prob": 0.01})
# The theorem's shot count: the preset at eps = delta = 0.01 with N = 36 ln d / eta^2, eta 0.1.
ETA_SHOTS = ("shots", {"sigma": None, "eta": 0.1})


def klp19_theory_cells() -> list[tuple[str, QuantumConfig]]:
    """The quantum configurations of experiments/klp19-theory with their names, in the order the
    record needs them most: the theory preset on eps {0.01, 0.1} x delta {0.01, 0.1} (sigma 0.5,
    C 10); the ablation from notebook mode (:data:`THEORY_ABLATION`) at eps 0.01 and 0.1 (delta
    0.01); the preset with one option changed (:data:`THEORY_VARIANTS`) at eps 0.01, delta 0.01
    and 0.1; the gradient read-out alone at delta 0.1 and with the estimated norm
    (:data:`GRADIENT_NORM`) at delta 0.01; notebook mode on the four cells; the preset with the
    theorem's shot count (:data:`ETA_SHOTS`). Every cell is built by
    :func:`qcnn.experiments.ablation.with_option` from its base, so it differs from it in the
    named option alone. Names: ``theory``, ``notebook``, the keys of the tables above
    (``theory+KEY`` for the variants), ``gradient-norm``, ``eta-shots``."""
    cells = [
        ("theory", QuantumConfig.theory(eps=e, delta=d)) for e, d in itertools.product(_EPS, _EPS)
    ]
    for eps in (0.01, 0.1):
        base = QuantumConfig.paper(eps=eps, delta=0.01)
        cells += [(k, with_option(base, g, **ch)) for k, (g, ch) in THEORY_ABLATION.items()]
    for delta in (0.01, 0.1):
        preset = QuantumConfig.theory(eps=0.01, delta=delta)
        cells += [
            (f"theory+{k}", with_option(preset, g, **ch)) for k, (g, ch) in THEORY_VARIANTS.items()
        ]
    group, changes = THEORY_ABLATION["gradient-tomography"]
    cells.append(
        (
            "gradient-tomography",
            with_option(QuantumConfig.paper(eps=0.01, delta=0.1), group, **changes),
        )
    )
    read_out = with_option(QuantumConfig.paper(eps=0.01, delta=0.01), group, **changes)
    cells.append(("gradient-norm", with_option(read_out, GRADIENT_NORM[0], **GRADIENT_NORM[1])))
    cells += [
        ("notebook", QuantumConfig.paper(eps=e, delta=d)) for e, d in itertools.product(_EPS, _EPS)
    ]
    cells.append(("eta-shots", with_option(QuantumConfig.theory(), ETA_SHOTS[0], **ETA_SHOTS[1])))
    return cells


def klp19_theory_configs() -> list[QuantumConfig]:
    """The configurations of :func:`klp19_theory_cells`, in its order."""
    return [c for _, c in klp19_theory_cells()]


def klp19_theory_specs(replicate_seeds: tuple[int, ...] = (), **common: Any) -> list[RunSpec]:
    """The grid of experiments/klp19-theory: the CNN and :func:`klp19_theory_configs`, then for
    each replicate seed the CNN and every configuration again except the theorem's shot count
    (22x the shots: one seed)."""
    configs = klp19_theory_configs()
    specs = [RunSpec(config=None, **common)] + [RunSpec(config=c, **common) for c in configs]
    for seed in replicate_seeds:
        if seed != common.get("seed"):
            rep = {**common, "seed": seed}
            specs.append(RunSpec(config=None, **rep))
            specs += [RunSpec(config=c, **rep) for c in configs if c.eta is None]
    return specs


# named grids that define their own configurations (--preset does not apply to them)
NAMED_GRIDS: dict[str, Callable[..., list[RunSpec]]] = {"klp19-theory": klp19_theory_specs}


def forward_configs(grid: str, preset: str) -> list[QuantumConfig]:
    """Configurations under which the trained CNN's weights are evaluated (C 10, sigma 0.5, no
    gradient noise), one per eps of the grid: the preset's, or both modes for klp19-theory."""
    if grid in NAMED_GRIDS:
        return [
            make(eps=e, delta=0.0)
            for make in (QuantumConfig.paper, QuantumConfig.theory)
            for e in (0.01, 0.1)
        ]
    return [
        QuantumConfig.preset(preset, eps=e, cap=10.0, sigma=0.5, delta=0.0)
        for e in GRIDS[grid]["eps"]
    ]
