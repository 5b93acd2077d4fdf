"""`attngan sample`: images from any text with a trained (EMA) generator."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from attngan_cli.cli.commands.common import command, progress
from attngan_cli.cli.commands.options import Checkpoint, Device, Precision, Quiet, Seed, Truncation
from attngan_cli.cli.flags import FLAGS

log = logging.getLogger(__name__)


@command(flags=FLAGS["sample"])
def sample(
    captions: Annotated[list[str] | None, typer.Argument(help="Caption(s) to draw.")] = None,
    checkpoint: Checkpoint = ...,  # type: ignore[assignment]
    captions_file: Annotated[
        Path | None, typer.Option("--captions-file", "-f", help="A text file with one caption per line (blank lines skipped).")
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", help="Images per caption.")] = 1,
    seed: Seed = 0,
    which: Annotated[str, typer.Option("--which", help="Which stages' images to write: all (64, 128, 256, ...) or "
                                       "last (only the final one).")] = "all",
    stage: Annotated[str | None, typer.Option("--stage", hidden=True, help="Deprecated spelling of --which.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("samples"),
    grid: Annotated[bool, typer.Option("--grid", help="Also write one grid per caption (samples x stages).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images generated at once.")] = 16,
    device: Device = "auto",
    precision: Precision = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Write into a folder that holds an earlier "
                                            "run's samples, deleting those first (other files are kept).")] = False,
    caption_back: Annotated[bool, typer.Option("--caption-back", help="MirrorGAN's re-description: caption every "
                                               "last-stage image with the STREAM captioner (the run's, or "
                                               "--captioner); prints PATH<TAB>CAPTION and writes "
                                               "captions_back.jsonl.")] = False,
    captioner: Annotated[Path | None, typer.Option("--captioner", help="The captioner for --caption-back (a "
                                                   "captioner run or checkpoint; default: the one the run was "
                                                   "trained with).")] = None,
    truncation: Truncation = None,
    quiet: Quiet = False,
) -> None:
    """Generate images from captions with a trained (EMA) generator.

    The model, vocabulary and settings come from the checkpoint alone. Images are named c<caption>-s<sample>-<size>.png (e.g. c00000-s00-256.png) and their paths are printed as they are written; captions.jsonl beside them lists each caption's index, source line and the words used.

    The same seed gives the same images, whatever the batch size (each image's noise is seeded by the seed, its caption index and its sample index). Captions are streamed: files with thousands of lines are fine.

    Examples:

      attngan sample "this bird is red with white and has a very short beak" -c runs/00002-cub-train

      attngan sample --captions-file examples/bird_captions.txt -c G.pt --n 4 --grid

      attngan sample "a red square on a blue background" -c runs/00001-shapes-train --which last -o out/
    """
    # deferred: keeps `attngan --help` fast
    from attngan_cli.apps.sample import CaptionSource, SampleSettings, sample_to_dir
    from attngan_cli.config.fields import validate
    from attngan_cli.core.device import resolve_device
    from attngan_cli.core.distributed import init_from_env
    from attngan_cli.inference.pipeline import load_generator

    if stage is not None:
        log.warning("sample --stage is deprecated: use --which %s", stage)
        which = stage
    settings = SampleSettings(n=n, seed=seed, which=which, grid=grid, batch_size=batch_size, precision=precision,
                              overwrite=overwrite, truncation=truncation)
    validate(settings)
    source = CaptionSource(captions or [], captions_file)
    init_from_env(device)  # under torchrun each process draws a share of the captions
    bundle = load_generator(checkpoint, resolve_device(device), need_vocab=True)
    reader = None
    if caption_back:
        from attngan_cli.archs.stream import captioner_for_generator

        reader = captioner_for_generator(bundle, captioner, resolve_device(device))  # fails before any image
    count = 0
    last = f"-{bundle.image_sizes[-1]}.png"
    finals: list[Path] = []
    for path in sample_to_dir(bundle, source, out, settings, progress=None if quiet else progress()):
        typer.echo(str(path))
        count += 1
        if path.name.startswith("c") and path.name.endswith(last):
            finals.append(path)
    log.info("wrote %d files to %s", count, out)
    if reader is not None:
        from attngan_cli.apps.sample import CAPTIONS_BACK
        from attngan_cli.archs.stream import caption_back as describe
        from attngan_cli.core.distributed import gather_object, is_main_process
        from attngan_cli.core.fileio import atomic_write_text

        texts = describe(reader, finals)
        for path, text in zip(finals, texts, strict=True):
            typer.echo(f"{path}\t{text}")
        lines = [json.dumps({"file": p.name, "caption_back": t}) for p, t in zip(finals, texts, strict=True)]
        lines = sorted(line for part in gather_object(lines) or [] for line in part)  # every rank's, on rank 0
        if is_main_process():
            atomic_write_text(out / CAPTIONS_BACK, "".join(line + "\n" for line in lines))
