"""`attngan attend`: the paper's attention figure (Figure 1) for any caption."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from attngan_cli.cli.commands.common import command
from attngan_cli.cli.commands.options import Checkpoint, Device, Precision, Quiet, Seed
from attngan_cli.core.errors import InputError

log = logging.getLogger(__name__)


@command
def attend(
    caption: Annotated[str | None, typer.Argument(help="The caption to draw.")] = None,
    checkpoint: Checkpoint = ...,  # type: ignore[assignment]
    top: Annotated[int, typer.Option("--top", "-k", help="Words shown per attention model.")] = 5,
    out: Annotated[Path, typer.Option("--out", "-o", help="The figure (PNG); the JSON goes beside it.")] = Path("attention.png"),
    word_maps: Annotated[bool, typer.Option("--word-maps", help="Also save every word's map in <out>_maps/.")] = False,
    seed: Seed = 0,
    device: Device = "auto",
    precision: Precision = "auto",
    quiet: Quiet = False,
) -> None:
    """Draw the paper's Figure 1: each stage's image and its top-5 attended words.

    First row: the image of each stage (earlier ones bilinearly upsampled to the last size). Then one row per attention model with its top-K words: weights below 1/T set to 0 (equation 15), words ranked by the sum of their kept weights, each map upsampled with a Gaussian filter, blended over that stage's image and labelled index:word.

    Writes OUT (PNG) and OUT with .json (every word ranked, with its score, per attention model); --word-maps adds every word's map under <OUT>_maps/.

    Example:

      attngan attend "this bird has a red crown and white belly" -c runs/00002-cub-train --top 5

      attngan attend "a small green circle at the top left" -c final.pt -o fig.png --word-maps
    """
    # deferred: keeps `attngan --help` fast
    from attngan_cli.apps.sample import attend as draw
    from attngan_cli.core.device import resolve_device
    from attngan_cli.inference.pipeline import load_generator

    if caption is None:
        raise InputError("no caption given: attngan attend \"a caption\" -c CHECKPOINT")
    bundle = load_generator(checkpoint, resolve_device(device), need_vocab=True)
    res = draw(bundle, caption, out, top=top, seed=seed, precision=precision, word_maps=word_maps)
    for k, ranked in enumerate(res.rankings):
        log.info("attention %d: %s", k + 1, ", ".join(f"{w['index']}:{w['word']} ({w['score']:.3g})" for w in ranked[:top]))
    typer.echo(str(res.figure))
    typer.echo(str(res.json))
    if res.word_maps:
        typer.echo(str(res.word_maps[0].parent))
