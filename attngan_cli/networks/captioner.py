"""MirrorGAN's STREAM (Qiao et al., CVPR 2019, section 3.3): an image captioner, Show-and-Tell style.

    v   = BN(W_img * CNN(image))                               (B, E)  the image, as the first input
    x_0 = v,  x_t = E_word[w_t]  (t = 1..n)                    teacher forcing with the caption w_1..w_n
    h_t = LSTM(x_t, h_{t-1});  p_t = softmax(W_out h_t)        p_t predicts w_{t+1}, p_n predicts <end>

The re-description loss of the GAN scores p_0 .. p_{n-1} (the words), as MirrorGAN's ``generator_loss``;
the pretraining also scores p_n (<end>, which greedy decoding needs to stop), as yunjey's ``train.py``.

The CNN is the DAMSM's :class:`ImageEncoder`, built with its global feature only: ``inception-v3`` with
frozen ImageNet weights from a local file (only the projection and the BatchNorm train, as the official
STREAM's frozen ResNet), or ``compact`` (trained from scratch, for CPUs). Word index 0 (``<end>``) ends
every caption and pads. Used twice: pretrained on real (image, caption) pairs (:mod:`attngan_cli.training.captioner`),
then frozen inside the GAN's generator loss, where gradients pass through it to the generated image
(:meth:`Captioner.caption_loss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attngan_cli.config.captioner import CaptionerConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.networks.image_encoder import ImageEncoder

# The region projection (``encoder.emb_features``) that captioners saved before it was dropped hold: the
# captioner reads the global feature only, so the weight never reached a loss and loading ignores it.
UNUSED_LEGACY_KEYS = ("encoder.emb_features.weight",)


def caption_targets(captions: torch.Tensor, lengths: torch.Tensor,
                    end_target: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of the T + 1 decoder steps: (B, T) 0-padded captions -> targets (B, T + 1) (the words, then
    <end> = 0) and the mask (B, T + 1) of the steps that count: the first ``length`` (step t predicts word
    t + 1: MirrorGAN's re-description loss, ``pack_padded_sequence(captions, cap_lens)`` in its
    ``miscc/losses.py``), or with ``end_target`` the first ``length + 1`` (the words and the <end> after
    them: the pretraining, as yunjey's captioner scores its ``<end>``)."""
    B, T = captions.shape
    targets = torch.cat((captions, captions.new_zeros(B, 1)), dim=1)  # (B, T + 1)
    steps = torch.arange(T + 1, device=captions.device)[None, :]  # (1, T + 1)
    lengths = lengths.to(captions.device).clamp(min=0, max=T)
    counted = lengths + 1 if end_target else lengths  # (B,)
    mask = steps < counted[:, None]  # (B, T + 1)
    targets = targets.masked_fill(~mask, 0)
    return targets, mask


def drop_unused_legacy_keys(state: dict[str, Any]) -> dict[str, Any]:
    """A saved captioner state without :data:`UNUSED_LEGACY_KEYS` (captioners saved before they were
    dropped hold them)."""
    return {k: v for k, v in state.items() if k not in UNUSED_LEGACY_KEYS}


class Captioner(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] and captions (B, T) -> next-word logits (B, T + 1, V)."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        if cfg.vocab_size < 2:
            raise AttnGANError(f"captioner model.vocab_size must be >= 2, got {cfg.vocab_size}")
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.image_config(), regions=False)  # the global feature only
        self.bn = nn.BatchNorm1d(cfg.embed_dim, momentum=0.01)  # yunjey's EncoderCNN: linear, then BN
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, num_layers=cfg.layers, batch_first=True)
        self.out = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    @property
    def frozen_backbone(self) -> bool:
        return self.encoder.frozen_backbone

    def image_features(self, images: torch.Tensor, backbone_grad: bool = True) -> torch.Tensor:
        """The image as the decoder's first input: (B, 3, H, W) -> (B, E).

        With the frozen inception-v3 backbone, ``backbone_grad=False`` runs it without building a graph
        (pretraining: nothing below the projection trains); True lets gradients reach ``images`` (the
        STREAM loss of the generator)."""
        return self.bn(self.encoder.global_feature(images, backbone_grad))  # (B, E)

    def forward(self, images: torch.Tensor, captions: torch.Tensor, backbone_grad: bool = True) -> torch.Tensor:
        """Teacher-forced logits: step 0 reads the image, step t reads word t; (B, T + 1, V)."""
        feat = self.image_features(images, backbone_grad)  # (B, E)
        words = self.embed(captions)  # (B, T, E)
        x = torch.cat((feat[:, None, :].to(words.dtype), words), dim=1)  # (B, T + 1, E)
        h, _ = self.lstm(x)  # (B, T + 1, H)
        return self.out(h)  # (B, T + 1, V)

    def caption_loss(self, images: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor, *,
                     end_target: bool, backbone_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy over the counted steps (:func:`caption_targets`: the words, and with
        ``end_target`` the <end> after them), and the token accuracy (a detached scalar): how well this
        captioner reads ``captions`` off ``images``."""
        logits = self(images, captions, backbone_grad).float()  # (B, T + 1, V)
        targets, mask = caption_targets(captions, lengths, end_target)  # (B, T + 1) each
        ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T + 1)
        n = mask.sum().clamp(min=1)
        loss = (ce * mask).sum() / n
        with torch.no_grad():
            acc = ((logits.argmax(-1) == targets) & mask).sum().float() / n
        return loss, acc

    @torch.no_grad()
    def greedy(self, images: torch.Tensor, max_words: int) -> list[list[int]]:
        """Greedy decoding: each image's words until <end> (at most ``max_words``), as id lists."""
        feat = self.image_features(images, backbone_grad=False)  # (B, E)
        B = feat.shape[0]
        x, state = feat[:, None, :], None  # (B, 1, E)
        out = torch.zeros(B, max_words, dtype=torch.long, device=feat.device)
        done = torch.zeros(B, dtype=torch.bool, device=feat.device)
        for t in range(max_words):
            h, state = self.lstm(x, state)  # (B, 1, H)
            word = self.out(h[:, 0]).argmax(-1)  # (B,)
            word = word.masked_fill(done, 0)
            out[:, t] = word
            done |= word == 0
            if bool(done.all()):
                break
            x = self.embed(word)[:, None, :]  # (B, 1, E)
        result = []
        for row in out.tolist():
            result.append(row[: row.index(0)] if 0 in row else row)
        return result
