"""A trained DAMSM (text + image encoder) as one self-describing checkpoint, and its loading.

Checkpoint kind ``"damsm"``: ``state["text_encoder"]``, ``state["image_encoder"]``, ``config`` =
``to_dict(PretrainConfig)``, ``vocab`` = the training vocabulary. :func:`load_damsm` takes the file or a
``pretrain`` run directory (which resolves to its ``final.pt``, else its newest ``checkpoint-*.pt``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import Checkpoint, load_checkpoint
from ..config import PretrainConfig, from_dict
from ..errors import CheckpointError
from .image_encoder import ImageEncoder
from .text_encoder import TextEncoder

KIND = "damsm"
FINAL_NAME = "final.pt"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


@dataclass
class DAMSMBundle:
    text_encoder: TextEncoder
    image_encoder: ImageEncoder
    vocab: Any  # attngan_cli.data.vocab.Vocabulary
    config: PretrainConfig
    path: Path | None = None


def make_vocab(words: list[str]) -> Any:
    """A :class:`Vocabulary` from its word list."""
    from ..data.vocab import Vocabulary

    try:
        return Vocabulary(list(words))
    except TypeError:  # pragma: no cover - other constructor shapes
        return Vocabulary(words=list(words))


def resolve_damsm_path(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file as is; a run directory -> its final checkpoint, else its latest periodic one."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"DAMSM checkpoint or run directory {p} does not exist")
    if p.is_file():
        return p
    final = p / FINAL_NAME
    if final.is_file():
        return final
    numbered = [(int(m.group(1)), f) for f in p.glob("checkpoint-*.pt") if (m := _CKPT_RE.match(f.name))]
    if numbered:
        return max(numbered)[1]
    raise CheckpointError(f"run directory {p} holds no DAMSM checkpoint ({FINAL_NAME} or checkpoint-<epoch>.pt)")


def build_encoders(cfg: PretrainConfig) -> tuple[TextEncoder, ImageEncoder]:
    return TextEncoder(cfg.text), ImageEncoder(cfg.image)


def config_from_checkpoint(config: dict[str, Any]) -> PretrainConfig:
    """The :class:`PretrainConfig` stored in a DAMSM checkpoint. A compact encoder saved before
    ``image.compact_version`` existed (attngan 0.1.0) is version 1."""
    image = config.get("image") if isinstance(config, dict) else None
    if isinstance(image, dict) and image.get("backbone") == "compact" and "compact_version" not in image:
        config = {**config, "image": {**image, "compact_version": 1}}
    return from_dict(PretrainConfig, config, where="checkpoint config")


def bundle_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu") -> DAMSMBundle:
    cfg = config_from_checkpoint(ckpt.config)
    text, image = build_encoders(cfg)
    try:
        text.load_state_dict(ckpt.state["text_encoder"])
        image.load_state_dict(ckpt.state["image_encoder"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {ckpt.path}: encoder weights do not fit its config ({str(e).splitlines()[0][:200]})") from e
    for m in (text, image):
        m.to(device).eval()
        m.requires_grad_(False)
    vocab = make_vocab(ckpt.vocab) if ckpt.vocab is not None else None
    return DAMSMBundle(text, image, vocab, cfg, ckpt.path)


def load_damsm(path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> DAMSMBundle:
    """Load a DAMSM checkpoint (file or pretrain run directory): encoders in eval mode, no gradients."""
    path = resolve_damsm_path(path_or_run_dir)
    ckpt = load_checkpoint(path, kind=KIND, map_location="cpu")
    return bundle_from_checkpoint(ckpt, device)
