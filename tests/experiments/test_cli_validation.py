"""Bad values, per flag, for every command (docs/reliability.md: "bad values per flag").

Table-driven: every flag of every command (``mnist``, ``sweep``, ``resources``, ``circuits``)
that takes a value has a row of bad values here, and a test fails when a command gains a flag
without one (so a flag added later is covered too; flags with ``choices`` get a bad choice
automatically). Each bad value must end the command with exit status 2 and an ``error:``
message that names the flag, before any data is loaded or anything runs, and never with a
traceback. A second table holds values that are only bad together (or bad in context: a folder
that does not exist, a shot count that would not fit in memory, ...).
"""

from __future__ import annotations

import argparse

import pytest

import qcnn.data
import qcnn.experiments.runner as runner
from qcnn.experiments import mnist, resources, schedulers, sweep

pytest.importorskip("qiskit_aer")
from qcnn.experiments import circuits  # noqa: E402

COMMANDS = {"mnist": mnist, "sweep": sweep, "resources": resources, "circuits": circuits}

# flag -> bad values (the same meaning in every command that has the flag)
BAD = {
    "--epochs": ["0", "-1", "2.5", "x", "10001"],
    "--batch-size": ["0", "-3", "1.5", "65537", "lots"],
    "--lr": ["0", "-0.1", "nan", "inf", "11", "fast"],
    "--momentum": ["1", "-0.1", "nan", "1.5", "x"],
    "--augment": ["-1", "9", "1.5", "x"],
    "--seed": ["-1", "1.5", "x"],
    "--train-size": ["0", "-5", "1e3", "100000001"],
    "--test-size": ["0", "-5", "x"],
    "--shards": ["0", "-1", "65", "x"],
    "--eps": ["-0.1", "1.5", "nan", "inf", "x"],
    "--cap": ["0", "-1", "nan", "inf", "1e7"],
    "--sigma": ["0", "-0.5", "1.5", "nan", "x"],
    "--eta": ["0", "-0.1", "1", "2", "nan", "inf"],
    "--delta": ["-0.01", "1.5", "nan", "inf"],
    "--ae-bits": ["0", "-1", "21", "2.5"],
    "--ae-median": ["0", "2", "-1", "1001", "x"],
    "--sampling-power": ["3", "0", "x"],
    "--workers": ["0", "-1", "257", "x"],
    "--replicate-seeds": ["-1", "x", "1.5"],
    "--images": ["0", "-1", "100001", "x"],
    "--backward-images": ["0", "-1", "1025", "x"],
    "--ht-shots": ["0", "-1", "10000001", "x"],
    "--shots": ["-1", "10000001", "1.5"],
    "--kernels": ["0", "-1", "65", "x"],
    "--index": ["-1", "x", "1.5"],
    "--noise": ["-0.1", "1.5", "nan"],  # given as both P1 and P2
    # paths and addresses: bad in context (see CONTEXT below), listed here for the coverage check
    "--data-dir": [],
    "--out": [],
    "--weights": [],
    "--scheduler": ["tcp://host", "http://host:8786", "local:0", "local:x", "tcp://h:99999"],
    "--dataset": ["imagenet", "npz:", "MNIST "],
    "--failure-prob": ["0", "1", "-0.1", "nan", "x"],
    "--max-runs": ["0", "-1", "x"],
}
# the circuits demo caps m lower: its circuits grow as 2^m
BAD_PER_COMMAND = {
    ("circuits", "--ae-bits"): ["0", "11", "-1", "x"],
    ("circuits", "--eta"): ["0", "0.001", "1", "nan"],
}


def _value_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.nargs != 0 and a.dest != "help"]


def _cases():
    for name, module in COMMANDS.items():
        for action in _value_flags(module.build_parser()):
            flag = action.option_strings[0]
            values = BAD_PER_COMMAND.get((name, flag), BAD.get(flag))
            if values is None and action.choices is not None:
                values = []
            for v in values or []:
                yield pytest.param(name, flag, v, id=f"{name} {flag} {v}")
            if action.choices is not None and action.type is None:
                yield pytest.param(name, flag, "not-a-choice", id=f"{name} {flag} not-a-choice")


def test_every_value_flag_of_every_command_has_bad_values():
    uncovered = [
        f"{name} {a.option_strings[0]}"
        for name, module in COMMANDS.items()
        for a in _value_flags(module.build_parser())
        if a.option_strings[0] not in BAD
        and (name, a.option_strings[0]) not in BAD_PER_COMMAND
        and a.choices is None
    ]
    assert not uncovered, f"flags without bad values in this table: {uncovered}"


class MustNotRun(AssertionError):
    pass


def _forbid(*_a, **_k):
    raise MustNotRun("work started although a bad value should have stopped the command")


@pytest.fixture
def forbid_work(monkeypatch):
    for mod in (mnist, sweep, resources, schedulers, runner):
        if hasattr(mod, "load_data"):
            monkeypatch.setattr(mod, "load_data", _forbid)
    for mod in (mnist, schedulers, runner):
        monkeypatch.setattr(mod, "train_run", _forbid)
    monkeypatch.setattr(qcnn.data, "load_mnist_dataset", _forbid)
    monkeypatch.setattr(circuits, "run_demo", _forbid)


def _expect_usage_error(command: str, argv: list[str], words: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        COMMANDS[command].main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error:" in err
    for word in words:
        assert word in err, (word, err)
    return err


@pytest.mark.parametrize("command, flag, value", list(_cases()))
def test_a_bad_value_stops_the_command_naming_the_flag(
    command, flag, value, forbid_work, tmp_path, capsys
):
    nargs = next(
        a.nargs for a in COMMANDS[command].build_parser()._actions if flag in a.option_strings
    )
    values = [value, value] if nargs == 2 else [value]
    argv = [flag, *values, "--out", str(tmp_path / "out"), "--quiet"]
    if command == "circuits":
        argv.remove("--quiet")
    _expect_usage_error(command, argv, [flag], capsys)
    assert not (tmp_path / "out").exists()  # nothing created


def _file(tmp_path, name="f", text="x"):
    path = tmp_path / name
    path.write_text(text)
    return path


# (command, argv builder, words the message must contain)
CONTEXT = {
    "sigma with eta": ("mnist", lambda t: ["--sigma", "0.5", "--eta", "0.5"], ["eta"]),
    "no-sampling with sigma": (
        "mnist",
        lambda t: ["--no-sampling", "--sigma", "0.3"],
        ["--no-sampling"],
    ),
    "ae-bits without AE": ("mnist", lambda t: ["--ae-bits", "5"], ["--ae-bits"]),
    "ae-median without AE": ("resources", lambda t: ["--ae-median", "3"], ["--ae-median"]),
    "AE needs eps or bits": (
        "mnist",
        lambda t: ["--ipe", "amplitude_estimation", "--eps", "0"],
        ["ae_bits"],
    ),
    "eta too small for memory": ("mnist", lambda t: ["--eta", "0.001"], ["--eta", "memory"]),
    "eta too small for the batch": (
        "mnist",
        lambda t: ["--eta", "0.02", "--batch-size", "4096"],
        ["--eta", "memory"],
    ),
    "shards above batch": (
        "mnist",
        lambda t: ["--shards", "8", "--batch-size", "4"],
        ["--shards"],
    ),
    "resume without out": ("mnist", lambda t: ["--resume"], ["--resume"]),
    "data-dir missing": ("mnist", lambda t: ["--data-dir", str(t / "nope")], ["--data-dir"]),
    "data-dir is a file": ("sweep", lambda t: ["--data-dir", str(_file(t))], ["--data-dir"]),
    "circuits data-dir missing": (
        "circuits",
        lambda t: ["--data-dir", str(t / "nope")],
        ["--data-dir"],
    ),
    "resources data-dir missing": (
        "resources",
        lambda t: ["--data-dir", str(t / "nope")],
        ["--data-dir"],
    ),
    "out is a file": ("resources", lambda t: ["--out", str(_file(t))], ["--out"]),
    "out inside a file": ("circuits", lambda t: ["--out", str(_file(t) / "sub")], ["--out"]),
    "weights missing": ("resources", lambda t: ["--weights", str(t / "none.npz")], ["--weights"]),
    "resources without sigma": ("resources", lambda t: ["--no-sampling"], ["--sigma"]),
    "workers with scheduler": (
        "sweep",
        lambda t: ["--workers", "2", "--scheduler", "local:2"],
        ["--workers", "--scheduler"],
    ),
    "duplicate replicate seeds": (
        "sweep",
        lambda t: ["--replicate-seeds", "2", "2"],
        ["--replicate-seeds"],
    ),
    "sweep resume without out": ("sweep", lambda t: ["--resume"], ["--resume"]),
    "sweep shards above batch": (
        "sweep",
        lambda t: ["--shards", "8", "--batch-size", "4"],
        ["--shards"],
    ),
}


@pytest.mark.parametrize("name", sorted(CONTEXT))
def test_values_bad_in_context_stop_the_command(name, forbid_work, tmp_path, capsys):
    command, build, words = CONTEXT[name]
    argv = build(tmp_path)
    if "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    _expect_usage_error(command, argv, words, capsys)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_QCNN_DATA_DIR_stops_every_command(
    command, forbid_work, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("QCNN_DATA_DIR", str(tmp_path / "gone"))
    _expect_usage_error(command, ["--out", str(tmp_path / "o")], ["$QCNN_DATA_DIR", "gone"], capsys)
