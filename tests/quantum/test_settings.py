"""The field metadata of ``QuantumConfig`` (``qcnn.quantum.settings``) is the one declaration of a
quantum setting: a field added in a subclass gets its command-line flag, its run-id tag, its
validation and its preset/override rule without any change to ``qcnn/experiments/cli.py``; and
the metadata of the real fields agrees with the presets and the commands."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from qcnn.experiments import cli, mnist, resources, visualize
from qcnn.experiments.runner import RunSpec, config_tags
from qcnn.quantum import QuantumConfig
from qcnn.quantum.config import PRESETS, SAMPLING
from qcnn.quantum.settings import GROUPS, Range, setting, settings_of


@dataclasses.dataclass(frozen=True)
class Extended(QuantumConfig):
    """A config with one more setting, declared only here."""

    shot_budget: int = setting(
        0,
        group="sampling",
        range=Range(0, 10**6, integer=True),
        flag_range=Range(0, 1000, integer=True),
        requires=SAMPLING,
        tag="budget{value}",
        help="at most this many shots per image (0: no budget)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="test")
    cli.add_quantum_arguments(p, config_class=Extended)
    return p


def _config(argv: list[str]) -> Extended:
    cfg = cli.config_from_args(_parser().parse_args(argv), config_class=Extended)
    assert isinstance(cfg, Extended)
    return cfg


def test_a_field_added_in_a_subclass_gets_its_flag():
    help_text = _parser().format_help()
    assert "--shot-budget" in help_text and "at most this many shots" in help_text
    # in its model group, after the settings declared before it
    sampling = help_text.split("quantum layer, sampling")[1].split("quantum layer, gradients")[0]
    assert "--shot-budget" in sampling
    assert _config(["--shot-budget", "7"]).shot_budget == 7
    assert _config([]).shot_budget == 0
    assert _config(["--preset", "theory", "--shot-budget", "3"]) == Extended.theory().replace(
        shot_budget=3
    )


@pytest.mark.parametrize("value", ["-1", "1001", "2.5", "x"])
def test_the_new_flag_refuses_bad_values_naming_itself(value, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--shot-budget", value])
    assert info.value.code == 2
    assert "--shot-budget" in capsys.readouterr().err


def test_the_new_field_is_validated_with_its_range_and_requirement():
    with pytest.raises(
        ValueError, match=r"Extended\.shot_budget must be an integer in \[0, 1000000\]"
    ):
        Extended(shot_budget=-1)
    with pytest.raises(ValueError, match=r"Extended\.shot_budget"):
        Extended(shot_budget=True)
    with pytest.raises(ValueError, match=r"Extended\.shot_budget must be 0 without sampling"):
        Extended(sigma=None, shot_budget=5)
    # explicit on the command line: refused by the validation; unset: gives way to its off value
    with pytest.raises(ValueError, match="shot_budget"):
        _config(["--no-sampling", "--shot-budget", "5"])
    assert _config(["--no-sampling"]).shot_budget == 0


def test_the_new_field_gets_its_run_id_tag():
    cfg = Extended(shot_budget=40)
    assert cfg.tags() == config_tags(cfg) == ["budget40"]
    assert RunSpec(config=cfg).run_id == "qcnn-paper-eps0.01-C10-sigma0.5-delta0.01-budget40-seed1"
    assert Extended().tags() == [] and Extended.theory().tags() == ["theory"]
    assert Extended.theory().replace(shot_budget=2).tags() != ["theory"]
    # and round-trips through JSON with the others
    assert Extended.from_json(cfg.to_json()) == cfg


def test_every_field_carries_its_metadata():
    names = [f.name for f in dataclasses.fields(QuantumConfig)]
    assert names == [f.name for f, _ in settings_of(QuantumConfig)]
    for f, s in settings_of(QuantumConfig):
        assert s.group in GROUPS and s.help, f.name
        assert s.allows(f.default), f.name  # the default is a valid value
        if s.kind != "bool":
            assert (s.choices is None) != (s.range is None), f.name


def test_every_command_has_every_settings_flag():
    flags = {"--" + f.name.replace("_", "-") for f, _ in settings_of(QuantumConfig)}
    for command in (mnist, resources, visualize):
        actions = command.build_parser()._actions
        have = {o for a in actions for o in a.option_strings}
        assert flags <= have, (command.__name__, flags - have)


def test_theory_mode_fields_are_those_the_theory_preset_switches_on():
    paper, theory = QuantumConfig.paper().to_dict(), QuantumConfig.theory().to_dict()
    switched = {k for k in paper if paper[k] != theory[k]}
    theory_mode = {f.name for f, s in settings_of(QuantumConfig) if s.mode == "theory"}
    # ipe is a notebook-mode setting (the notebook has its Gaussian model) that theory changes
    assert switched == theory_mode | {"ipe"}


def test_one_preset_registry_with_keyword_only_arguments():
    assert QuantumConfig.preset("paper") == QuantumConfig.paper() == QuantumConfig()
    assert QuantumConfig.preset("theory", eps=0.1, delta=0.1) == QuantumConfig.theory(
        eps=0.1, delta=0.1
    )
    assert QuantumConfig.preset("exact") == QuantumConfig.exact()
    assert list(QuantumConfig.command_line_presets()) == ["paper", "theory"]
    assert set(PRESETS) == {"paper", "theory", "theory-v1", "exact"}
    assert QuantumConfig.preset("theory-v1") == QuantumConfig.theory(version=1)
    # each preset's free parameters are its classmethod's keyword-only arguments
    for name, method in (("paper", "paper"), ("theory", "theory"), ("exact", "exact")):
        params = inspect.signature(getattr(QuantumConfig, method)).parameters
        assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
        assert tuple(p for p in params if p != "version") == PRESETS[name].arguments
    with pytest.raises(TypeError):
        QuantumConfig.theory(0.1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown preset"):
        QuantumConfig.preset("notebook")
    # a preset's own fields contradicted by an override raise (the command line's give-way
    # rules are preset_values')
    with pytest.raises(ValueError, match="ae_median"):
        QuantumConfig.preset("theory", ae_median=5)
    values = QuantumConfig.preset_values("theory", {"ae_median": 5})
    assert values["failure_prob"] is None and values["ae_median"] == 5
