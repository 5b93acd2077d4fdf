"""AttnGAN's training objective (paper equations 3-6 with the official code's details), one small object
per phase, and :class:`AttnGANLoss`, the :class:`attngan_cli.archs.base.GANLoss` that joins them.

* :class:`DiscriminatorLoss` — per stage:
  ``(uncond real + cond real) / 2 + (uncond fake + cond fake + cond mismatched) / 3``, the mismatched
  pairs being real images with the next sample's sentence (the official extra term). With
  ``mismatch=False`` it is the paper's equation 5 alone: ``(uncond real + cond real) / 2 +
  (uncond fake + cond fake) / 2``.
* :class:`GeneratorLoss` — ``sum over stages of (uncond + cond) adversarial terms
  + lambda * (L1w + L2w + L1s + L2s) on the last stage's image + kl_weight * KL(mu, logvar)``.
* :class:`AttnGANLoss` — both, plus weighted extra generator terms of the architectures built on this
  objective (:class:`ExtraTerm`: MirrorGAN's STREAM, StackGAN++'s colour consistency), added in order.

The loss classes with ``unconditional = False`` (StackGAN's, :mod:`attngan_cli.archs.stackgan.loss`) use
the conditional terms only: D's loss is ``cond real + (cond fake + cond mismatched) / 2`` (``cond real +
cond fake`` without mismatch) and G's adversarial term is the conditional one. When there are fewer
discriminators than stages (a StackGAN Stage-II on its frozen Stage-I), they judge the last stages' images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from attngan_cli.archs.base import GANLoss, LossContext, LossTerms, TextBatch
from attngan_cli.config.schema import DAMSMConfig, TrainConfig
from attngan_cli.losses.adversarial import bce_logits, damsm_terms, kl_loss, mismatched


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

    unconditional = True  # the discriminators have the unconditional head too

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
        if self.unconditional:
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


class GeneratorLoss:
    """Adversarial terms of every stage + lambda * DAMSM (last stage) + kl_weight * KL."""

    unconditional = True

    def __init__(self, lambda_damsm: float, kl_weight: float = 1.0, damsm: DAMSMConfig | None = None,
                 image_encoder: nn.Module | None = None) -> None:
        self.lambda_damsm = float(lambda_damsm)
        self.kl_weight = float(kl_weight)
        self.damsm = damsm or DAMSMConfig()
        self.image_encoder = image_encoder
        if self.lambda_damsm > 0 and image_encoder is None:
            raise ValueError("GeneratorLoss with lambda_damsm > 0 needs the frozen image encoder")

    def condition(self, mu: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        """What the discriminators' conditional heads see in G's step: the sentence (StackGAN++'s official
        discriminators: ``mu``, with its gradient)."""
        return sent_emb

    def adversarial(self, netsD: Sequence[nn.Module], fakes: Sequence[torch.Tensor],
                    sent_emb: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for netD, fake in zip(netsD, fakes[len(fakes) - len(netsD):], strict=True):  # Ds judge the last stages
            code = netD(fake)
            cond = bce_logits(netD.cond_logits(code, sent_emb), 1.0)
            out.append(bce_logits(netD.uncond_logits(code), 1.0) + cond if self.unconditional else cond)
        return out

    def damsm_terms(self, image: torch.Tensor, words_emb: torch.Tensor, sent_emb: torch.Tensor,
                    lengths: torch.Tensor, class_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(L1w + L2w, L1s + L2s) of generated ``image`` (:func:`attngan_cli.losses.adversarial.damsm_terms`)."""
        assert self.image_encoder is not None
        return damsm_terms(self.image_encoder, self.damsm, image, words_emb, sent_emb, lengths, class_ids)

    def __call__(self, netsD: Sequence[nn.Module], fakes: Sequence[torch.Tensor], mu: torch.Tensor,
                 logvar: torch.Tensor, words_emb: torch.Tensor, sent_emb: torch.Tensor,
                 lengths: torch.Tensor, class_ids: torch.Tensor | None) -> GLossTerms:
        adv = self.adversarial(netsD, fakes, self.condition(mu, sent_emb))
        total = torch.stack(adv).sum()
        kl = kl_loss(mu, logvar)
        total = total + self.kl_weight * kl
        w = s = None
        if self.lambda_damsm > 0:
            w, s = self.damsm_terms(fakes[-1], words_emb, sent_emb, lengths, class_ids)
            total = total + self.lambda_damsm * (w + s)
        return GLossTerms(total=total, adv=adv, kl=kl, w_loss=w, s_loss=s)


class ExtraTerm(Protocol):
    """A weighted generator term an architecture adds to :class:`AttnGANLoss` (logged, unweighted, as ``name``)."""

    name: str
    weight: float

    def __call__(self, out: Any, text: TextBatch) -> torch.Tensor: ...


class AttnGANLoss(GANLoss):
    """The AttnGAN objective as a :class:`GANLoss`: D phase :class:`DiscriminatorLoss` on (real, fake,
    sentence, mismatched sentence); G phase :class:`GeneratorLoss` (the output's ``images``, ``mu``,
    ``logvar``), then every ``extra`` term times its weight."""

    def __init__(self, d: DiscriminatorLoss, g: GeneratorLoss, extra: Sequence[ExtraTerm] = (),
                 record: dict[str, Any] | None = None) -> None:
        self.d, self.g, self.extra = d, g, list(extra)
        self.record = dict(record or {})

    def discriminator(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, text: TextBatch) -> LossTerms:
        return LossTerms(self.d(D, real, fake, text.sent_emb, text.wrong_emb).total)

    def generator(self, Ds: Sequence[nn.Module], out: Any, text: TextBatch) -> LossTerms:
        terms = self.g(Ds, out.images, out.mu, out.logvar, text.words_emb, text.sent_emb, text.lengths, text.class_ids)
        for term in self.extra:
            value = term(out, text)
            terms.extras[term.name] = value
            terms.total = terms.total + term.weight * value
        return LossTerms(terms.total, terms.logs())


def attngan_loss(cfg: TrainConfig, ctx: LossContext, extra: Sequence[ExtraTerm] = (),
                 record: dict[str, Any] | None = None) -> AttnGANLoss:
    """The objective of a run of ``cfg``: ``--no-mismatch``, ``--lambda`` (with the frozen image encoder),
    ``kl_weight`` and the ``extra`` terms."""
    return AttnGANLoss(DiscriminatorLoss(cfg.mismatch),
                       GeneratorLoss(cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, ctx.image_encoder), extra, record)
