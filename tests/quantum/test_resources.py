"""The running-time model (model §4) and the resource-report command."""

import json
import math

import numpy as np
import pytest

from qcnn.experiments import resources as resources_cmd
from qcnn.models import paper_qcnn
from qcnn.nn import Sequential
from qcnn.quantum import QuantumConfig
from qcnn.quantum.resources import (
    LayerMeasurements,
    LayerResources,
    backward_resources,
    condition_number,
    crossover_table,
    crossover_volume,
    fit_growth,
    layer_resources,
    mu_frobenius,
    mu_kp,
)


def test_layer_resources_formulas_by_hand():
    # D'=10, H'=W'=16 -> 2560 outputs; kernel 5x7x7 = 245; M=4, C=9, E[f]=0.25, eps=0.01
    r = layer_resources(
        (10, 16, 16),
        (5, 7, 7),
        sigma=0.5,
        eps=0.01,
        cap=9.0,
        measured=LayerMeasurements(M=4.0, mean_f=0.25),
    )
    q = 4.0 * 3.0 / (0.01 * 0.5)  # M sqrt(C) / (eps sqrt(E[f])) = 2400
    assert r.Q == pytest.approx(q)
    assert r.classical_ops == 2560 * 245
    assert r.quantum_ops == pytest.approx(0.5 * 2560 * q)
    assert r.speedup == pytest.approx(245 / (0.5 * q))
    assert r.crossover_kernel_volume == pytest.approx(0.5 * q)
    # Q is in the thousands at MNIST scale: no advantage for 7x7x5 kernels (model §4)
    assert r.speedup < 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0.0}, "eps > 0"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": 1.5}, "sigma"),
        ({"mean_f": 0.0}, "E\\[f\\]"),
    ],
)
def test_layer_resources_rejects_undefined_inputs(kwargs, match):
    mean_f = kwargs.pop("mean_f", 1.0)
    args = {"sigma": 0.5, "eps": 0.01, "cap": 10.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        layer_resources((1, 2, 2), (1, 3, 3), measured=LayerMeasurements(1.0, mean_f), **args)


def test_crossover_table_scales_with_kernel_volume():
    r = layer_resources(
        (10, 16, 16),
        (5, 7, 7),
        sigma=0.5,
        eps=0.01,
        cap=10.0,
        measured=LayerMeasurements(M=4.0, mean_f=0.5),
    )
    rows = crossover_table(r, kernel_sizes=(3, 7), depths=(1, 64))
    assert [(t["kernel"], t["depth"]) for t in rows] == [(3, 1), (3, 64), (7, 1), (7, 64)]
    for t in rows:
        assert t["speedup"] == pytest.approx(
            t["kernel"] ** 2 * t["depth"] / r.crossover_kernel_volume
        )


def test_report_uses_the_measured_layer_statistics():
    cfg = QuantumConfig.paper()
    model = paper_qcnn(cfg, seed=3)
    x = np.random.default_rng(0).normal(size=(16, 1, 28, 28)).astype(np.float32)
    rows = resources_cmd.report(model, cfg, x, np.zeros(16, dtype=np.int64))
    assert len(rows) == 2
    first = rows[0]["resources"]
    assert first["out_pixels"] == 5 * 22 * 22 and first["kernel_volume"] == 49
    stats = model[0].statistics.mean()  # the report attached the observer
    assert first["M"] == pytest.approx(stats["M"]) and first["mean_f"] == pytest.approx(
        stats["mean_f"]
    )
    assert first["Q"] == pytest.approx(
        stats["M"] * math.sqrt(10.0) / (0.01 * math.sqrt(stats["mean_f"]))
    )
    assert rows[1]["resources"]["kernel_volume"] == 245
    assert 0 < first["mu_A"] and 0 < first["mu_F"]  # detailed statistics were switched on
    # the same network with its layers nested: the same layers found, the same measurements
    layers = paper_qcnn(cfg, seed=3).layers
    nested = Sequential(Sequential(layers[0], Sequential(layers[1])), *layers[2:])
    assert resources_cmd.report(nested, cfg, x, np.zeros(16, dtype=np.int64)) == rows


@pytest.mark.filterwarnings("ignore::qcnn.data.MNISTSubsetWarning")
def test_resources_command_writes_json_and_markdown(tmp_path, mnist_source):
    out = tmp_path / "res"
    argv = ["--images", "32", "--out", str(out), "--backward-images", "2", "--no-synthetic"]
    assert resources_cmd.main(argv) == 0
    data = json.loads((out / "resources.json").read_text())
    assert data["config"]["sigma"] == 0.5 and len(data["layers"]) == 2
    assert data["dataset"]["name"] == mnist_source.name
    for layer in data["layers"]:  # the backward pass is reported next to the forward pass
        assert layer["backward"]["quantum_ops"] > 0 and layer["backward"]["delta"] == 0.01
        assert set(layer["backward_matrices"]) == {"A", "dY", "F", "dF", "dX"}
    assert (
        "crossover" in (out / "resources.md").read_text()
        or "speed-up" in (out / "resources.md").read_text()
    )


def test_resources_command_rejects_no_sampling(tmp_path):
    with pytest.raises(SystemExit) as exc:
        resources_cmd.main(["--no-sampling", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2


# -- the honest resource model (issue 7) ---------------------------------------------------------


def test_shots_used_and_needed_by_hand():
    r = layer_resources(
        (10, 16, 16),
        (5, 7, 7),
        sigma=0.5,
        eps=0.01,
        cap=10.0,
        measured=LayerMeasurements(M=4.0, mean_f=1.0),
    )
    assert r.shots == 1280  # sigma d, d = 2560
    assert r.shots_for_eta == math.ceil(36 * math.log(2560) / 0.01)  # 28,252 for eta = 0.1
    assert r.eta_reference == 0.1


def test_backward_resources_by_hand():
    b = backward_resources(
        (2, 3, 3), (1, 2, 2), delta=0.1, mu_A=2.0, mu_dY=3.0, mu_F=1.0, kappa_dF=4.0, kappa_dX=5.0
    )
    assert b.quantum_ops == pytest.approx(((2 + 3) * 4 + (3 + 1) * 5) / 0.01)  # 4000
    assert b.classical_ops == 2 * (2 * 3 * 3) * (1 * 2 * 2)  # dL/dF and dL/dX: 144
    assert b.speedup == pytest.approx(144 / 4000)
    with pytest.raises(ValueError, match="delta"):
        backward_resources(
            (1, 1, 1), (1, 1, 1), delta=0.0, mu_A=1, mu_dY=1, mu_F=1, kappa_dF=1, kappa_dX=1
        )


def test_growth_and_crossover_volume_by_hand():
    r = layer_resources(
        (10, 16, 16),
        (4, 5, 5),
        sigma=0.5,
        eps=0.01,
        cap=4.0,
        measured=LayerMeasurements(M=1.0, mean_f=1.0),
    )
    assert r.kernel_volume == 100 and r.Q == pytest.approx(200.0)  # 1 * 2 / 0.01
    # Q ~ V^0.5: V* = (sigma Q0 / V0^0.5)^2 = (100 / 10)^2 = 100 ... and there V = sigma Q(V)
    v_star = crossover_volume(r, 0.5)
    assert v_star == pytest.approx(100.0)
    assert v_star == pytest.approx(0.5 * r.Q * (v_star / 100) ** 0.5)
    assert crossover_volume(r, 1.0) == math.inf
    table = crossover_table(r, (2,), (25, 100), alpha=0.5)
    assert [t["Q"] for t in table] == pytest.approx([200.0, 400.0])  # V = 100 and 400
    assert [t["speedup"] for t in table] == pytest.approx([100 / 100, 400 / 200])
    measured = crossover_table(r, (3,), (1,), q_of=lambda k, d: 90.0)
    assert measured[0]["speedup"] == pytest.approx(9 / (0.5 * 90))
    alpha, c = fit_growth([49, 245, 1000], [2 * 49**0.6, 2 * 245**0.6, 2 * 1000**0.6])
    assert alpha == pytest.approx(0.6) and c == pytest.approx(2.0)
    # the first report's two layers: M 13.9 at V = 49, 40.5 at V = 245
    assert fit_growth([49, 245], [13.9, 40.5])[0] == pytest.approx(
        math.log(40.5 / 13.9) / math.log(5)
    )
    assert isinstance(r, LayerResources)


def test_mu_and_kappa_by_hand():
    v = np.array([[1.0, 1.0], [0.0, 1.0]])
    s1 = math.sqrt((3 + math.sqrt(5)) / 2)  # singular values of [[1, 1], [0, 1]]
    s2 = math.sqrt((3 - math.sqrt(5)) / 2)
    assert mu_frobenius(v) == pytest.approx(math.sqrt(3) / s1)
    # s_q(V) = 2 for every q > 0 (rows [1, 1] and [0, 1]; columns the same), and at p = 0:
    # s_0(V) = 2 non-zeros, s_2(V^T) = 2: the minimum is sqrt(2 * 2) / ||V||_2
    assert mu_kp(v) == pytest.approx(2 / s1)
    kappa, rank = condition_number(v)
    assert kappa == pytest.approx(s1 / s2) and rank == 2
    d = np.diag([3.0, 4.0])
    assert mu_frobenius(d) == pytest.approx(5 / 4) and mu_kp(d) == pytest.approx(1.0)
    assert condition_number(np.diag([2.0, 0.0])) == (1.0, 1)  # kappa over non-zero values
    assert math.isnan(mu_frobenius(np.zeros((2, 2)))) and math.isnan(mu_kp(np.zeros((2, 2))))


def test_report_backward_and_synthetic_on_a_small_network():
    cfg = QuantumConfig.paper()
    model = paper_qcnn(cfg, seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    rows = resources_cmd.report(model, cfg, x, y, backward_images=2)
    for r in rows:
        b = r["backward"]
        m = r["backward_matrices"]
        expect = (
            (m["A"]["mu"] + m["dY"]["mu"]) * m["dF"]["kappa"]
            + (m["dY"]["mu"] + m["F"]["mu"]) * m["dX"]["kappa"]
        ) / 0.01**2
        assert b["quantum_ops"] == pytest.approx(expect)
        for p in m.values():
            assert p["mu"] == pytest.approx(min(p["mu_F"], p["mu_KP"]))
            assert p["mu_F"] >= 1 - 1e-9 and p["kappa"] >= 1 - 1e-9
    # synthetic deeper inputs: the Q of every (k, D) measured, M grows with V
    layer = model[1]
    x_in = np.abs(rng.normal(size=(4, 5, 22, 22)))
    meas = resources_cmd.synthetic_q(layer, x_in, cfg, kernels=(3, 7), depths=(1, 8, 32))
    assert len(meas) == 6
    by = {(m["kernel"], m["depth"]): m for m in meas}
    assert by[(7, 32)]["M"] > by[(3, 1)]["M"]
    alpha, _ = fit_growth([m["kernel_volume"] for m in meas], [m["M"] for m in meas])
    assert 0 < alpha < 1


def test_crossover_table_fits_q_for_kernels_larger_than_the_input():
    """A last layer on 9x9 inputs: 3x3 and 7x7 kernels are measured on synthetic inputs, 11x11
    cannot be (alexnet-small's last layer is the real case); its Q comes from the fit, and the
    report says so."""
    from qcnn.nn import Dense, Flatten
    from qcnn.quantum import QuantumConv2D

    cfg = QuantumConfig.paper()
    model = Sequential(QuantumConv2D(1, 4, 3, config=cfg, rng=0), Flatten(), Dense(4 * 7 * 7, 3))
    x = np.random.default_rng(0).normal(size=(4, 1, 9, 9)).astype(np.float32)
    rows = resources_cmd.report(
        model, cfg, x, np.zeros(4, dtype=np.int64), synthetic=True, synthetic_images=2
    )
    last = rows[-1]
    assert last["crossover_q_from_fit"] == [11]
    measured = {(m["kernel"], m["depth"]) for m in last["synthetic"]}
    assert (7, 1) in measured and (11, 1) not in measured
    table = {(t["kernel"], t["depth"]): t for t in last["crossover"]}
    for (k, d), t in table.items():
        assert math.isfinite(t["Q"]) and t["Q"] > 0
        if k == 11:  # on the fitted power law through the measured points
            ratio = table[(11, d)]["Q"] / (11 * 11 * d) ** last["growth_alpha_q"]
            assert ratio == pytest.approx(
                table[(11, 1)]["Q"] / (11 * 11) ** last["growth_alpha_q"], rel=1e-9
            )
    assert "11x11 kernels are larger than the layer's input" in resources_cmd._markdown(rows)
