"""`attngan runs`: an overview of the run directories (kind, data, progress, losses, status, size)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from attngan_cli.apps.runs_summary import (
    RunInfo,
    eval_text,
    list_runs,
    losses_text,
    progress_text,
    size_text,
    where_text,
)
from attngan_cli.cli.commands.common import command
from attngan_cli.cli.commands.options import Json
from attngan_cli.cli.console import stdout

STATUS_STYLE = {"finished": "green", "running": "cyan", "interrupted": "yellow", "NaN": "bold red", "stopped": "red",
                "save failed": "bold red", "failed": "bold red"}


@command
def runs(
    root: Annotated[Path, typer.Argument(metavar="[DIR]", help="The folder holding the run directories (or one run "
                                         "directory).")] = Path("runs"),
    json_: Json = False,
) -> None:
    """List the run directories with their kind, dataset, preset, progress, last losses, best R-precision,
    status, size on disk and what they ran on (processes x device, from environment.json).

    Status: finished (final.pt), interrupted (Ctrl-C or abort: continue with --resume), NaN (stopped on a
    non-finite loss), save failed (a checkpoint could not be written, e.g. a full disk: the last good one is
    kept), failed (the run died of an error: its stats.jsonl's last line says which), running (no end yet
    and files changed in the last 30 minutes) or stopped (no end and no change for longer: the process
    was killed). Best R-precision: the DAMSM's per-epoch value
    (pretrain) or `attngan eval`'s (metrics.jsonl).

    Examples:

      attngan runs

      attngan runs demo/runs --json
    """

    infos = list_runs(root)
    if json_:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    _print_table(root, infos)


def _print_table(root: Path, infos: list[RunInfo]) -> None:

    if not infos:
        stdout.print(f"no run directories in {root}", highlight=False)
        return
    last = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(i.modified for i in infos)))
    table = Table(title=f"runs in {root}", title_justify="left", box=box.SIMPLE_HEAD, caption_justify="left",
                  caption=f"R-prec: the best R-precision (pretrain: per epoch; train: attngan eval or --eval-every); eval: the last "
                  f"evaluation during training and the best (best.pt); last change {last}")
    # on a narrow terminal the run name, status, kind and devices stay whole; the other columns wrap
    for name, justify, min_width in (("run", "left", 0), ("status", "left", 0), ("kind", "left", 0),
                                     ("progress", "left", 6), ("last losses", "left", 7), ("R-prec", "right", 6), ("eval", "left", 6),
                                     ("size", "right", 5), ("data", "left", 4), ("preset", "left", 5),
                                     ("ran on", "left", 0)):
        table.add_column(name, justify=justify, no_wrap=not min_width, min_width=min_width or None)  # type: ignore[arg-type]
    for i in infos:
        rprec = f"{100 * i.best_rprec:.1f} %" if i.best_rprec is not None else "-"
        style = STATUS_STYLE.get(i.status, "")
        status = f"[{style}]{i.status}[/]" if style else i.status
        kind = i.kind if i.arch in (None, "attngan") else f"{i.kind} {i.arch}"
        table.add_row(i.name, status, kind, progress_text(i), losses_text(i), rprec, eval_text(i), size_text(i.size_bytes),
                      i.dataset, i.preset, where_text(i))
    # piped (not a terminal, where Rich assumes 80 columns): wide enough for one line per run
    out = stdout if stdout.is_terminal else Console(width=max(stdout.width, 130), highlight=False)
    out.print(table)
