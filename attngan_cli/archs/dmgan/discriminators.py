"""DM-GAN's discriminators (MinfengZhu/DM-GAN ``code/model.py`` ``D_NET64`` / ``D_NET128`` / ``D_NET256``):
AttnGAN's layout with a bias and spectral normalisation on every convolution and no BatchNorm, the 4x4
logit convolutions plain: :class:`attngan_cli.archs.attngan.discriminators.SpectralNormDiscriminator`,
chosen by ``discriminator.spectral_norm`` (on in every DM-GAN preset; ``--no-spectral-norm`` trains DM-GAN
on AttnGAN's BatchNorm discriminators instead, an ablation).
"""

from __future__ import annotations

from attngan_cli.archs.attngan.discriminators import SpectralNormDiscriminator, make_discriminators

DMGANDiscriminator = SpectralNormDiscriminator

__all__ = ["DMGANDiscriminator", "make_discriminators"]
