"""Strict (de)serialisation of config dataclasses: to and from JSON-ready dicts, dotted-key overrides,
and comparisons of stored configs.

``from_dict`` is strict: an unknown field is an error naming it (a misspelling is never dropped), a value
of the wrong type is an error naming the field, a missing field takes its default (so configs written
before a field existed still load).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, TypeVar

from attngan_cli.config.fields import validate
from attngan_cli.core.errors import ConfigMismatchError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return _jsonable(dataclasses.asdict(cfg))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build ``cls`` from a dict strictly: an unknown field is an error naming it; missing fields default."""
    if not isinstance(data, dict):
        raise ConfigMismatchError(f"config {where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigMismatchError(
            f"unknown config field {prefix}{unknown[0]} (known fields of {cls.__name__}: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = coerce(hints[name], value, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as the annotated type ``tp`` (a nested dataclass from its dict, an int as a float, a list
    as a tuple); a value of another type is a :class:`ConfigMismatchError` naming ``where``."""
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # type: ignore[arg-type]
            return value
        return from_dict(tp, value, where=where)  # type: ignore[arg-type]
    origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        if tp is int and isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigMismatchError(f"config field {where}: expected {tp.__name__}, got {value!r}")
    return value


def apply_overrides(cfg: T, overrides: dict[str, Any]) -> T:
    """A copy of ``cfg`` with dotted keys replaced, then checked (:func:`~attngan_cli.config.fields.validate`);
    ``None`` values are ignored (unset CLI flags)."""
    cfg = copy.deepcopy(cfg)
    hints_cache: dict[type, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        obj: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not hasattr(obj, part) or not dataclasses.is_dataclass(getattr(obj, part)):
                raise ConfigMismatchError(f"unknown config section {part!r} in override {key!r}")
            obj = getattr(obj, part)
        last = parts[-1]
        names = {f.name for f in dataclasses.fields(obj)}
        if last not in names:
            raise ConfigMismatchError(f"unknown config field {key!r}")
        hints = hints_cache.setdefault(type(obj), typing.get_type_hints(type(obj)))
        setattr(obj, last, coerce(hints[last], value, key))
    validate(cfg)
    return cfg


def diff(saved: dict[str, Any], requested: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Fields whose values differ between two config dicts, as (dotted name, saved, requested)."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key, "<absent>"), requested.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, name + "."))
        elif a != b:
            out.append((name, a, b))
    return out


def check_matches(saved: dict[str, Any], requested: dict[str, Any], fields: list[str], what: str) -> None:
    """Fail with a message naming the first of ``fields`` (dotted) whose values differ."""
    for f in fields:
        a, b = _get_dotted(saved, f), _get_dotted(requested, f)
        if a != b:
            raise ConfigMismatchError(f"{what}: {f} is {a!r} there but {b!r} was requested")


def _get_dotted(d: dict[str, Any], key: str) -> Any:
    cur: Any = d
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return "<absent>"
        cur = cur[part]
    return cur
