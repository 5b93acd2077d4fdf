"""Tiny random generator checkpoints of any architecture for the serve tests."""

from __future__ import annotations

from pathlib import Path

import torch
from _sample_fixtures import WORDS

from attngan_cli.archs.registry import build_generator
from attngan_cli.config.presets import make_train_config
from attngan_cli.config.schema import TextEncoderConfig
from attngan_cli.config.serialize import to_dict
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint


def make_arch_checkpoint(path: Path, arch: str, stages: int = 2, words: int = 6, seed: int = 0) -> Path:
    """A ``generator`` checkpoint of ``arch`` with random weights (8 px first stage, width 4)."""
    torch.manual_seed(seed)
    cfg = make_train_config("shapes", {"generator.arch": arch, "generator.stages": stages, "generator.base_size": 8,
                                       "generator.ngf": 4, "generator.r_num": 1, "generator.z_dim": 8,
                                       "generator.condition_dim": 6, "generator.embedding_dim": 16, "words": words})
    tcfg = TextEncoderConfig(vocab_size=len(WORDS), word_dim=8, embedding_dim=16, words=words)
    G, T = build_generator(cfg.generator), TextEncoder(tcfg)
    ckpt = Checkpoint(kind="generator", config=to_dict(cfg),
                      state={"generator": G.state_dict(), "text_encoder": T.state_dict()},
                      vocab=list(WORDS), extra={"damsm_config": to_dict(tcfg)})
    return save_checkpoint(ckpt, path)
