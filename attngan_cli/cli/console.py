"""The CLI's only Rich surface: one console on stderr, a Rich progress reporter and log routing.

The core receives :class:`RichProgress` as a :class:`attngan_cli.core.progress.Progress` callback object
and writes user messages through ``logging``; it never imports Rich.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
stdout = Console()  # machine output (paths, --json) goes to stdout

_state = {"quiet": False, "quiet_before_command": False}  # the latter: `attngan -q COMMAND`


# Every module logs to logging.getLogger(__name__), a child of this one, which reaches the console.
LOGGER = "attngan_cli"


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet
    logging.getLogger(LOGGER).setLevel(logging.WARNING if quiet else logging.INFO)


def is_quiet() -> bool:
    return _state["quiet"]


def set_quiet_before_command(quiet: bool) -> None:
    """``attngan -q COMMAND``: every command of this invocation is quiet, whatever its own ``--quiet``."""
    _state["quiet_before_command"] = quiet


def quiet_before_command() -> bool:
    return _state["quiet_before_command"]


def setup_logging() -> None:
    """Route the core's log records to the Rich console on stderr (once; records still propagate)."""
    log = logging.getLogger(LOGGER)
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        handler = RichHandler(console=console, show_time=False, show_path=False, markup=False,
                              rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.WARNING if is_quiet() else logging.INFO)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _RichTask:
    def __init__(self, owner: RichProgress, description: str, total: float | None) -> None:
        self._owner = owner
        self._progress = owner._ensure()
        self._id = self._progress.add_task(description, total=total, fields="")
        self._fields: dict[str, Any] = {}

    def _render_fields(self, fields: dict[str, Any]) -> str:
        self._fields.update(fields)
        return "  ".join(f"{k}={_fmt(v)}" for k, v in self._fields.items())

    def advance(self, n: float = 1, **fields: Any) -> None:
        kw = {"fields": self._render_fields(fields)} if fields else {}
        self._progress.update(self._id, advance=n, **kw)

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None, **fields: Any) -> None:
        kw: dict[str, Any] = {}
        if completed is not None:
            kw["completed"] = completed
        if total is not None:
            kw["total"] = total
        if description is not None:
            kw["description"] = description
        if fields:
            kw["fields"] = self._render_fields(fields)
        self._progress.update(self._id, **kw)

    def __enter__(self) -> _RichTask:
        return self

    def __exit__(self, *exc: object) -> None:
        task = self._progress.tasks[[t.id for t in self._progress.tasks].index(self._id)]
        if task.total is None:
            self._progress.update(self._id, total=task.completed or 1, completed=task.completed or 1)
        self._owner._finished(self._id)


class RichProgress:
    """Rich progress bars on stderr. Quiet (no bars) when stderr is not a terminal or ``--quiet`` is set."""

    def __init__(self, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = console.is_terminal and not is_quiet()
        self.enabled = enabled
        self._progress: Progress | None = None
        self._open: set[int] = set()

    def _ensure(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[fields]}"),
                console=console, transient=False, disable=not self.enabled,
            )
            self._progress.start()
        return self._progress

    def task(self, description: str, total: float | None = None, unit: str = "it") -> _RichTask:
        t = _RichTask(self, description, total)
        self._open.add(t._id)
        return t

    def _finished(self, task_id: int) -> None:
        self._open.discard(task_id)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
