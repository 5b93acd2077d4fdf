"""Plumbing shared by the commands: error handling, quiet mode, progress construction."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import typer
from rich.markup import escape

from attngan_cli.cli.console import RichProgress, console, quiet_before_command, set_quiet, setup_logging
from attngan_cli.cli.flags import field_message
from attngan_cli.core.distributed import destroy as destroy_process_group
from attngan_cli.core.distributed import is_main_process
from attngan_cli.core.errors import AttnGANError, FieldError, Terminated

F = TypeVar("F", bound=Callable[..., Any])


def command(fn: F | None = None, *, flags: Mapping[str, str] | None = None) -> Any:
    """Wrap a command body: set up logging, turn :class:`AttnGANError` into a one-line error and exit 1,
    Ctrl-C into exit 130 and SIGTERM into exit 143 (training loops save their checkpoint before either
    reaches here). ``flags`` (config field -> flag, :data:`attngan_cli.cli.flags.FLAGS`) names the flag of
    a :class:`FieldError`'s field in its message. Use as ``@command`` or ``@command(flags=...)``."""
    if fn is None:
        return functools.partial(command, flags=flags)
    flag_of = flags or {}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # per run (an earlier in-process run's --quiet does not leak); `attngan -q COMMAND` counts too
        set_quiet(bool(kwargs.get("quiet")) or quiet_before_command())
        setup_logging()
        if not is_main_process():  # under torchrun rank 0 reports; the others only warn
            logging.getLogger("attngan_cli").setLevel(logging.WARNING)
        try:
            return fn(*args, **kwargs)
        except AttnGANError as e:
            message = field_message(e, flag_of) if isinstance(e, FieldError) else str(e)
            console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except Terminated:
            console.print("[yellow]terminated[/]")
            raise typer.Exit(143) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        finally:
            destroy_process_group()

    return wrapper  # type: ignore[return-value]


def progress() -> RichProgress:
    """Progress bars on stderr (rank 0 only under torchrun)."""
    return RichProgress() if is_main_process() else RichProgress(enabled=False)


def report(text: str) -> None:
    """A command's result line on stdout (a path to pipe on), once under torchrun."""
    if is_main_process():
        typer.echo(text)
