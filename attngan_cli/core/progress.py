"""Progress reporting as a callback object, so the core never imports Rich.

The core receives a :class:`Progress` and calls ``progress.task(...)``; the CLI passes a Rich-backed
implementation (``attngan_cli.cli.console.RichProgress``), tests and library users pass nothing and get the
silent :class:`NullProgress`. Messages meant for the user go through the standard ``logging`` module
(logger ``attngan``), which the CLI routes to the Rich console on stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class ProgressTask(Protocol):
    """One progress bar. A context manager: leaving it marks the task finished."""

    def advance(self, n: float = 1, **fields: Any) -> None:
        """Move forward by ``n`` units; ``fields`` (e.g. ``loss_g=1.23``) are shown beside the bar."""

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        """Set absolute values."""

    def __enter__(self) -> ProgressTask: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Progress(Protocol):
    def task(self, description: str, total: float | None = None, unit: str = "it") -> ProgressTask:
        """Start a new bar. ``total=None`` means unknown length (a spinner)."""


class NullTask:
    """A task that records nothing visible but keeps counts (useful in tests)."""

    def __init__(self, description: str = "", total: float | None = None) -> None:
        self.description = description
        self.total = total
        self.completed = 0.0
        self.fields: dict[str, Any] = {}

    def advance(self, n: float = 1, **fields: Any) -> None:
        self.completed += n
        self.fields.update(fields)

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        self.fields.update(fields)

    def __enter__(self) -> NullTask:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class NullProgress:
    """Silent progress: the default everywhere in the core."""

    def __init__(self) -> None:
        self.tasks: list[NullTask] = []

    def task(self, description: str, total: float | None = None, unit: str = "it") -> NullTask:
        t = NullTask(description, total)
        self.tasks.append(t)
        return t


def track(progress: Progress | None, items: Iterable[T], description: str,
          total: float | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` while advancing a bar of ``progress`` (or silently when it is ``None``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with (progress or NullProgress()).task(description, total=total, unit=unit) as t:
        for item in items:
            yield item
            t.advance(1)
