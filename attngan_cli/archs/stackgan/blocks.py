"""The blocks of StackGAN's PyTorch port (hanzhanggit/StackGAN-Pytorch ``code/model.py``), laid out so
that the parameter names follow this package's StackGAN modules, and the variants of the networks
(:data:`VARIANTS`, ``generator.variant``).

* :class:`ReluCANet`: ``CA_NET``: fc -> 2c, ReLU; mu and logvar are the two halves (both >= 0).
* :class:`ReluInitStage`: ``STAGE1_G.fc`` + ``upsample1..4``: concat(z, c) -> fc (no bias) -> BN1d ->
  ReLU -> (gf, 4, 4) -> up-blocks [nearest x2, conv3x3, BN, ReLU] halving the channels.
* :func:`relu_up_block`, :class:`ReluResBlock` (conv-BN-ReLU-conv-BN, add, ReLU), :func:`relu_down_block`
  (conv 4x4/2, BN, ReLU), :func:`relu_block3x3` (conv3x3, BN, ReLU: ``hr_joint``).
* :func:`init_normal`: ``miscc/utils.py:weights_init``: conv and linear weights N(0, 0.02), linear biases
  0 (conv biases keep PyTorch's default), BatchNorm weights N(1, 0.02) and biases 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attngan_cli.config.schema import GeneratorConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.networks.blocks import conv3x3

PYTORCH = "pytorch"  # the PyTorch port's blocks
GLU_BLOCKS = "glu"  # AttnGAN's blocks


@dataclass(frozen=True)
class Variant:
    blocks: str  # PYTORCH or GLU_BLOCKS
    stage2_unconditional: bool  # the Stage-II discriminator has the unconditional head too
    summary: str


VARIANTS: dict[str, Variant] = {
    "pytorch": Variant(PYTORCH, True, "StackGAN-Pytorch's networks (ReLU blocks, CA fc->2c+ReLU, N(0, 0.02) "
                                      "init, Stage-II D with an unconditional head)"),
    "pytorch-tf-d": Variant(PYTORCH, False, "StackGAN-Pytorch's generators, the TensorFlow StackGAN's Stage-II D "
                                            "(conditional head only)"),
    "glu": Variant(GLU_BLOCKS, False, "AttnGAN's GLU blocks, orthogonal init, conditional heads only (the "
                                      "networks of runs before the variants)"),
}
LEGACY = "glu"  # what "" (a checkpoint written before generator.variant existed) means


def variant_of(cfg: GeneratorConfig) -> Variant:
    """The :class:`Variant` ``cfg.variant`` names ("" = :data:`LEGACY`); another name is an error naming it."""
    name = cfg.variant or LEGACY
    if name not in VARIANTS:
        raise AttnGANError(f"generator.variant {cfg.variant!r} (--arch-option networks) of --arch stackgan: choose "
                           f"one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


class ReluCANet(nn.Module):
    """Conditioning augmentation of the PyTorch port: sentence -> fc -> 2 c_dim -> ReLU -> (mu, logvar);
    c = mu + exp(logvar / 2) * eps (eps drawn, or the given ``noise`` (B, c_dim)), or mu when ``noise`` is False."""

    def __init__(self, embedding_dim: int, condition_dim: int) -> None:
        super().__init__()
        self.c_dim = condition_dim
        self.fc = nn.Linear(embedding_dim, condition_dim * 2, bias=True)
        self.relu = nn.ReLU()

    def forward(self, sent_emb: torch.Tensor, noise: bool | torch.Tensor = True
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.relu(self.fc(sent_emb))  # (B, 2 c_dim)
        mu, logvar = x[:, : self.c_dim], x[:, self.c_dim :]  # (B, c_dim) each
        if isinstance(noise, torch.Tensor):
            eps = noise.to(device=mu.device, dtype=mu.dtype)
        elif noise:
            eps = torch.randn_like(mu)
        else:
            return mu, mu, logvar
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


def relu_up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """``upBlock``: nearest x2, 3x3 conv to out_ch, BN, ReLU: (B, in_ch, s, s) -> (B, out_ch, 2s, 2s)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(in_ch, out_ch),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


def relu_down_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """The Stage-II encoder's 4x4 stride-2 conv, BN, ReLU: halves the size."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


def relu_block3x3(in_ch: int, out_ch: int) -> nn.Sequential:
    """``hr_joint``: 3x3 conv, BN, ReLU, keeping the size."""
    return nn.Sequential(conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.ReLU())


class ReluResBlock(nn.Module):
    """``ResBlock``: conv3x3, BN, ReLU, conv3x3, BN, plus the input, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(),
                                   conv3x3(channels, channels), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.block(x) + x)


class ReluInitStage(nn.Module):
    """``STAGE1_G`` before its image head: concat(z, c) -> linear (no bias) -> BN1d -> ReLU -> (gf, 4, 4)
    -> ``n_up`` up-blocks: (B, gf / 2**n_up, 4 * 2**n_up, ...)."""

    def __init__(self, in_dim: int, gf: int, n_up: int) -> None:
        super().__init__()
        if gf % 2**n_up:
            raise AttnGANError(f"first-stage channels {gf} cannot be halved {n_up} times")
        self.gf = gf
        self.n_up = n_up
        self.fc = nn.Sequential(nn.Linear(in_dim, gf * 4 * 4, bias=False), nn.BatchNorm1d(gf * 4 * 4), nn.ReLU())
        for i in range(1, n_up + 1):
            self.add_module(f"upsample{i}", relu_up_block(gf // 2 ** (i - 1), gf // 2**i))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat((z, c), dim=1)).view(z.shape[0], self.gf, 4, 4)  # (B, gf, 4, 4)
        for i in range(1, self.n_up + 1):
            h = getattr(self, f"upsample{i}")(h)  # doubles the size, halves the channels
        return h  # (B, gf / 2**n_up, base, base)


@torch.no_grad()
def init_normal(module: nn.Module) -> nn.Module:
    """The PyTorch port's ``weights_init`` on every submodule of ``module``; returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.normal_(0.0, 0.02)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, 0.02)
            if m.bias is not None:
                m.bias.zero_()
    return module
