"""`attngan prep` (not implemented yet: issue 3)."""

from __future__ import annotations

import typer

from .common import command, not_implemented

app = typer.Typer(help="Prepare a dataset as one HDF5 file (CUB, COCO, a custom folder, built-in shapes).",
                  no_args_is_help=True)


@app.command("shapes")
@command
def shapes() -> None:
    """Render the built-in synthetic captioned shapes dataset.

    Example:

      attngan prep shapes --out data/shapes.h5
    """
    not_implemented("prep shapes", "issue 3")
