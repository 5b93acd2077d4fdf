"""StackGAN (Zhang et al., ICCV 2017), ``--arch stackgan``: its networks (:mod:`.networks`), its
conditional-only objective (:mod:`.loss`) and its schedule (:mod:`.schedule`): Stage-I first
(``--arch-option stage=1``), then Stage-II on the frozen Stage-I (``--arch-option stage=2 --init
STAGE1_RUN``; the Stage-II checkpoint holds both stages).

Settings (:data:`PRESETS`): StackGAN ``stageI/cfg/birds.yml`` and ``stageII/cfg/birds.yml``: batch 64,
Adam 2e-4, KL 2.0, EMBEDDING_DIM (condition) 128, GF_DIM 128 (Stage-I: 8 * 128 channels at 4x4, 64 at
64 px: ngf 64; Stage-II: 4 * 128 = 8 ngf channels at 16x16), DF_DIM 64, 4 residual blocks in Stage-II,
600 epochs per stage (Stage-II's MAX_EPOCH 1200 counts Stage-I's 600). Not reproduced: the learning rate
halving every 50 (Stage-I) or 100 (Stage-II) epochs. COCO has no published configuration: the bird values
with the coco preset's epochs. ``lambda_damsm`` is 0 (the paper has no DAMSM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from attngan_cli.archs.attngan.loss import AttnGANLoss
from attngan_cli.archs.base import Architecture, LossContext, SettingsContext, refuse_unused
from attngan_cli.archs.stackgan.loss import stackgan_loss
from attngan_cli.archs.stackgan.networks import STAGE_SCALE, StackGANGenerator, stackgan_discriminators
from attngan_cli.archs.stackgan.schedule import check_stage_schedule, init_from_stage_one, stage_one_encoders
from attngan_cli.config.schema import TrainConfig
from attngan_cli.core.errors import InputError


@dataclass
class StackGANOptions:
    """``--arch-option stage=1|2``: which stage the run trains (it sets ``generator.stages``)."""

    stage: int = field(default=1, metadata={
        "config": "generator.stages",
        "help": "1 trains Stage-I, 2 trains Stage-II on the frozen Stage-I given by --init"})

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise InputError(f"--arch-option stage must be 1 (Stage-I) or 2 (Stage-II), got {self.stage}")


def make_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    return stackgan_loss(cfg, ctx)


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    refuse_unused(cfg, ARCH, uses=("init",))
    if cfg.discriminator.spectral_norm:
        raise InputError(f"--spectral-norm (discriminator.spectral_norm) is not used by --arch stackgan ({ARCH.paper}): "
                         "its discriminators are the original StackGAN's; leave it out")
    if ctx.resuming:  # a resumed run keeps its stage and its Stage-I
        return cfg
    return check_stage_schedule(cfg, ctx.dataset_words, ctx.encoders.state.get("text_encoder"))


def default_encoders(cfg: TrainConfig) -> str:
    """Stage-II takes its Stage-I's DAMSM encoders unless --encoders is given."""
    return stage_one_encoders(cfg.init) if cfg.init else ""


def prepare_models(cfg: TrainConfig, G: nn.Module, G_ema: nn.Module) -> None:
    if cfg.init:
        init_from_stage_one(G, G_ema, cfg.init)


_BIRD: dict[str, Any] = {
    "generator.stages": 1, "generator.base_size": 64, "generator.ngf": 64, "generator.r_num": 4,
    "generator.condition_dim": 128, "discriminator.ndf": 64, "batch_size": 64, "epochs": 600,
    "lr_g": 2e-4, "lr_d": 2e-4, "kl_weight": 2.0, "lambda_damsm": 0.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "bird": _BIRD,
    "coco": {**_BIRD, "epochs": 120},
    "shapes": {"generator.stages": 1, "generator.r_num": 2, "kl_weight": 2.0, "lambda_damsm": 0.0},
}

ARCH = Architecture(
    name="stackgan",
    summary="StackGAN: Stage-I (base px) then Stage-II (4 x base) on the frozen Stage-I (--arch-option stage=1, "
            "stage=2)",
    paper="Zhang et al., ICCV 2017 (StackGAN)",
    build_generator=StackGANGenerator,
    build_discriminators=stackgan_discriminators,
    make_loss=make_loss,
    stage_scale=STAGE_SCALE,
    presets=PRESETS,
    options=StackGANOptions,
    check_settings=check_settings,
    default_encoders=default_encoders,
    prepare_models=prepare_models,
    word_attention=False,
)
