"""Tests of ``QuantumConfig`` (model §2-3): validation of every field, sigma/eta exclusivity,
JSON round trip, the ``paper()`` and ``exact()`` presets and the derived quantities
``samples``, ``resolved_ae_bits`` and ``effective_eps``.

Each validation test asserts the ValueError *names the field* (``QuantumConfig.<field>``), so a
message that blames the wrong knob fails.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from qcnn.quantum import QuantumConfig
from qcnn.quantum.config import IPE_MODELS

NAN, INF = float("nan"), float("inf")

# (field, bad value, extra fields needed so that only this field is wrong)
BAD_VALUES = [
    ("eps", -0.01, {}),
    ("eps", NAN, {}),
    ("eps", INF, {}),
    ("eps", "0.01", {}),
    ("eps", None, {}),
    ("eps", True, {}),
    ("cap", 0.0, {}),
    ("cap", -1.0, {}),
    ("cap", NAN, {}),
    ("cap", INF, {}),
    ("cap", None, {}),
    ("cap", True, {}),
    ("sigma", 0.0, {}),
    ("sigma", -0.1, {}),
    ("sigma", 1.5, {}),
    ("sigma", 1.0000001, {}),
    ("sigma", NAN, {}),
    ("sigma", "0.5", {}),
    ("sigma", True, {}),
    ("eta", 0.0, {"sigma": None}),
    ("eta", -0.1, {"sigma": None}),
    ("eta", NAN, {"sigma": None}),
    ("eta", INF, {"sigma": None}),
    ("eta", "0.1", {"sigma": None}),
    ("delta", -0.01, {}),
    ("delta", NAN, {}),
    ("delta", INF, {}),
    ("delta", None, {}),
    ("ipe", "gauss", {}),
    ("ipe", None, {}),
    ("ipe", "GAUSSIAN", {}),
    ("ae_bits", 0, {}),
    ("ae_bits", 21, {}),
    ("ae_bits", -3, {}),
    ("ae_bits", 4.0, {}),
    ("ae_bits", True, {}),
    ("ae_bits", "4", {}),
    ("ae_median", 0, {}),
    ("ae_median", 2, {}),
    ("ae_median", -1, {}),
    ("ae_median", 3.0, {}),
    ("ae_median", None, {}),
    ("noise_order", "fancy", {}),
    ("noise_order", None, {}),
    ("sampling_power", 0, {}),
    ("sampling_power", 3, {}),
    ("sampling_power", "1", {}),
    ("sampled_value", "estimate", {}),
    ("gradient_on", "kernels", {}),
    ("norms", "per_batch", {}),
    ("gradient_model", "tomography", {}),
    ("gradient_model", None, {}),
    ("gradient_signs", "random", {}),
    ("input_gradient_noise", 1, {}),
    ("input_gradient_noise", "yes", {}),
    ("input_gradient_noise", None, {}),
    ("failure_prob", 0.0, {"ipe": "amplitude_estimation"}),
    ("failure_prob", 1.0, {"ipe": "amplitude_estimation"}),
    ("failure_prob", -0.1, {"ipe": "amplitude_estimation"}),
    ("failure_prob", NAN, {"ipe": "amplitude_estimation"}),
    ("failure_prob", "0.01", {"ipe": "amplitude_estimation"}),
    ("failure_prob", True, {"ipe": "amplitude_estimation"}),
    ("failure_prob", 0.01, {}),  # no amplitude estimation anywhere: it would do nothing
    ("noise_per_shot", 1, {}),
    ("noise_per_shot", True, {"sigma": None}),  # no sampling, no shots
    ("noise_per_shot", True, {"sampling_power": 2}),
    ("tomography_normaliser", "oracle", {"sampled_value": "tomography"}),
    ("tomography_normaliser", "amplitude_estimation", {}),  # values are exact: nothing to scale
    ("tomography_normaliser", "amplitude_estimation", {"sampled_value": "tomography", "eps": 0.0}),
    ("gradient_norm", "oracle", {"gradient_model": "linf_tomography"}),
    ("gradient_norm", "amplitude_estimation", {}),  # the Gaussian model has no norm to estimate
    ("gradient_norm", "amplitude_estimation", {"gradient_model": "linf_tomography", "eps": 0.0}),
]


@pytest.mark.parametrize(
    ("field", "value", "extra"),
    BAD_VALUES,
    ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES],
)
def test_every_field_rejects_bad_values_naming_the_field(field, value, extra):
    with pytest.raises(ValueError, match=rf"QuantumConfig\.{field}\b"):
        QuantumConfig(**{**extra, field: value})


def test_every_field_is_covered_by_the_validation_tests():
    fields = {f.name for f in dataclasses.fields(QuantumConfig)}
    assert fields == {f for f, _, _ in BAD_VALUES}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": 0.0},
        {"eps": 5.0},
        {"eps": 1},  # ints are numbers
        {"cap": 1e-9},
        {"cap": 1e30},
        {"sigma": 1.0},
        {"sigma": 1e-6},
        {"sigma": None},
        {"sigma": None, "eta": 1e-3},
        {"sigma": None, "eta": 7.0},
        {"delta": 0.0},
        {"ipe": "amplitude_estimation", "ae_bits": 1},
        {"ipe": "amplitude_estimation", "ae_bits": 20},
        {"ae_median": 1},
        {"ae_median": 9},
        {"sampling_power": 2},
        {"noise_order": "theory"},
        {"sampled_value": "tomography"},
        {"gradient_on": "quantum"},
        {"norms": "first_image"},
        {"gradient_model": "linf_tomography"},
        {"gradient_signs": "exact"},
        {"input_gradient_noise": True},
        {"noise_per_shot": True},
        {"noise_per_shot": True, "sigma": None, "eta": 0.3},
        {"sampled_value": "tomography", "tomography_normaliser": "amplitude_estimation"},
        {
            "sampled_value": "tomography",
            "tomography_normaliser": "amplitude_estimation",
            "failure_prob": 0.1,
        },
        {"ipe": "amplitude_estimation", "failure_prob": 1e-9},
        {"ipe": "amplitude_estimation", "failure_prob": 0.5},
    ],
)
def test_boundary_values_are_accepted(kwargs):
    cfg = QuantumConfig(**kwargs)
    for k, v in kwargs.items():
        assert getattr(cfg, k) == v


def test_choices_are_exactly_the_documented_ones():
    assert IPE_MODELS == ("gaussian", "amplitude_estimation", "exact")
    for ipe in IPE_MODELS:
        QuantumConfig(ipe=ipe, ae_bits=4)


# -- sigma / eta ---------------------------------------------------------------------------------


def test_sigma_and_eta_are_exclusive():
    with pytest.raises(ValueError, match="sigma") as info:
        QuantumConfig(sigma=0.5, eta=0.1)
    assert "eta" in str(info.value)
    # the default sigma (0.5) counts: eta alone must come with sigma=None
    with pytest.raises(ValueError, match="exclusive"):
        QuantumConfig(eta=0.1)


def test_samples_flag_follows_sigma_and_eta():
    assert QuantumConfig(sigma=0.3).samples
    assert QuantumConfig(sigma=None, eta=0.2).samples
    assert not QuantumConfig(sigma=None, eta=None).samples


def test_ae_without_bits_needs_positive_eps():
    with pytest.raises(ValueError, match="amplitude_estimation"):
        QuantumConfig(ipe="amplitude_estimation", eps=0.0)
    assert QuantumConfig(ipe="amplitude_estimation", eps=0.0, ae_bits=3).resolved_ae_bits == 3


def test_config_is_frozen_and_replace_revalidates():
    cfg = QuantumConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.eps = 0.5  # type: ignore[misc]
    assert cfg.replace(eps=0.1).eps == 0.1
    assert cfg.eps == 0.01  # unchanged
    with pytest.raises(ValueError, match=r"QuantumConfig\.cap"):
        cfg.replace(cap=-2.0)


# -- serialisation ------------------------------------------------------------------------------

ROUND_TRIP = [
    QuantumConfig(),
    QuantumConfig.paper(eps=0.1, cap=2.0, sigma=0.1, delta=0.1),
    QuantumConfig.exact(),
    QuantumConfig.exact(cap=3.5),
    QuantumConfig(sigma=None, eta=0.25, sampled_value="tomography", sampling_power=2),
    QuantumConfig(
        ipe="amplitude_estimation",
        ae_bits=7,
        ae_median=5,
        noise_order="theory",
        gradient_on="quantum",
        norms="first_image",
        eps=0.0,
        delta=0.0,
        sigma=1.0,
    ),
    QuantumConfig(ipe="amplitude_estimation", eps=0.003),
    QuantumConfig(gradient_model="linf_tomography", gradient_signs="exact", gradient_on="quantum"),
    QuantumConfig.theory(),
    QuantumConfig.theory(eps=0.1, cap=2.0, delta=0.1, sigma=0.2, failure_prob=0.1),
]


@pytest.mark.parametrize("cfg", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_json_round_trip(cfg):
    text = cfg.to_json()
    assert json.loads(text) == cfg.to_dict()  # plain JSON, no custom types
    assert list(json.loads(text)) == sorted(json.loads(text))  # sort_keys: stable files
    back = QuantumConfig.from_json(text)
    assert back == cfg
    assert back.to_json() == text
    assert QuantumConfig.from_dict(cfg.to_dict()) == cfg
    # derived quantities survive too
    assert back.resolved_ae_bits == cfg.resolved_ae_bits
    assert back.effective_eps == cfg.effective_eps


def test_to_dict_has_every_field():
    d = QuantumConfig().to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(QuantumConfig)}


def test_from_dict_rejects_unknown_fields_by_name():
    d = QuantumConfig().to_dict()
    d["epsilon"] = 0.1
    with pytest.raises(ValueError, match="epsilon"):
        QuantumConfig.from_dict(d)


def test_from_json_validates_values():
    d = QuantumConfig().to_dict()
    d["sigma"] = 2.0
    with pytest.raises(ValueError, match=r"QuantumConfig\.sigma"):
        QuantumConfig.from_json(json.dumps(d))


def test_from_dict_fills_missing_fields_with_defaults():
    assert QuantumConfig.from_dict({"eps": 0.1}) == QuantumConfig(eps=0.1)


# -- presets ------------------------------------------------------------------------------------


def test_paper_preset_is_the_authors_simulation():
    cfg = QuantumConfig.paper()
    assert cfg.to_dict() == {
        "eps": 0.01,
        "cap": 10.0,
        "sigma": 0.5,
        "eta": None,
        "delta": 0.01,
        "ipe": "gaussian",
        "ae_bits": None,
        "ae_median": 1,
        "noise_order": "paper",
        "sampling_power": 1,
        "sampled_value": "exact",
        "gradient_on": "all",
        "norms": "per_image",
        "gradient_model": "gaussian",
        "gradient_signs": "kp",
        "input_gradient_noise": False,
        "failure_prob": None,
        "noise_per_shot": False,
        "tomography_normaliser": "exact",
        "gradient_norm": "exact",
    }
    assert cfg == QuantumConfig()  # the defaults are the paper preset
    custom = QuantumConfig.paper(eps=0.1, cap=2.0, sigma=0.2, delta=0.1)
    assert (custom.eps, custom.cap, custom.sigma, custom.delta) == (0.1, 2.0, 0.2, 0.1)
    assert custom.replace(eps=0.01, cap=10.0, sigma=0.5, delta=0.01) == cfg
    with pytest.raises(ValueError, match=r"QuantumConfig\.sigma"):
        QuantumConfig.paper(sigma=0.0)


def test_exact_preset_has_no_error_no_sampling_no_gradient_noise():
    cfg = QuantumConfig.exact()
    assert cfg.eps == 0.0 and cfg.delta == 0.0
    assert cfg.ipe == "exact"
    assert cfg.sigma is None and cfg.eta is None and not cfg.samples
    assert cfg.cap == 1e30
    assert cfg.effective_eps == 0.0
    assert cfg.resolved_ae_bits is None
    assert QuantumConfig.exact(cap=4.0).cap == 4.0
    with pytest.raises(ValueError, match=r"QuantumConfig\.cap"):
        QuantumConfig.exact(cap=0.0)


# -- derived quantities -------------------------------------------------------------------------


def _smallest_m(eps: float) -> int:
    """The definition: the smallest m >= 1 with pi / 2^m <= eps (brute force)."""
    m = 1
    while math.pi / 2**m > eps:
        m += 1
    return m


@pytest.mark.parametrize(
    "eps", [5.0, math.pi, 1.0, 0.5, 0.1, 0.05, 0.01, 0.003, 1e-3, 1e-4, 5e-6, math.pi / 8]
)
def test_resolved_ae_bits_is_the_smallest_m_reaching_eps(eps):
    cfg = QuantumConfig(ipe="amplitude_estimation", eps=eps)
    m = cfg.resolved_ae_bits
    assert m == _smallest_m(eps)
    assert math.pi / 2**m <= eps or m == 1
    assert cfg.effective_eps == math.pi / 2**m
    assert cfg.effective_eps <= max(eps, math.pi / 2)


def test_resolved_ae_bits_paper_eps_values():
    assert QuantumConfig(ipe="amplitude_estimation", eps=0.01).resolved_ae_bits == 9  # pi/512
    assert QuantumConfig(ipe="amplitude_estimation", eps=0.1).resolved_ae_bits == 5  # pi/32


def test_explicit_ae_bits_win_over_eps():
    cfg = QuantumConfig(ipe="amplitude_estimation", eps=0.01, ae_bits=3)
    assert cfg.resolved_ae_bits == 3
    assert cfg.effective_eps == math.pi / 8


def test_resolved_ae_bits_is_none_unless_ae():
    assert QuantumConfig(ipe="gaussian", ae_bits=5).resolved_ae_bits is None
    assert QuantumConfig(ipe="exact", ae_bits=5).resolved_ae_bits is None


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.37])
def test_effective_eps_per_model(eps):
    assert QuantumConfig(ipe="gaussian", eps=eps).effective_eps == eps
    assert QuantumConfig(ipe="exact", eps=eps).effective_eps == 0.0


@pytest.mark.parametrize("m", [4, 9])
def test_resolved_ae_bits_just_below_a_grid_value(m):
    eps = float(np.nextafter(math.pi / 2**m, 0.0))
    cfg = QuantumConfig(ipe="amplitude_estimation", eps=eps)
    assert math.pi / 2**cfg.resolved_ae_bits <= eps


def test_derived_ae_bits_respect_the_ae_bits_limit():
    try:
        cfg = QuantumConfig(ipe="amplitude_estimation", eps=1e-9)
    except ValueError as exc:
        assert "eps" in str(exc)
        return
    assert cfg.resolved_ae_bits <= 20


@pytest.mark.parametrize("field", ["ae_median", "sampling_power"])
def test_integer_fields_reject_bools(field):
    with pytest.raises(ValueError, match=field):
        QuantumConfig(**{field: True})


# -- theory mode -------------------------------------------------------------------------------


def test_theory_preset_switches_on_every_theory_option():
    cfg = QuantumConfig.theory()
    assert (cfg.eps, cfg.cap, cfg.delta, cfg.sigma) == (0.01, 10.0, 0.01, 0.5)
    assert cfg.failure_prob == 0.01
    assert cfg.ipe == "amplitude_estimation" and cfg.noise_order == "theory"
    assert cfg.noise_per_shot and cfg.input_gradient_noise
    assert cfg.sampled_value == "tomography" and cfg.tomography_normaliser == "amplitude_estimation"
    assert cfg.gradient_model == "linf_tomography" and cfg.gradient_on == "all"
    assert cfg.gradient_signs == "kp" and cfg.norms == "per_image"
    assert cfg.ae_bits_any == cfg.resolved_ae_bits == 9


def test_failure_prob_makes_eps_a_bound():
    cfg = QuantumConfig(ipe="amplitude_estimation", failure_prob=0.01)
    # eps as a bound: the smallest m with pi/2^m + pi^2/4^m <= eps, and k from Delta
    assert cfg.resolved_ae_bits == 9 and cfg.resolved_ae_median == 11
    assert cfg.effective_eps == pytest.approx(math.pi / 512 + math.pi**2 / 512**2)
    assert cfg.effective_eps <= cfg.eps
    coarse = QuantumConfig(ipe="amplitude_estimation", eps=0.1, failure_prob=0.1)
    # pi/32 = 0.098 <= 0.1 but pi/32 + pi^2/1024 = 0.108 > 0.1: the bound needs one more bit
    assert coarse.resolved_ae_bits == 6 and coarse.resolved_ae_median == 3
    assert QuantumConfig(ipe="amplitude_estimation", eps=0.1).resolved_ae_bits == 5


def test_median_count_is_the_smallest_odd_k_meeting_the_failure_probability():
    from qcnn.quantum.config import (
        AE_SUCCESS_PROBABILITY,
        median_count,
        median_failure_probability,
    )

    assert AE_SUCCESS_PROBABILITY == pytest.approx(8 / math.pi**2)
    # hand-computed: one run fails with q = 1 - 8/pi^2 = 0.18943; k = 3 fails when >= 2 fail
    q = 1 - 8 / math.pi**2
    assert median_failure_probability(1) == pytest.approx(q)
    assert median_failure_probability(3) == pytest.approx(3 * q**2 * (1 - q) + q**3)
    for delta in (0.3, 0.1, 0.05, 0.01, 1e-3, 1e-6):
        k = median_count(delta)
        assert k % 2 == 1
        assert median_failure_probability(k) <= delta
        assert k == 1 or median_failure_probability(k - 2) > delta
        # never more than the median lemma's Hoeffding form ln(1/Delta) / (2 (p - 1/2)^2)
        assert k <= math.log(1 / delta) / (2 * (8 / math.pi**2 - 0.5) ** 2) + 2
    assert [median_count(d) for d in (0.1, 0.01)] == [3, 11]


def test_failure_prob_and_ae_median_are_exclusive():
    with pytest.raises(ValueError, match="ae_median") as info:
        QuantumConfig(ipe="amplitude_estimation", failure_prob=0.01, ae_median=5)
    assert "failure_prob" in str(info.value)
    cfg = QuantumConfig(ipe="amplitude_estimation", ae_median=5)
    assert cfg.resolved_ae_median == 5 and cfg.effective_eps == math.pi / 2**9


def test_old_name_of_gradient_on_still_loads():
    """results.json files written before the rename say gradient_noise_on."""
    old = {"eps": 0.01, "gradient_noise_on": "quantum", "sigma": 0.5}
    cfg = QuantumConfig.from_dict(old)
    assert cfg.gradient_on == "quantum" and cfg.gradient_noise_on == "quantum"
    assert "gradient_noise_on" not in cfg.to_dict()
    assert QuantumConfig().replace(gradient_noise_on="quantum") == cfg.replace(sigma=0.5)
    with pytest.raises(ValueError, match="gradient_noise_on"):
        QuantumConfig.from_dict({"gradient_noise_on": "quantum", "gradient_on": "all"})
    same = QuantumConfig.from_dict({"gradient_noise_on": "all", "gradient_on": "all"})
    assert same == QuantumConfig()


def test_recorded_configs_of_the_klp19_run_load_unchanged():
    """Every config in experiments/klp19/results.json (written before theory mode) loads, keeps
    its values and means notebook mode."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "klp19" / "results.json"
    runs = json.loads(path.read_text())["runs"]
    configs = [r["quantum"]["config"] for r in runs if r.get("quantum")]
    assert configs
    for d in configs:
        cfg = QuantumConfig.from_dict(d)
        assert cfg.gradient_on == d["gradient_noise_on"]
        for k, v in d.items():
            if k != "gradient_noise_on":
                assert getattr(cfg, k) == v
        assert cfg.gradient_model == "gaussian" and not cfg.input_gradient_noise
        assert not cfg.noise_per_shot and cfg.tomography_normaliser == "exact"


def test_normaliser_alone_uses_amplitude_estimation_bits():
    """Gaussian IPE with an estimated normaliser: the normaliser's AE takes its bits from eps."""
    cfg = QuantumConfig(sampled_value="tomography", tomography_normaliser="amplitude_estimation")
    assert cfg.uses_ae and cfg.resolved_ae_bits is None and cfg.ae_bits_any == 9
    bound = cfg.replace(failure_prob=0.01, eps=0.1)
    assert bound.ae_bits_any == 6 and bound.resolved_ae_median == 11
