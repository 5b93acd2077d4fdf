"""DM-GAN (Zhu et al., CVPR 2019; MinfengZhu/DM-GAN), ``--arch dmgan``: the dynamic-memory generator
(:mod:`.generator`) on discriminators with spectral normalisation (:mod:`.discriminators`), trained with
AttnGAN's objective (adversarial terms, the DAMSM word and sentence term on the last stage, the KL term:
official ``code/miscc/losses.py`` and ``code/trainer.py`` are AttnGAN's). The generator's EMA (decay
0.999) is the engine's, as the official ``avg_param_G``.

Presets (over the dataset presets): ``code/cfg/bird_DMGAN.yml`` and ``coco_DMGAN.yml`` with the defaults
of ``code/miscc/config.py`` (Z_DIM 100, CONDITION_DIM 100, WORDS_NUM 18 for birds) and ``code/trainer.py``
l.154-161 (Adam 2e-4 for G and D, betas (0.5, 0.999)). ``attngan attend`` on a DM-GAN run draws the
memory's key-addressing weights of every refinement stage per word.
"""

from __future__ import annotations

from typing import Any

from attngan_cli.archs.attngan.loss import AttnGANLoss, attngan_loss
from attngan_cli.archs.base import Architecture, LossContext, SettingsContext, refuse_unused
from attngan_cli.archs.dmgan.discriminators import make_discriminators
from attngan_cli.archs.dmgan.generator import DMGANGenerator
from attngan_cli.config.schema import TrainConfig

_OFFICIAL: dict[str, Any] = {
    "generator.stages": 3, "generator.base_size": 64, "generator.ngf": 64, "generator.z_dim": 100,
    "generator.condition_dim": 100, "discriminator.ndf": 32, "discriminator.spectral_norm": True,
    "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "ema_decay": 0.999,
}

PRESETS: dict[str, dict[str, Any]] = {
    # code/cfg/bird_DMGAN.yml: BATCH_SIZE 10, MAX_EPOCH 800, GF_DIM 64, DF_DIM 32, R_NUM 2, LAMBDA 5
    "bird": {**_OFFICIAL, "generator.r_num": 2, "batch_size": 10, "epochs": 800, "words": 18, "lambda_damsm": 5.0},
    # code/cfg/coco_DMGAN.yml: BATCH_SIZE 16, MAX_EPOCH 200, R_NUM 3, WORDS_NUM 12, LAMBDA 50
    "coco": {**_OFFICIAL, "generator.r_num": 3, "batch_size": 16, "epochs": 200, "words": 12, "lambda_damsm": 50.0},
    # the demo data: the shapes preset's sizes and rates, with DM-GAN's discriminators
    "shapes": {"discriminator.spectral_norm": True},
}


def make_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    """AttnGAN's objective (official DM-GAN ``discriminator_loss``, ``generator_loss``, ``KL_loss``)."""
    return attngan_loss(cfg, ctx)


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    refuse_unused(cfg, ARCH)
    return cfg


ARCH = Architecture(
    name="dmgan",
    summary="dynamic memory over the words (writing gate, key addressing, response gate) at every stage after "
            "the first; spectral-norm discriminators",
    paper="Zhu et al., CVPR 2019 (DM-GAN)",
    build_generator=DMGANGenerator,
    build_discriminators=make_discriminators,
    make_loss=make_loss,
    check_settings=check_settings,
    presets=PRESETS,
    memory=True,
)
