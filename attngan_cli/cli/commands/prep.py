"""`attngan prep`: prepare a dataset as one HDF5 file (CUB, COCO, a custom folder, built-in shapes)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from attngan_cli.cli.commands.common import command, progress
from attngan_cli.cli.commands.options import Overwrite, Quiet, Seed
from attngan_cli.cli.console import stdout

log = logging.getLogger(__name__)

app = typer.Typer(
    help="Prepare a dataset as one HDF5 file (CUB, COCO, a custom folder, built-in shapes). Images are "
    "decoded, cropped and resized once; captions tokenized as the official AttnGAN does; training then "
    "reads only this file. `attngan prep SOURCE --help` shows each source's expected layout.",
    no_args_is_help=True,
)

Out = Annotated[Path | None, typer.Option("--out", "-o", help="Output HDF5 file (default: data/<source>.h5, "
                                          "e.g. data/cub.h5).")]
VocabOpt = Annotated[
    Path | None,
    typer.Option("--vocab", help="Use this vocabulary instead of building one: the official captions.pickle "
                 "(so official checkpoints' word indices apply), a vocabulary JSON, or a prepared .h5 file."),
]
AllowMissing = Annotated[
    bool, typer.Option("--allow-missing", help="Skip listed images that are absent (a partial download) "
                       "instead of failing; a summary says how many.")
]
ImageSize = Annotated[int, typer.Option("--image-size", help="Stored image side in pixels (256 * 76/64 = 304 "
                                        "feeds the official random crop for 256 px training).")]
Workers = Annotated[int, typer.Option("--workers", help="Processes decoding images in parallel (0 = in this process).")]
Compression = Annotated[str, typer.Option("--compression", help="Image compression in the file: lzf (fast, "
                                          "default), gzip (smaller, slower) or none.")]


def _report(path: Path) -> None:
    from attngan_cli.data.h5 import read_info  # deferred: keeps `attngan --help` fast

    info = read_info(path)
    log.info("%s", info.summary())
    stdout.print(str(path), highlight=False, soft_wrap=True)


def _out(out: Path | None, source: str) -> Path:
    return out if out is not None else Path("data") / f"{source}.h5"


@app.command("cub")
@command
def cub(
    root: Annotated[Path, typer.Argument(help="The AttnGAN birds folder (holding CUB_200_2011/ and text/).")],
    out: Out = None,
    vocab: VocabOpt = None,
    allow_missing: AllowMissing = False,
    image_size: ImageSize = 304,
    overwrite: Overwrite = False,
    workers: Workers = 0,
    compression: Compression = "lzf",
    quiet: Quiet = False,
) -> None:
    """Prepare CUB-200-2011 birds from the official AttnGAN folder.

    Each image is cropped around its bounding box exactly as the official code does (a square of half-side int(0.75 * max(w, h)) around the box centre, clipped to the image), then resized (shorter side, centre square) to --image-size. The first 10 captions of each text file are kept.

    Expected layout:

      ROOT/CUB_200_2011/images.txt          <id> <class>/<image>.jpg
      ROOT/CUB_200_2011/bounding_boxes.txt  <id> <x> <y> <width> <height>
      ROOT/CUB_200_2011/images/<class>/<image>.jpg
      ROOT/CUB_200_2011/image_class_labels.txt   (without class_info.pickle)
      ROOT/text/<class>/<image>.txt         10 captions per image, a line each
      ROOT/train/filenames.pickle           official split (+ class_info.pickle)
      ROOT/test/filenames.pickle            (else CUB_200_2011/train_test_split.txt)

    Examples:

      attngan prep cub data/birds --out data/cub.h5
      attngan prep cub data/birds --vocab data/birds/captions.pickle --out data/cub.h5
      attngan prep cub birds --vocab birds/captions.pickle --allow-missing
    """
    from attngan_cli.data.cub import prep_cub  # deferred: keeps `attngan --help` fast

    path = _out(out, "cub")
    with progress() as p:
        prep_cub(root, path, vocab=vocab, image_size=image_size, allow_missing=allow_missing,
                 overwrite=overwrite, progress=p, workers=workers, compression=compression)
    _report(path)


@app.command("coco")
@command
def coco(
    root: Annotated[Path, typer.Argument(help="The COCO folder (official AttnGAN layout or the standard download).")],
    out: Out = None,
    vocab: VocabOpt = None,
    allow_missing: AllowMissing = False,
    image_size: ImageSize = 304,
    captions_per_image: Annotated[int, typer.Option("--captions-per-image", help="Captions kept per image (fewer are padded by repeating, reported).")] = 5,
    overwrite: Overwrite = False,
    workers: Workers = 0,
    compression: Compression = "lzf",
    quiet: Quiet = False,
) -> None:
    """Prepare MS-COCO captions (train -> train, val -> test).

    Class ids: COCO has no class labels in AttnGAN; each image is its own class, as officially.

    Expected layout, either the official AttnGAN COCO folder:

      ROOT/train/filenames.pickle, ROOT/test/filenames.pickle  (image keys)
      ROOT/text/<key>.txt        5 captions per image, one per line
      ROOT/images/<key>.jpg

    or the standard COCO download:

      ROOT/annotations/captions_train2014.json    (2017 names work too)
      ROOT/annotations/captions_val2014.json
      ROOT/train2014/*.jpg, ROOT/val2014/*.jpg

    Examples:

      attngan prep coco data/coco --out data/coco.h5
      attngan prep coco data/coco --vocab data/coco/captions.pickle --workers 2
    """
    from attngan_cli.data.coco import prep_coco  # deferred: keeps `attngan --help` fast

    path = _out(out, "coco")
    with progress() as p:
        prep_coco(root, path, vocab=vocab, image_size=image_size, captions_per_image=captions_per_image,
                  allow_missing=allow_missing, overwrite=overwrite, progress=p, workers=workers,
                  compression=compression)
    _report(path)


@app.command("folder")
@command
def folder(
    root: Annotated[Path, typer.Argument(help="A folder of images with captions.")],
    out: Out = None,
    vocab: VocabOpt = None,
    allow_missing: AllowMissing = False,
    image_size: ImageSize = 304,
    captions_per_image: Annotated[int | None, typer.Option("--captions-per-image", help="Captions kept per image (default: the most any image has, at most 10); fewer are padded by repeating (reported).")] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of the usable images (drawn after dropping unreadable ones) put in the test split when no 'split' column is given; 0 = no test split (an empty test split is otherwise an error).")] = 0.1,
    labels_from_folders: Annotated[bool, typer.Option("--labels-from-folders", help="Class label = the image's first folder under ROOT.")] = False,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    workers: Workers = 0,
    compression: Compression = "lzf",
    quiet: Quiet = False,
) -> None:
    """Prepare your own images and captions.

    Expected layout: images (.jpg .png .webp ..., subfolders allowed) under ROOT, with captions in one of

      ROOT/captions.jsonl  {"file": "a/001.jpg", "caption": "a red bird"} per line
                           (or "captions": [...]; a file may appear on several lines)
      ROOT/captions.csv    header: file,caption; one row per caption
      <image stem>.txt     beside each image, one caption per line

    File paths are relative to ROOT and must stay inside it. Optional fields / columns: "label" (class name or number: same-class pairs are kept out of the contrastive DAMSM loss) and "split" (train or test; else --test-fraction of the usable images chosen with --seed form the test split). An empty test split is an error unless --test-fraction is 0. Images under ROOT that the table does not list are left out (reported).

    Examples:

      attngan prep folder my_photos --out data/mine.h5
      attngan prep folder my_photos --labels-from-folders --test-fraction 0.2 --image-size 152
    """
    from attngan_cli.data.folder import prep_folder  # deferred: keeps `attngan --help` fast

    path = _out(out, "folder")
    with progress() as p:
        prep_folder(root, path, vocab=vocab, image_size=image_size, captions_per_image=captions_per_image,
                    test_fraction=test_fraction, seed=seed, labels_from_folders=labels_from_folders,
                    allow_missing=allow_missing, overwrite=overwrite, progress=p, workers=workers,
                    compression=compression)
    _report(path)


@app.command("shapes")
@command
def shapes(
    out: Out = None,
    train: Annotated[int, typer.Option("--train", help="Training images.")] = 4000,
    test: Annotated[int, typer.Option("--test", help="Test images.")] = 1000,
    image_size: Annotated[int, typer.Option("--image-size", help="Stored image side in pixels (76 = 64 * 76/64 "
                                            "feeds the random crop for 64 px training).")] = 76,
    captions_per_image: Annotated[int, typer.Option("--captions-per-image", help="Differently worded captions per image.")] = 5,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    compression: Compression = "lzf",
    quiet: Quiet = False,
) -> None:
    """Render the built-in synthetic captioned shapes dataset (no download).

    Each image holds 1 to 3 objects (circle, square, triangle, star in 8 bold colours) on a black, gray, white or brown background. The largest object is the main one: its shape and colour are the class (32 classes); its colour, shape, position (3x3 grid: top left ... bottom right), size and the background colour are stored as attributes, and every caption names them, e.g. "a big red star in the top left corner on gray". Deterministic in --seed.

    Examples:

      attngan prep shapes
      attngan prep shapes --out data/shapes.h5 --train 8000 --test 1000 --seed 1
      attngan prep shapes --image-size 152 --out data/shapes128.h5
    """
    from attngan_cli.data.shapes import make_shapes  # deferred: keeps `attngan --help` fast

    path = _out(out, "shapes")
    with progress() as p:
        make_shapes(path, n_train=train, n_test=test, image_size=image_size,
                    captions_per_image=captions_per_image, seed=seed, overwrite=overwrite, progress=p,
                    compression=compression)
    _report(path)
