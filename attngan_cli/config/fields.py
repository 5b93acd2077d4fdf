"""Checked dataclass fields: the allowed values of a field are declared beside it, and one :func:`validate`
reads them.

A field made by :func:`bounded`, :func:`one_of` or :func:`satisfying` carries a check in its metadata
(``metadata["check"]``). :func:`validate` walks a dataclass instance, its nested dataclasses included, and
raises a :class:`~attngan_cli.core.errors.FieldError` naming the first field whose value fails, by its
dotted path (``generator.ngf must be >= 1, got 0``). Job configs, the captioner config, sampling settings
and evaluation options are all checked this way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from attngan_cli.core.errors import FieldError

CHECK = "check"  # the metadata key of a field's check


class Check(Protocol):
    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``must be >= 1, got 0``), or None when it is allowed."""


def _number(x: float) -> str:
    """``x`` as a bound is written: whole numbers in full (``4294967295``, not ``4.29497e+09``)."""
    return str(int(x)) if math.isfinite(x) and float(x).is_integer() else f"{x:g}"


def finite_problem(value: Any) -> str | None:
    """``must be a finite number, got inf`` for a float that is NaN or infinite, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    return None


@dataclass(frozen=True)
class Bound:
    """A number between ``low`` and ``high``, each end included unless said otherwise."""

    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = True
    high_inclusive: bool = True

    def describe(self) -> str:
        lo = "[" if self.low_inclusive else "("
        hi = "]" if self.high_inclusive else ")"
        low, high = _number(self.low), _number(self.high)
        if self.high == math.inf:
            return f">= {low}" if self.low_inclusive else f"> {low}"
        if self.low == -math.inf:
            return f"<= {high}" if self.high_inclusive else f"< {high}"
        return f"in {lo}{low}, {high}{hi}"

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        above = value >= self.low if self.low_inclusive else value > self.low
        below = value <= self.high if self.high_inclusive else value < self.high
        return above and below

    def problem(self, value: Any) -> str | None:
        return finite_problem(value) or (None if self.allows(value) else f"must be {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class Choices:
    """One of a fixed set of values."""

    options: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.options:
            return None
        return f"must be one of {', '.join(str(o) for o in self.options)}, got {value!r}"


@dataclass(frozen=True)
class Predicate:
    """Any other rule: ``test(value)`` true; ``expected`` says what that means (``a power of two >= 8``)."""

    test: Callable[[Any], bool]
    expected: str

    def problem(self, value: Any) -> str | None:
        try:
            ok = bool(self.test(value))
        except (TypeError, ValueError):
            ok = False
        shown = list(value) if isinstance(value, tuple) else value
        return None if ok else f"must be {self.expected}, got {shown!r}"


@dataclass(frozen=True)
class OrNone:
    """``None`` (not set: filled in later, e.g. by an evaluation protocol) or a value that passes ``check``."""

    check: Any

    def problem(self, value: Any) -> str | None:
        return None if value is None else self.check.problem(value)


def or_none(checked_field: Any) -> Any:
    """The field made by :func:`bounded` / :func:`one_of` / :func:`satisfying`, with ``None`` allowed too."""
    return dataclasses.field(default=checked_field.default,
                             metadata={CHECK: OrNone(checked_field.metadata[CHECK])})


def bounded(default: Any, *, low: float = -math.inf, high: float = math.inf, low_inclusive: bool = True,
            high_inclusive: bool = True) -> Any:
    """A dataclass field with ``default`` whose value must lie between ``low`` and ``high``."""
    return dataclasses.field(default=default, metadata={CHECK: Bound(low, high, low_inclusive, high_inclusive)})


def one_of(default: Any, choices: Iterable[Any]) -> Any:
    """A dataclass field with ``default`` whose value must be one of ``choices``."""
    options = tuple(choices)
    if default not in options:
        raise ValueError(f"default {default!r} is not one of {options!r}")
    return dataclasses.field(default=default, metadata={CHECK: Choices(options)})


def satisfying(default: Any, test: Callable[[Any], bool], expected: str) -> Any:
    """A dataclass field with ``default`` whose value must pass ``test`` (``expected`` describes the rule)."""
    return dataclasses.field(default=default, metadata={CHECK: Predicate(test, expected)})


def field_check(cls: type, name: str) -> Check | None:
    """The check declared on field ``name`` of dataclass ``cls`` (None when it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get(CHECK)
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def validate(obj: Any, prefix: str = "") -> None:
    """Check every field of the dataclass instance ``obj`` (and of the dataclasses it holds) against the
    check in its metadata; raise a :class:`FieldError` naming the first failing field by its dotted path.
    A float field, checked or not (alone or in a tuple or list), must be finite: NaN and infinity never are
    settings."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        items = value if isinstance(value, (tuple, list)) else (value,)
        problem = next((p for p in map(finite_problem, items) if p is not None), None)
        if problem is not None and isinstance(value, (tuple, list)):
            problem = f"must hold finite numbers, got {list(value)!r}"
        check = f.metadata.get(CHECK)
        if problem is None and check is not None:
            problem = check.problem(value)
        if problem is not None:
            raise FieldError(path, problem)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, f"{path}.")


SEED_MAX = 2**32 - 1  # numpy's seed must be below 2**32


def seed_field(default: int = 0) -> Any:
    """A random seed: an integer in [0, 2**32 - 1], what torch, numpy and Python's ``random`` all accept."""
    return bounded(default, low=0, high=SEED_MAX)
