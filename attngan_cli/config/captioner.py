"""Configs of MirrorGAN's STREAM captioner (Qiao et al., CVPR 2019, section 3.3): the model and its
pretraining job, with per-preset starting points.

Kept beside :mod:`attngan_cli.config.schema` (whose strict (de)serialisation and range checks they use) so the
GAN and DAMSM configs stay as they are. The STREAM of the official MirrorGAN code is the image captioner
of yunjey/pytorch-tutorial (Show-and-Tell: a CNN encoder, linear + BatchNorm to the embedding, an LSTM
decoder with embedding and hidden size 256, one layer, Adam 1e-3); ``bird`` and ``coco`` keep those sizes
with the Inception-v3 backbone this toolkit already uses for the DAMSM (local weights, frozen), ``shapes``
is CPU-sized (the compact CNN, trained from scratch).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from attngan_cli.config.schema import (
    ImageEncoderConfig,
    apply_overrides,
    default_image_size,
    from_dict,
    validate,
)
from attngan_cli.core.errors import AttnGANError

CAPTIONER_KIND = "captioner"  # checkpoint kind of a pretrained STREAM (train/caption_pretrain.py)


@dataclass
class CaptionerConfig:
    vocab_size: int = 0  # filled from the dataset's vocabulary
    backbone: str = "inception-v3"  # "inception-v3" (frozen, local weights) or "compact" (trained from scratch)
    image_size: int = 299  # the backbone's input size; other sizes are resized to it
    width: int = 64  # compact backbone only
    embed_dim: int = 256  # image feature and word embedding size (yunjey: embed_size 256)
    hidden_dim: int = 256  # LSTM hidden size (hidden_size 256)
    layers: int = 1  # LSTM layers (num_layers 1)

    def image_config(self) -> ImageEncoderConfig:
        """The image encoder of this captioner (the DAMSM's module; its global feature is what is used)."""
        return ImageEncoderConfig(backbone=self.backbone, embedding_dim=self.embed_dim, image_size=self.image_size,
                                  width=self.width, frozen_bn="eval")


@dataclass
class CaptionPretrainConfig:
    preset: str = "bird"
    dataset: str = ""
    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    words: int = 18  # caption length in training (longer captions keep a random ordered subset, as the DAMSM)
    max_decode: int = 0  # words generated for BLEU and --caption-back (0: ``words``)
    batch_size: int = 128
    epochs: int = 5
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    snapshot_every: int = 1  # epochs
    eval_items: int = 1000  # test images decoded for BLEU-4 per epoch (all their captions are references)
    max_minutes: float = 0.0
    precision: str = "auto"
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    tensorboard: bool = True

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

# range checks for the fields validate() does not know (it checks batch_size, epochs, words, lr, ...)
_CAPTIONER_RANGES = ("model.embed_dim", "model.hidden_dim", "model.layers", "model.width", "eval_items")


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
        overrides["model.image_size"] = default_image_size(backbone)
    cfg = apply_overrides(base, overrides)
    check_captioner_config(cfg)
    return cfg


def check_captioner_config(cfg: CaptionPretrainConfig) -> None:
    """Range checks of the captioner's own fields (the shared ones are checked by :func:`validate`)."""
    validate(cfg)
    default_image_size(cfg.model.backbone)  # a known backbone
    for key in _CAPTIONER_RANGES:
        obj: Any = cfg
        for part in key.split("."):
            obj = getattr(obj, part)
        if not isinstance(obj, int) or obj < 1:
            raise AttnGANError(f"{key} must be an integer >= 1, got {obj!r}")
    if cfg.model.image_size < 16:
        raise AttnGANError(f"model.image_size must be >= 16, got {cfg.model.image_size}")
    if cfg.max_decode < 0:
        raise AttnGANError(f"max_decode must be >= 0, got {cfg.max_decode}")


def captioner_config_from_dict(data: dict[str, Any], where: str) -> CaptionPretrainConfig:
    """The config stored in a ``captioner`` checkpoint (strict)."""
    return from_dict(CaptionPretrainConfig, data, where=where)
