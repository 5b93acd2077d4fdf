"""Options shared by the commands that watch a run (TensorBoard in ``train`` and ``pretrain``)."""

from __future__ import annotations

from typing import Annotated

import typer

TensorBoardOption = Annotated[bool | None, typer.Option(
    "--tensorboard/--no-tensorboard", help="Write TensorBoard events into the run directory (default: on when the "
    "tensorboard package is installed; a resumed run keeps its setting). View them with `tensorboard --logdir runs`.")]
