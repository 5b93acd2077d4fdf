"""`attngan pretrain`: train the DAMSM text and image encoders (paper section 3.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attngan_cli.cli.commands.common import command, progress, report
from attngan_cli.cli.commands.options import (
    Device,
    InceptionWeights,
    Precision,
    Quiet,
    Resume,
    RunsRoot,
    Seed,
    Workers,
)
from attngan_cli.cli.commands.watch_options import TensorBoardOption
from attngan_cli.cli.console import is_quiet
from attngan_cli.cli.flags import FLAGS
from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import check_output_folder
from attngan_cli.core.progress import NullProgress
from attngan_cli.storage.rundirs import RunDir


@command(flags=FLAGS["pretrain"])
def pretrain(
    data: Annotated[Path, typer.Argument(help="Prepared HDF5 dataset (from `attngan prep`).")],
    model: Annotated[str, typer.Option("--model", help="What to pretrain: damsm (the DAMSM text and image "
                                       "encoders, AttnGAN) or captioner (MirrorGAN's STREAM image captioner).")] = "damsm",
    preset: Annotated[str, typer.Option("--preset", help="Settings to start from: bird, coco or shapes "
                                        "(default: from the dataset: shapes for shapes data, else bird).")] = "",
    image_encoder: Annotated[str | None, typer.Option(
        "--image-encoder", help="Image backbone: inception-v3 (the paper; needs --inception-weights) or compact "
        "(small CNN trained from scratch, for CPUs and small images).")] = None,
    inception_weights: InceptionWeights = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Number of epochs (total, also when resuming).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Pairs per batch (also the number of "
                                                   "candidates in the matching loss).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate (decays x0.98 per epoch to a tenth).")] = None,
    snapshot_every: Annotated[int | None, typer.Option("--snapshot-every", help="Save a checkpoint and an "
                                                       "attention-map image every N epochs.")] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="End (with final.pt) after this many "
                                                      "minutes, finishing the current epoch's evaluation.")] = None,
    precision: Annotated[str | None, Precision.__metadata__[0]] = None,  # type: ignore[attr-defined]  # None: auto, or the resumed run's
    cache_features: Annotated[bool, typer.Option("--cache-features", help="Faster mode (a departure from the "
                                                 "official code): compute the frozen Inception features of 2 fixed "
                                                 "augmented views once, with eval-mode BatchNorm, and train on them.")] = False,
    frozen_bn: Annotated[str | None, typer.Option(
        "--frozen-bn", help="BatchNorm of the frozen Inception layers while pretraining: train (official: batch "
        "statistics, running statistics follow the data and are saved) or eval (keep the ImageNet statistics). "
        "Default: the preset's (bird, coco: train).")] = None,
    adam_per_epoch: Annotated[bool | None, typer.Option(
        "--adam-per-epoch/--one-adam", help="A new Adam at every epoch start (official) or one for the whole "
        "run. Default: the preset's (bird, coco: per epoch).")] = None,
    group_by: Annotated[str | None, typer.Option(
        "--group-by", help="Stored attributes (shapes data), comma-separated, that half of every batch agrees "
        "on, so the others become hard negatives; 'none' for random batches (default: the preset's; shapes: "
        "bg_color,color).")] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Micro-batches per step whose gradients add "
                                                   "up: the same --batch-size in less memory (the matching loss's "
                                                   "negatives are then a micro-batch).")] = None,
    tensorboard: TensorBoardOption = None,
    resume: Resume = None,
    runs: RunsRoot = Path("runs"),
    device: Annotated[str | None, Device.__metadata__[0]] = None,  # type: ignore[attr-defined]
    seed: Annotated[int | None, Seed.__metadata__[0]] = None,  # type: ignore[attr-defined]  # None: the preset's, or the resumed run's
    workers: Annotated[int | None, Workers.__metadata__[0]] = None,  # type: ignore[attr-defined]  # None: by device
    quiet: Quiet = False,
) -> None:
    """Pretrain the DAMSM text and image encoders (paper section 3.2).

    Writes runs/NNNNN-<dataset>-pretrain/ with config.json, stats.jsonl (losses, retrieval accuracy and
    R-precision per epoch), checkpoint-<epoch>.pt, final.pt, attention-map images and TensorBoard events
    (with the tensorboard package; view them with `tensorboard --logdir runs`), and prints the final
    checkpoint's path. A resumed run (--resume) continues as it was configured: only --epochs,
    --max-minutes, --snapshot-every, --workers, --device, --precision and --tensorboard may change; a
    flag that sets its weights, data order or updates (--batch-size, --seed, --lr, ...) is refused.

    Examples:

      attngan pretrain data/cub.h5 --preset bird --inception-weights inception_v3_google-0cc3c7bd.pth

      attngan pretrain data/shapes.h5 --preset shapes --image-encoder compact --epochs 5

      attngan pretrain data/cub.h5 --resume runs/00003-cub-pretrain

      attngan pretrain data/shapes.h5 --model captioner   (MirrorGAN's STREAM; logs loss, accuracy, BLEU-4)
    """
    if model not in ("damsm", "captioner"):
        raise InputError(f"--model must be damsm or captioner, got {model!r}")
    check_output_folder(runs, "--runs")
    if model == "captioner":
        damsm_only = {"--cache-features": cache_features or None, "--frozen-bn": frozen_bn,
                      "--adam-per-epoch/--one-adam": adam_per_epoch, "--group-by": group_by}
        given = [flag for flag, v in damsm_only.items() if v is not None]
        if given:
            raise InputError(f"{given[0]} is an option of the DAMSM pretraining, not of --model captioner")
        _pretrain_captioner(data, preset=preset or None, image_encoder=image_encoder, epochs=epochs,
                            batch_size=batch_size, lr=lr, snapshot_every=snapshot_every, max_minutes=max_minutes,
                            precision=precision, device=device, seed=seed, workers=workers, tensorboard=tensorboard,
                            resume=resume, runs=runs, inception_weights=inception_weights)
        return
    # settings and the loop import torch (seconds): only when the command runs, so the CLI starts fast
    from attngan_cli.core.distributed import init_from_env
    from attngan_cli.training.damsm import pretrain as run_pretrain
    from attngan_cli.training.resolve import resolve_pretrain

    overrides = {
        "image.backbone": image_encoder, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "snapshot_every": snapshot_every, "max_minutes": max_minutes, "precision": precision,
        "cache_features": cache_features or None, "image.frozen_bn": frozen_bn, "adam_per_epoch": adam_per_epoch,
        "device": device, "seed": seed, "workers": workers, "grad_accum": grad_accum,
        "group_by": _group_by_names(group_by), "tensorboard": tensorboard,
    }
    settings = resolve_pretrain(data, preset=preset or None, overrides=overrides, resume=resume,
                                inception_weights=inception_weights)
    init_from_env(settings.config.device)  # under torchrun: join the other processes (rank 0 makes the run)
    run = RunDir.create(runs, data.stem, "pretrain")
    final = run_pretrain(settings, run, progress=NullProgress() if is_quiet() else progress())
    report(str(final))


def _pretrain_captioner(data: Path, *, preset: str | None, image_encoder: str | None, runs: Path,
                        resume: Path | None, inception_weights: Path | None, **options: object) -> None:
    """``--model captioner``: MirrorGAN's STREAM on the same data (see training/captioner.py)."""
    from attngan_cli.core.distributed import init_from_env
    from attngan_cli.training.captioner import pretrain_captioner
    from attngan_cli.training.resolve import resolve_caption_pretrain

    overrides = {"model.backbone": image_encoder, **options}
    settings = resolve_caption_pretrain(data, preset=preset, overrides=overrides, resume=resume,
                                        inception_weights=inception_weights)
    init_from_env(settings.config.device)  # under torchrun: join the other processes (rank 0 makes the run)
    run = RunDir.create(runs, data.stem, "captioner")
    final = pretrain_captioner(settings, run, progress=NullProgress() if is_quiet() else progress())
    report(str(final))


def _group_by_names(option: str | None) -> list[str] | None:
    """The attribute names of ``--group-by`` (comma-separated; empty or 'none': no grouping); None when not given."""
    if option is None:
        return None
    return [] if option.strip().lower() in ("", "none") else [name.strip() for name in option.split(",")]
