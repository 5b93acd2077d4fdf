"""Configs of MirrorGAN's STREAM captioner (Qiao et al., CVPR 2019, section 3.3): the model and its
pretraining job, with per-preset starting points.

Kept beside :mod:`attngan_cli.config.schema` (whose run options and field checks they share) so the GAN and
DAMSM configs stay as they are. The STREAM of the official MirrorGAN code is the image captioner
of yunjey/pytorch-tutorial (Show-and-Tell: a CNN encoder, linear + BatchNorm to the embedding, an LSTM
decoder with embedding and hidden size 256, one layer, Adam 1e-3); ``bird`` and ``coco`` keep those sizes
with the Inception-v3 backbone this toolkit already uses for the DAMSM (local weights, frozen), ``shapes``
is CPU-sized (the compact CNN, trained from scratch).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from attngan_cli.config.fields import bounded, one_of, satisfying
from attngan_cli.config.schema import (
    BACKBONE_IMAGE_SIZES,
    BETAS_RULE,
    ImageEncoderConfig,
    RunOptions,
    adam_betas,
    default_image_size,
)
from attngan_cli.config.serialize import apply_overrides, from_dict
from attngan_cli.core.errors import AttnGANError

CAPTIONER_KIND = "captioner"  # checkpoint kind of a pretrained STREAM (train/caption_pretrain.py)


@dataclass
class CaptionerConfig:
    vocab_size: int = 0  # filled from the dataset's vocabulary
    # "inception-v3" (frozen, local weights) or "compact" (trained from scratch)
    backbone: str = one_of("inception-v3", BACKBONE_IMAGE_SIZES)
    image_size: int = bounded(299, low=16)  # the backbone's input size; other sizes are resized to it
    width: int = bounded(64, low=1)  # compact backbone only
    embed_dim: int = bounded(256, low=1)  # image feature and word embedding size (yunjey: embed_size 256)
    hidden_dim: int = bounded(256, low=1)  # LSTM hidden size (hidden_size 256)
    layers: int = bounded(1, low=1)  # LSTM layers (num_layers 1)

    def image_config(self) -> ImageEncoderConfig:
        """The image encoder of this captioner (the DAMSM's module; its global feature is what is used)."""
        return ImageEncoderConfig(backbone=self.backbone, embedding_dim=self.embed_dim, image_size=self.image_size,
                                  width=self.width, frozen_bn="eval")


@dataclass
class CaptionPretrainConfig(RunOptions):
    preset: str = "bird"
    dataset: str = ""
    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    # caption length in training (longer captions keep a random ordered subset, as the DAMSM)
    words: int = bounded(18, low=1)
    max_decode: int = bounded(0, low=0)  # words generated for BLEU and --caption-back (0: ``words``)
    batch_size: int = bounded(128, low=1)
    epochs: int = bounded(5, low=1)
    lr: float = bounded(1e-3, low=0, low_inclusive=False)
    betas: tuple[float, float] = satisfying((0.9, 0.999), adam_betas, BETAS_RULE)
    snapshot_every: int = bounded(1, low=0)  # epochs
    # test images decoded for BLEU-4 per epoch (all their captions are references)
    eval_items: int = bounded(1000, low=1)

    @property
    def decode_words(self) -> int:
        return self.max_decode or self.words


_CAPTIONER_PRESETS: dict[str, dict[str, Any]] = {
    "bird": {"words": 18},
    "coco": {"words": 15},
    "shapes": {"words": 12, "batch_size": 32, "epochs": 6, "lr": 2e-3, "eval_items": 500,
               "model": {"backbone": "compact", "image_size": 64, "width": 16, "embed_dim": 128, "hidden_dim": 128}},
}
_CAPTIONER_PRESETS["mirrorgan-bird"] = _CAPTIONER_PRESETS["bird"]
_CAPTIONER_PRESETS["mirrorgan-coco"] = _CAPTIONER_PRESETS["coco"]

def make_caption_pretrain_config(preset: str, overrides: dict[str, Any] | None = None) -> CaptionPretrainConfig:
    """The captioner pretraining config of ``preset`` with dotted-key ``overrides``. A ``model.backbone``
    override brings that backbone's input size unless ``model.image_size`` is overridden too."""
    if preset not in _CAPTIONER_PRESETS:
        raise AttnGANError(f"unknown preset {preset!r}; choose one of: {', '.join(_CAPTIONER_PRESETS)}")
    base = from_dict(CaptionPretrainConfig, {**copy.deepcopy(_CAPTIONER_PRESETS[preset]), "preset": preset},
                     where=f"captioner presets.{preset}")
    overrides = dict(overrides or {})
    backbone = overrides.get("model.backbone")
    if backbone is not None and backbone != base.model.backbone and overrides.get("model.image_size") is None:
        overrides["model.image_size"] = default_image_size(backbone, "model.backbone")
    return apply_overrides(base, overrides)  # checked there


def captioner_config_from_dict(data: dict[str, Any], where: str) -> CaptionPretrainConfig:
    """The config stored in a ``captioner`` checkpoint (strict)."""
    return from_dict(CaptionPretrainConfig, data, where=where)
