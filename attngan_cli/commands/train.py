"""`attngan train` (not implemented yet: issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command, not_implemented
from .options import Quiet


@command
def train(
    data: Annotated[Path | None, typer.Argument(help="Prepared HDF5 dataset (from `attngan prep`).")] = None,
    quiet: Quiet = False,
) -> None:
    """Train the attentional generator and its discriminators.

    Examples:

      attngan train data/cub.h5 --encoders runs/00000-cub-pretrain --stages 3 --lambda 5

      attngan train data/shapes.h5 --preset shapes --encoders runs/00001-shapes-pretrain --precision bf16
    """
    not_implemented("train", "issue 5")
