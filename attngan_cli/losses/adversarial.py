"""Loss pieces that several architectures share: logits-based binary cross-entropy, the conditioning
augmentation's KL term, the mismatched (real image, wrong sentence) pairs, and the DAMSM term of a
generated image. Each architecture's objective is built from them in its own module (AttnGAN's:
:mod:`attngan_cli.archs.attngan.loss`).

All adversarial terms are numerically stable logits-based binary cross-entropies computed in fp32 (the
logits may come from a bf16/fp16 autocast region).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attngan_cli.config.schema import DAMSMConfig
from attngan_cli.core.distributed import gather_cat
from attngan_cli.losses.damsm import sentence_loss, words_loss


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` (B,) against a constant label (1 = real, 0 = fake), in fp32."""
    logits = logits.float().reshape(-1)
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) averaged over batch and dimensions (the official ``KL_loss``)."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def mismatched(sent_emb: torch.Tensor) -> torch.Tensor:
    """Sentence of the next sample for every image (roll by one): (B, D) -> (B, D)."""
    return torch.roll(sent_emb, shifts=-1, dims=0)


def encode_images(image_encoder: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen image encoder applied so that gradients still reach ``images`` (the generator).

    The inception-v3 encoder's ``forward`` runs its frozen backbone under ``no_grad`` (right for DAMSM
    pretraining), which would cut the DAMSM gradient to G; its two halves are called directly instead.
    """
    if getattr(image_encoder, "frozen_backbone", False):
        local, pooled = image_encoder.backbone_features(images)
        return image_encoder.project(local, pooled)
    return image_encoder(images)


def damsm_terms(image_encoder: nn.Module, damsm: DAMSMConfig, image: torch.Tensor, words_emb: torch.Tensor,
                sent_emb: torch.Tensor, lengths: torch.Tensor, class_ids: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1w + L2w, L1s + L2s) of generated ``image`` (B, 3, s, s) against its own captions. Under
    torchrun the negatives are the whole batch over the ranks (gathered, differentiable for this rank's
    images), so the loss is the one-process loss at the same total batch."""
    regions, global_ = encode_images(image_encoder, image)  # (B, D, h, w), (B, D)
    regions, global_, words_emb, sent_emb, lengths = (gather_cat(x) for x in (regions, global_, words_emb, sent_emb,
                                                                               torch.as_tensor(lengths, device=sent_emb.device)))
    if class_ids is not None:
        class_ids = gather_cat(torch.as_tensor(class_ids, device=sent_emb.device))
    c = damsm
    w1, w2, _ = words_loss(regions.float(), words_emb.float(), lengths, class_ids, c.gamma1, c.gamma2, c.gamma3)
    s1, s2 = sentence_loss(global_.float(), sent_emb.float(), class_ids, c.gamma3)
    return w1 + w2, s1 + s2
