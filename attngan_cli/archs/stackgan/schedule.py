"""StackGAN's schedule: Stage-I is trained first (``--arch stackgan --arch-option stage=1``), then
Stage-II on the frozen Stage-I (``--arch-option stage=2 --init STAGE1_RUN``).

:func:`check_stage_schedule` is the architecture's ``check_settings`` hook, run by
:func:`attngan_cli.training.resolve.resolve_train` before a run directory exists: the ``--init`` run must be a finished (``final.pt``) StackGAN Stage-I of the same dataset, with
the weight shapes this Stage-II config gives Stage-I and the same DAMSM text encoder. :func:`init_from_stage_one`
copies its Stage-I weights (the trained generator's, not its EMA: neither official StackGAN keeps one) into
the new generator and its EMA;
the Stage-II checkpoint then holds both stages, so ``sample`` and ``eval`` need nothing else.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from attngan_cli.archs.stackgan.blocks import LEGACY, variant_of
from attngan_cli.config.schema import TrainConfig
from attngan_cli.config.serialize import apply_overrides, from_dict
from attngan_cli.core.errors import ConfigMismatchError, InputError
from attngan_cli.data.h5 import read_info
from attngan_cli.storage.checkpoints import (
    GAN_KIND,
    Checkpoint,
    check_vocab,
    load_checkpoint,
    load_module_state,
    same_state,
)
from attngan_cli.storage.rundirs import FINAL_NAME, resolve_checkpoint

log = logging.getLogger(__name__)

NAME = "stackgan"  # the architecture (GeneratorConfig.arch) of a Stage-I run
# Stage-I's weight shapes: Stage-II's config must give Stage-I the same.
STAGE_ONE_FIELDS = ("base_size", "ngf", "z_dim", "condition_dim", "embedding_dim")
FLAG_OF = {"ngf": "--ngf", "base_size": "generator.base_size", "z_dim": "generator.z_dim",
           "condition_dim": "generator.condition_dim", "embedding_dim": "generator.embedding_dim"}


def stage_one_checkpoint(init: str | os.PathLike[str]) -> Checkpoint:
    """The ``final.pt`` of a finished train run (or that file), loaded with mapped tensors; an unfinished
    run or another file is an :class:`InputError` naming it."""
    p = Path(init)
    if not p.exists():
        raise InputError(f"--init {p}: no such run directory or checkpoint (give the finished Stage-I run)")
    if p.is_dir() and not (p / FINAL_NAME).is_file():
        raise InputError(f"--init {p}: the run is not finished (no {FINAL_NAME}); finish the Stage-I run first "
                         f"(`attngan train --resume {p}`)")
    path = resolve_checkpoint(p, what="Stage-I checkpoint")
    if path.name != FINAL_NAME:
        raise InputError(f"--init {path}: not the {FINAL_NAME} of a finished Stage-I run (give the run directory "
                         f"or its {FINAL_NAME})")
    return load_checkpoint(path, kind=GAN_KIND, mmap=True)


def stage_one_encoders(init: str | os.PathLike[str]) -> str:
    """The DAMSM encoders the Stage-I run ``init`` was trained with (Stage-II's default ``--encoders``)."""
    ckpt = stage_one_checkpoint(init)
    encoders = ckpt.config.get("encoders", "")
    if not encoders:
        raise InputError(f"--init {ckpt.path}: the checkpoint names no DAMSM encoders; pass --encoders")
    return str(encoders)


def check_stage_one(cfg: TrainConfig, dataset_words: list[str], text_encoder_state: dict | None) -> Path:
    """Check that ``cfg.init`` can start the Stage-II run ``cfg``; returns its ``final.pt`` (absolute).

    ``text_encoder_state``: the DAMSM text encoder of ``cfg.encoders`` (None: not compared)."""
    ckpt = stage_one_checkpoint(cfg.init)
    where = f"--init {ckpt.path}"
    saved = from_dict(TrainConfig, ckpt.config, where=f"checkpoint {ckpt.path} config")
    g = saved.generator
    if g.arch != NAME or g.stages != 1:
        raise InputError(f"{where}: a {g.arch} run with {g.stages} stage(s), not a StackGAN Stage-I (train one "
                         "with --arch stackgan --arch-option stage=1)")
    check_vocab(ckpt, dataset_words, f"dataset {cfg.dataset}")
    _check_same_dataset(where, saved.dataset, cfg.dataset)
    if variant_of(g).blocks != variant_of(cfg.generator).blocks:
        raise ConfigMismatchError(f"{where}: Stage-I has the {g.variant or LEGACY} networks but this run asks for "
                                  f"{cfg.generator.variant or LEGACY} (--arch-option networks): give Stage-I's, "
                                  f"{g.variant or LEGACY}")
    for name in STAGE_ONE_FIELDS:
        a, b = getattr(g, name), getattr(cfg.generator, name)
        if a != b:
            raise ConfigMismatchError(f"{where}: Stage-I has {FLAG_OF[name]} {a} but this run gives it {b}; "
                                      f"use the Stage-I run's value")
    saved_text = ckpt.extra.get("damsm_text_encoder")
    if text_encoder_state is not None and isinstance(saved_text, dict) and not same_state(saved_text, text_encoder_state):
        raise ConfigMismatchError(f"{where}: Stage-I was trained with another DAMSM text encoder "
                                  f"({ckpt.extra.get('damsm_path')}) than --encoders {cfg.encoders}; leave out "
                                  "--encoders to use Stage-I's")
    return ckpt.path.resolve()


def _check_same_dataset(where: str, stage_one_data: str, data: str) -> None:
    if Path(stage_one_data).resolve() == Path(data).resolve():
        return
    if not Path(stage_one_data).is_file():
        raise InputError(f"{where}: Stage-I was trained on {stage_one_data}, which is gone; Stage-II must train "
                         f"on the same dataset, not {data}")
    a, b = read_info(stage_one_data), read_info(data)
    key_a = (a.source, a.n_train, a.n_test, a.captions_per_image, list(a.vocab.words))
    key_b = (b.source, b.n_train, b.n_test, b.captions_per_image, list(b.vocab.words))
    if key_a != key_b:
        raise InputError(f"{where}: Stage-I was trained on {stage_one_data} ({a.source}, {a.n_train} train images), "
                         f"a different dataset than {data} ({b.source}, {b.n_train} train images)")


def check_stage_schedule(cfg: TrainConfig, dataset_words: list[str], text_encoder_state: dict | None) -> TrainConfig:
    """A new Stage-II run (``stage=2``) needs ``--init``, a finished Stage-I of this data (checked by
    :func:`check_stage_one`, against ``text_encoder_state``, the run's DAMSM text encoder; stored as its
    absolute ``final.pt``); ``--init`` is for nothing else."""
    staged = cfg.generator.stages == 2
    if staged and not cfg.init:
        raise InputError("--arch stackgan --arch-option stage=2 trains Stage-II on a finished Stage-I: pass --init "
                         "STAGE1_RUN")
    if cfg.init and not staged:
        raise InputError(f"--init is for --arch stackgan --stage 2 (--arch-option stage=2: Stage-II on a finished "
                         f"Stage-I), not a StackGAN with {cfg.generator.stages} stage(s)")
    if staged:
        cfg = apply_overrides(cfg, {"init": str(check_stage_one(cfg, dataset_words, text_encoder_state))})
    return cfg


def init_from_stage_one(G: nn.Module, G_ema: nn.Module, init: str | os.PathLike[str]) -> None:
    """Copy the Stage-I weights of the finished run ``init`` (its trained generator, not its EMA) into
    ``G.stage1`` and ``G_ema.stage1``."""
    ckpt = load_checkpoint(resolve_checkpoint(init, what="Stage-I checkpoint"), kind=GAN_KIND)
    state = ckpt.state.get("generator")
    prefix = "stage1."
    stage1 = {k[len(prefix):]: v for k, v in (state or {}).items() if k.startswith(prefix)}
    for module in (G, G_ema):
        load_module_state(module.stage1, stage1, "Stage-I generator", ckpt.path)
    log.info("Stage-II starts on the frozen Stage-I of %s (step %d)", ckpt.path, ckpt.step or 0)
