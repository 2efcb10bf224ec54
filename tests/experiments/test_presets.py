"""``--preset paper|theory`` on the commands, the precedence of explicit flags, the run ids of
theory configurations, the klp19-theory grid, and finished runs recorded before the theory
fields existed (they must still be recognised)."""

from __future__ import annotations

import json

import pytest

from qcnn.experiments import cli, grids, mnist, sweep
from qcnn.experiments.runner import RunSpec, config_tags
from qcnn.quantum import QuantumConfig


def _config(argv: list[str], command=mnist) -> QuantumConfig:
    return cli.config_from_args(command.build_parser().parse_args(argv))


@pytest.mark.parametrize("command", [mnist, sweep])
def test_preset_flag_on_mnist_and_sweep(command):
    args = command.build_parser().parse_args([])
    assert args.preset == "paper"
    args = command.build_parser().parse_args(["--preset", "theory"])
    assert args.preset == "theory"
    with pytest.raises(SystemExit):
        command.build_parser().parse_args(["--preset", "notebook"])


def test_presets_and_explicit_flags_override_them():
    assert _config([]) == QuantumConfig.paper()
    assert _config(["--preset", "theory"]) == QuantumConfig.theory()
    # explicit flags win over the preset
    cfg = _config(["--preset", "theory", "--eps", "0.1", "--delta", "0.1", "--sigma", "0.3"])
    assert cfg == QuantumConfig.theory(eps=0.1, delta=0.1, sigma=0.3)
    cfg = _config(["--preset", "theory", "--no-noise-per-shot", "--gradient-model", "gaussian"])
    assert cfg == QuantumConfig.theory().replace(
        noise_per_shot=False, gradient_model="gaussian", gradient_norm="exact"
    )  # the estimated norm of the tomography gradients gives way to the Gaussian model
    cfg = _config(["--preset", "theory", "--gradient-norm", "exact"])
    assert cfg == QuantumConfig.theory(version=1)
    cfg = _config(
        ["--gradient-model", "linf_tomography", "--gradient-norm", "amplitude_estimation"]
    )
    assert cfg.gradient_norm_ae == (9, 1) and cfg.failure_prob is None
    with pytest.raises(ValueError, match="gradient_norm"):
        _config(["--gradient-norm", "amplitude_estimation"])
    cfg = _config(
        [
            "--preset",
            "paper",
            "--noise-per-shot",
            "--ipe",
            "amplitude_estimation",
            "--failure-prob",
            "0.05",
        ]
    )
    assert cfg == QuantumConfig.paper().replace(
        noise_per_shot=True, ipe="amplitude_estimation", failure_prob=0.05
    )
    # a preset value made meaningless by an explicit flag gives way
    assert _config(["--preset", "theory", "--ae-median", "5"]).failure_prob is None
    cfg = _config(["--preset", "theory", "--sampled-value", "exact"])
    assert cfg.tomography_normaliser == "exact" and cfg.failure_prob == 0.01  # AE IPE left
    cfg = _config(["--preset", "theory", "--sampled-value", "exact", "--ipe", "gaussian"])
    assert cfg.failure_prob == 0.01  # the gradient norm's AE is left
    cfg = _config(
        [
            "--preset",
            "theory",
            "--sampled-value",
            "exact",
            "--ipe",
            "gaussian",
            "--gradient-norm",
            "exact",
        ]
    )
    assert cfg.failure_prob is None
    assert not _config(["--preset", "theory", "--no-sampling"]).noise_per_shot
    # but an explicit contradiction is an error naming the field
    with pytest.raises(ValueError, match="ae_median"):
        _config(["--preset", "theory", "--ae-median", "5", "--failure-prob", "0.01"])


def test_new_flags_and_the_former_gradient_flag_name():
    assert _config(["--gradient-noise-on", "quantum"]).gradient_on == "quantum"
    assert _config(["--gradient-on", "quantum"]).gradient_on == "quantum"
    cfg = _config(
        [
            "--gradient-model",
            "linf_tomography",
            "--gradient-signs",
            "exact",
            "--input-gradient-noise",
            "--sampled-value",
            "tomography",
            "--tomography-normaliser",
            "amplitude_estimation",
        ]
    )
    assert (cfg.gradient_model, cfg.gradient_signs, cfg.input_gradient_noise) == (
        "linf_tomography",
        "exact",
        True,
    )
    assert cfg.tomography_normaliser == "amplitude_estimation"
    with pytest.raises(SystemExit):
        mnist.build_parser().parse_args(["--gradient-model", "noise"])


def test_run_ids_tell_theory_configurations_apart():
    specs = grids.klp19_theory_specs((2, 3), seed=1)
    ids = [s.run_id for s in specs]
    cells = len(grids.klp19_theory_configs())
    # the CNN and every cell for seed 1; the CNN and every cell but the eta one for seeds 2, 3
    assert len(ids) == len(set(ids)) == (1 + cells) + 2 * cells
    assert "qcnn-paper-eps0.1-C10-sigma0.5-delta0.1-seed1" in ids  # notebook mode's own cell
    assert "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-ae9-theory-seed1" in ids
    assert "qcnn-paper-eps0.01-C10-sigma0.5-delta0.1-ae9-theory-exactsigns-seed3" in ids
    assert "qcnn-paper-eps0.01-C10-eta0.1-delta0.01-ae9-theory-seed1" in ids
    assert not any("eta0.1" in i for i in ids if i.endswith(("seed2", "seed3")))
    assert config_tags(QuantumConfig.paper()) == []
    assert RunSpec(config=QuantumConfig.paper()).run_id == (
        "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-seed1"  # notebook mode's ids are unchanged
    )
    assert config_tags(QuantumConfig.theory()) == ["theory"]
    assert config_tags(QuantumConfig.theory().replace(gradient_on="quantum")) == [
        "theory",
        "gradquantum",
    ]
    assert config_tags(QuantumConfig.theory().replace(noise_per_shot=False)) == [
        "theory",
        "no-pershot",
    ]
    assert config_tags(QuantumConfig(noise_per_shot=True, gradient_on="quantum")) == [
        "pershot",
        "gradquantum",
    ]
    notebook = [c for c in grids.klp19_theory_configs() if config_tags(c) == []]
    assert sorted((c.eps, c.delta) for c in notebook) == [
        (0.01, 0.01),
        (0.01, 0.1),
        (0.1, 0.01),
        (0.1, 0.1),
    ]


def test_sweep_theory_preset_grid_and_named_grid_exclusive(tmp_path):
    specs = grids.grid_specs(grids.GRIDS["quick"], (), "theory", seed=1)
    assert [s.config for s in specs[1:]] == [
        QuantumConfig.theory(eps=0.01, cap=10.0, sigma=s, delta=0.01) for s in (0.1, 0.5)
    ]
    with pytest.raises(SystemExit) as info:
        sweep.main(["--grid", "klp19-theory", "--preset", "theory", "--out", str(tmp_path / "o")])
    assert info.value.code == 2


def test_finished_runs_recorded_before_the_theory_fields_are_recognised(tmp_path):
    """A run.json whose config has no theory fields and says gradient_noise_on (as every run in
    experiments/klp19) is the same run as today's notebook-mode spec."""
    import numpy as np

    from qcnn.experiments import runner

    rng = np.random.default_rng(0)
    data = runner.Data(
        rng.normal(size=(20, 1, 28, 28)).astype(np.float32),
        np.arange(20) % 10,
        rng.normal(size=(10, 1, 28, 28)).astype(np.float32),
        np.arange(10) % 10,
        {"name": "x", "train_size": 20, "test_size": 10},
    )
    spec = RunSpec(config=QuantumConfig.paper(), seed=1, epochs=1, batch_size=10)
    run_dir = tmp_path / spec.run_id
    runner.train_run(spec, data, run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    d = record["spec"]
    old = {
        k: v
        for k, v in d["config"].items()
        if k
        not in (
            "gradient_model",
            "gradient_signs",
            "input_gradient_noise",
            "failure_prob",
            "noise_per_shot",
            "tomography_normaliser",
        )
    }
    old["gradient_noise_on"] = old.pop("gradient_on")
    (run_dir / "run.json").write_text(json.dumps({**record, "spec": {**d, "config": old}}))
    assert runner.load_finished_record(run_dir, spec, data) is not None
    other = RunSpec(
        config=QuantumConfig.paper().replace(noise_per_shot=True), seed=1, epochs=1, batch_size=10
    )
    with pytest.raises(runner.RunMismatchError, match="noise_per_shot"):
        runner.load_finished_record(run_dir, other, data)
