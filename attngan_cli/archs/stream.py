"""Using a pretrained STREAM captioner (MirrorGAN, Qiao et al., CVPR 2019): its loader, its captions of
images, and the re-description loss of the generator. Shared by ``mirrorgan`` (GLAM + STREAM) and
``attngan`` (``--captioner``: STREAM without GLAM, an ablation of the MirrorGAN paper), so it sits beside
both architectures rather than inside one.

The captioner checkpoint (kind ``captioner``, written by ``attngan pretrain --model captioner``) holds
its config, the vocabulary and the weights. A GAN run that uses it records its absolute path in the run's
config (``TrainConfig.captioner``), and its vocabulary hash in the checkpoint's extra, so ``attngan sample
--caption-back`` finds it again (or takes ``--captioner``) and checks it is the same vocabulary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from attngan_cli.config.captioner import CAPTIONER_KIND, CaptionPretrainConfig, captioner_config_from_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError, InputError
from attngan_cli.data.vocab import Vocabulary
from attngan_cli.networks.captioner import Captioner, drop_unused_legacy_keys
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint, load_module_state, require_state
from attngan_cli.storage.rundirs import resolve_checkpoint

# The captioner reads generated images resized to its input size; beyond this upsampling factor it reads
# pictures much blurrier than the real ones it learned from, and ``train --captioner`` refuses it.
MAX_UPSAMPLING = 2.0


@dataclass
class CaptionerBundle:
    """A pretrained captioner (eval mode, no gradients to its weights), its vocabulary and config."""

    captioner: Captioner
    vocab: Vocabulary
    config: CaptionPretrainConfig
    path: Path | None = None

    def describe(self, images: torch.Tensor, max_words: int | None = None) -> list[str]:
        """Greedy captions of ``images`` (B, 3, H, W) in [-1, 1]."""
        dev = next(self.captioner.parameters()).device
        ids = self.captioner.greedy(images.to(dev).float(), max_words or self.config.decode_words)
        return [self.vocab.decode(row) for row in ids]


def captioner_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu") -> CaptionerBundle:
    cfg = captioner_config_from_dict(ckpt.config, where=f"checkpoint {ckpt.path} config")
    if ckpt.vocab is None:
        raise CheckpointError(f"captioner checkpoint {ckpt.path} holds no vocabulary")
    require_state(ckpt, "captioner")
    model = Captioner(cfg.model)
    state = ckpt.state["captioner"]
    if isinstance(state, dict):
        state = drop_unused_legacy_keys(state)  # a region projection the captioner never read (older files)
    load_module_state(model, state, "captioner", ckpt.path)
    model.to(device).eval()
    model.requires_grad_(False)
    return CaptionerBundle(model, Vocabulary(list(ckpt.vocab)), cfg, ckpt.path)


def load_captioner(path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> CaptionerBundle:
    """A pretrained captioner from a ``captioner`` checkpoint or a captioner pretrain run directory."""
    path = resolve_checkpoint(path_or_run_dir, what="captioner checkpoint")
    return captioner_from_checkpoint(load_checkpoint(path, kind=CAPTIONER_KIND, map_location="cpu"), device)


def check_captioner_for(path: Path | None, config: CaptionPretrainConfig, vocab: Vocabulary, vocab_words: list[str],
                        image_size: int, what: str) -> None:
    """The captioner ``path`` (its ``config`` and ``vocab``) must read this data's vocabulary and images of
    ``image_size`` px (the generator's last stage) without upsampling them more than :data:`MAX_UPSAMPLING`
    times."""
    if list(vocab.words) != list(vocab_words):
        raise ConfigMismatchError(
            f"the captioner {path} was trained on a vocabulary of {len(vocab)} words (sha256 "
            f"{vocab.sha256[:12]}) but {what} has {len(vocab_words)} words: pretrain the captioner on the "
            "same prepared dataset (`attngan pretrain DATA --model captioner`)")
    size = config.model.image_size
    if size > MAX_UPSAMPLING * image_size:
        raise ConfigMismatchError(
            f"the captioner {path} reads {size} px images but the generator's last stage draws {image_size} "
            f"px: more than {MAX_UPSAMPLING:g}x upsampling (use more --stages, or a captioner with a smaller "
            "input size, e.g. --image-encoder compact)")


class StreamLoss(nn.Module):
    """The re-description loss (MirrorGAN section 3.4): the frozen captioner's cross-entropy of its own
    input caption, read off the generated image. Gradients reach the image, never the captioner.

    The targets are the caption's words, as MirrorGAN's ``generator_loss`` (``miscc/losses.py``:
    ``pack_padded_sequence(captions, cap_lens)``: no ``<end>`` target); ``end_target=True`` also scores the
    ``<end>`` after each caption (what runs saved before ``TrainConfig.stream_end_target`` existed did)."""

    def __init__(self, captioner: Captioner, end_target: bool = False) -> None:
        super().__init__()
        captioner.eval()
        captioner.requires_grad_(False)
        self.captioner = captioner
        self.end_target = end_target

    def train(self, mode: bool = True) -> StreamLoss:  # the captioner stays in eval mode (BatchNorm, dropout)
        return super().train(False)

    def forward(self, images: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        loss, _acc = self.captioner.caption_loss(images, captions, lengths, end_target=self.end_target,
                                                 backbone_grad=True)
        return loss


# --------------------------------------------------------------------------------------------------
# In GAN training (MirrorGAN's objective)
# --------------------------------------------------------------------------------------------------
def check_train_captioner(captioner: str, dataset: str, vocab_words: list[str], image_size: int) -> None:
    """``train --captioner``, before a run starts: the checkpoint is a captioner that reads this dataset's
    vocabulary and the generator's last-stage images (:func:`check_captioner_for`). Reads its metadata only
    (memory-mapped); the weights are loaded once, for training."""
    ckpt = load_checkpoint(resolve_checkpoint(captioner, what="captioner checkpoint"), kind=CAPTIONER_KIND, mmap=True)
    if ckpt.vocab is None:
        raise CheckpointError(f"captioner checkpoint {ckpt.path} holds no vocabulary")
    config = captioner_config_from_dict(ckpt.config, where=f"checkpoint {ckpt.path} config")
    check_captioner_for(ckpt.path, config, Vocabulary(list(ckpt.vocab)), vocab_words, image_size, f"dataset {dataset}")


class StreamTerm:
    """The re-description loss as a generator term of MirrorGAN's objective: ``weight`` x the frozen
    captioner's cross-entropy of the batch's captions read off the last stage's image; logged (unweighted)
    as ``stream``."""

    name = "stream"

    def __init__(self, stream: StreamLoss, weight: float) -> None:
        self.stream, self.weight = stream, float(weight)

    def __call__(self, out: Any, text: Any) -> torch.Tensor:
        return self.stream(out.images[-1], text.captions, text.lengths)


def stream_for_training(captioner: str, stream_weight: float, dataset: str, vocab_words: list[str],
                        image_size: int, device: torch.device,
                        end_target: bool = False) -> tuple[StreamTerm | None, dict[str, str]]:
    """The frozen STREAM term of a run (None without a captioner or with weight 0; ``end_target``: see
    :class:`StreamLoss`) and what the GAN checkpoint records of it (``extra``: the captioner's path and
    vocabulary hash, for ``sample --caption-back``)."""
    if not captioner:
        return None, {}
    bundle = load_captioner(captioner, device)
    check_captioner_for(bundle.path, bundle.config, bundle.vocab, vocab_words, image_size, f"dataset {dataset}")
    record = {"captioner_path": str(bundle.path), "captioner_vocab_sha256": bundle.vocab.sha256}
    term = StreamTerm(StreamLoss(bundle.captioner, end_target), stream_weight) if stream_weight > 0 else None
    return term, record


# --------------------------------------------------------------------------------------------------
# `attngan sample --caption-back`
# --------------------------------------------------------------------------------------------------
def captioner_for_generator(generator: Any, captioner: str | os.PathLike[str] | None = None,
                            device: str | torch.device = "cpu") -> CaptionerBundle:
    """The captioner that reads a generator's images: ``captioner`` when given, else the one its run
    was trained with (``config.captioner``, recorded by ``train --captioner``). It must use the
    generator's vocabulary."""
    path = captioner or getattr(generator.config, "captioner", "") or generator.extra.get("captioner_path", "")
    if not path:
        raise InputError(f"checkpoint {generator.path} was trained without a captioner: give one with --captioner "
                         "RUN (from `attngan pretrain DATA --model captioner` on the same data)")
    if not Path(path).exists():
        raise InputError(f"the captioner {path} recorded in {generator.path} does not exist any more: give one "
                         "with --captioner RUN")
    bundle = load_captioner(path, device)
    if generator.vocab is not None and list(generator.vocab.words) != list(bundle.vocab.words):
        raise ConfigMismatchError(f"the captioner {bundle.path} uses another vocabulary ({len(bundle.vocab)} words) "
                                  f"than the generator {generator.path} ({len(generator.vocab)} words)")
    return bundle


def caption_back(bundle: CaptionerBundle, paths: list[Path], batch_size: int = 16) -> list[str]:
    """The captioner's captions of the image files ``paths`` (PNGs the generator wrote)."""
    out: list[str] = []
    for i in range(0, len(paths), batch_size):
        arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths[i:i + batch_size]]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0  # (B, 3, s, s) in [-1, 1]
        out.extend(bundle.describe(x))
    return out
