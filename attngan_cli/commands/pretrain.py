"""`attngan pretrain` (not implemented yet: issue 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command, not_implemented
from .options import Quiet


@command
def pretrain(
    data: Annotated[Path | None, typer.Argument(help="Prepared HDF5 dataset (from `attngan prep`).")] = None,
    quiet: Quiet = False,
) -> None:
    """Pretrain the DAMSM text and image encoders (paper section 3.2).

    Examples:

      attngan pretrain data/cub.h5 --preset bird --inception-weights inception_v3_google.pth

      attngan pretrain data/shapes.h5 --preset shapes --image-encoder compact --epochs 5
    """
    not_implemented("pretrain", "issue 4")
