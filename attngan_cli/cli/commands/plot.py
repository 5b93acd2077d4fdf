"""`attngan plot`: the loss and metric curves of one or more runs in one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from attngan_cli.apps.plot import plot_runs
from attngan_cli.cli.commands.common import command
from attngan_cli.cli.console import console


@command
def plot(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (runs/NNNNN-<dataset>-<command>), overlaid.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write.")] = Path("curves.png"),
    label: Annotated[str | None, typer.Option(
        "--labels", help="Names of the runs in the legends, comma-separated, one per run (default: the "
        "directory names).")] = None,
    smooth: Annotated[float, typer.Option("--smooth", help="Smoothing of the curves as TensorBoard's slider "
                                          "(0 = none, below 1; the raw values stay as a faint line).")] = 0.6,
    title: Annotated[str | None, typer.Option("--title", help="A title over the panels.")] = None,
) -> None:
    """Draw the loss and metric curves of runs from their stats.jsonl and metrics.jsonl into one PNG.

    Several runs are overlaid, one colour each (compare --lambda 0 with --lambda 5, or two learning
    rates). Panels: D loss, G's adversarial loss, the DAMSM terms of G's loss and KL (train runs); the DAMSM
    train and test loss (pretrain runs); R-precision (pretrain per epoch, and `attngan eval` results);
    one panel per other evaluated metric. Needs matplotlib: pip install -e ".[plot]". Prints the PNG's path.

    Examples:

      attngan plot runs/00001-shapes-train -o curves.png

      attngan plot demo/runs/00001-shapes-train demo-no-damsm/runs/00001-shapes-train --labels "lambda 5,lambda 0"
    """

    labels = [s.strip() for s in label.split(",")] if label is not None else None
    try:
        path = plot_runs(runs, out, labels=labels, smooth=smooth, title=title)
    except ImportError as e:  # printed here: the install hint's ".[plot]" must not be read as Rich markup

        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    typer.echo(str(path))
