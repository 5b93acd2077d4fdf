"""`attngan import` (not implemented yet: issue 8)."""

from __future__ import annotations

import typer

from .common import command, not_implemented

app = typer.Typer(help="Convert official AttnGAN checkpoints into self-describing attngan checkpoints.",
                  no_args_is_help=True)


@app.command("official")
@command
def official() -> None:
    """Import the official AttnGAN release files.

    Example:

      attngan import official --generator bird_AttnGAN2.pth --text-encoder text_encoder200.pth --captions captions.pickle --preset bird --out imported/bird
    """
    not_implemented("import official", "issue 8")
