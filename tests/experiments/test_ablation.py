"""Ablation cells differ from their base in exactly the option they name (issue 17, item 1).

An option is a named group of settings (:mod:`qcnn.experiments.ablation`), compared by its
effective values (the AE bits and median count that ``failure_prob`` derives included). The
checks: every quantum configuration of the klp19-theory grid is its base (notebook mode or the
theory preset) with at most one group changed; the AE options of the ablation carry the preset's
own m and k; every field of ``QuantumConfig`` is seen by some group (so a change cannot hide);
and :func:`with_option` refuses a cell that changes a second group.
"""

from __future__ import annotations

import dataclasses

import pytest

from qcnn.experiments import grids
from qcnn.experiments.ablation import COMMON, OPTION_GROUPS, differing_groups, with_option
from qcnn.quantum import QuantumConfig


def _bases(c: QuantumConfig) -> dict[str, QuantumConfig]:
    return {
        "notebook": QuantumConfig.paper(eps=c.eps, delta=c.delta),
        "theory": QuantumConfig.theory(eps=c.eps, delta=c.delta),
    }


def test_every_grid_cell_is_a_base_with_at_most_one_option_changed():
    cells = grids.klp19_theory_configs()
    assert len(cells) == len(set(cells)) == 4 + 12 + 4 + 2 + 4 + 1
    named = {}
    for c in cells:
        diffs = {name: differing_groups(base, c) for name, base in _bases(c).items()}
        best = min(diffs, key=lambda n: len(diffs[n]))
        if len(diffs[best]) <= 1:
            assert "common" not in diffs[best]
            named[c] = (best, *sorted(diffs[best]))
        else:
            # the estimated gradient norm's cell: notebook + the gradient read-out + the norm
            read_out = QuantumConfig.paper(eps=c.eps, delta=c.delta).replace(
                gradient_model="linf_tomography", input_gradient_noise=True
            )
            assert differing_groups(read_out, c) == {"gradient-norm"}
            named[c] = ("notebook+gradient-tomography", "gradient-norm")
    kinds = sorted(named.values())
    assert kinds.count(("notebook",)) == 4 and kinds.count(("theory",)) == 4
    assert kinds.count(("notebook", "tomography-values")) == 4  # AE and exact normaliser, 2 eps
    assert kinds.count(("notebook", "gradient-tomography")) == 3  # eps 0.01, 0.1; delta 0.1
    for group in ("eps-bound", "noise-order", "noise-per-shot"):
        assert kinds.count(("notebook", group)) == 2
    for group in ("gradient-signs", "gradient-on"):
        assert kinds.count(("theory", group)) == 2  # delta 0.01 and 0.1
    assert kinds.count(("theory", "shots")) == 1
    assert kinds.count(("notebook+gradient-tomography", "gradient-norm")) == 1


@pytest.mark.parametrize("eps", [0.01, 0.1])
def test_ae_options_carry_the_presets_m_and_k(eps):
    """The ablation's AE options (the normaliser, the IPE, the gradient norm) have the bits and
    median count the preset derives at the same eps, and the exact-normaliser cell no AE."""
    preset = QuantumConfig.theory(eps=eps, delta=0.01)
    cells = [c for c in grids.klp19_theory_configs() if c.eps == eps and c.delta == 0.01]
    values = [c for c in cells if c.sampled_value == "tomography" and c.ipe == "gaussian"]
    assert len(values) == 2
    ae = [c for c in values if c.tomography_normaliser == "amplitude_estimation"]
    view = OPTION_GROUPS["tomography-values"].view
    assert [view(c) for c in ae] == [view(preset)]
    assert view(preset)[2:] == ((9, 11) if eps == 0.01 else (6, 11))
    exact = [c for c in values if c.tomography_normaliser == "exact"]
    assert view(exact[0]) == ("tomography", "exact", None, None)
    ipe = OPTION_GROUPS["eps-bound"].view
    assert [
        ipe(c) for c in cells if c.ipe == "amplitude_estimation" and c.noise_order == "paper"
    ] == [ipe(preset)]
    norm = OPTION_GROUPS["gradient-norm"].view
    with_norm = [c for c in cells if c.gradient_norm != "exact" and c.ipe == "gaussian"]
    assert [norm(c) for c in with_norm] == ([norm(preset)] if eps == 0.01 else [])


def test_the_first_editions_tomography_cell_fails_the_check():
    """The confound the issue found: the first edition's cell set the AE normaliser without
    failure_prob (one AE run, k = 1); its tomography-values view is not the preset's."""
    old = QuantumConfig.paper().replace(
        sampled_value="tomography", tomography_normaliser="amplitude_estimation"
    )
    view = OPTION_GROUPS["tomography-values"].view
    assert view(old) == ("tomography", "amplitude_estimation", 9, 1)
    assert view(old) != view(QuantumConfig.theory())


# one valid change of each field, from the theory preset
CHANGES = {
    "eps": 0.02,
    "cap": 5.0,
    "sigma": 0.25,
    "eta": 0.2,  # (with sigma None)
    "delta": 0.05,
    "ipe": "gaussian",
    "ae_bits": 12,
    "ae_median": 3,  # (with failure_prob None)
    "noise_order": "paper",
    "sampling_power": 2,  # (with noise_per_shot False)
    "sampled_value": "exact",  # (with the normaliser exact)
    "gradient_on": "quantum",
    "norms": "first_image",
    "gradient_model": "gaussian",  # (with the gradient norm exact)
    "gradient_signs": "exact",
    "input_gradient_noise": False,
    "failure_prob": 0.1,
    "noise_per_shot": False,
    "tomography_normaliser": "exact",
    "gradient_norm": "exact",
}
COMPANIONS = {
    "eta": {"sigma": None},
    "ae_median": {"failure_prob": None},
    "sampling_power": {"noise_per_shot": False},
    "sampled_value": {"tomography_normaliser": "exact"},
    "gradient_model": {"gradient_norm": "exact"},
}


def test_every_field_is_seen_by_some_group():
    assert set(CHANGES) == {f.name for f in dataclasses.fields(QuantumConfig)}
    preset = QuantumConfig.theory()
    for field, value in CHANGES.items():
        changed = preset.replace(**{field: value, **COMPANIONS.get(field, {})})
        assert changed != preset
        assert differing_groups(preset, changed), field


def test_with_option_refuses_a_second_change():
    base = QuantumConfig.paper()
    cell = with_option(base, "noise-order", noise_order="theory")
    assert differing_groups(base, cell) == {"noise-order"}
    with pytest.raises(ValueError, match="noise-per-shot"):
        with_option(base, "noise-order", noise_order="theory", noise_per_shot=True)
    with pytest.raises(ValueError, match="common"):
        with_option(base, "tomography-values", sampled_value="tomography", eps=0.1)
    with pytest.raises(ValueError, match="nothing"):
        with_option(base, "noise-order", noise_order="paper")
    with pytest.raises(ValueError, match="unknown option group"):
        with_option(base, "values", sampled_value="tomography")
    # failure_prob feeds every AE: on the theory preset it moves the IPE's k too
    with pytest.raises(ValueError, match="eps-bound"):
        with_option(QuantumConfig.theory(), "tomography-values", failure_prob=0.1)
    assert COMMON.view(base) == (0.01, 10.0, 0.01, "per_image", 1)
