"""MirrorGAN (Qiao et al., CVPR 2019), ``--arch mirrorgan`` (``--sentence-attention``): the GLAM
generator (:mod:`.glam`) on AttnGAN's discriminators, and AttnGAN's objective with STREAM's
re-description loss (:mod:`.stream`) when a pretrained captioner is given (``--captioner``, weighted by
``--stream-weight``). The run records the captioner in its checkpoint's extra, for ``sample
--caption-back``.

Named presets (:data:`NAMED_PRESETS`, chosen by name only: ``--preset mirrorgan-bird``): AttnGAN's data
settings with MirrorGAN's. Birds: the official MirrorGAN cfg/train_bird.yml (GLAM, batch 12, 650 epochs)
and no DAMSM term (lambda 0: the official generator_loss has none; that file's TRAIN.SMOOTH.LAMBDA 0.0 is
read nowhere), with the paper's STREAM weight 20 (that file: LAMBDA1 10).
COCO: no MirrorGAN config was released; AttnGAN's COCO values with the same MirrorGAN terms.
"""

from __future__ import annotations

from typing import Any

from attngan_cli.archs.attngan import check_captioner, make_loss
from attngan_cli.archs.attngan.discriminators import make_discriminators
from attngan_cli.archs.base import Architecture, SettingsContext, refuse_unused
from attngan_cli.archs.mirrorgan.glam import MirrorGANGenerator
from attngan_cli.config.schema import TrainConfig
from attngan_cli.core.errors import InputError

_MIRRORGAN: dict[str, Any] = {"lambda_damsm": 0.0, "stream_weight": 20.0}

NAMED_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "mirrorgan-bird": ("bird", {**_MIRRORGAN, "batch_size": 12, "epochs": 650}),
    "mirrorgan-coco": ("coco", dict(_MIRRORGAN)),
}


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    """The captioner (when given) reads this data's vocabulary and the last stage's images; a named
    preset's run needs one (or ``--stream-weight 0``)."""
    refuse_unused(cfg, ARCH, uses=("captioner",))
    if cfg.preset in NAMED_PRESETS and cfg.stream_weight > 0 and not cfg.captioner:
        raise InputError(f"the {cfg.preset} preset trains with MirrorGAN's re-description loss: give the pretrained "
                         "captioner with --captioner RUN (`attngan pretrain DATA --model captioner`), or --stream-weight "
                         "0 for GLAM alone")
    check_captioner(cfg, ctx)
    return cfg


ARCH = Architecture(
    name="mirrorgan",
    summary="GLAM: word attention and sentence attention (the CA vector against the regions) at every stage "
            "after the first",
    paper="Qiao et al., CVPR 2019 (MirrorGAN)",
    build_generator=MirrorGANGenerator,
    build_discriminators=make_discriminators,
    make_loss=make_loss,
    check_settings=check_settings,
    named_presets=NAMED_PRESETS,
    sentence_attention=True,
)
