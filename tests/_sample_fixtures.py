"""Tiny randomly initialised checkpoints for tests: a generator + text encoder saved as an ``attngan
import``-style checkpoint, and DAMSM encoders for a vocabulary (no pretraining needed)."""

from __future__ import annotations

from pathlib import Path

import torch

from attngan_cli.config.presets import make_pretrain_config, make_train_config
from attngan_cli.config.schema import TextEncoderConfig
from attngan_cli.config.serialize import to_dict
from attngan_cli.inference.pipeline import build_encoders
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint
from attngan_cli.training.resolve import PretrainSettings, TrainSettings, resolve_pretrain, resolve_train

WORDS = ["<end>", "this", "bird", "is", "red", "with", "white", "and", "has", "a", "very", "short", "beak",
         "small", "yellow", "wings", "black", "crown", "belly", "long"]


def make_generator_checkpoint(path: Path, stages: int = 3, words: int = 6, seed: int = 0) -> Path:
    from attngan_cli.archs.attngan.generator import Generator
    from attngan_cli.networks.text_encoder import TextEncoder

    torch.manual_seed(seed)
    cfg = make_train_config("shapes", {"generator.stages": stages, "generator.base_size": 8,
                                       "generator.ngf": 4, "generator.r_num": 1, "generator.z_dim": 8,
                                       "generator.condition_dim": 6, "generator.embedding_dim": 16,
                                       "words": words})
    tcfg = TextEncoderConfig(vocab_size=len(WORDS), word_dim=8, embedding_dim=16, words=words)
    G, T = Generator(cfg.generator), TextEncoder(tcfg)
    with torch.no_grad():  # random BatchNorm statistics, so eval mode does something non-trivial
        for m in G.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ckpt = Checkpoint(kind="generator", config=to_dict(cfg),
                      state={"generator": G.state_dict(), "text_encoder": T.state_dict()},
                      vocab=list(WORDS), extra={"damsm_config": to_dict(tcfg)})
    return save_checkpoint(ckpt, path)


def make_damsm(path: Path, words: list[str], seed: int = 0) -> Path:
    """A ``damsm`` checkpoint with random compact encoders (32 px, width 8) for ``words``."""
    torch.manual_seed(seed)
    pc = make_pretrain_config("shapes", {"image.image_size": 32, "image.width": 8, "text.vocab_size": len(words)})
    text, image = build_encoders(pc)
    ck = Checkpoint(kind="damsm", config=to_dict(pc), vocab=list(words),
                    state={"text_encoder": text.state_dict(), "image_encoder": image.state_dict()})
    return save_checkpoint(ck, path)


def _tiny_train_values(**over: object) -> dict[str, object]:
    values: dict[str, object] = {"generator.stages": 2, "generator.ngf": 8, "discriminator.ndf": 8, "batch_size": 16,
                                 "epochs": 2, "snapshot_every": 1, "sample_every": 0, "device": "cpu", "seed": 3}
    values.update(over)
    return values


def tiny_train_config(shapes_h5: Path, damsm: Path, **over: object):
    """A GAN config that trains in a second on the shapes fixture: 2 stages of 16 and 32 px, ngf = ndf = 8,
    batch 16 (4 steps per epoch on 64 images), 2 epochs, a checkpoint per epoch, no sample grids."""
    return make_train_config("shapes", {"dataset": str(shapes_h5), "encoders": str(damsm), **_tiny_train_values(**over)})


def tiny_train_settings(shapes_h5: Path, damsm: Path, resume: Path | None = None, **over: object) -> TrainSettings:
    """:func:`tiny_train_config` as ``attngan train`` resolves it (``captioner`` among ``over`` becomes the
    resolver's argument); with ``resume``, continuing that checkpoint with the same settings."""
    values = _tiny_train_values(**over)
    captioner = values.pop("captioner", None)
    return resolve_train(shapes_h5, encoders=damsm, captioner=captioner, preset="shapes", overrides=values,
                         resume=resume)


def pretrain_settings(preset: str, values: dict[str, object], **kwargs: object) -> PretrainSettings:
    """``make_pretrain_config(preset, values)`` as ``attngan pretrain`` resolves it (``values["dataset"]``:
    the data; ``kwargs``: ``resume``, ``inception_weights``)."""
    own = dict(values)
    return resolve_pretrain(own.pop("dataset"), preset=preset, overrides=own, **kwargs)
