"""A tiny randomly initialised generator + text encoder saved as an ``attngan import``-style checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from attngan_cli.checkpoints import Checkpoint, save_checkpoint
from attngan_cli.config import TextEncoderConfig, make_train_config, to_dict

WORDS = ["<end>", "this", "bird", "is", "red", "with", "white", "and", "has", "a", "very", "short", "beak",
         "small", "yellow", "wings", "black", "crown", "belly", "long"]


def make_generator_checkpoint(path: Path, stages: int = 3, words: int = 6, seed: int = 0) -> Path:
    from attngan_cli.models.generator import Generator
    from attngan_cli.models.text_encoder import TextEncoder

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
