"""DF-GAN's networks (Tao et al., CVPR 2022, section 3 and figure 2): a one-stage generator of up-blocks
with deep text-image fusion, and a one-way-output discriminator.

Generator (``nf`` = ``generator.ngf``, s the image size, n = log2(s) - 2 up-blocks)::

    h = linear(z) viewed as (B, 8 nf, 4, 4)
    cond = concat(z, sentence)                                           (B, z_dim + D)
    h = UpBlock_i(h, cond)   for i < n: nearest x2, then
        shortcut(h) + conv3x3(fuse(conv3x3(fuse(h, cond)), cond))         (B, ch_i, 4 * 2^(i+1), ...)
    image = tanh(conv3x3(leaky(h)))                                      (B, 3, s, s)

    fuse(h, cond) = leaky(affine_2(leaky(affine_1(h, cond)), cond))
    affine(h, cond) = gamma(cond) * h + beta(cond)     gamma, beta: Linear -> ReLU -> Linear, per channel

The channels are ``nf * min(2^j, 8)`` read from the image end (nf at s, 2 nf at s/2, ... 8 nf from s/8
down to 4). The last Linear of every gamma starts at weight 0, bias 1 and of every beta at 0, so each
affine starts as the identity.

Discriminator: conv3x3 to nf, then n down-blocks to (B, 8 nf, 4, 4), each
``pool(shortcut(x)) + g * conv3x3(leaky(conv4x4/2(x)))`` (leaky after both convs, g a learned scalar that
starts at 0); the head joins the features with the sentence tiled to 4x4 and gives one logit per image
(conv3x3 -> leaky -> conv4x4). The head is a separate module (:class:`JointHead`) because the objective
reuses the image features for the mismatched pairs and the gradient penalty.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attngan_cli.archs.attngan.generator import GeneratorOutput
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.core.errors import InputError

SLOPE = 0.2  # every LeakyReLU


def block_count(size: int, arch: str = "dfgan") -> int:
    """Up-blocks (and down-blocks) between 4x4 and ``size``: log2(size) - 2 (6 at 256 px)."""
    n = size.bit_length() - 1
    if size < 8 or 2**n != size:
        raise InputError(f"--arch {arch}: the image size (generator.base_size) must be a power of two >= 8, got {size}")
    return n - 2


def channels(nf: int, size: int) -> list[int]:
    """Channels from 4x4 up to ``size`` (block_count + 1 values): nf * min(2^j, 8), j counted from ``size``."""
    n = block_count(size)
    return [nf * min(2**j, 8) for j in range(n, -1, -1)]


class Affine(nn.Module):
    """``gamma(cond) * h + beta(cond)`` per channel; gamma and beta each Linear -> ReLU -> Linear."""

    def __init__(self, cond_dim: int, ch: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond_dim, ch), nn.ReLU(), nn.Linear(ch, ch))
        self.beta = nn.Sequential(nn.Linear(cond_dim, ch), nn.ReLU(), nn.Linear(ch, ch))
        self.reset_identity()

    def reset_identity(self) -> None:
        nn.init.zeros_(self.gamma[2].weight)
        nn.init.ones_(self.gamma[2].bias)
        nn.init.zeros_(self.beta[2].weight)
        nn.init.zeros_(self.beta[2].bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        g = self.gamma(cond)[:, :, None, None]  # (B, C, 1, 1)
        b = self.beta(cond)[:, :, None, None]  # (B, C, 1, 1)
        return g * h + b


class Fusion(nn.Module):
    """Deep text-image fusion: two stacked affines, each followed by LeakyReLU(0.2)."""

    def __init__(self, cond_dim: int, ch: int) -> None:
        super().__init__()
        self.affine1 = Affine(cond_dim, ch)
        self.affine2 = Affine(cond_dim, ch)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.affine1(h, cond), SLOPE, inplace=True)  # in place on fresh outputs, as below
        return F.leaky_relu(self.affine2(h, cond), SLOPE, inplace=True)


class UpBlock(nn.Module):
    """(B, in_ch, s, s) -> (B, out_ch, 2s, 2s): nearest x2, residual of two fused 3x3 convs, 1x1 shortcut
    when the channels change."""

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.fuse1 = Fusion(cond_dim, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.fuse2 = Fusion(cond_dim, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, in_ch, 2s, 2s)
        r = self.conv2(self.fuse2(self.conv1(self.fuse1(h, cond)), cond))  # (B, out_ch, 2s, 2s)
        return (h if self.shortcut is None else self.shortcut(h)) + r


class DFGenerator(nn.Module):
    """``forward(z, sent_emb, words_emb=None, mask=None, ca_noise=...) -> GeneratorOutput`` with one
    stage of images and no attention (the words, the mask and ``ca_noise`` are not used)."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__()
        if cfg.stages != 1:
            raise InputError(f"--arch dfgan has one stage (--stages 1; the image size is --base-size), got {cfg.stages}")
        self.cfg = cfg
        ch = channels(cfg.ngf, cfg.base_size)
        cond_dim = cfg.z_dim + cfg.embedding_dim
        self.fc = nn.Linear(cfg.z_dim, ch[0] * 4 * 4)
        self.blocks = nn.ModuleList(UpBlock(cond_dim, a, b) for a, b in zip(ch[:-1], ch[1:], strict=True))
        self.to_rgb = nn.Conv2d(ch[-1], 3, 3, 1, 1)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: Any = None, mask: Any = None,
                ca_noise: Any = True) -> GeneratorOutput:
        h = self.fc(z).view(z.shape[0], -1, 4, 4)  # (B, 8 nf, 4, 4)
        cond = torch.cat((z, sent_emb.to(z.dtype)), dim=1)  # (B, z_dim + D)
        for block in self.blocks:
            h = block(h, cond)  # (B, ch_i, 2s, 2s)
        image = torch.tanh(self.to_rgb(F.leaky_relu(h, SLOPE, inplace=True)))  # (B, 3, size, size)
        return GeneratorOutput([image], [], None, None)  # type: ignore[arg-type]


class DownBlock(nn.Module):
    """(B, in_ch, s, s) -> (B, out_ch, s/2, s/2): avg-pooled (1x1-projected) shortcut + a learned scalar
    (starting at 0) times the residual conv4x4/2 -> leaky -> conv3x3 -> leaky (no biases)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(1))
        self.conv1 = nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = F.leaky_relu(self.conv1(x), SLOPE, inplace=True)
        r = F.leaky_relu(self.conv2(r), SLOPE, inplace=True)  # (B, out_ch, s/2, s/2)
        s = x if self.shortcut is None else self.shortcut(x)
        return F.avg_pool2d(s, 2) + self.gain * r


class JointHead(nn.Module):
    """The one-way output: concat(features (B, feature_ch = 8 nf from 32 px up, 4, 4), sentence tiled to 4x4) -> conv3x3 to 2 nf ->
    leaky -> conv4x4 -> (B,) logits."""

    def __init__(self, ndf: int, feature_ch: int, embedding_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feature_ch + embedding_dim, 2 * ndf, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(2 * ndf, 1, 4, 1, 0, bias=False)

    def forward(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        s = sent_emb.to(features.dtype)[:, :, None, None].expand(-1, -1, *features.shape[2:])  # (B, D, 4, 4)
        h = F.leaky_relu(self.conv1(torch.cat((features, s), dim=1)), SLOPE, inplace=True)  # (B, 2 ndf, 4, 4)
        return self.conv2(h).flatten()  # (B,)


class DFDiscriminator(nn.Module):
    """``features(images (B, 3, s, s)) -> (B, 8 ndf, 4, 4)``, ``head(features, sentence) -> (B,)`` and
    ``forward(images, sentence) -> (B,)`` (both)."""

    def __init__(self, dcfg: DiscriminatorConfig, size: int) -> None:
        super().__init__()
        ch = channels(dcfg.ndf, size)[::-1]  # from the image: ndf, 2 ndf, ... 8 ndf
        self.conv_in = nn.Conv2d(3, ch[0], 3, 1, 1)
        self.blocks = nn.ModuleList(DownBlock(a, b) for a, b in zip(ch[:-1], ch[1:], strict=True))
        self.head = JointHead(dcfg.ndf, ch[-1], dcfg.embedding_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(images)  # (B, ndf, s, s)
        for block in self.blocks:
            h = block(h)
        return h  # (B, 8 ndf, 4, 4)

    def forward(self, images: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images), sent_emb)


def make_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """One discriminator at the generator's image size."""
    return nn.ModuleList([DFDiscriminator(dcfg, gcfg.base_size)])
