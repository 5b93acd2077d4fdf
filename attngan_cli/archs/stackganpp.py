"""StackGAN++ (Zhang et al., TPAMI 2018; official ``G_NET`` of hanzhanggit/StackGAN-v2), ``--arch stackgan++``:
a tree of generators trained jointly, every stage conditioned on the conditioning-augmented sentence
vector c instead of word attention::

    c, mu, logvar = F_ca(sentence)
    h_0 = F_0(concat(c, z))                                          (B, ngf, base, base)
    h_i = up(res(joint(concat(h_{i-1}, tile(c)))))    for i >= 1     (B, ngf / 2^i, base*2^i, ...)
    x_i = tanh(conv3x3(h_i))

The channels halve at every stage as the official tree (64 -> 32 -> 16 at GF_DIM 64). Its
discriminators are AttnGAN's (which are StackGAN++'s ``D_NET64/128/256``). ``--arch-option d_condition``
(``generator.variant``) says what their conditional heads see: ``mu`` (new runs), CA's mu as the official
code (detached in D's step, with its gradient in G's, so that the heads also train the CA net), or
``sentence`` (also ``""``: runs made before the option), the DAMSM sentence vector.

Its objective (``--arch-option loss``, :class:`StackGANppDiscriminatorLoss`): by default StackGAN-v2's
``code/trainer.py`` (``condGANTrainer.train_Dnet`` / ``train_Gnet``): per stage, D sums six BCE terms with
weight 1 (``UNCOND_LOSS`` 1),

    cond(x, s) -> 1  +  cond(x_w, s) -> 0  +  cond(G, s) -> 0
    + uncond(x) -> 1 +  uncond(x_w) -> 1   +  uncond(G) -> 0

where x_w, the "wrong" image, is the real image of another class (:func:`wrong_index`: the next sample of
the batch, cyclically, whose class id differs from this one's); G sums ``cond(G, s) -> 1 + uncond(G) -> 1``
over the stages + 2 KL (+ ``--color-consistency`` times the colour-consistency regulariser,
:mod:`attngan_cli.losses.color`). ``--no-mismatch`` drops the two x_w terms. ``loss=attngan`` is AttnGAN's
averaged five-term loss with a mismatched sentence (:mod:`attngan_cli.archs.attngan.loss`), which runs
made before this option trained with (a resumed one keeps it).

Settings (:data:`PRESETS`): StackGAN-v2's ``birds_3stages.yml`` on CUB; StackGAN-v2 published no COCO
configuration, so the coco preset uses its bird values; the shapes entry changes only what the
architecture needs and keeps the shapes preset's CPU-sized learning rates. ``lambda_damsm`` is 0 (the
paper has no DAMSM); ``--lambda 5`` is AttnGAN's "without attention" ablation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from attngan_cli.archs.attngan.discriminators import make_discriminators
from attngan_cli.archs.attngan.generator import GeneratorOutput, ImageHead, InitStage, first_stage_ups
from attngan_cli.archs.attngan.loss import (
    AttnGANLoss,
    DiscriminatorLoss,
    DLossTerms,
    ExtraTerm,
    GeneratorLoss,
)
from attngan_cli.archs.base import (
    Architecture,
    LossContext,
    LossTerms,
    SettingsContext,
    TextBatch,
    refuse_unused,
)
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig, TrainConfig
from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.losses.adversarial import bce_logits, mismatched
from attngan_cli.losses.color import color_consistency
from attngan_cli.networks.blocks import GLU, CANet, ResBlock, conv3x3, init_weights, tile, up_block


def joint_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv to 2*out_ch, BN, GLU, keeping the size (official StackGAN++ ``Block3x3_relu``)."""
    return nn.Sequential(conv3x3(in_ch, out_ch * 2), nn.BatchNorm2d(out_ch * 2), GLU())


class CondStage(nn.Module):
    """A StackGAN++ stage after the first: concat(h, tiled c), joint conv to ``ngf``, ``r_num`` residual
    blocks, an up-block to ngf/2: (B, ngf, s, s) -> (B, ngf/2, 2s, 2s). Official ``NEXT_STAGE_G``."""

    def __init__(self, ngf: int, condition_dim: int, r_num: int) -> None:
        super().__init__()
        self.joint = joint_block(ngf + condition_dim, ngf)
        self.residual = nn.Sequential(*[ResBlock(ngf) for _ in range(r_num)])
        self.upsample = up_block(ngf, ngf // 2)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.joint(torch.cat((h, tile(c, h)), dim=1))  # (B, ngf, s, s)
        return self.upsample(self.residual(x))  # (B, ngf/2, 2s, 2s)


class StackGANppGenerator(nn.Module):
    """StackGAN++: ``forward(z, sent_emb, words_emb, mask, ca_noise=True) -> GeneratorOutput`` with
    ``attn`` empty (the words are not used)."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__()
        if not 1 <= cfg.stages <= 4:
            raise AttnGANError(f"--stages (generator.stages) of --arch {cfg.arch} must be 1 or 2 or 3 or 4 "
                               f"(images of base_size * 2^i), got {cfg.stages}")
        halvings = cfg.stages - 1
        if cfg.ngf % 2**halvings or cfg.ngf < 2**halvings:
            raise AttnGANError(f"--ngf of --arch stackgan++ halves at every stage: with {cfg.stages} stages it must be a "
                               f"multiple of {2**halvings}, got {cfg.ngf}")
        self.cfg = cfg
        n_up = first_stage_ups(cfg.base_size)
        self.ca_net = CANet(cfg.embedding_dim, cfg.condition_dim)
        self.h_net1 = InitStage(cfg.z_dim + cfg.condition_dim, cfg.ngf * 2**n_up, n_up)
        self.img_net1 = ImageHead(cfg.ngf)
        for i in range(2, cfg.stages + 1):
            ch = cfg.ngf // 2 ** (i - 2)  # channels entering stage i
            self.add_module(f"h_net{i}", CondStage(ch, cfg.condition_dim, cfg.r_num))
            self.add_module(f"img_net{i}", ImageHead(ch // 2))
        if init:
            init_weights(self)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, ca_noise: bool | torch.Tensor = True,
                official_mask: bool = False) -> GeneratorOutput:
        c, mu, logvar = self.ca_net(sent_emb, noise=ca_noise)  # (B, c_dim) each
        h = self.h_net1(z, c)  # (B, ngf, base, base)
        images = [self.img_net1(h)]
        for i in range(2, self.cfg.stages + 1):
            h = getattr(self, f"h_net{i}")(h, c)  # (B, ngf / 2^(i-1), 2s, 2s)
            images.append(getattr(self, f"img_net{i}")(h))
        return GeneratorOutput(images, [], mu, logvar)


class ColorTerm:
    """The colour-consistency regulariser between neighbouring stages (equation 9), logged as ``color``."""

    name = "color"

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    def __call__(self, out: Any, text: TextBatch) -> torch.Tensor:
        return color_consistency(out.images)


OFFICIAL_LOSS = "stackgan++"
ATTNGAN_LOSS = "attngan"
ON_MU = "mu"  # generator.variant: the discriminators are conditioned on CA's mu (official)
ON_SENTENCE = "sentence"  # ... on the sentence vector ("" too: runs made before the option)


@dataclass
class StackGANppOptions:
    """``--arch-option loss=stackgan++|attngan``: the discriminator objective; ``d_condition=mu|sentence``:
    what the discriminators' conditional heads see (it sets ``generator.variant``)."""

    loss: str = field(default=OFFICIAL_LOSS, metadata={
        "help": "stackgan++ (StackGAN-v2's six-term loss with wrong images, the default) or attngan (AttnGAN's "
                "averaged five-term loss with a mismatched sentence, as runs made before this option)"})
    d_condition: str = field(default=ON_MU, metadata={
        "config": "generator.variant",
        "help": "mu (CA's mu, as StackGAN-v2, the default) or sentence (the DAMSM sentence vector, as runs made "
                "before this option)"})

    def __post_init__(self) -> None:
        if self.loss not in (OFFICIAL_LOSS, ATTNGAN_LOSS):
            raise InputError(f"--arch-option loss must be {OFFICIAL_LOSS} or {ATTNGAN_LOSS}, got {self.loss!r}")
        if self.d_condition not in (ON_MU, ON_SENTENCE):
            raise InputError(f"--arch-option d_condition must be {ON_MU} or {ON_SENTENCE}, got {self.d_condition!r}")


def on_mu(gcfg: GeneratorConfig) -> bool:
    """Whether the discriminators of ``gcfg`` are conditioned on mu (``generator.variant``); another variant
    than mu, sentence or "" is an error naming it."""
    if gcfg.variant not in ("", ON_MU, ON_SENTENCE):
        raise AttnGANError(f"generator.variant {gcfg.variant!r} (--arch-option d_condition) of --arch stackgan++: "
                           f"choose {ON_MU} or {ON_SENTENCE}")
    return gcfg.variant == ON_MU


def stackganpp_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """AttnGAN's per-stage discriminators, whose conditional heads take ``condition_dim`` values (mu) or
    the ``embedding_dim`` sentence vector."""
    if on_mu(gcfg):
        dcfg = dataclasses.replace(dcfg, embedding_dim=gcfg.condition_dim)
    return make_discriminators(gcfg, dcfg, init=init)


class MuGeneratorLoss(GeneratorLoss):
    """G's adversarial terms with the discriminators conditioned on mu, not detached (StackGAN-v2's
    ``train_Gnet``: ``self.netsD[i](self.fake_imgs[i], mu)``)."""

    def condition(self, mu: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return mu


def wrong_index(class_ids: torch.Tensor) -> torch.Tensor:
    """For each sample i of the batch (``class_ids`` (B,)) the index of the next sample, cyclically, whose
    class differs from i's: i + k mod B for the smallest k >= 1; k = 1 when every other sample shares i's
    class. (B,) long. The official dataset draws a random other image instead, drawing once more when it
    has the same class."""
    B = class_ids.shape[0]
    idx = torch.arange(B, device=class_ids.device)
    shifts = torch.arange(1, B, device=class_ids.device)  # (B-1,)
    others = class_ids[(idx[:, None] + shifts[None, :]) % B]  # (B, B-1): the classes of i+1, i+2, ...
    differs = others != class_ids[:, None]  # (B, B-1)
    k = torch.where(differs.any(dim=1), differs.int().argmax(dim=1) + 1, 1) if B > 1 else idx  # (B,)
    return (idx + k) % B


class StackGANppDiscriminatorLoss(DiscriminatorLoss):
    """StackGAN-v2's D loss of one stage (weights 1, ``UNCOND_LOSS`` ``uncond_weight``): real, wrong and fake
    images each pass through D on their own (its BatchNorm normalises each batch separately, as the
    official code), all three with the right sentence."""

    def __init__(self, mismatch: bool = True, uncond_weight: float = 1.0) -> None:
        super().__init__(mismatch)
        self.uncond_weight = float(uncond_weight)

    def official(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, sent_emb: torch.Tensor,
                 class_ids: torch.Tensor) -> DLossTerms:
        """The terms; ``sent_emb`` (B, D) is what the conditional head sees (the sentence, or mu detached)."""
        # real, wrong and fake in the official order: the BatchNorm running statistics follow it
        u = self.uncond_weight
        real_code = netD(real)  # (B, 8ndf, 4, 4)
        real_cond = bce_logits(netD.cond_logits(real_code, sent_emb), 1.0)
        real_uncond = u * bce_logits(netD.uncond_logits(real_code), 1.0)
        total = real_cond + real_uncond
        wrong_cond = None
        if self.mismatch:
            wrong_code = netD(real[wrong_index(class_ids)])  # real images of another class
            wrong_cond = bce_logits(netD.cond_logits(wrong_code, sent_emb), 0.0)
            wrong_uncond = u * bce_logits(netD.uncond_logits(wrong_code), 1.0)  # a real image: real for this head
            total = total + wrong_cond + wrong_uncond
        fake_code = netD(fake.detach())
        fake_cond = bce_logits(netD.cond_logits(fake_code, sent_emb), 0.0)
        fake_uncond = u * bce_logits(netD.uncond_logits(fake_code), 0.0)
        total = total + fake_cond + fake_uncond
        return DLossTerms(total=total, real_uncond=real_uncond, real_cond=real_cond, fake_uncond=fake_uncond,
                          fake_cond=fake_cond, wrong_cond=wrong_cond)


class StackGANppLoss(AttnGANLoss):
    """:class:`AttnGANLoss` with StackGAN++'s D phase: :class:`StackGANppDiscriminatorLoss` (``official``)
    or AttnGAN's, the conditional heads seeing the sentence or (``on_mu``) the batch's mu, detached
    (``text.cond``); with ``on_mu`` the mismatched pairs of AttnGAN's loss pair a real image with the next
    sample's mu. Its G phase is StackGAN-v2's: ``cond + UNCOND_LOSS * uncond`` per stage + KL, UNCOND_LOSS 1
    (:class:`MuGeneratorLoss` with ``on_mu``)."""

    def __init__(self, d: DiscriminatorLoss, g: GeneratorLoss, extra: Sequence[ExtraTerm] = (), *,
                 official: bool = True, on_mu: bool = True) -> None:
        super().__init__(d, g, extra)
        self.official, self.on_mu = official, on_mu

    def discriminator(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, text: TextBatch) -> LossTerms:
        if self.on_mu and text.cond is None:
            raise AttnGANError("StackGAN++'s discriminators are conditioned on mu: the D phase needs text.cond")
        cond = text.cond if self.on_mu else text.sent_emb  # (B, c_dim) or (B, D)
        if self.official:
            assert isinstance(self.d, StackGANppDiscriminatorLoss)
            return LossTerms(self.d.official(D, real, fake, cond, text.class_ids).total)
        wrong = mismatched(cond) if self.on_mu else text.wrong_emb
        return LossTerms(self.d(D, real, fake, cond, wrong).total)


def make_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    extra = [ColorTerm(cfg.color_consistency)] if cfg.color_consistency > 0 else []
    official = ARCH.option_values(cfg.arch_options).loss == OFFICIAL_LOSS
    mu = on_mu(cfg.generator)
    d = StackGANppDiscriminatorLoss(cfg.mismatch) if official else DiscriminatorLoss(cfg.mismatch)
    g = (MuGeneratorLoss if mu else GeneratorLoss)(cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, ctx.image_encoder)
    return StackGANppLoss(d, g, extra, official=official, on_mu=mu)


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    """A run records its loss: a new one the chosen (default StackGAN-v2's), a resumed one made before the
    option existed AttnGAN's, which it trained with."""
    refuse_unused(cfg, ARCH, uses=("color_consistency",))
    if "loss" not in cfg.arch_options:
        loss = ATTNGAN_LOSS if ctx.resuming else OFFICIAL_LOSS
        cfg = dataclasses.replace(cfg, arch_options={**cfg.arch_options, "loss": loss})
    return cfg


# StackGAN-v2 code/cfg/birds_3stages.yml + code/miscc/config.py: batch 24, Adam 2e-4 (G and D), KL 2.0,
# GAN.EMBEDDING_DIM (condition) 128, GF_DIM 64 (channels at 64 px; halved at every next stage), DF_DIM 64,
# R_NUM 2, 3 branches, 600 epochs, COLOR_LOSS 0 (the regulariser was used on the unconditional datasets).
_BIRD: dict[str, Any] = {
    "generator.stages": 3, "generator.base_size": 64, "generator.ngf": 64, "generator.r_num": 2,
    "generator.condition_dim": 128, "discriminator.ndf": 64, "batch_size": 24, "epochs": 600,
    "lr_g": 2e-4, "lr_d": 2e-4, "kl_weight": 2.0, "lambda_damsm": 0.0, "color_consistency": 0.0,
    "generator.variant": ON_MU,
}

PRESETS: dict[str, dict[str, Any]] = {
    "bird": _BIRD,
    "coco": {**_BIRD, "epochs": 120},  # StackGAN-v2 published no COCO cfg; the coco preset's epochs
    # twice the shapes ngf at the first stage, as GF_DIM 64 is twice AttnGAN's bird ngf 32: 32, 16, 8 channels
    "shapes": {"generator.ngf": 32, "kl_weight": 2.0, "lambda_damsm": 0.0, "generator.variant": ON_MU},
}

ARCH = Architecture(
    name="stackgan++",
    summary="StackGAN++ tree: sentence-conditioned stages, no word attention (--lambda 5: AttnGAN without attention)",
    paper="Zhang et al., TPAMI 2018 (StackGAN++)",
    build_generator=StackGANppGenerator,
    build_discriminators=stackganpp_discriminators,
    make_loss=make_loss,
    check_settings=check_settings,
    presets=PRESETS,
    options=StackGANppOptions,
    word_attention=False,
)
