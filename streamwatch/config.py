"""Typed configuration: dataclasses filled from a TOML file and command-line flags.

Every service describes its settings as a dataclass whose defaults are the original design's numbers.
``load()`` reads an optional TOML file (optionally one ``[section]`` of it), lays explicitly given CLI
flags on top, checks every key and type, and lets the dataclass's ``__post_init__`` check ranges by
raising ``ValueError``. Every failure is a ``ConfigError`` with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from streamwatch.errors import ConfigError
from streamwatch.files import read_bytes

T = TypeVar("T")

# The shortest cycle of any polling service: shorter is a busy loop against Prometheus (interval = 1e-9
# was accepted), not a faster service.
MIN_INTERVAL_S = 0.1


def check_interval(name: str, value: float) -> None:
    """``ValueError`` unless ``value`` is a usable cycle length of at least ``MIN_INTERVAL_S``."""
    if not value >= MIN_INTERVAL_S:  # NaN fails too
        raise ValueError(
            f"{name} must be at least {MIN_INTERVAL_S:g} s (shorter is a busy loop), got {value:g}"
        )


def check_host(name: str, value: str) -> None:
    """``ValueError`` for an empty bind address: '' binds every interface, never what a typo meant."""
    if not value.strip():
        raise ValueError(f"{name} must name an address to listen on (127.0.0.1; 0.0.0.0 for every interface)")


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML file, or raise ``ConfigError`` naming the file and the problem."""
    p = Path(path)
    data = read_bytes(p, "config file", ConfigError)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per bracket: 100,000 of them exhaust the stack
        raise ConfigError(f"{p}: not valid TOML: nested too deeply") from None


def load(
    cls: type[T],
    path: str | os.PathLike[str] | None = None,
    *,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    prepare: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
) -> T:
    """Build ``cls`` from defaults, then the TOML file (or its ``[section]``), then ``overrides``.

    ``overrides`` holds only the CLI flags the user actually gave (``None`` values are dropped), so a flag
    wins over the file and the file wins over the default. ``prepare(table, where)`` rewrites the file's
    table before it is typed (the monitor's presets expand into queries there).
    """
    data: dict[str, Any] = {}
    where = cls.__name__
    if path is not None:
        doc = read_toml(path)
        where = str(path)
        if section is not None:
            part = doc.get(section, {})
            if not isinstance(part, dict):
                raise ConfigError(f"{path}: [{section}] must be a table")
            data.update(part)
            where = f"{path} [{section}]"
        else:
            data.update(doc)
        if prepare is not None:
            data = prepare(data, where)
    if overrides:
        data.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(cls, data, where)


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "config", *, text: bool = False) -> T:
    """Build dataclass ``cls`` from a mapping, checking unknown keys, types and ranges.

    With ``text``, string values are first read as the field's type (``"20"`` for an int field is 20,
    ``"true"`` for a bool True): values typed on a command line, as ``--param window=20``. TOML values
    are typed already, so a file's ``port = "eighty"`` stays an error.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {known})")
    if text:
        data = {key: from_text(hints[key], value, f"{where}: '{key}'") for key, value in data.items()}
    kwargs = {key: _coerce(hints[key], value, f"{where}: '{key}'") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def from_text(tp: Any, value: Any, where: str) -> Any:
    """A command-line string read as ``tp`` (int, float, bool, or an optional one); anything else is
    returned unchanged for ``_coerce`` to check."""
    if not isinstance(value, str):
        return value
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    try:
        if tp is int:
            return int(value)
        if tp is float:
            return float(value)
    except ValueError:
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(f"{where} must be {kind}, got {value!r}") from None
    if tp is bool:
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return lowered == "true"
    return value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where} has the wrong type: {value!r}")
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where} must be one of {choices}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(vt, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table, got {type(value).__name__}")
        return from_mapping(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        # TOML and float() both accept nan and inf; no setting means either, and they break time arithmetic.
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where} must be a path string, got {value!r}")
        return Path(value)
    return value
