"""Tiny STREAM captioner checkpoints for the MirrorGAN tests (random, or briefly trained on real pairs)."""

from __future__ import annotations

from pathlib import Path

import torch

from attngan_cli.config.captioner import CAPTIONER_KIND
from attngan_cli.config.presets import make_caption_pretrain_config
from attngan_cli.config.serialize import to_dict
from attngan_cli.networks.captioner import Captioner
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint


def tiny_caption_config(words: list[str], image_size: int = 32):
    return make_caption_pretrain_config("shapes", {
        "model.vocab_size": len(words), "model.image_size": image_size, "model.width": 4,
        "model.embed_dim": 16, "model.hidden_dim": 16, "device": "cpu"})


def make_captioner(path: Path, words: list[str], image_size: int = 32, seed: int = 0,
                   train_on: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None, steps: int = 150) -> Path:
    """A ``captioner`` checkpoint for ``words``; with ``train_on`` (images, captions, lengths) it is first
    trained ``steps`` Adam steps on those real pairs."""
    torch.manual_seed(seed)
    cfg = tiny_caption_config(words, image_size)
    model = Captioner(cfg.model)
    if train_on is not None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            loss, _acc = model.caption_loss(*train_on, end_target=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
    ck = Checkpoint(kind=CAPTIONER_KIND, config=to_dict(cfg), vocab=list(words), state={"captioner": model.state_dict()})
    return save_checkpoint(ck, path)
