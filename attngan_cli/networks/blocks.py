"""Small building blocks shared by the generator and the discriminators.

Every block is an ``nn.Sequential`` (or has a ``block`` Sequential) laid out like the official AttnGAN
code (``code/model.py``), so the parameter names of a whole network match the official state dicts:
an up-block is ``[Upsample, conv, BN, GLU]`` (keys ``.1.weight``, ``.2.*``), a residual block keeps its
layers under ``.block``, a down-block is ``[conv 4x4/2, BN, LeakyReLU]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GLU(nn.Module):
    """Gated linear unit over channels: first half * sigmoid(second half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2:
            raise ValueError(f"GLU needs an even number of channels, got {x.shape[1]}")
        return F.glu(x, dim=1)


def conv1x1(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, padding=0, bias=bias)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """3x3 convolution keeping the size, no bias (a BatchNorm or tanh follows)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)


def up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Nearest x2 upsampling, 3x3 conv to 2*out_ch, BN, GLU: (B, in_ch, s, s) -> (B, out_ch, 2s, 2s)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv3x3(in_ch, out_ch * 2),
        nn.BatchNorm2d(out_ch * 2),
        GLU(),
    )


class ResBlock(nn.Module):
    """conv 3x3 C->2C, BN, GLU, conv 3x3 C->C, BN, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(channels, channels * 2),
            nn.BatchNorm2d(channels * 2),
            GLU(),
            conv3x3(channels, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x


def block3x3_leaky(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 conv, BN, LeakyReLU(0.2), keeping the size (official ``Block3x3_leakRelu``)."""
    return nn.Sequential(conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """4x4 stride-2 conv, BN, LeakyReLU(0.2): halves the size (official ``downBlock``)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def tile(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C, h, w), the spatial size of ``like`` (B, *, h, w), in its dtype."""
    return c.to(like.dtype)[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


class CANet(nn.Module):
    """Conditioning augmentation (paper section 3.1): sentence vector -> (c, mu, logvar).

    ``fc`` maps the sentence vector to 4 * c_dim values, a GLU halves them, and the two halves are mu and
    logvar; c = mu + exp(logvar / 2) * eps with eps ~ N(0, 1) (drawn here, or the given ``noise`` tensor
    (B, c_dim)), or c = mu when ``noise`` is False.
    """

    def __init__(self, embedding_dim: int, condition_dim: int) -> None:
        super().__init__()
        self.c_dim = condition_dim
        self.fc = nn.Linear(embedding_dim, condition_dim * 4, bias=True)
        self.glu = GLU()

    def forward(self, sent_emb: torch.Tensor, noise: bool | torch.Tensor = True
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.glu(self.fc(sent_emb))  # (B, 2 c_dim)
        mu, logvar = x[:, : self.c_dim], x[:, self.c_dim :]  # (B, c_dim) each
        if isinstance(noise, torch.Tensor):
            eps = noise.to(device=mu.device, dtype=mu.dtype)
        elif noise:
            eps = torch.randn_like(mu)
        else:
            return mu, mu, logvar
        c = mu + torch.exp(0.5 * logvar) * eps
        return c, mu, logvar


@torch.no_grad()
def init_weights(module: nn.Module) -> nn.Module:
    """The official AttnGAN initialisation, applied to every submodule of ``module``.

    Conv and linear weights orthogonal (gain 1), their biases 0; BatchNorm weights N(1, 0.02), biases 0.
    Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv1d, nn.Linear)):
            nn.init.orthogonal_(m.weight, 1.0)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()
    return module
