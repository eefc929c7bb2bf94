"""Typed dataclass configs <-> command-line options: the one mechanism every stage uses.

A stage describes its options once, as a dataclass whose fields carry their help text::

    @dataclass
    class AlignConfig:
        lang: str = option("data/lang", help="lang dir (data-prep prepare-lang)")
        num_leaves: int = option(800, help="tied states (decision-tree leaves)")
        splits: list[str] = option(["train", "dev", "test"], help="splits to align")
        force: bool = option(False, help="redo every sub-stage")

    def add_arguments(parser):            # the CLI ...
        add_options(parser, AlignConfig)

    def main(args):                       # ... and back to the typed config; no Namespace past here
        run_align(from_args(AlignConfig, args))

Field ``num_leaves`` becomes ``--num-leaves``. The option's type comes from the annotation: ``int``,
``float``, ``str``, ``X | None``, ``list[X]`` (space- or comma-separated values, ``nargs='+'``),
``Literal[...]`` (choices) and ``bool`` (``--flag`` / ``--no-flag``); ``option(..., split=False)`` keeps each
list value whole. A field without a default is a
required option. ``to_argv`` turns a config back into the options that reproduce it (for subprocesses,
``torchrun`` and logs); ``to_dict`` / ``from_dict`` are the JSON forms (``config.json`` of a run).

Options the user leaves out are absent from the parsed namespace, so ``from_args(cls, args, base=preset)``
takes them from a preset (``synth-corpus --tiny``) and everything given on the command line overrides it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union

C = TypeVar("C")

_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, *, help: str = "", flag: str | None = None, short: str | None = None,
           metavar: str | None = None, group: str | None = None, cli: bool = True, split: bool = True) -> Any:
    """A dataclass field that is also a command-line option.

    ``default`` may be a list (copied per instance); no default = a required option. ``flag`` overrides
    the option name (default ``--field-name``), ``short`` adds e.g. ``-o``, ``group`` puts it in a help
    section, ``cli=False`` keeps the field out of the command line (set by code only). List values are split
    on commas as well as spaces unless ``split=False`` (values that contain commas, e.g. Kaldi rspecifiers
    ``ark,t:FILE``).
    """
    meta = {"help": help, "flag": flag, "short": short, "metavar": metavar, "group": group, "cli": cli,
            "split": split}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return args[0], True
    return tp, False


def _list_item(text: str, conv):
    return [conv(x) for x in text.replace(",", " ").split()]


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return _MISSING


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or "(none)"
    return str(value)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                title: str | None = None, defaults: Mapping[str, Any] | None = None) -> None:
    """Add one option per field of dataclass ``cls`` to ``parser`` (in a help section ``title`` if given).

    ``defaults`` replaces the shown default of some fields (e.g. a stage whose epochs default differs)."""
    hints = _hints(cls)
    groups: dict[str | None, Any] = {}

    def target(name: str | None):
        name = name or title
        if name is None:
            return parser
        if name not in groups:
            groups[name] = parser.add_argument_group(name)
        return groups[name]

    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        default = (defaults or {}).get(f.name, _default_of(f))
        required = default is _MISSING
        names = [flag_of(f)] + ([f.metadata["short"]] if f.metadata.get("short") else [])
        help_text = f.metadata.get("help", "")
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if f.metadata.get("metavar"):
            kw["metavar"] = f.metadata["metavar"]
        origin = typing.get_origin(tp)
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kw["choices"] = list(typing.get_args(tp))
            kw["type"] = type(typing.get_args(tp)[0])
        elif origin in (list, tuple):
            (item,) = typing.get_args(tp)[:1] or (str,)
            conv = item if item in (int, float, str) else str
            kw["nargs"] = "+"
            split = f.metadata.get("split", True)
            kw["type"] = lambda s, conv=conv, split=split: _list_item(s, conv) if split else [conv(s)]
            kw["action"] = _FlattenList
        elif tp in (int, float, str):
            kw["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for type {tp!r}")
        if required:
            kw["required"] = True
        elif not (tp is bool and default is False):
            shown = "none" if default is None else _show(default)
            help_text = f"{help_text} (default: {shown})" if help_text else f"(default: {shown})"
        kw["help"] = help_text or None
        target(f.metadata.get("group")).add_argument(*names, **kw)


class _FlattenList(argparse.Action):
    """``--x 1 2 3`` and ``--x 1,2,3`` both give ``[1, 2, 3]``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [v for chunk in values for v in chunk])


def from_args(cls: type[C], args: argparse.Namespace | Mapping[str, Any], base: C | None = None,
              **overrides: Any) -> C:
    """Build ``cls`` from parsed options: given options win, then ``overrides``, then ``base``, then defaults.

    A ``ValueError`` from the config's own checks (``__post_init__``) becomes ``SystemExit`` with its message."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in given.items() if k in names}
    values.update({k: v for k, v in overrides.items() if k not in values})
    if base is None:
        missing = [flag_of(f) for f in dataclasses.fields(cls)
                   if f.name not in values and _default_of(f) is _MISSING]
        if missing:
            raise SystemExit(f"missing required option(s): {' '.join(missing)}")
    try:  # a config that checks its values (__post_init__) raises ValueError: a usage error on the command line
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e


def to_dict(cfg: Any) -> dict[str, Any]:
    """The JSON form (``config.json``)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Inverse of :func:`to_dict`; keys ``cls`` does not know are ignored, missing ones take defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def to_argv(cfg: Any, *, skip_defaults: bool = True) -> list[str]:
    """Command-line options that rebuild ``cfg`` through :func:`add_options` + :func:`from_args`."""
    out: list[str] = []
    for f in dataclasses.fields(cfg):
        if not f.metadata.get("cli", True):
            continue
        value = getattr(cfg, f.name)
        if skip_defaults and _default_of(f) is not _MISSING and value == _default_of(f):
            continue
        flag = flag_of(f)
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif value is None:
            raise ValueError(f"{flag}: None cannot be given on the command line (leave the option out)")
        elif isinstance(value, (list, tuple)):
            if value:
                out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out
