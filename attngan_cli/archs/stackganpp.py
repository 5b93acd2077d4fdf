"""StackGAN++ (Zhang et al., TPAMI 2018; official ``G_NET`` of hanzhanggit/StackGAN-v2), ``--arch stackgan++``:
a tree of generators trained jointly, every stage conditioned on the conditioning-augmented sentence
vector c instead of word attention::

    c, mu, logvar = F_ca(sentence)
    h_0 = F_0(concat(c, z))                                          (B, ngf, base, base)
    h_i = up(res(joint(concat(h_{i-1}, tile(c)))))    for i >= 1     (B, ngf / 2^i, base*2^i, ...)
    x_i = tanh(conv3x3(h_i))

The channels halve at every stage as the official tree (64 -> 32 -> 16 at GF_DIM 64). Its
discriminators are AttnGAN's (which are StackGAN++'s ``D_NET64/128/256``), conditioned on the sentence
vector; its objective is AttnGAN's (:mod:`attngan_cli.archs.attngan.loss`) with the colour-consistency
regulariser (:mod:`attngan_cli.losses.color`) weighted by ``--color-consistency``.

Settings (:data:`PRESETS`): StackGAN-v2's ``birds_3stages.yml`` on CUB; where the paper published no
configuration (COCO) its bird values are used; the shapes entry changes only what the architecture needs
and keeps the shapes preset's CPU-sized learning rates. ``lambda_damsm`` is 0 (the paper has no DAMSM);
``--lambda 5`` is AttnGAN's "without attention" ablation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attngan_cli.archs.attngan.discriminators import make_discriminators
from attngan_cli.archs.attngan.generator import GeneratorOutput, ImageHead, InitStage, first_stage_ups
from attngan_cli.archs.attngan.loss import AttnGANLoss, attngan_loss
from attngan_cli.archs.base import Architecture, LossContext, SettingsContext, TextBatch, refuse_unused
from attngan_cli.config.schema import GeneratorConfig, TrainConfig
from attngan_cli.core.errors import AttnGANError
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


def make_loss(cfg: TrainConfig, ctx: LossContext) -> AttnGANLoss:
    return attngan_loss(cfg, ctx, [ColorTerm(cfg.color_consistency)] if cfg.color_consistency > 0 else [])


def check_settings(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    refuse_unused(cfg, ARCH, uses=("color_consistency",))
    return cfg


# StackGAN-v2 code/cfg/birds_3stages.yml + code/miscc/config.py: batch 24, Adam 2e-4 (G and D), KL 2.0,
# GAN.EMBEDDING_DIM (condition) 128, GF_DIM 64 (channels at 64 px; halved at every next stage), DF_DIM 64,
# R_NUM 2, 3 branches, 600 epochs, COLOR_LOSS 0 (the regulariser was used on the unconditional datasets).
_BIRD: dict[str, Any] = {
    "generator.stages": 3, "generator.base_size": 64, "generator.ngf": 64, "generator.r_num": 2,
    "generator.condition_dim": 128, "discriminator.ndf": 64, "batch_size": 24, "epochs": 600,
    "lr_g": 2e-4, "lr_d": 2e-4, "kl_weight": 2.0, "lambda_damsm": 0.0, "color_consistency": 0.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "bird": _BIRD,
    "coco": {**_BIRD, "epochs": 120},  # no published COCO cfg; the coco preset's epochs
    # twice the shapes ngf at the first stage, as GF_DIM 64 is twice AttnGAN's bird ngf 32: 32, 16, 8 channels
    "shapes": {"generator.ngf": 32, "kl_weight": 2.0, "lambda_damsm": 0.0},
}

ARCH = Architecture(
    name="stackgan++",
    summary="StackGAN++ tree: sentence-conditioned stages, no word attention (--lambda 5: AttnGAN without attention)",
    paper="Zhang et al., TPAMI 2018 (StackGAN++)",
    build_generator=StackGANppGenerator,
    build_discriminators=make_discriminators,
    make_loss=make_loss,
    check_settings=check_settings,
    presets=PRESETS,
    word_attention=False,
)
