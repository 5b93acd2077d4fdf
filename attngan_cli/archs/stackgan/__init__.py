"""StackGAN (Zhang et al., ICCV 2017), ``--arch stackgan``: its networks (:mod:`.networks`), its
objective (:mod:`.loss`) and its schedule (:mod:`.schedule`): Stage-I first (``--arch-option stage=1``),
then Stage-II on the frozen Stage-I (``--arch-option stage=2 --init STAGE1_RUN``; the Stage-II checkpoint
holds both stages).

Settings (:data:`PRESETS`): on CUB the TensorFlow StackGAN's ``stageI/cfg/birds.yml`` and
``stageII/cfg/birds.yml`` (= StackGAN-Pytorch's ``birds_s1/s2.yml``): batch 64, Adam 2e-4, KL 2.0,
EMBEDDING_DIM (condition) 128, GF_DIM 128 (Stage-I: 8 * 128 channels at 4x4, 64 at 64 px: ngf 64;
Stage-II: 4 * 128 = 8 ngf channels at 16x16), DF_DIM 64, 4 residual blocks in Stage-II, 600 epochs per
stage. On COCO StackGAN-Pytorch's ``code/cfg/coco_s1.yml`` (preset ``coco``: GF_DIM 192 = ngf 96,
DF_DIM 96, batch 128, 120 epochs) and ``coco_s2.yml`` (named preset ``stackgan-coco-stage2``: the same
widths, R_NUM 2, batch 40, 100 epochs). Both learning rates halve every ``lr_halve_every`` epochs:
50 (Stage-I) and 100 (Stage-II) on CUB, 20 on COCO. ``lambda_damsm`` is 0 (the paper has no DAMSM). No EMA: ``ema_decay`` 0, so the "EMA" generator that samples, ``eval`` and the Stage-II start
use is the trained generator itself, as both official codes (runs made before that kept an EMA of 0.999,
and keep using it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from attngan_cli.archs.attngan.loss import AttnGANLoss
from attngan_cli.archs.base import Architecture, LossContext, SettingsContext, refuse_unused
from attngan_cli.archs.stackgan.blocks import VARIANTS
from attngan_cli.archs.stackgan.loss import stackgan_loss
from attngan_cli.archs.stackgan.networks import STAGE_SCALE, StackGANGenerator, stackgan_discriminators
from attngan_cli.archs.stackgan.schedule import check_stage_schedule, init_from_stage_one, stage_one_encoders
from attngan_cli.config.schema import TrainConfig
from attngan_cli.config.serialize import apply_overrides
from attngan_cli.core.errors import InputError


@dataclass
class StackGANOptions:
    """``--arch-option stage=1|2``: which stage the run trains (it sets ``generator.stages``);
    ``networks``: the variant of the networks (it sets ``generator.variant``, :data:`.blocks.VARIANTS`)."""

    stage: int = field(default=1, metadata={
        "config": "generator.stages",
        "help": "1 trains Stage-I, 2 trains Stage-II on the frozen Stage-I given by --init"})
    networks: str = field(default="pytorch", metadata={
        "config": "generator.variant",
        "help": "pytorch (StackGAN-Pytorch's networks, the default), pytorch-tf-d (its generators with the "
                "TensorFlow StackGAN's Stage-II discriminator: conditional head only) or glu (AttnGAN's GLU "
                "blocks and orthogonal init: the networks of runs made before the variants)"})

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise InputError(f"--arch-option stage must be 1 (Stage-I) or 2 (Stage-II), got {self.stage}")
        if self.networks not in VARIANTS:
            raise InputError(f"--arch-option networks must be one of {', '.join(VARIANTS)}, got {self.networks!r}")


def make_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    return stackgan_loss(cfg, ctx)


STAGE2_COCO = "stackgan-coco-stage2"  # the named preset of coco_s2.yml


def stage_two_lr_schedule(cfg: TrainConfig) -> TrainConfig:
    """A new bird Stage-II run halves its learning rates every 100 epochs (``stageII/cfg/birds.yml``), where
    the bird preset gives Stage-I's 50."""
    if cfg.preset == "bird" and cfg.generator.stages == 2 and cfg.lr_halve_every == BIRD_HALVE_EVERY[0]:
        return apply_overrides(cfg, {"lr_halve_every": BIRD_HALVE_EVERY[1]})
    return cfg


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    refuse_unused(cfg, ARCH, uses=("init",))
    if cfg.discriminator.spectral_norm:
        raise InputError(f"--spectral-norm (discriminator.spectral_norm) is not used by --arch stackgan ({ARCH.paper}): "
                         "its discriminators are the original StackGAN's; leave it out")
    if ctx.resuming:  # a resumed run keeps its stage and its Stage-I
        return cfg
    cfg = stage_two_lr_schedule(cfg)
    if cfg.preset == "coco" and cfg.generator.stages == 2:
        raise InputError(f"--preset coco gives StackGAN's COCO Stage-I (coco_s1.yml: batch 128, 120 epochs); "
                         f"train Stage-II with --preset {STAGE2_COCO} (coco_s2.yml: batch 40, 100 epochs, "
                         "2 residual blocks)")
    if cfg.preset == STAGE2_COCO and cfg.generator.stages != 2:
        raise InputError(f"--preset {STAGE2_COCO} trains Stage-II (coco_s2.yml); train Stage-I with --preset coco")
    return check_stage_schedule(cfg, ctx.dataset_words, ctx.encoders.state.get("text_encoder"))


def default_encoders(cfg: TrainConfig) -> str:
    """Stage-II takes its Stage-I's DAMSM encoders unless --encoders is given."""
    return stage_one_encoders(cfg.init) if cfg.init else ""


def prepare_models(cfg: TrainConfig, G: nn.Module, G_ema: nn.Module) -> None:
    if cfg.init:
        init_from_stage_one(G, G_ema, cfg.init)


_OWN: dict[str, Any] = {"generator.variant": "pytorch", "ema_decay": 0.0, "lambda_damsm": 0.0}
# LR_DECAY_EPOCH of the TensorFlow stageI/cfg/birds.yml (Stage-I; Stage-II's stageII/cfg/birds.yml: 100,
# set by check_settings)
BIRD_HALVE_EVERY = (50, 100)
_BIRD: dict[str, Any] = {
    "generator.stages": 1, "generator.base_size": 64, "generator.ngf": 64, "generator.r_num": 4,
    "generator.condition_dim": 128, "discriminator.ndf": 64, "batch_size": 64, "epochs": 600,
    "lr_g": 2e-4, "lr_d": 2e-4, "kl_weight": 2.0, "lr_halve_every": BIRD_HALVE_EVERY[0], **_OWN,
}
# StackGAN-Pytorch code/cfg/coco_s1.yml: GF_DIM 192 (ngf 96), DF_DIM 96, CONDITION_DIM 128, KL 2.0,
# BATCH_SIZE 128, MAX_EPOCH 120, lr 2e-4 halved every LR_DECAY_EPOCH 20
_COCO: dict[str, Any] = {**_BIRD, "generator.ngf": 96, "discriminator.ndf": 96, "batch_size": 128, "epochs": 120,
                         "lr_halve_every": 20}

PRESETS: dict[str, dict[str, Any]] = {
    "bird": _BIRD,
    "coco": _COCO,
    "shapes": {"generator.stages": 1, "generator.r_num": 2, "kl_weight": 2.0, **_OWN},
}
# coco_s2.yml: the same widths, R_NUM 2, BATCH_SIZE 40, MAX_EPOCH 100
NAMED_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    STAGE2_COCO: ("coco", {**_COCO, "generator.stages": 2, "generator.r_num": 2, "batch_size": 40, "epochs": 100}),
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
    named_presets=NAMED_PRESETS,
    options=StackGANOptions,
    check_settings=check_settings,
    default_encoders=default_encoders,
    prepare_models=prepare_models,
    word_attention=False,
)
