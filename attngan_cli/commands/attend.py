"""`attngan attend` (not implemented yet: issue 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command, not_implemented
from .options import Quiet


@command
def attend(
    caption: Annotated[str | None, typer.Argument(help="The caption to draw.")] = None,
    quiet: Quiet = False,
) -> None:
    """Draw the paper's Figure 1: each stage's image and its top-5 attended words.

    Example:

      attngan attend "this bird has a red crown and white belly" -c runs/00002-cub-train --top 5
    """
    not_implemented("attend", "issue 6")
