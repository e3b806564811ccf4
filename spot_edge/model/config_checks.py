"""Checks of configurations that come from files and the command line.

Configurations (``SpotConfig``, the training configuration) come from YAML, JSON and ``--set``
overrides. A value of the wrong type must be named with its field and the expected type
(``num_parts must be an integer, got 'x'``) instead of surfacing later as a TypeError deep in
the model, and a syntax error must name the file, line and column.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import types
import typing
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ConfigError", "field_type_errors", "read_config_file", "shown"]


class ConfigError(ValueError):
    """A configuration value is invalid or two configurations disagree."""


@functools.lru_cache(maxsize=None)
def _field_hints(klass: type) -> dict[str, Any]:
    return typing.get_type_hints(klass)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _describe(hint: Any) -> str:
    """The expected type in words: ``an integer``, ``a list of 4 integers or null``..."""
    if _is_union(hint):
        args = typing.get_args(hint)
        words = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            item = _describe(args[0]).removeprefix("an ").removeprefix("a ")
            return f"a list of {len(args)} {item}s"
        item = _describe(args[0]).removeprefix("an ").removeprefix("a ") if args else "value"
        return f"a list of {item}s"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} fields"
    return "a mapping" if origin is dict or hint is dict else "a value"


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if _is_union(hint):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, (hint, dict))
    return True


def shown(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (values quoted in error messages)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_type_errors(klass: type, values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """One message per value of ``values`` whose type does not fit the annotation of the same
    field of the dataclass ``klass`` (``optim.lr must be a number, got 'fast'``); unknown names
    are left to the caller. Nested dataclass fields given as mappings are checked too."""
    hints = _field_hints(klass)
    problems = []
    for name, value in values.items():
        if name not in hints:
            continue
        hint = hints[name]
        if not _fits(value, hint):
            problems.append(f"{prefix}{name} must be {_describe(hint)}, got {shown(value)}")
        elif dataclasses.is_dataclass(hint) and isinstance(value, dict):
            known = {f.name for f in dataclasses.fields(hint)}
            unknown = sorted(set(value) - known)
            if unknown:
                problems.append(f"unknown {prefix}{name} field(s) {', '.join(unknown)}; "
                                f"known: {', '.join(sorted(known))}")
            problems.extend(field_type_errors(hint, value, f"{prefix}{name}."))
    return problems


def read_config_file(path: str | Path) -> Any:
    """The parsed contents of a YAML (``.yaml``/``.yml``) or JSON file; a syntax error is a
    :class:`ConfigError` naming the file, line and column, a missing file ``FileNotFoundError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (UTF-8)") from None
    if path.suffix not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
