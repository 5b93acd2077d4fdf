"""StackGAN's objective: AttnGAN's loss objects (:mod:`attngan_cli.archs.attngan.loss`) on the
conditional terms only, as the official StackGAN. D: ``cond real + (cond fake + cond mismatched) / 2``
(``cond real + cond fake`` without mismatch); G: the conditional adversarial term of the stage being
trained + ``kl_weight`` x KL (+ lambda x DAMSM when asked)."""

from __future__ import annotations

from attngan_cli.archs.attngan.loss import AttnGANLoss, DiscriminatorLoss, GeneratorLoss
from attngan_cli.archs.base import LossContext
from attngan_cli.config.schema import TrainConfig


class StackGANDiscriminatorLoss(DiscriminatorLoss):
    unconditional = False


class StackGANGeneratorLoss(GeneratorLoss):
    unconditional = False


def stackgan_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    return AttnGANLoss(StackGANDiscriminatorLoss(cfg.mismatch),
                       StackGANGeneratorLoss(cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, ctx.image_encoder))
