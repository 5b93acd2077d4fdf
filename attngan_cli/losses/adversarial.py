"""The AttnGAN losses (paper equations 3-6 with the official code's details), one small object per phase.

* :class:`DiscriminatorLoss` — per stage:
  ``(uncond real + cond real) / 2 + (uncond fake + cond fake + cond mismatched) / 3``, the mismatched
  pairs being real images with the next sample's sentence (the official extra term). With
  ``mismatch=False`` it is the paper's equation 5 alone: ``(uncond real + cond real) / 2 +
  (uncond fake + cond fake) / 2``.
* :class:`GeneratorLoss` — ``sum over stages of (uncond + cond) adversarial terms
  + lambda * (L1w + L2w + L1s + L2s) on the last stage's image + kl_weight * KL(mu, logvar)``
  (+ ``color_consistency`` x StackGAN++'s colour regulariser, :mod:`.color_loss`).

A discriminator with ``unconditional = False`` (StackGAN's) has the conditional terms only: D's loss is
``cond real + (cond fake + cond mismatched) / 2`` (the official StackGAN; ``cond real + cond fake``
without mismatch) and G's adversarial term is the conditional one. When there are fewer discriminators
than stages (a StackGAN Stage-II on its frozen Stage-I), they judge the last stages' images.

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

from attngan_cli.config.schema import DAMSMConfig
from attngan_cli.core.distributed import gather_cat
from attngan_cli.losses.color import color_consistency
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


def has_uncond(netD: nn.Module) -> bool:
    """Whether ``netD`` has the unconditional head (every discriminator but StackGAN's)."""
    return bool(getattr(netD, "unconditional", True))


def combine_d_terms(real_uncond: torch.Tensor | None, real_cond: torch.Tensor, fake_uncond: torch.Tensor | None,
                    fake_cond: torch.Tensor, wrong_cond: torch.Tensor | None) -> torch.Tensor:
    """The per-stage discriminator loss from the five (or four) BCE terms; without the unconditional
    terms (None), StackGAN's conditional loss."""
    if real_uncond is None or fake_uncond is None:
        return real_cond + (fake_cond if wrong_cond is None else (fake_cond + wrong_cond) / 2)
    if wrong_cond is None:
        return (real_uncond + real_cond) / 2 + (fake_uncond + fake_cond) / 2
    return (real_uncond + real_cond) / 2 + (fake_uncond + fake_cond + wrong_cond) / 3


@dataclass
class DLossTerms:
    total: torch.Tensor
    real_uncond: torch.Tensor | None
    real_cond: torch.Tensor
    fake_uncond: torch.Tensor | None
    fake_cond: torch.Tensor
    wrong_cond: torch.Tensor | None = None


class DiscriminatorLoss:
    """Loss of one stage's discriminator on real images and (detached) generated ones."""

    def __init__(self, mismatch: bool = True) -> None:
        self.mismatch = mismatch

    def logits(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, sent_emb: torch.Tensor,
               wrong_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The logits (B,) of every term. Real and fake pass through D separately, as the official code
        (D's BatchNorm then normalises each batch on its own). ``wrong_emb``: the mismatched sentences
        (default: :func:`mismatched` of this batch; under torchrun, of the whole batch over the ranks)."""
        real_code = netD(real)  # (B, 8ndf, 4, 4)
        fake_code = netD(fake.detach())
        out = {"real_cond": netD.cond_logits(real_code, sent_emb), "fake_cond": netD.cond_logits(fake_code, sent_emb)}
        if has_uncond(netD):
            out["real_uncond"] = netD.uncond_logits(real_code)
            out["fake_uncond"] = netD.uncond_logits(fake_code)
        if self.mismatch:
            out["wrong_cond"] = netD.cond_logits(real_code, mismatched(sent_emb) if wrong_emb is None else wrong_emb)
        return out

    def from_logits(self, logits: dict[str, torch.Tensor]) -> DLossTerms:
        uncond = "real_uncond" in logits
        terms = {
            "real_uncond": bce_logits(logits["real_uncond"], 1.0) if uncond else None,
            "real_cond": bce_logits(logits["real_cond"], 1.0),
            "fake_uncond": bce_logits(logits["fake_uncond"], 0.0) if uncond else None,
            "fake_cond": bce_logits(logits["fake_cond"], 0.0),
        }
        wrong = bce_logits(logits["wrong_cond"], 0.0) if self.mismatch else None
        total = combine_d_terms(terms["real_uncond"], terms["real_cond"], terms["fake_uncond"],
                                terms["fake_cond"], wrong)
        return DLossTerms(total=total, wrong_cond=wrong, **terms)

    def __call__(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                 sent_emb: torch.Tensor, wrong_emb: torch.Tensor | None = None) -> DLossTerms:
        return self.from_logits(self.logits(netD, real, fake, sent_emb, wrong_emb))


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
                 image_encoder: nn.Module | None = None, color_consistency: float = 0.0) -> None:
        self.lambda_damsm = float(lambda_damsm)
        self.color_consistency = float(color_consistency)
        self.kl_weight = float(kl_weight)
        self.damsm = damsm or DAMSMConfig()
        self.image_encoder = image_encoder
        if self.lambda_damsm > 0 and image_encoder is None:
            raise ValueError("GeneratorLoss with lambda_damsm > 0 needs the frozen image encoder")

    def adversarial(self, netsD: Sequence[nn.Module], fakes: Sequence[torch.Tensor],
                    sent_emb: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for netD, fake in zip(netsD, fakes[len(fakes) - len(netsD):], strict=True):  # Ds judge the last stages
            code = netD(fake)
            cond = bce_logits(netD.cond_logits(code, sent_emb), 1.0)
            out.append(bce_logits(netD.uncond_logits(code), 1.0) + cond if has_uncond(netD) else cond)
        return out

    def damsm_terms(self, image: torch.Tensor, words_emb: torch.Tensor, sent_emb: torch.Tensor,
                    lengths: torch.Tensor, class_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(L1w + L2w, L1s + L2s) of generated ``image`` (B, 3, s, s) against its own captions. Under
        torchrun the negatives are the whole batch over the ranks (gathered, differentiable for this rank's
        images), so the loss is the one-process loss at the same total batch."""
        assert self.image_encoder is not None
        regions, global_ = encode_images(self.image_encoder, image)  # (B, D, h, w), (B, D)
        regions, global_, words_emb, sent_emb, lengths = (gather_cat(x) for x in (regions, global_, words_emb, sent_emb,
                                                                                   torch.as_tensor(lengths, device=sent_emb.device)))
        if class_ids is not None:
            class_ids = gather_cat(torch.as_tensor(class_ids, device=sent_emb.device))
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
        extras = {}
        if self.color_consistency > 0:
            extras["color"] = color_consistency(fakes)
            total = total + self.color_consistency * extras["color"]
        return GLossTerms(total=total, adv=adv, kl=kl, w_loss=w, s_loss=s, extras=extras)
