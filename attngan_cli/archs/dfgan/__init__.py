"""DF-GAN (Tao et al., CVPR 2022, "DF-GAN: A Simple and Effective Baseline for Text-to-Image Synthesis"),
``--arch dfgan``: one generator stage straight to the image size with deep text-image fusion, a
one-way-output discriminator, hinge loss with mismatched pairs and the matching-aware gradient penalty
(:mod:`.networks`, :mod:`.loss`). The frozen DAMSM text encoder gives the sentence vector; there is no
conditioning augmentation, no word attention and no DAMSM loss.

Settings (:data:`PRESETS`, from the paper and the official ``code/cfg/bird.yml``, ``coco.yml`` and
``code/src/train.py``): batch 32, Adam 1e-4 (G) and 4e-4 (D) with betas (0.0, 0.9), nf 32 (``--ngf`` and
``--ndf``), z 100, 256 px (``generator.base_size``; one stage), 1301 epochs on CUB and 301 on COCO, 18
words. The official code keeps no moving average of G, so the presets set ``ema_decay`` 0 (the "EMA"
copy that ``sample`` and ``eval`` read is G itself); ``--arch-option`` sets the penalty's weight and power.
Sampling truncates the noise as the official sampler: z = 0.88 * N(0, 1) truncated to [-2, 2]
(``sample``/``eval --truncation`` overrides 0.88).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from attngan_cli.archs.base import Architecture, LossContext, SettingsContext, refuse_unused
from attngan_cli.archs.dfgan.loss import DFGANLoss
from attngan_cli.archs.dfgan.networks import DFGenerator, block_count, make_discriminators
from attngan_cli.config.schema import TrainConfig
from attngan_cli.core.errors import InputError


@dataclass
class DFGANOptions:
    gp_weight: float = field(default=2.0, metadata={"help": "weight k of the matching-aware gradient penalty (0: off)"})
    gp_power: float = field(default=6.0, metadata={"help": "power p of the gradient norm in the penalty"})

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gp_weight) and self.gp_weight >= 0):
            raise InputError(f"--arch-option gp_weight must be a number >= 0, got {self.gp_weight}")
        if not (math.isfinite(self.gp_power) and self.gp_power >= 1):
            raise InputError(f"--arch-option gp_power must be a number >= 1, got {self.gp_power}")


def make_loss(cfg: TrainConfig, ctx: LossContext) -> DFGANLoss:
    opts = ARCH.option_values(cfg.arch_options)
    return DFGANLoss(opts.gp_weight, opts.gp_power, mismatch=cfg.mismatch)


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    refuse_unused(cfg, ARCH)
    if cfg.lambda_damsm != 0:
        raise InputError(f"--lambda (lambda_damsm) is {cfg.lambda_damsm}, but --arch dfgan has no DAMSM loss "
                         "(the official code trains without it); use --lambda 0 or leave it out")
    if cfg.generator.stages != 1:
        raise InputError(f"--stages (generator.stages) of --arch dfgan must be 1 (one stage to the image size), "
                         f"got {cfg.generator.stages}")
    block_count(cfg.generator.base_size)
    return cfg


# code/cfg/bird.yml, coco.yml: imsize 256, z_dim 100, cond_dim 256, batch_size 32, nf 32, max_epoch 1301
# (bird) / 301 (coco), WORDS_NUM 18; code/src/train.py: Adam lr 1e-4 (G) / 4e-4 (D and C), betas (0.0, 0.9)
_COMMON: dict[str, Any] = {
    "generator.stages": 1, "generator.base_size": 256, "generator.ngf": 32, "generator.z_dim": 100,
    "discriminator.ndf": 32, "batch_size": 32, "lr_g": 1e-4, "lr_d": 4e-4, "betas": (0.0, 0.9),
    "lambda_damsm": 0.0, "ema_decay": 0.0, "words": 18, "mismatch": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    "bird": {**_COMMON, "epochs": 1301},
    "coco": {**_COMMON, "epochs": 301},
    # the demo data at its full 64 px in one stage (4 blocks), CPU-sized: nf 16, the shapes epochs, the
    # official learning rates
    "shapes": {**_COMMON, "generator.base_size": 64, "generator.ngf": 16, "discriminator.ndf": 16, "words": 12},
}

ARCH = Architecture(
    name="dfgan",
    summary="DF-GAN: one stage of up-blocks with deep text-image fusion, one-way D, hinge + MA-GP",
    paper="Tao et al., CVPR 2022 (DF-GAN)",
    build_generator=DFGenerator,
    build_discriminators=make_discriminators,
    make_loss=make_loss,
    check_settings=check_settings,
    presets=PRESETS,
    options=DFGANOptions,
    noise_truncation=0.88,
    truncation_bound=2.0,
    word_attention=False,
)
