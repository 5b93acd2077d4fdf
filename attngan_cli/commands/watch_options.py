"""Options shared by the commands that watch a run (TensorBoard in ``train`` and ``pretrain``)."""

from __future__ import annotations

from typing import Annotated

import typer

NoTensorBoard = Annotated[bool, typer.Option(
    "--no-tensorboard", help="Write no TensorBoard events (by default they go into the run directory when the "
    "tensorboard package is installed; view them with `tensorboard --logdir runs`).")]
