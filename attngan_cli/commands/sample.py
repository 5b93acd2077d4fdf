"""`attngan sample` (not implemented yet: issue 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command, not_implemented
from .options import Quiet


@command
def sample(
    captions: Annotated[list[str] | None, typer.Argument(help="Caption(s) to draw.")] = None,
    quiet: Quiet = False,
) -> None:
    """Generate images from captions with a trained (EMA) generator.

    Examples:

      attngan sample "this bird is red with white and has a very short beak" -c runs/00002-cub-train

      attngan sample --captions-file examples/bird_captions.txt -c G.pt --n 4 --grid
    """
    not_implemented("sample", "issue 6")
