"""The attentional generative network (paper section 3.1, equations 1 to 3).

    c, mu, logvar = F_ca(sentence)                                  conditioning augmentation
    h_0 = F_0(concat(c, z))                                         (B, ngf, base, base)
    h_i = F_i(concat(h_{i-1}, F_attn_i(e, h_{i-1})))  for i >= 1    (B, ngf, base*2^i, base*2^i)
    x_i = tanh(conv3x3(h_i))                                        (B, 3, ...) in [-1, 1]

Modules are built from the config (``stages`` 1 to 4, ``base_size`` a power of two >= 8) and named as
the official ``G_NET`` (``ca_net``, ``h_net1``, ``img_net1``, ``h_net2.att.conv_context``,
``h_net2.residual.0.block.0``, ``h_net2.upsample.1``, ...), so for the official layouts (base 64,
up to 3 stages) an official state dict loads as it is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from attngan_cli.config.schema import GeneratorConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.networks.attention import WordAttention
from attngan_cli.networks.blocks import GLU, CANet, ResBlock, conv3x3, init_weights, up_block


class GeneratorOutput(NamedTuple):
    images: list[torch.Tensor]  # per stage (B, 3, s_i, s_i) in [-1, 1]
    attn: list[torch.Tensor]  # per attentional stage (B, T, s_{i-1}, s_{i-1})
    mu: torch.Tensor  # (B, c_dim)
    logvar: torch.Tensor  # (B, c_dim)
    sent_attn: list[torch.Tensor] | tuple[()] = ()  # per sentence-attention stage (B, 1, s, s): MirrorGAN's GLAM


class InitStage(nn.Module):
    """concat(c, z) -> linear (no bias) -> BN1d -> GLU -> (gf, 4, 4) -> ``n_up`` up-blocks halving the
    channels: (B, gf / 2**n_up, 4 * 2**n_up, ...). Official ``INIT_STAGE_G`` for n_up = 4."""

    def __init__(self, in_dim: int, gf: int, n_up: int) -> None:
        super().__init__()
        if gf % 2**n_up:
            raise AttnGANError(f"first-stage channels {gf} cannot be halved {n_up} times")
        self.gf = gf
        self.n_up = n_up
        self.fc = nn.Sequential(nn.Linear(in_dim, gf * 4 * 4 * 2, bias=False), nn.BatchNorm1d(gf * 4 * 4 * 2), GLU())
        for i in range(1, n_up + 1):
            self.add_module(f"upsample{i}", up_block(gf // 2 ** (i - 1), gf // 2**i))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat((c, z), dim=1)).view(z.shape[0], self.gf, 4, 4)  # (B, gf, 4, 4)
        for i in range(1, self.n_up + 1):
            h = getattr(self, f"upsample{i}")(h)  # doubles the size, halves the channels
        return h  # (B, gf / 2**n_up, base, base)


class NextStage(nn.Module):
    """Word attention on h, concat(h, context), ``r_num`` residual blocks on 2ngf channels, an up-block
    to ngf: (B, ngf, s, s) -> (B, ngf, 2s, 2s) and the attention (B, T, s, s). Official ``NEXT_STAGE_G``."""

    def __init__(self, ngf: int, embedding_dim: int, r_num: int) -> None:
        super().__init__()
        self.att = WordAttention(ngf, embedding_dim)
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(r_num)])
        self.upsample = up_block(ngf * 2, ngf)

    def forward(self, h: torch.Tensor, words_emb: torch.Tensor, mask: torch.Tensor | None,
                official_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        context, attn = self.att(h, words_emb, mask, official_mask=official_mask)  # (B, ngf, s, s), (B, T, s, s)
        out = self.residual(torch.cat((h, context), dim=1))  # (B, 2ngf, s, s)
        return self.upsample(out), attn


class ImageHead(nn.Module):
    """3x3 conv ngf -> 3, tanh. Official ``GET_IMAGE_G``."""

    def __init__(self, ngf: int) -> None:
        super().__init__()
        self.img = nn.Sequential(conv3x3(ngf, 3), nn.Tanh())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.img(h)


def first_stage_ups(base_size: int) -> int:
    """Up-blocks of the first stage: 4x4 -> base_size (4 for the official 64 px)."""
    n = round(math.log2(base_size / 4))
    if base_size < 8 or 4 * 2**n != base_size:
        raise AttnGANError(f"generator.base_size must be a power of two >= 8, got {base_size}")
    return n


class Generator(nn.Module):
    """The AttnGAN generator. ``forward(z, sent_emb, words_emb, mask, ca_noise=True) -> GeneratorOutput``.

    ``init=False`` skips the official initialisation (for weights loaded right after construction).
    """

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__()
        if not 1 <= cfg.stages <= 4:
            raise AttnGANError(f"generator.stages must be 1, 2, 3 or 4, got {cfg.stages}")
        self.cfg = cfg
        n_up = first_stage_ups(cfg.base_size)
        self.ca_net = CANet(cfg.embedding_dim, cfg.condition_dim)
        self.h_net1 = InitStage(cfg.z_dim + cfg.condition_dim, cfg.ngf * 2**n_up, n_up)
        self.img_net1 = ImageHead(cfg.ngf)
        for i in range(2, cfg.stages + 1):
            self.add_module(f"h_net{i}", NextStage(cfg.ngf, cfg.embedding_dim, cfg.r_num))
            self.add_module(f"img_net{i}", ImageHead(cfg.ngf))
        if init:  # False when weights are loaded right after (skips the orthogonal init's QR factorisations)
            init_weights(self)

    @property
    def stage_nets(self) -> list[nn.Module]:
        return [getattr(self, f"h_net{i}") for i in range(1, self.cfg.stages + 1)]

    @property
    def image_nets(self) -> list[nn.Module]:
        return [getattr(self, f"img_net{i}") for i in range(1, self.cfg.stages + 1)]

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor,
                mask: torch.Tensor | None = None, ca_noise: bool | torch.Tensor = True,
                official_mask: bool = False) -> GeneratorOutput:
        """z (B, z_dim), sent_emb (B, D), words_emb (B, D, T), mask (B, T) bool with True = padding word.

        ``ca_noise=False`` uses c = mu (deterministic); a tensor (B, condition_dim) is used as the
        conditioning-augmentation noise eps. ``official_mask=True`` reproduces the official
        code's mis-indexed padding mask (see :func:`attention.official_mask_layout`); only for checking
        against official outputs.
        """
        c, mu, logvar = self.ca_net(sent_emb, noise=ca_noise)  # (B, c_dim) each
        h = self.h_net1(z, c)  # (B, ngf, base, base)
        images = [self.img_net1(h)]
        attn: list[torch.Tensor] = []
        for stage, head in zip(self.stage_nets[1:], self.image_nets[1:], strict=True):
            h, a = stage(h, words_emb, mask, official_mask=official_mask)  # (B, ngf, 2s, 2s), (B, T, s, s)
            images.append(head(h))
            attn.append(a)
        return GeneratorOutput(images, attn, mu, logvar)

