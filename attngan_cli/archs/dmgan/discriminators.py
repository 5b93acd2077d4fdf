"""DM-GAN's discriminators (MinfengZhu/DM-GAN ``code/model.py`` ``D_NET64`` / ``D_NET128`` / ``D_NET256``,
generalised as AttnGAN's in :mod:`attngan_cli.archs.attngan.discriminators`): AttnGAN's layout, but every
convolution has a bias and spectral normalisation and no BatchNorm follows (official
``encode_image_by_16times``, ``downBlock``, ``Block3x3_leakRelu``); the 4x4 logit convolutions stay plain.
Spectral normalisation follows ``discriminator.spectral_norm`` (on in every DM-GAN preset;
``--no-spectral-norm`` leaves it out, an ablation).
"""

from __future__ import annotations

from torch import nn

from attngan_cli.archs.attngan.discriminators import STAGE_SCALE, Discriminator
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig


def encode_image(ndf: int, levels: int) -> nn.Sequential:
    """``levels`` (1..4) stride-2 4x4 convs with bias, LeakyReLU 0.2, ending at 8ndf channels."""
    mults = [1, 2, 4, 8][4 - levels :]
    layers: list[nn.Module] = [nn.Conv2d(3, ndf * mults[0], 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
    for a, b in zip(mults[:-1], mults[1:], strict=True):
        layers += [nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=True), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


def down_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """4x4 stride-2 conv with bias, LeakyReLU 0.2 (official ``downBlock``)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=True), nn.LeakyReLU(0.2))


def block3x3(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv with bias, LeakyReLU 0.2 (official ``Block3x3_leakRelu``)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=True), nn.LeakyReLU(0.2))


class DMGANDiscriminator(Discriminator):
    """One stage's DM-GAN discriminator: ``forward(images (B, 3, s, s)) -> code (B, 8ndf, 4, 4)``, the
    heads as AttnGAN's (logits, no sigmoid)."""

    encode_image = staticmethod(encode_image)
    down_block = staticmethod(down_block)
    block3x3 = staticmethod(block3x3)


def make_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """One discriminator per generator stage (images base_size * 2^i)."""
    return nn.ModuleList([DMGANDiscriminator(dcfg, s, gcfg.base_size, init=init) for s in gcfg.sizes(STAGE_SCALE)])
