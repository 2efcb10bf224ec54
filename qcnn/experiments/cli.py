"""Shared command-line pieces of the five commands (``mnist``, ``sweep``, ``circuits``,
``resources``, ``visualize``): the flags they all have (``--data-dir``, ``--out``, ``--seed``,
``--quiet``), the quantum-layer flags and the :class:`~qcnn.quantum.QuantumConfig` built from
them (both generated from the config's field metadata, :mod:`qcnn.quantum.settings`: a setting
added to ``QuantumConfig`` gets its flag, range, help and preset rule here without a change to
this module), argparse value types that reject bad values with a clear message, and the checks
that run before any work. A flag used by more than one command is declared here.

Rules every command follows (docs/reliability.md):

- every numeric flag has a type with a range that makes sense (argparse then says
  ``argument --eta: expected ...`` and exits with status 2); combinations that only fail
  together (e.g. an ``--eta`` whose shot count would not fit in memory at this batch size) are
  checked by :func:`check_sampling_memory` before any data is loaded;
- output folder policy (:func:`check_output_dir`): ``--out`` must be new or empty, unless the
  command resumes (``--resume``, which needs a folder with runs in it); the default is a fresh
  ``runs/<command>-<timestamp>`` folder (:func:`default_out`); one command at a time writes
  to a folder (it is locked until the command ends; a second one is refused, naming the first);
- a data directory the user names (``--data-dir``, ``$QCNN_DATA_DIR``) must exist
  (:func:`check_data_dir`), and hold the data (checked when loading);
- known failures end in one ``error: ...`` message, never a traceback (:func:`cli_errors`):
  status 2 for bad input (files, folders, settings), 1 for a run that diverged."""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from qcnn.io import DirectoryLock
from qcnn.quantum import QuantumConfig
from qcnn.quantum.settings import GROUPS, settings_of

__all__ = [
    "ARCH_HELP",
    "add_common_arguments",
    "command_parser",
    "add_model_arguments",
    "check_activation",
    "dataset_name",
    "add_quantum_arguments",
    "add_preset_argument",
    "add_setting_argument",
    "config_from_args",
    "nonneg_int",
    "pos_int",
    "pos_float",
    "nonneg_float",
    "probability",
    "int_in",
    "float_in",
    "check_output_dir",
    "release_output_locks",
    "refuse_symlinks",
    "check_data_dir",
    "check_sampling_memory",
    "default_out",
    "cli_errors",
    "usage_error",
    "MAX_SAMPLES_PER_CALL",
]

# Largest number of pixel draws (images x shots) one sampling call may make: the sampler holds
# about three float64 arrays of that size (~1.2 GB at this value), a fifth of this machine.
MAX_SAMPLES_PER_CALL = 50_000_000


def _number(text: str, kind: type, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def nonneg_int(text: str) -> int:
    v = _number(text, int, "a non-negative integer")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def pos_int(text: str) -> int:
    v = _number(text, int, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def pos_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text, float, "a number")
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def probability(text: str) -> float:
    v = _number(text, float, "a probability")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text}")
    return v


def int_in(lo: int, hi: int | None = None, *, odd: bool = False) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (and odd if asked)."""
    what = ("an odd integer" if odd else "an integer") + f" >= {lo}"
    if hi is not None:
        what += f" and <= {hi}"

    def parse(text: str) -> int:
        v = _number(text, int, what)
        if v < lo or (hi is not None and v > hi) or (odd and v % 2 == 0):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v

    parse.__name__ = f"int_in({lo}, {hi})"  # argparse names the type in some messages
    return parse


def float_in(
    lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in the range (``lo_open``/``hi_open``: strict ends)."""
    what = (
        f"a finite number {'>' if lo_open else '>='} {lo:g} and {'<' if hi_open else '<='} {hi:g}"
    )

    def parse(text: str) -> float:
        v = _number(text, float, what)
        if (
            not math.isfinite(v)
            or v < lo
            or v > hi
            or (lo_open and v == lo)
            or (hi_open and v == hi)
        ):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return v

    parse.__name__ = f"float_in({lo:g}, {hi:g})"
    return parse


def command_parser(command: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m qcnn.experiments.<command>``: its name in messages (``prog``),
    its ``description``, and every flag's default shown in ``--help``."""
    return argparse.ArgumentParser(
        prog=f"python -m qcnn.experiments.{command}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def default_out(command: str) -> Path:
    """A fresh output folder ``runs/<command>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... if taken)."""
    base = Path("runs") / time.strftime(f"{command}-%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


# The output folders this process has locked (resolved path -> lock), released by cli_errors when
# the command that locked them ends (the process ending releases them too).
_held_out_locks: dict[Path, DirectoryLock] = {}


def _entries(out: Path) -> list[str]:
    """The names in ``out`` that count as contents (not the lock file)."""
    from qcnn.io import LOCK_NAME

    return sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []


def check_output_dir(out: Path, resume: bool = False, *, can_resume: bool = True) -> None:
    """The output-folder policy, checked before any work; raises ValueError (one line).

    - ``out`` must be a directory or not exist, and be writable;
    - one writer at a time: the folder is locked (:class:`qcnn.io.DirectoryLock`) until the
      command ends (:func:`cli_errors` releases it; so does the process ending, also when
      killed); a folder another live process holds is refused, naming that process;
    - without ``resume`` it must be new or empty (checked again under the lock): a second run
      never writes over (or next to) the results of a first one;
    - with ``resume`` it must hold a previous run and no symlink (:func:`refuse_symlinks`: no
      run folder or file is read or written outside ``out``); stale temporary files left there
      by a killed writer are removed (:func:`qcnn.io.remove_stale_temp_files`).

    The lock file does not count as contents: a folder holding only it is empty.
    ``can_resume=False`` (commands without ``--resume``) words the advice accordingly.
    """
    from qcnn.io import DirectoryLock, DirectoryLocked, remove_stale_temp_files

    def refuse_contents(entries: list[str]) -> None:
        if resume and not entries:
            state = "is empty" if out.is_dir() else "does not exist"
            raise ValueError(f"--resume: {str(out)!r} {state}; nothing to resume")
        if not resume and entries:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            advice = (
                "pass --resume to continue the runs in it, or choose a new --out"
                if can_resume
                else "choose a new --out (or remove it)"
            )
            raise ValueError(f"--out {str(out)!r} is not empty (it holds {shown}); {advice}")

    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    refuse_contents(_entries(out))  # before touching the folder: a refused one stays as it was
    try:
        out.mkdir(parents=True, exist_ok=True)
        key = out.resolve()
        if key not in _held_out_locks:
            _held_out_locks[key] = DirectoryLock.acquire(out)
    except DirectoryLocked as exc:
        raise ValueError(
            f"--out {str(out)!r} is in use by {exc}; wait for it to end or choose another --out"
        ) from None
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from None
    refuse_contents(_entries(out))  # a writer that held the folder until now may have filled it
    try:
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not writable: {exc.strerror or exc}") from None
    if resume:
        refuse_symlinks(out)
        remove_stale_temp_files(out)


def refuse_symlinks(out: Path) -> None:
    """Refuse a folder holding a symlink anywhere inside it (a run folder or a file linked to
    somewhere else would be read and written through): nothing is read from or written to
    outside ``--out``. Walks the tree without following links; raises ValueError (one line)."""
    for root, dirs, files in os.walk(out, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(root) / name
            if path.is_symlink():
                try:
                    target = repr(os.readlink(path))
                except OSError:
                    target = "an unreadable target"
                raise ValueError(
                    f"--out {str(out)!r} holds a symlink, {str(path.relative_to(out))!r} -> "
                    f"{target}; qcnn reads and writes only inside --out: put the folder or file "
                    "itself there, or choose a new --out"
                )


def release_output_locks(keep: Iterable[Path] = ()) -> None:
    """Release the output-folder locks this process holds, except those of ``keep``."""
    kept = set(keep)
    for key in [k for k in _held_out_locks if k not in kept]:
        _held_out_locks.pop(key).release()


def check_data_dir(data_dir: str | None) -> None:
    """A data directory the user names (``--data-dir``, else ``$QCNN_DATA_DIR``) must exist and
    be a directory; raises ValueError before any work. (Whether it holds the data is checked by
    the loader, which names the files it expected.)"""
    from qcnn.data import ENV_DATA_DIR

    if data_dir is not None:
        named, what = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get(ENV_DATA_DIR):
        named, what = Path(os.environ[ENV_DATA_DIR]).expanduser(), f"${ENV_DATA_DIR}"
    else:
        return
    if not named.exists():
        raise ValueError(f"{what} {str(named)!r} does not exist")
    if not named.is_dir():
        raise ValueError(f"{what} {str(named)!r} is not a directory")


def check_sampling_memory(
    config: QuantumConfig | None,
    arch: str,
    batch_sizes: Iterable[int],
    dataset: str = "mnist",
    activation: str | None = None,
) -> None:
    """Refuse a sampling setting whose shot count would not fit in memory; raises ValueError.

    Each quantum layer of ``arch`` draws N shots per image (``--eta``: ``ceil(36 ln d / eta^2)``
    for its ``d`` outputs); one call samples a whole batch, so ``N x batch`` must stay under
    :data:`MAX_SAMPLES_PER_CALL` for the largest batch (training or evaluation).
    """
    if config is None or not config.samples:
        return
    from qcnn.data import dataset_spec
    from qcnn.models import build_model
    from qcnn.nn.model import input_shapes
    from qcnn.quantum import QuantumConv2D
    from qcnn.quantum.layer import layer_shots

    spec = dataset_spec(dataset)
    if spec.shape is None:  # npz:PATH: only the file knows; checked once it is loaded
        return
    batch = max(batch_sizes)
    try:
        model = build_model(
            arch,
            config,
            seed=0,
            input_shape=spec.shape,
            classes=spec.classes or 10,
            activation=activation,
        )
    except ValueError:
        return  # an architecture that does not fit the images: reported with the data
    for layer, shape in input_shapes(model, spec.shape):  # nested layers too (Concat branches)
        if isinstance(layer, QuantumConv2D):
            d = math.prod(layer.conv_output_shape(shape))
            shots = layer_shots(config, d)
            if shots is not None and shots * batch > MAX_SAMPLES_PER_CALL:
                raise ValueError(
                    f"--eta {config.eta:g} needs N = {shots:,} shots per image in a layer of "
                    f"{d:,} outputs; a batch of {batch} images then draws {shots * batch:,} "
                    f"samples at once, more than the {MAX_SAMPLES_PER_CALL:,} that fit in "
                    "memory: raise --eta (or lower the batch size / test size)"
                )


def usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """Exit with status 2 and one line ``<prog>: error: <message>`` (argparse's own
    ``parser.error`` would print the whole usage first, which buries the message)."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def cli_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command's ``main``: known failures end in one ``error: ...`` on stderr.

    Status 2 for bad input found after argument parsing (damaged checkpoints or records, a
    resume with other settings, missing or corrupt data files, unusable folders), status 1 for
    a run that diverged (the runs finished before it are already written). Anything else is a
    bug and keeps its traceback.
    """
    from qcnn.data import IDXError, MNISTSubsetWarning
    from qcnn.experiments.runner import RecordError
    from qcnn.train import CheckpointError, RunMismatchError, TrainingDiverged

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        held_before = set(_held_out_locks)
        try:
            with warnings.catch_warnings():
                # the subset fallback prints its notice on stderr itself (qcnn.data.idx_dataset.loud):
                # a command shows it once, not a second time as a Python warning
                warnings.simplefilter("ignore", MNISTSubsetWarning)
                return main(argv)
        except TrainingDiverged as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (
            CheckpointError,
            RunMismatchError,
            RecordError,
            IDXError,
            FileNotFoundError,
            NotADirectoryError,
            PermissionError,
        ) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:  # the --out lock this command took (on an error, Ctrl-C or exit too)
            release_output_locks(keep=held_before)

    return wrapper


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    out_default: str | None,
    out_help: str = "output folder",
    seed_default: int = 1,
    seed_help: str = "the one seed behind every random number",
) -> None:
    """Declare ``--data-dir``, ``--out``, ``--seed`` and ``--quiet`` on ``parser``.

    ``--data-dir`` and ``--out`` are strings (``None`` when not given and ``out_default`` is
    ``None``), so ``vars(args)`` stays JSON-serialisable for the results files.
    """
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the data set's files (MNIST, Fashion-MNIST); it must exist and hold them. "
        "Without it: $QCNN_DATA_DIR / $QCNN_FASHION_MNIST_DIR (same rule), else "
        "~/.cache/qcnn/<data set>, a download, the bundled subset (README, section Data)",
    )
    parser.add_argument("--out", default=out_default, help=out_help)
    parser.add_argument("--seed", type=nonneg_int, default=seed_default, help=seed_help)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress output, only the final summary"
    )


def add_training_arguments(
    parser: argparse.ArgumentParser, *, per_run: bool = False, momentum: bool = True
) -> None:
    """Declare ``--epochs``, ``--batch-size``, ``--lr`` and (with ``momentum``) ``--momentum``.

    ``per_run`` words the help for a command that trains many runs (the sweep).
    """
    each = " per run" if per_run else ""
    parser.add_argument(
        "--epochs",
        type=int_in(1, 10_000),
        default=None,
        help=f"training epochs{each}, 1..10000 (default: the paper's 1,876 SGD steps of 64 "
        "images, i.e. 2 epochs of full MNIST, 30 of the 4,000-image offline subset)",
    )
    parser.add_argument(
        "--batch-size", type=int_in(1, 65_536), default=64, help="mini-batch size, 1..65536"
    )
    parser.add_argument(
        "--lr",
        type=float_in(0.0, 10.0, lo_open=True),
        default=0.01,
        help="SGD learning rate, 0 < lr <= 10",
    )
    if momentum:
        parser.add_argument(
            "--momentum",
            type=float_in(0.0, 1.0, hi_open=True),
            default=0.0,
            help="SGD momentum in [0, 1)",
        )
    parser.add_argument(
        "--augment",
        type=int_in(0, 8),
        default=0,
        help="data augmentation: shift every training image by a random (dy, dx) of up to N "
        "pixels (a random crop of the image padded by N; seeded), 0..8; 0 = off",
    )


ARCH_HELP = {
    "paper": "KLP19's network (two 7x7 convs, no pooling)",
    "lenet5": "LeNet-style, modern (ReLU, max pooling)",
    "lenet5-1998": "LeCun 1998 (trainable subsampling, C3 connection table, tanh: stays classical "
    "when quantized)",
    "alexnet-small": "AlexNet ideas at 28x28 (5 conv 3x3, LRN, dropout)",
    "inception-small": "two Inception v1 blocks, global average pooling",
}


def dataset_name(text: str) -> str:
    """argparse type of ``--dataset``: a registered name or ``npz:PATH``."""
    from qcnn.data import dataset_spec

    try:
        dataset_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_model_arguments(
    parser: argparse.ArgumentParser, *, arch_default: str = "paper", activation: bool = False
) -> None:
    """Declare ``--arch`` (an architecture of :data:`qcnn.models.MODELS`) and ``--dataset``
    (a data set of the registry :mod:`qcnn.data.registry`, or ``npz:PATH``); with
    ``activation`` also ``--activation`` (:data:`qcnn.models.ACTIVATION_ARCHS`; None: the
    architecture's own; :func:`check_activation` refuses it for the others)."""
    from qcnn.data import DATASETS
    from qcnn.models import ACTIVATION_ARCHS, MODELS

    if activation:
        choices = sorted({a for acts in ACTIVATION_ARCHS.values() for a in acts})
        parser.add_argument(
            "--activation",
            choices=choices,
            default=None,
            help="squashing function of "
            + ", ".join(ACTIVATION_ARCHS)
            + " (default: its own, tanh): sigmoid is LeNet-5 as the primer trains it; relu "
            "the variant whose convolutions quantize",
        )

    parser.add_argument(
        "--arch",
        choices=list(MODELS),
        default=arch_default,
        help="network: " + "; ".join(f"{k}: {ARCH_HELP.get(k, k)}" for k in MODELS),
    )
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        default="mnist",
        metavar="{" + ",".join(DATASETS) + ",npz:PATH}",
        help="data set: "
        + "; ".join(f"{k}: {s.description}" for k, s in DATASETS.items())
        + "; npz:PATH: arrays x_train, y_train, x_test, y_test of a .npz file",
    )


def check_activation(arch: str, activation: str | None) -> None:
    """``--activation`` only for an architecture that takes one; raises ValueError."""
    from qcnn.models import ACTIVATION_ARCHS

    if activation is not None and arch not in ACTIVATION_ARCHS:
        raise ValueError(
            f"--activation applies to --arch {', '.join(ACTIVATION_ARCHS)}, not to {arch}"
        )


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _preset_defaults(config_class: type[QuantumConfig], name: str) -> str:
    """`` (default X)`` or `` (paper preset: X; theory preset: Y)``: a field's preset values."""
    values = {
        p: config_class.preset(p).to_dict()[name] for p in config_class.command_line_presets()
    }
    if len(set(map(repr, values.values()))) == 1:
        value = next(iter(values.values()))
        return "" if value is None else f" (default {_shown(value)})"
    return " (" + "; ".join(f"{p} preset: {_shown(v)}" for p, v in values.items()) + ")"


def _shown(value: Any) -> str:
    return "none" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def add_setting_argument(
    group: Any,
    name: str,
    *,
    config_class: type[QuantumConfig] = QuantumConfig,
    default: Any = None,
    hi: float | None = None,
    deprecated: tuple[str, ...] = (),
    help: str | None = None,
) -> None:
    """Declare the flag of the :class:`~qcnn.quantum.QuantumConfig` field ``name`` on ``group``
    (a parser or an argument group), from the field's metadata: ``--name-with-dashes`` (plus the
    field's former names and the ``deprecated`` spellings, which print a note when used), a type
    with its range or its choices, or ``--x/--no-x`` for a boolean. ``hi`` lowers the flag's
    upper limit (a command that cannot afford the whole range); ``help`` replaces the field's
    help text."""
    f, s = config_class.setting(name)
    flags = [_flag(name), *(_flag(old) for old in s.former_names), *deprecated]
    kwargs: dict[str, Any] = dict(dest=name, default=default, help=help or s.help)
    if deprecated:
        kwargs["action"] = _noting(deprecated)
    if s.kind == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif s.kind == "choice":
        assert s.choices is not None
        kwargs["choices"] = list(s.choices)
        if all(isinstance(c, int) for c in s.choices):
            kwargs["type"] = int
    else:
        r = s.cli_range
        assert r is not None
        top = r.hi if hi is None else min(r.hi, hi)
        if r.integer:
            kwargs["type"] = int_in(int(r.lo), None if math.isinf(top) else int(top), odd=r.odd)
        else:
            kwargs["type"] = float_in(r.lo, top, lo_open=r.lo_open, hi_open=r.hi_open)
    group.add_argument(*flags, **kwargs)
    if s.off_flag is not None:
        off_flag, off_help = s.off_flag
        group.add_argument(off_flag, action="store_true", help=off_help)


def _noting(deprecated: tuple[str, ...]) -> type[argparse.Action]:
    """A store action that notes on stderr when a deprecated spelling of the flag is used."""

    class StoreNotingDeprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in deprecated:
                print(
                    f"{parser.prog}: note: {option_string} is deprecated; use "
                    f"{self.option_strings[0]}",
                    file=sys.stderr,
                )
            setattr(namespace, self.dest, values)

    return StoreNotingDeprecated


def add_preset_argument(
    parser: Any,
    *,
    config_class: type[QuantumConfig] = QuantumConfig,
    lead: str = "starting configuration",
    tail: str = "explicit flags override it",
) -> None:
    """Declare ``--preset``: the command-line presets of :data:`qcnn.quantum.config.PRESETS`,
    each with its description (``lead: paper (...); theory (...); tail``)."""
    presets = config_class.command_line_presets()
    parser.add_argument(
        "--preset",
        choices=list(presets),
        default="paper",
        help=f"{lead}: "
        + "; ".join(f"{k} ({p.description})" for k, p in presets.items())
        + f"; {tail}",
    )


def add_quantum_arguments(
    parser: argparse.ArgumentParser, *, config_class: type[QuantumConfig] = QuantumConfig
) -> None:
    """The flags of every :class:`~qcnn.quantum.QuantumConfig` setting (read back by
    :func:`config_from_args`), generated from the fields' metadata, one argument group per
    stage of the model (inner-product estimation, non-linearity, sampling, gradients).

    ``--preset`` chooses the starting configuration (``paper``: the authors' notebook, the
    default; ``theory``: :meth:`QuantumConfig.theory`, docs/theory.md); every other flag given
    explicitly overrides the preset's value. Flags left out keep the preset's values, except
    that a preset value an explicit flag makes meaningless is dropped
    (:meth:`QuantumConfig.preset_values`): ``--ae-median`` replaces the preset's
    ``failure_prob`` (which would derive the median), ``--sampled-value exact`` the preset's AE
    normaliser, ``--gradient-model gaussian`` the preset's estimated gradient norm, and a
    ``failure_prob`` with no amplitude estimation left is unset.
    """
    add_preset_argument(
        parser.add_argument_group("quantum layer (model §2-3, docs/theory.md)"),
        config_class=config_class,
    )
    for group, description in GROUPS.items():
        names = [f.name for f, s in settings_of(config_class) if s.group == group]
        if not names:
            continue
        g = parser.add_argument_group(
            f"quantum layer, {group} ({description}; defaults: the --preset's values)"
        )
        for name in names:
            _, s = config_class.setting(name)
            add_setting_argument(
                g,
                name,
                config_class=config_class,
                # "%(default).0s" prints nothing: it keeps ArgumentDefaultsHelpFormatter from
                # adding "(default: None)", the flag's unset marker, after the preset values
                help=s.help + _preset_defaults(config_class, name) + "%(default).0s",
            )


def config_from_args(
    args: argparse.Namespace, *, config_class: type[QuantumConfig] = QuantumConfig
) -> QuantumConfig:
    """Build the QuantumConfig of :func:`add_quantum_arguments`' flags: the preset, with every
    flag given explicitly overriding it (see :func:`add_quantum_arguments` for the precedence);
    raises ValueError with the offending field or flag."""
    settings = list(settings_of(config_class))
    for f, s in settings:
        if s.off_flag is not None and getattr(args, _dest(s.off_flag[0]), False):
            clash = [n for n in (f.name, *s.excludes) if getattr(args, n, None) is not None]
            if clash:
                others = " and ".join(_flag(n) for n in (f.name, *s.excludes))
                raise ValueError(f"{s.off_flag[0]} excludes {others}")
    given = {
        f.name: getattr(args, f.name)
        for f, _ in settings
        if getattr(args, f.name, None) is not None
    }
    for f, s in settings:
        if s.off_flag is not None and getattr(args, _dest(s.off_flag[0]), False):
            given.update({n: None for n in (f.name, *s.excludes)})
    values = config_class.preset_values(getattr(args, "preset", None) or "paper", given)
    refused = [
        (f, s)
        for f, s in settings
        if f.name in given
        and s.requires is not None
        and s.refused_by == "command line"
        and not s.requires.holds(values)
    ]
    if refused:
        req = refused[0][1].requires
        assert req is not None
        names = [
            f.name for f, s in settings if s.requires is req and s.refused_by == "command line"
        ]
        what = "are settings" if len(names) > 1 else "is a setting"
        raise ValueError(
            f"{' and '.join(_flag(n) for n in names)} {what} of {req.name} ({req.flags}); got "
            f"{req.state(values)}"
        )
    return config_class.from_dict(values)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")
