"""Configs of MirrorGAN's STREAM captioner (Qiao et al., CVPR 2019, section 3.3): the model and its
pretraining job (each preset's starting point: the "captioner" of its definition in
:mod:`attngan_cli.config.presets`).

Kept beside :mod:`attngan_cli.config.schema` (whose run options and field checks they share) so the GAN and
DAMSM configs stay as they are. The STREAM of the official MirrorGAN code is the image captioner
of yunjey/pytorch-tutorial (Show-and-Tell: a CNN encoder, linear + BatchNorm to the embedding, an LSTM
decoder, one layer, Adam 1e-3). Its sizes are MirrorGAN's: embedding 256 and LSTM hidden size 512
(``trainer.py`` line 78 builds ``CAPTION_RNN(cfg.CAP.embed_size, cfg.CAP.hidden_size * 2, ...)`` with
``cfg/train_bird.yml``'s ``hidden_size: 256``; yunjey's ``train.py`` defaults are 256 and 512 too).
``bird`` and ``coco`` keep those sizes with the Inception-v3 backbone this toolkit already uses for the
DAMSM (local weights, frozen); ``shapes`` is CPU-sized (the compact CNN, trained from scratch). A
captioner checkpoint records its sizes, so ones saved with another width (256 before) load as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attngan_cli.config.fields import bounded, one_of, satisfying
from attngan_cli.config.schema import (
    BACKBONE_IMAGE_SIZES,
    BETAS_RULE,
    ImageEncoderConfig,
    RunOptions,
    adam_betas,
)
from attngan_cli.config.serialize import from_dict

CAPTIONER_KIND = "captioner"  # checkpoint kind of a pretrained STREAM (train/caption_pretrain.py)


@dataclass
class CaptionerConfig:
    vocab_size: int = 0  # filled from the dataset's vocabulary
    # "inception-v3" (frozen, local weights) or "compact" (trained from scratch)
    backbone: str = one_of("inception-v3", BACKBONE_IMAGE_SIZES)
    image_size: int = bounded(299, low=16)  # the backbone's input size; other sizes are resized to it
    width: int = bounded(64, low=1)  # compact backbone only
    embed_dim: int = bounded(256, low=1)  # image feature and word embedding size (MirrorGAN and yunjey: 256)
    # LSTM hidden size (MirrorGAN trainer.py:78: cfg.CAP.hidden_size * 2 = 512; yunjey's --hidden_size 512)
    hidden_dim: int = bounded(512, low=1)
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


def captioner_config_from_dict(data: dict[str, Any], where: str) -> CaptionPretrainConfig:
    """The config stored in a ``captioner`` checkpoint (strict)."""
    return from_dict(CaptionPretrainConfig, data, where=where)
