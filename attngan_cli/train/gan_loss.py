"""The AttnGAN losses (paper equations 3-6 with the official code's details), one small object per phase.

* :class:`DiscriminatorLoss` — per stage:
  ``(uncond real + cond real) / 2 + (uncond fake + cond fake + cond mismatched) / 3``, the mismatched
  pairs being real images with the next sample's sentence (the official extra term). With
  ``mismatch=False`` it is the paper's equation 5 alone: ``(uncond real + cond real) / 2 +
  (uncond fake + cond fake) / 2``.
* :class:`GeneratorLoss` — ``sum over stages of (uncond + cond) adversarial terms
  + lambda * (L1w + L2w + L1s + L2s) on the last stage's image + kl_weight * KL(mu, logvar)``.

All adversarial terms are numerically stable logits-based binary cross-entropies computed in fp32
(the logits may come from a bf16/fp16 autocast region). The objects hold no optimiser state; the
training loop (``train/gan.py``) owns forward/backward/step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DAMSMConfig
from ..losses import sentence_loss, words_loss


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


def combine_d_terms(real_uncond: torch.Tensor, real_cond: torch.Tensor, fake_uncond: torch.Tensor,
                    fake_cond: torch.Tensor, wrong_cond: torch.Tensor | None) -> torch.Tensor:
    """The per-stage discriminator loss from the five (or four) BCE terms."""
    if wrong_cond is None:
        return (real_uncond + real_cond) / 2 + (fake_uncond + fake_cond) / 2
    return (real_uncond + real_cond) / 2 + (fake_uncond + fake_cond + wrong_cond) / 3


@dataclass
class DLossTerms:
    total: torch.Tensor
    real_uncond: torch.Tensor
    real_cond: torch.Tensor
    fake_uncond: torch.Tensor
    fake_cond: torch.Tensor
    wrong_cond: torch.Tensor | None = None


class DiscriminatorLoss:
    """Loss of one stage's discriminator on real images and (detached) generated ones."""

    def __init__(self, mismatch: bool = True) -> None:
        self.mismatch = mismatch

    def logits(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, sent_emb: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        """The logits (B,) of every term. Real and fake pass through D separately, as the official code
        (D's BatchNorm then normalises each batch on its own)."""
        real_code = netD(real)  # (B, 8ndf, 4, 4)
        fake_code = netD(fake.detach())
        out = {
            "real_uncond": netD.uncond_logits(real_code),
            "real_cond": netD.cond_logits(real_code, sent_emb),
            "fake_uncond": netD.uncond_logits(fake_code),
            "fake_cond": netD.cond_logits(fake_code, sent_emb),
        }
        if self.mismatch:
            out["wrong_cond"] = netD.cond_logits(real_code, mismatched(sent_emb))
        return out

    def from_logits(self, logits: dict[str, torch.Tensor]) -> DLossTerms:
        terms = {
            "real_uncond": bce_logits(logits["real_uncond"], 1.0),
            "real_cond": bce_logits(logits["real_cond"], 1.0),
            "fake_uncond": bce_logits(logits["fake_uncond"], 0.0),
            "fake_cond": bce_logits(logits["fake_cond"], 0.0),
        }
        wrong = bce_logits(logits["wrong_cond"], 0.0) if self.mismatch else None
        total = combine_d_terms(terms["real_uncond"], terms["real_cond"], terms["fake_uncond"],
                                terms["fake_cond"], wrong)
        return DLossTerms(total=total, wrong_cond=wrong, **terms)

    def __call__(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                 sent_emb: torch.Tensor) -> DLossTerms:
        return self.from_logits(self.logits(netD, real, fake, sent_emb))


@dataclass
class GLossTerms:
    total: torch.Tensor
    adv: list[torch.Tensor]  # per stage: uncond + cond
    kl: torch.Tensor
    w_loss: torch.Tensor | None = None  # (L1w + L2w), not yet multiplied by lambda
    s_loss: torch.Tensor | None = None  # (L1s + L2s)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def logs(self) -> dict[str, torch.Tensor]:
        out = {f"g_adv{i}": a.detach() for i, a in enumerate(self.adv)}
        out["kl"] = self.kl.detach()
        if self.w_loss is not None:
            out["w_loss"] = self.w_loss.detach()
        if self.s_loss is not None:
            out["s_loss"] = self.s_loss.detach()
        out.update({k: v.detach() for k, v in self.extras.items()})
        return out


def encode_images(image_encoder: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen image encoder applied so that gradients still reach ``images`` (the generator).

    The inception-v3 encoder's ``forward`` runs its frozen backbone under ``no_grad`` (right for DAMSM
    pretraining), which would cut the DAMSM gradient to G; its two halves are called directly instead.
    """
    if getattr(image_encoder, "frozen_backbone", False):
        local, pooled = image_encoder.backbone_features(images)
        return image_encoder.project(local, pooled)
    return image_encoder(images)


class GeneratorLoss:
    """Adversarial terms of every stage + lambda * DAMSM (last stage) + kl_weight * KL."""

    def __init__(self, lambda_damsm: float, kl_weight: float = 1.0, damsm: DAMSMConfig | None = None,
                 image_encoder: nn.Module | None = None) -> None:
        self.lambda_damsm = float(lambda_damsm)
        self.kl_weight = float(kl_weight)
        self.damsm = damsm or DAMSMConfig()
        self.image_encoder = image_encoder
        if self.lambda_damsm > 0 and image_encoder is None:
            raise ValueError("GeneratorLoss with lambda_damsm > 0 needs the frozen image encoder")

    def adversarial(self, netsD: Sequence[nn.Module], fakes: Sequence[torch.Tensor],
                    sent_emb: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for netD, fake in zip(netsD, fakes, strict=True):
            code = netD(fake)
            out.append(bce_logits(netD.uncond_logits(code), 1.0) + bce_logits(netD.cond_logits(code, sent_emb), 1.0))
        return out

    def damsm_terms(self, image: torch.Tensor, words_emb: torch.Tensor, sent_emb: torch.Tensor,
                    lengths: torch.Tensor, class_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(L1w + L2w, L1s + L2s) of generated ``image`` (B, 3, s, s) against its own captions."""
        assert self.image_encoder is not None
        regions, global_ = encode_images(self.image_encoder, image)  # (B, D, h, w), (B, D)
        c = self.damsm
        w1, w2, _ = words_loss(regions.float(), words_emb.float(), lengths, class_ids, c.gamma1, c.gamma2, c.gamma3)
        s1, s2 = sentence_loss(global_.float(), sent_emb.float(), class_ids, c.gamma3)
        return w1 + w2, s1 + s2

    def __call__(self, netsD: Sequence[nn.Module], fakes: Sequence[torch.Tensor], mu: torch.Tensor,
                 logvar: torch.Tensor, words_emb: torch.Tensor, sent_emb: torch.Tensor,
                 lengths: torch.Tensor, class_ids: torch.Tensor | None) -> GLossTerms:
        adv = self.adversarial(netsD, fakes, sent_emb)
        total = torch.stack(adv).sum()
        kl = kl_loss(mu, logvar)
        total = total + self.kl_weight * kl
        w = s = None
        if self.lambda_damsm > 0:
            w, s = self.damsm_terms(fakes[-1], words_emb, sent_emb, lengths, class_ids)
            total = total + self.lambda_damsm * (w + s)
        return GLossTerms(total=total, adv=adv, kl=kl, w_loss=w, s_loss=s)
