"""`attngan eval` (not implemented yet: issue 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command, not_implemented
from .options import Quiet


@command
def evaluate(
    quiet: Quiet = False,
) -> None:
    """Evaluate a generator: R-precision, Inception Score, FID.

    Examples:

      attngan eval --metric rprecision -c runs/00002-cub-train --data data/cub.h5

      attngan eval --metric is,fid -c G.pt --data data/cub.h5 --inception-weights pt_inception.pth --json
    """
    not_implemented("eval", "issue 7")
