"""The per-stage discriminators (official ``D_NET64`` / ``D_NET128`` / ``D_NET256``, generalised).

An image of size s is encoded to a (B, 8ndf, 4, 4) code by log2(s/4) stride-2 4x4 convolutions (BN
except the first, LeakyReLU 0.2):

- ``img_code_s16``: the first (up to) four of them, 3 -> ndf -> 2ndf -> 4ndf -> 8ndf (official
  ``encode_image_by_16times``; smaller images than 64 px use its last levels, 3 -> 2ndf -> 4ndf -> 8ndf at
  32 px, and so on);
- for 128 px and up, one down-block per further level doubling the channels (capped at 32ndf), named
  ``img_code_s32``, ``img_code_s64``, ``img_code_s128``, then 3x3 blocks halving them back to 8ndf, named
  ``img_code_s<last>_1``, ``_2`` (128: s32 + s32_1; 256: s32, s64, s64_1, s64_2 as official; 512: s32, s64,
  s128 (32ndf -> 32ndf), s128_1, s128_2).

Two heads (official ``D_GET_LOGITS``) return LOGITS (the official code applies a sigmoid):
``UNCOND_DNET`` (4x4 conv to one value) and ``COND_DNET`` (sentence vector tiled to 4x4, concatenated,
3x3 conv + BN + LeakyReLU to 8ndf, then the 4x4 conv).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.networks.blocks import block3x3_leaky, down_block, init_weights

MAX_MULT = 32  # channel cap (in units of ndf) for the extra down levels
STAGE_SCALE = 2  # the stages double the image size


def encode_image(ndf: int, levels: int) -> nn.Sequential:
    """``levels`` (1..4) stride-2 convs ending at 8ndf channels: (B, 3, s, s) -> (B, 8ndf, s/2^levels, ...)."""
    mults = [1, 2, 4, 8][4 - levels :]
    layers: list[nn.Module] = [nn.Conv2d(3, ndf * mults[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
    for a, b in zip(mults[:-1], mults[1:], strict=True):
        layers += [nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class LogitsHead(nn.Module):
    """(B, 8ndf, 4, 4) [+ sentence (B, nef)] -> (B,) logits."""

    def __init__(self, ndf: int, nef: int, conditional: bool,
                 joint: Callable[[int, int], nn.Module] = block3x3_leaky) -> None:
        super().__init__()
        self.nef = nef
        self.conditional = conditional
        if conditional:
            self.jointConv = joint(ndf * 8 + nef, ndf * 8)
        self.outlogits = nn.Sequential(nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=4))

    def forward(self, code: torch.Tensor, sent_emb: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if sent_emb is None:
                raise ValueError("the conditional head needs the sentence embedding")
            s = sent_emb.view(-1, self.nef, 1, 1).expand(-1, -1, code.shape[2], code.shape[3])  # (B, nef, 4, 4)
            code = self.jointConv(torch.cat((code, s.to(code.dtype)), dim=1))  # (B, 8ndf, 4, 4)
        return self.outlogits(code).view(-1)  # (B,)


def spectral_norm_convs(module: nn.Module, skip: str = "outlogits") -> nn.Module:
    """Spectral normalisation (one power iteration per training forward) on every convolution of
    ``module`` except those under a child named ``skip`` (the 4x4 logit convolutions, left plain as in
    DM-GAN's ``D_GET_LOGITS``). Returns ``module``."""
    for name, m in list(module.named_modules()):
        if isinstance(m, nn.Conv2d) and skip not in name.split("."):
            nn.utils.parametrizations.spectral_norm(m)
    return module


def down_levels(image_size: int) -> int:
    n = round(math.log2(image_size / 4))
    if image_size < 8 or 4 * 2**n != image_size:
        raise AttnGANError(f"discriminator image size must be a power of two >= 8, got {image_size}")
    return n


class Discriminator(nn.Module):
    """One stage's discriminator: ``forward(images (B, 3, s, s)) -> code (B, 8ndf, 4, 4)``."""

    def __init__(self, cfg: DiscriminatorConfig, image_size: int, base_size: int = 64, *, init: bool = True) -> None:
        super().__init__()
        n = down_levels(image_size)
        if image_size < base_size or image_size % base_size:
            raise AttnGANError(f"discriminator image size {image_size} is not base size {base_size} times 2^k")
        self.cfg = cfg
        self.image_size = image_size
        self.base_size = base_size
        ndf = cfg.ndf
        self.img_code_s16 = self.encode_image(ndf, min(n, 4))
        self._names: list[str] = ["img_code_s16"]
        extra = n - 4
        mult, scale = 8, 16
        for _ in range(max(extra, 0)):
            new = min(mult * 2, MAX_MULT)
            scale *= 2
            self._add(f"img_code_s{scale}", self.down_block(ndf * mult, ndf * new))
            mult = new
        k = 0
        while mult > 8:
            k += 1
            self._add(f"img_code_s{scale}_{k}", self.block3x3(ndf * mult, ndf * mult // 2))
            mult //= 2
        self.UNCOND_DNET = LogitsHead(ndf, cfg.embedding_dim, conditional=False)
        self.COND_DNET = LogitsHead(ndf, cfg.embedding_dim, conditional=True, joint=self.block3x3)
        if init:  # the official orthogonal init; at 256 px and ndf 64 it costs ~25 s on one CPU core
            init_weights(self)

    # The blocks (SpectralNormDiscriminator's have biases and no BatchNorm)
    encode_image = staticmethod(encode_image)
    down_block = staticmethod(down_block)
    block3x3 = staticmethod(block3x3_leaky)

    def _add(self, name: str, module: nn.Module) -> None:
        self.add_module(name, module)
        self._names.append(name)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for name in self._names:
            x = getattr(self, name)(x)
        return x  # (B, 8ndf, 4, 4)

    def uncond_logits(self, code: torch.Tensor) -> torch.Tensor:
        return self.UNCOND_DNET(code)  # (B,)

    def cond_logits(self, code: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return self.COND_DNET(code, sent_emb)  # (B,)


# --------------------------------------------------------------------------------------------------
# The spectral-norm discriminators (DM-GAN's D_NET64/128/256; TISE's AttnGAN++ uses the same)
# --------------------------------------------------------------------------------------------------
def sn_encode_image(ndf: int, levels: int) -> nn.Sequential:
    """``levels`` (1..4) stride-2 4x4 convs with bias, LeakyReLU 0.2, ending at 8ndf channels (official
    DM-GAN ``encode_image_by_16times``; the spectral norm is added by :class:`SpectralNormDiscriminator`)."""
    mults = [1, 2, 4, 8][4 - levels :]
    layers: list[nn.Module] = [nn.Conv2d(3, ndf * mults[0], 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
    for a, b in zip(mults[:-1], mults[1:], strict=True):
        layers += [nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def sn_down_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """4x4 stride-2 conv with bias, LeakyReLU 0.2 (official DM-GAN ``downBlock``)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=True), nn.LeakyReLU(0.2))


def sn_block3x3(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv with bias, LeakyReLU 0.2 (official DM-GAN ``Block3x3_leakRelu``)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=True), nn.LeakyReLU(0.2))


class SpectralNormDiscriminator(Discriminator):
    """``discriminator.spectral_norm``: AttnGAN's layout with a bias and spectral normalisation on every
    convolution and no BatchNorm (DM-GAN ``code/model.py`` l.578-703; TISE's AttnGAN++
    ``text_to_images_models/AttnGAN++/layers.py`` has the same blocks); the 4x4 logit convolutions stay
    plain. ``forward(images (B, 3, s, s)) -> code (B, 8ndf, 4, 4)``; the heads return logits."""

    encode_image = staticmethod(sn_encode_image)
    down_block = staticmethod(sn_down_block)
    block3x3 = staticmethod(sn_block3x3)

    def __init__(self, cfg: DiscriminatorConfig, image_size: int, base_size: int = 64, *, init: bool = True) -> None:
        super().__init__(cfg, image_size, base_size, init=init)
        spectral_norm_convs(self)  # after the init: it re-parametrises the weights it initialised


def make_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """One discriminator per generator stage, for image sizes base_size * 2^i: AttnGAN's, or with
    ``dcfg.spectral_norm`` the spectral-norm ones. The official init runs QR factorisations of the big 4x4
    conv weights: construct under ``with torch.device("cuda")`` to do it on the GPU, or pass ``init=False``
    when loading weights."""
    kind = SpectralNormDiscriminator if dcfg.spectral_norm else Discriminator
    return nn.ModuleList([kind(dcfg, s, gcfg.base_size, init=init) for s in gcfg.sizes(STAGE_SCALE)])
