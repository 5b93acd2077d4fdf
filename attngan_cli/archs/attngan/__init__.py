"""AttnGAN (Xu et al., CVPR 2018): the attentional generative network (:mod:`.generator`), its
discriminators (:mod:`.discriminators`) and its objective (:mod:`.loss`). Its settings are the dataset
presets themselves (:data:`attngan_cli.config.schema.PRESETS`).

``--captioner RUN`` adds MirrorGAN's STREAM re-description loss (:mod:`attngan_cli.archs.stream`)
to this objective: the "STREAM alone" ablation of MirrorGAN's paper (``--arch mirrorgan`` adds GLAM).
"""

from __future__ import annotations

from attngan_cli.archs.attngan.discriminators import STAGE_SCALE, make_discriminators
from attngan_cli.archs.attngan.generator import Generator
from attngan_cli.archs.attngan.loss import AttnGANLoss, attngan_loss
from attngan_cli.archs.base import Architecture, LossContext, SettingsContext, refuse_unused
from attngan_cli.archs.registry import image_sizes
from attngan_cli.archs.stream import check_train_captioner, stream_for_training
from attngan_cli.config.schema import TrainConfig


def make_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    """AttnGAN's objective, with the STREAM term when the run has a captioner (MirrorGAN's objective too:
    GLAM changes its generator, not what it is trained on)."""
    term, record = stream_for_training(cfg.captioner, cfg.stream_weight, cfg.dataset, ctx.vocab_words,
                                       image_sizes(cfg.generator)[-1], ctx.device, cfg.stream_end_target)
    return attngan_loss(cfg, ctx, [term] if term is not None else [], record)


def check_captioner(cfg: TrainConfig, ctx: SettingsContext) -> None:
    """The captioner (when given) reads this data's vocabulary and the last stage's images."""
    if cfg.captioner:
        check_train_captioner(cfg.captioner, cfg.dataset, list(ctx.dataset_words), image_sizes(cfg.generator)[-1])


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    """The captioner (when given) reads this data's vocabulary and the last stage's images."""
    refuse_unused(cfg, ARCH, uses=("captioner",))
    check_captioner(cfg, ctx)
    return cfg


ARCH = Architecture(
    name="attngan",
    summary="attentional stacked generator: word attention at every stage after the first",
    paper="Xu et al., CVPR 2018 (AttnGAN)",
    build_generator=Generator,
    build_discriminators=make_discriminators,
    make_loss=make_loss,
    stage_scale=STAGE_SCALE,
    check_settings=check_settings,
)
