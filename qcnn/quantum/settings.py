"""The metadata each :class:`~qcnn.quantum.QuantumConfig` field carries, and the rules read from it.

A quantum setting is declared once, as a dataclass field whose metadata is a :class:`Setting`
(``field = setting(default, group=..., help=..., ...)``). Everything else that knows about
settings reads that metadata instead of listing them again:

- the validation of a configuration (:func:`check_values`: the range or choices of each field,
  and the settings each one requires), with messages naming the field and what is allowed;
- the command-line flags of every command (``qcnn.experiments.cli``: flag names, types, ranges,
  choices, help, argument groups), and how explicit flags override a preset
  (:func:`resolve_overrides`);
- the run-id tags of a configuration (:func:`preset_tag`, :func:`option_tags`).

So a field added to ``QuantumConfig`` (or to a subclass of it) gets its flag, its tag and its
validation without further code. The groups follow the model (docs: the model §2-3):
inner-product estimation, non-linearity, sampling, gradients.

This module knows no particular setting; :mod:`qcnn.quantum.config` declares them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "GROUPS",
    "Range",
    "Requirement",
    "Setting",
    "Preset",
    "setting",
    "settings_of",
    "check_values",
    "preset_like",
    "preset_tag",
    "option_tags",
    "resolve_overrides",
    "is_number",
]

# The model's stages, in the order a layer runs them (model §2-3); each setting is in one.
GROUPS: dict[str, str] = {
    "inner-product estimation": "model §2.2",
    "non-linearity": "model §2.3",
    "sampling": "model §2.5, l-infinity tomography of the output state",
    "gradients": "model §3, quantum backpropagation",
}


def is_number(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class _FieldDefault:
    def __repr__(self) -> str:
        return "<the field's default>"


_FIELD_DEFAULT: Any = _FieldDefault()


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: ``lo <= x <= hi`` (``*_open``: strict), integers
    only with ``integer`` (odd ones with ``odd``)."""

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    odd: bool = False

    def contains(self, x: Any) -> bool:
        if self.integer:
            if not isinstance(x, int) or isinstance(x, bool) or (self.odd and x % 2 == 0):
                return False
        elif not is_number(x):
            return False
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below

    def describe(self, name: str) -> str:
        """What the range allows, in words (e.g. ``a number with 0 < sigma <= 1``)."""
        lo_op = ">" if self.lo_open else ">="
        if self.integer:
            kind = "an odd integer" if self.odd else "an integer"
            if math.isinf(self.hi):
                return f"{kind} {lo_op} {int(self.lo)}"
            return f"{kind} in [{int(self.lo)}, {int(self.hi)}]"
        if math.isinf(self.hi):
            return f"a finite number {lo_op} {self.lo:g}"
        lo_sym, hi_sym = ("<" if self.lo_open else "<="), ("<" if self.hi_open else "<=")
        return f"a number with {self.lo:g} {lo_sym} {name} {hi_sym} {self.hi:g}"


@dataclass(frozen=True)
class Requirement:
    """A condition on the other settings that a setting needs in order to mean anything.

    ``holds(values)`` tests it on a mapping of field values; ``unmet`` says what is missing
    after the value the setting must then keep (e.g. ``None`` + ``unless an amplitude-estimation
    model is used (...)``); ``name``, ``flags`` and ``state`` word the command line's refusal of
    a flag given without it (``--ae-bits ... are settings of amplitude estimation (--ipe ...);
    got --ipe gaussian``)."""

    name: str
    holds: Callable[[Mapping[str, Any]], bool]
    unmet: str
    flags: str = ""
    state: Callable[[Mapping[str, Any]], str] = lambda values: ""


@dataclass(frozen=True)
class Setting:
    """Metadata of one configuration field.

    Attributes:
        group: the model stage it belongs to (a key of :data:`GROUPS`).
        help: what it does, for ``--help`` (the preset values are added by the command line).
        mode: ``'notebook'``: a setting of the authors' simulation; ``'theory'``: an option that
            switches on the algorithm as the theorems state it (the theory preset sets it).
        choices: the allowed values (a choice setting), or None.
        range: the allowed numbers (a numeric setting), or None. Neither choices nor range: a
            boolean.
        optional: None is allowed too (the setting is then off).
        flag_range: a narrower range for the command-line flag (values the commands accept).
        off: the value that switches the setting off (default: the field's default).
        off_flag: ``(flag, help)`` of a command-line flag that switches it off (and the settings
            it excludes, :attr:`excludes`), e.g. ``--no-sampling``.
        excludes: settings it cannot be combined with (both set: refused, with
            ``exclusive_advice``); on the command line an explicit one switches this one off.
        yields_to: settings that, given explicitly, switch this one off (e.g. an explicit AE
            median replaces the preset's failure probability, which would derive it).
        requires: the condition it needs (:class:`Requirement`); where it does not hold, a
            preset's value gives way to ``off``, and a value set explicitly is refused: by the
            configuration when ``refused_by`` is ``'config'``, by the command line only when it
            is ``'command line'`` (the configuration then ignores it).
        check: a further check of its combination with other settings, run after the
            requirement: a function of the configuration returning an error message or None.
        tag: run-id tag when the value differs from the field's default: a format string of
            ``value`` (``'k{value}'``) or a function of the configuration; None: no tag.
        former_names: names the field had before (read from old results, accepted as flags).
        metavar: a metavar for the flag, if not the choices.
    """

    group: str
    help: str
    mode: Literal["notebook", "theory"] = "notebook"
    choices: tuple[Any, ...] | None = None
    range: Range | None = None
    optional: bool = False
    flag_range: Range | None = None
    off: Any = _FIELD_DEFAULT
    off_flag: tuple[str, str] | None = None
    excludes: tuple[str, ...] = ()
    exclusive_advice: str = ""
    yields_to: tuple[str, ...] = ()
    requires: Requirement | None = None
    refused_by: Literal["config", "command line"] = "config"
    check: Callable[[Any], str | None] | None = None
    tag: str | Callable[[Any], str] | None = None
    former_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"Setting.group must be one of {list(GROUPS)}, got {self.group!r}")
        if self.choices is not None and self.range is not None:
            raise ValueError("a Setting has choices or a range, not both")

    @property
    def kind(self) -> Literal["choice", "number", "bool"]:
        if self.choices is not None:
            return "choice"
        return "number" if self.range is not None else "bool"

    @property
    def cli_range(self) -> Range | None:
        return self.flag_range or self.range

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is in the setting's domain (alone; combinations are checked by
        :func:`check_values`)."""
        if value is None and self.optional:
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            assert self.choices is not None
            return not isinstance(value, bool) and value in self.choices
        assert self.range is not None
        return self.range.contains(value)

    def describe(self, name: str) -> str:
        """The domain in words, for messages (``None or a finite number > 0``, ``one of ...``)."""
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            assert self.choices is not None
            if all(isinstance(c, int) for c in self.choices):
                text = " or ".join(str(c) for c in self.choices)
            else:
                text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            assert self.range is not None
            text = self.range.describe(name)
        return ("None or " if self.optional else "") + text


def setting(default: Any, **metadata: Any) -> Any:
    """A dataclass field with default ``default`` and :class:`Setting` ``metadata``."""
    return dataclasses.field(default=default, metadata={"setting": Setting(**metadata)})


def settings_of(cls_or_config: Any) -> Iterator[tuple[dataclasses.Field, Setting]]:
    """The (field, setting) pairs of a configuration class or instance, in declaration order."""
    for f in dataclasses.fields(cls_or_config):
        if "setting" in f.metadata:
            yield f, f.metadata["setting"]


def off_value(f: dataclasses.Field, s: Setting) -> Any:
    return f.default if s.off is _FIELD_DEFAULT else s.off


@dataclass(frozen=True)
class Preset:
    """A named starting configuration: the fields it sets (the others keep their defaults).

    ``arguments``: its free parameters (eps, cap, ...: the keyword-only arguments of its
    classmethod); ``tag``: the run-id tag of a configuration equal to this preset at any values
    of them (None: no tag); ``command_line``: offered as ``--preset`` by the commands."""

    description: str
    values: Mapping[str, Any]
    arguments: tuple[str, ...] = ()
    tag: str | None = None
    command_line: bool = True


def check_values(config: Any) -> None:
    """Validate each field of ``config`` against its :class:`Setting`: first each value alone
    (range or choices), then the exclusive pairs, then per field (in declaration order) the
    setting it requires and its own combination check. Raises ValueError naming the field
    (``QuantumConfig.eps must be ...``)."""
    values = vars(config)
    prefix = type(config).__name__
    settings = list(settings_of(config))
    for f, s in settings:
        value = values[f.name]
        if not s.allows(value):
            raise ValueError(f"{prefix}.{f.name} must be {s.describe(f.name)}, got {value!r}")
    offs = {f.name: off_value(f, s) for f, s in settings}
    for f, s in settings:
        for other in s.excludes:
            if values[f.name] != offs[f.name] and values[other] != offs[other]:
                raise ValueError(
                    f"{prefix}: {f.name} ({values[f.name]!r}) and {other} ({values[other]!r}) "
                    "are exclusive" + (f"; {s.exclusive_advice}" if s.exclusive_advice else "")
                )
    for f, s in settings:
        off = offs[f.name]
        if (
            s.requires is not None
            and s.refused_by == "config"
            and values[f.name] != off
            and not s.requires.holds(values)
        ):
            raise ValueError(
                f"{prefix}.{f.name} must be {off!r} {s.requires.unmet}, got {values[f.name]!r}"
            )
        problem = s.check(config) if s.check is not None else None
        if problem:
            raise ValueError(problem)


def preset_like(config: Any, name: str, presets: Mapping[str, Preset]) -> Any:
    """The preset ``name`` at ``config``'s values of the preset's free arguments (those not
    None); raises ValueError where no such preset exists (e.g. the theory preset at eps 0)."""
    mine = {
        p: getattr(config, p) for p in presets[name].arguments if getattr(config, p) is not None
    }
    return type(config).preset(name, **mine)


def preset_tag(config: Any, presets: Mapping[str, Preset]) -> str | None:
    """The run-id tag of the preset that ``config`` equals at its own values of the preset's
    arguments (the first such preset with a tag), or None."""
    for name, preset in presets.items():
        if preset.tag is None:
            continue
        try:
            if config == preset_like(config, name, presets):
                return preset.tag
        except ValueError:  # no such preset with these numbers
            pass
    return None


def option_tags(config: Any) -> list[str]:
    """One run-id tag per setting whose value differs from its default (:attr:`Setting.tag`),
    in declaration order."""
    tags = []
    for f, s in settings_of(config):
        value = getattr(config, f.name)
        if s.tag is None or value == f.default:
            continue
        tags.append(s.tag.format(value=value) if isinstance(s.tag, str) else s.tag(config))
    return tags


def resolve_overrides(
    cls: Any, base: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """The field values of ``base`` (a preset's) with the explicit settings ``given`` overriding
    them. A base value that an explicit setting makes meaningless gives way to its off value:
    one that an explicit setting excludes or replaces (:attr:`Setting.excludes`,
    :attr:`Setting.yields_to`), and one whose requirement no longer holds
    (:attr:`Setting.requires`). Explicit values never give way (an explicit contradiction is
    refused by the validation). Not validated here."""
    fields = {f.name: (f, s) for f, s in settings_of(cls)}
    values = {**base, **given}
    for name, (f, s) in fields.items():
        if name not in given and any(o in given for o in s.yields_to + s.excludes):
            values[name] = off_value(f, s)
    changed = True
    while changed:  # dropping a value can unmeet another's requirement; off values only
        changed = False
        for name, (f, s) in fields.items():
            off = off_value(f, s)
            if (
                name not in given
                and s.requires is not None
                and values[name] != off
                and not s.requires.holds(values)
            ):
                values[name] = off
                changed = True
    return values
