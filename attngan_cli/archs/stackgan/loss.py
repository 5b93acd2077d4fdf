"""StackGAN's objective: AttnGAN's loss objects (:mod:`attngan_cli.archs.attngan.loss`).

* Stage-I, and Stage-II without an unconditional head (``--arch-option networks=pytorch-tf-d`` or
  ``glu``): the conditional terms only, as the TensorFlow StackGAN and the PyTorch port's Stage-I
  (``miscc/utils.py:compute_discriminator_loss``, the ``else`` branch). D: ``cond real + (cond fake +
  cond mismatched) / 2`` (``cond real + cond fake`` without mismatch); G: the conditional adversarial
  term of the stage being trained + ``kl_weight`` x KL (+ lambda x DAMSM when asked).
* Stage-II with the unconditional head (``networks=pytorch``, the PyTorch port's ``STAGE2_D``): D
  ``(cond real + uncond real) / 2 + (cond fake + cond mismatched + uncond fake) / 3``, G ``cond + uncond``
  (+ KL): AttnGAN's loss, which is the port's.
"""

from __future__ import annotations

from attngan_cli.archs.attngan.loss import AttnGANLoss, DiscriminatorLoss, GeneratorLoss
from attngan_cli.archs.base import LossContext
from attngan_cli.archs.stackgan.blocks import variant_of
from attngan_cli.config.schema import TrainConfig


class StackGANDiscriminatorLoss(DiscriminatorLoss):
    unconditional = False


class StackGANGeneratorLoss(GeneratorLoss):
    unconditional = False


def stackgan_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    both = cfg.generator.stages == 2 and variant_of(cfg.generator).stage2_unconditional
    d, g = (DiscriminatorLoss, GeneratorLoss) if both else (StackGANDiscriminatorLoss, StackGANGeneratorLoss)
    return AttnGANLoss(d(cfg.mismatch), g(cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, ctx.image_encoder))
