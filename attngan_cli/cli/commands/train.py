"""`attngan train`: train the attentional generator and its discriminators (paper section 3.1)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from attngan_cli.archs.base import describe_options, option_fields, parse_option_pairs, resolve_options
from attngan_cli.archs.registry import DEFAULT_ARCH, arch_names, get_arch
from attngan_cli.cli.commands.common import command, progress, report
from attngan_cli.cli.commands.options import Device, Precision, Quiet, Resume, RunsRoot, Seed, Workers
from attngan_cli.cli.commands.watch_options import TensorBoardOption
from attngan_cli.cli.flags import FLAGS
from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import check_output_folder
from attngan_cli.storage.rundirs import RunDir

log = logging.getLogger(__name__)


def _overrides(**options: Any) -> dict[str, Any]:
    """Config overrides (dotted keys) from the options given; an option's name is its key unless listed."""
    config_keys = {"arch": "generator.arch", "stages": "generator.stages", "ngf": "generator.ngf", "ndf": "discriminator.ndf",
                   "spectral_norm": "discriminator.spectral_norm", "lambda_": "lambda_damsm", "init": "init"}
    return {config_keys.get(k, k): v for k, v in options.items() if v is not None}


def _archs_with(flag: str) -> list[str]:
    """The architectures with option ``flag`` (or, for ``sentence_attention``, that capability)."""
    if flag == "sentence_attention":
        return [n for n in arch_names() if get_arch(n).sentence_attention]
    return [n for n in arch_names() if flag in option_fields(get_arch(n))]


def check_stage_options(arch: str | None, stage: int | None, stages: int | None, init: Path | None,
                        resume: Path | None) -> dict[str, Any]:
    """The deprecated ``--stage N``: ``--arch-option stage=N`` of the architecture that has that option
    (StackGAN's schedule), only on a new run, instead of --stages. Returns the architecture options it means."""
    if stage is None:
        return {}
    if resume is not None:
        raise InputError("--stage: a resumed run keeps its stage (leave out --stage)")
    owners = _archs_with("stage")
    if arch not in owners:
        raise InputError(f"--stage is for --arch {' or '.join(owners)} (trained one stage after the other); --arch "
                         f"{arch or DEFAULT_ARCH} trains every stage at once (--stages)")
    if stages is not None:
        raise InputError(f"give --stage (--arch {arch}) or --stages, not both")
    resolve_options(get_arch(arch), {"stage": stage})  # the architecture checks the value
    return {"stage": stage}


@command(flags=FLAGS["train"])
def train(
    data: Annotated[Path | None, typer.Argument(help="Prepared HDF5 dataset (from `attngan prep`); "
                                                     "optional with --resume.")] = None,
    encoders: Annotated[Path | None, typer.Option("--encoders", "-e", help="Pretrained DAMSM: a pretrain run "
                                                  "directory or its checkpoint (optional with --resume).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="Settings to start from: bird, coco or shapes "
                                        "(default: from the dataset: shapes for shapes data, coco for COCO, "
                                        "else bird).")] = "",
    arch: Annotated[str | None, typer.Option("--arch", help=f"Architecture: {', '.join(arch_names())} (default "
                                             f"{DEFAULT_ARCH}; see README's architecture table); a baseline applies "
                                             "its paper's settings over the preset.")] = None,
    arch_option: Annotated[list[str] | None, typer.Option("--arch-option", metavar="KEY=VALUE", help="An option of "
                                                          "the architecture (repeatable), e.g. stage=2 for --arch "
                                                          "stackgan (Stage-II); `--arch-option help` lists them.")] = None,
    stage: Annotated[int | None, typer.Option("--stage", help="Deprecated: --arch-option stage=1|2 (--arch stackgan: 1 "
                                              "trains Stage-I, 2 trains Stage-II on the frozen Stage-I given by "
                                              "--init).")] = None,
    init: Annotated[Path | None, typer.Option("--init", help="--arch stackgan --arch-option stage=2: the finished "
                                              "Stage-I run (or its final.pt) of the same dataset.")] = None,
    color_consistency: Annotated[float | None, typer.Option("--color-consistency", help="Weight of StackGAN++'s "
                                                            "colour-consistency term between neighbouring stages "
                                                            "(0 = off).")] = None,
    sentence_attention: Annotated[bool, typer.Option("--sentence-attention", help="MirrorGAN's sentence "
                                                     "attention (GLAM): the same as --arch mirrorgan.")] = False,
    captioner: Annotated[Path | None, typer.Option("--captioner", help="MirrorGAN's STREAM: a captioner run (from "
                                                   "`attngan pretrain --model captioner`) or its checkpoint; adds "
                                                   "the re-description loss.")] = None,
    stream_weight: Annotated[float | None, typer.Option("--stream-weight", help="Weight of the re-description loss "
                                                        "(MirrorGAN's lambda; default 20, the paper's).")] = None,
    stages: Annotated[int | None, typer.Option("--stages", help="Generator stages 1-4 (64, 128, 256, 512 px with base 64).")] = None,
    lambda_: Annotated[float | None, typer.Option("--lambda", help="DAMSM loss weight (0 = no DAMSM, the paper's ablation).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Images per step.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs to train (in total, also when resuming).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many steps (0 = no limit).")] = None,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", help="End (with final.pt) after this many "
                                                      "minutes of training (0 = no limit).")] = None,
    lr_g: Annotated[float | None, typer.Option("--lr-g", help="Generator learning rate (Adam).")] = None,
    lr_d: Annotated[float | None, typer.Option("--lr-d", help="Discriminator learning rate (Adam).")] = None,
    ngf: Annotated[int | None, typer.Option("--ngf", help="Generator width.")] = None,
    ndf: Annotated[int | None, typer.Option("--ndf", help="Discriminator width.")] = None,
    spectral_norm: Annotated[bool | None, typer.Option("--spectral-norm/--no-spectral-norm", help="Discriminators "
                                                        "with spectral normalisation and no BatchNorm (DM-GAN's; "
                                                        "with --arch attngan: TISE's AttnGAN++). Default: on for "
                                                        "--arch dmgan, off for the others.")] = None,
    words: Annotated[int | None, typer.Option("--words", help="Caption length used in training.")] = None,
    workers: Annotated[int | None, Workers.__metadata__[0]] = None,  # type: ignore[attr-defined]
    precision: Annotated[str | None, Precision.__metadata__[0]] = None,  # type: ignore[attr-defined]
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Use the channels-last memory layout.")] = False,
    compile_: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile G and the Ds "
                                                  "(default: on with CUDA, off on CPUs, where it measured slower; "
                                                  "if compiling fails, training goes on without it).")] = None,
    grad_accum: Annotated[int | None, typer.Option("--grad-accum", help="Micro-batches per step whose gradients add "
                                                   "up: the same --batch-size in less memory.")] = None,
    sync_bn: Annotated[bool, typer.Option("--sync-bn", help="Under torchrun on GPUs: SyncBatchNorm in G and the Ds "
                                          "(default: each process normalises its own share).")] = False,
    no_mismatch: Annotated[bool, typer.Option("--no-mismatch", help="Drop the official (real image, wrong sentence) "
                                              "D term: the paper's equation 5 alone.")] = False,
    sample_every: Annotated[int | None, typer.Option("--sample-every", help="Steps between grids of EMA samples.")] = None,
    snapshot_every: Annotated[int | None, typer.Option("--snapshot-every", help="Epochs between checkpoints.")] = None,
    keep_last: Annotated[int | None, typer.Option("--keep-last", help="Periodic checkpoints kept (plus final.pt).")] = None,
    eval_every: Annotated[int | None, typer.Option("--eval-every", help="Score the EMA generator every N steps "
                                                   "on the held-out split (0 = never); logged to stats.jsonl, "
                                                   "TensorBoard and `attngan runs`; keeps best.pt.")] = None,
    eval_metrics: Annotated[str | None, typer.Option("--eval-metrics", help="Metrics of --eval-every, "
                                                     "comma-separated (as attngan eval -m; default rprecision).")] = None,
    eval_samples: Annotated[int | None, typer.Option("--eval-samples", help="Images per evaluation (default "
                                                     "2000).")] = None,
    best_metric: Annotated[str | None, typer.Option("--best-metric", help="The metric best.pt is kept by (default: "
                                                    "the first of --eval-metrics; FID: lower is better, the "
                                                    "others higher).")] = None,
    eval_split: Annotated[str | None, typer.Option("--eval-split", help="The split evaluated on: test (default) "
                                                   "or train.")] = None,
    eval_inception_weights: Annotated[Path | None, typer.Option(
        "--eval-inception-weights", help="TF-Inception weights file for --eval-metrics is/fid (as attngan eval "
        "--inception-weights; nothing is downloaded).")] = None,
    eval_encoders: Annotated[Path | None, typer.Option(
        "--eval-encoders", help="DAMSM for R-precision during training (default: the training's; TISE's caveat "
        "then applies).")] = None,
    tensorboard: TensorBoardOption = None,
    resume: Resume = None,
    runs: RunsRoot = Path("runs"),
    device: Annotated[str | None, Device.__metadata__[0]] = None,  # type: ignore[attr-defined]
    seed: Annotated[int | None, Seed.__metadata__[0]] = None,  # type: ignore[attr-defined]
    quiet: Quiet = False,
) -> None:
    """Train the attentional generator and its discriminators (paper section 3.1).

    Writes a run directory with config.json, stats.jsonl, samples-<step>.png (EMA samples for fixed test
    captions), checkpoint-<epoch>.pt, final.pt and TensorBoard events (with the tensorboard package; view
    them with `tensorboard --logdir runs`); prints the final checkpoint's path. Ctrl-C saves
    interrupted.pt; --resume RUN continues exactly where it stopped. --eval-every N scores the EMA
    generator every N steps (as attngan eval) and keeps best.pt and best.json (its score and manifest).

    Examples:

      attngan train data/cub.h5 --encoders runs/00000-cub-pretrain --stages 3 --lambda 5

      attngan train data/shapes.h5 --preset shapes --encoders runs/00001-shapes-pretrain --precision bf16

      attngan train --resume runs/00002-shapes-train --epochs 40

      attngan train data/cub.h5 -e runs/00000-cub-pretrain --arch stackgan++ --lambda 5

      attngan train data/cub.h5 -e runs/00000-cub-pretrain --arch stackgan --arch-option stage=1

      attngan train data/cub.h5 --arch stackgan --arch-option stage=2 --init runs/00003-cub-train

      attngan train data/shapes.h5 -e runs/00001-shapes-pretrain --arch mirrorgan --captioner runs/00003-shapes-captioner

      attngan train data/cub.h5 -e runs/00000-cub-pretrain --spectral-norm

      attngan train data/cub.h5 -e runs/00000-cub-pretrain --arch dmgan
      attngan train data/cub.h5 -e runs/00000-cub-pretrain --eval-every 2000 --eval-metrics rprecision,fid --best-metric fid --eval-inception-weights pt_inception-2015-12-05-6726825d.pth
    """
    # settings and the loop import torch (seconds): only when the command runs, so the CLI starts fast
    from attngan_cli.core.distributed import init_from_env
    from attngan_cli.training.gan import train_gan
    from attngan_cli.training.resolve import resolve_train

    if "help" in (arch_option or []):
        report(describe_options(get_arch(arch or DEFAULT_ARCH)))
        return
    check_output_folder(runs, "--runs")
    options = parse_option_pairs(arch_option or [])
    if stage is not None:
        log.warning("--stage is deprecated: use --arch-option stage=%d", stage)
        options = {**check_stage_options(arch, stage, stages, init, resume), **options}
    if sentence_attention:
        (owner,) = _archs_with("sentence_attention")
        if arch not in (None, owner):
            raise InputError(f"--sentence-attention is --arch {owner}; it cannot be combined with --arch {arch}")
        arch = owner
    if stream_weight is not None and captioner is None and resume is None:
        raise InputError("--stream-weight weighs the re-description loss of a captioner: give --captioner RUN too")
    overrides = _overrides(
        arch=arch, init=str(init) if init is not None else None, color_consistency=color_consistency,
        stages=stages, lambda_=lambda_, batch_size=batch_size, epochs=epochs, max_steps=max_steps, max_minutes=max_minutes, lr_g=lr_g,
        lr_d=lr_d, ngf=ngf, ndf=ndf, spectral_norm=spectral_norm, words=words, workers=workers, precision=precision,
        channels_last=channels_last or None, compile=compile_, grad_accum=grad_accum, sync_bn=sync_bn or None, mismatch=False if no_mismatch else None,
        sample_every=sample_every, snapshot_every=snapshot_every, keep_last=keep_last, device=device, seed=seed,
        tensorboard=tensorboard, stream_weight=stream_weight,
    )
    overrides.update({key: value for key, value in {
        "evaluation.every": eval_every, "evaluation.samples": eval_samples, "evaluation.best_metric": best_metric,
        "evaluation.split": eval_split,
        "evaluation.metrics": eval_metrics.split(",") if eval_metrics is not None else None,
        "evaluation.inception_weights": str(eval_inception_weights) if eval_inception_weights is not None else None,
        "evaluation.encoders": str(eval_encoders) if eval_encoders is not None else None,
    }.items() if value is not None})
    settings = resolve_train(data, encoders=encoders, preset=preset or None, overrides=overrides, resume=resume,
                             captioner=captioner, arch_options=options)
    init_from_env(settings.config.device)  # under torchrun: join the other processes (rank 0 makes the run)
    run = RunDir.create(runs, Path(settings.config.dataset).stem, "train")
    with progress() as bar:
        final = train_gan(settings, run, progress=bar)
    report(str(final))
