"""StackGAN's networks (Zhang et al., ICCV 2017; official hanzhanggit/StackGAN-Pytorch ``code/model.py`` and
the TensorFlow hanzhanggit/StackGAN), ``--arch stackgan``: two stages trained one after the other. Stage-I is
c + z -> ``base`` px. Stage-II (``stages=2``) encodes the Stage-I image down to base/4, joins it with its
own conditioning augmentation of the sentence, runs residual blocks and four up-blocks to 4 x base px::

    e = down(down(conv3x3(x_0)))                                     (B, 8ngf, base/4, base/4)
    h = up^4(res(joint(concat(e, tile(c2)))))                        (B, ngf/2, 4 base, 4 base)

``generator.variant`` (``--arch-option networks``) chooses the blocks (:data:`VARIANTS`):

* ``pytorch`` (new runs): the PyTorch port's ``STAGE1_G`` / ``STAGE2_G`` / ``STAGE1_D`` / ``STAGE2_D``:
  conditioning augmentation fc -> 2c + ReLU (``CA_NET``), up-blocks and residual blocks with ReLU,
  the Stage-II encoder and joint block with ReLU, weights N(0, 0.02) (``miscc/utils.py:weights_init``),
  and a Stage-II discriminator with an unconditional head besides the conditional one;
* ``pytorch-tf-d``: the same, with the TensorFlow original's Stage-II discriminator (conditional head only);
* ``glu`` (also ``""``, the networks of checkpoints written before the variants existed): AttnGAN's blocks
  (CA fc -> 4c + GLU, GLU up-blocks and residual blocks, LeakyReLU in the Stage-II encoder and joint
  block), orthogonal init, conditional heads only.

Stage-I is frozen in a 2-stage StackGAN (its weights come from the finished Stage-I run and stay in eval
mode); ``mu``/``logvar`` are the conditioning augmentation of the stage being trained. The discriminators'
conditional head sees the text embedding compressed by a learned linear layer + LeakyReLU and tiled
spatially (the TensorFlow ``context_embedding``; the PyTorch port tiles CA's mu instead).
"""

from __future__ import annotations

import torch
from torch import nn

from attngan_cli.archs.attngan.discriminators import Discriminator, LogitsHead
from attngan_cli.archs.attngan.generator import GeneratorOutput, ImageHead, InitStage, first_stage_ups
from attngan_cli.archs.stackgan.blocks import (
    PYTORCH,
    ReluCANet,
    ReluInitStage,
    ReluResBlock,
    init_normal,
    relu_block3x3,
    relu_down_block,
    relu_up_block,
    variant_of,
)
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.networks.blocks import (
    CANet,
    ResBlock,
    block3x3_leaky,
    conv3x3,
    down_block,
    init_weights,
    tile,
    up_block,
)

STAGE_SCALE = 4  # Stage-II draws 4 x the Stage-I size


def _check_stages(cfg: GeneratorConfig, allowed: tuple[int, ...], what: str) -> None:
    if cfg.stages not in allowed:
        raise AttnGANError(f"--stages (generator.stages) of --arch {cfg.arch} must be "
                           f"{' or '.join(map(str, allowed))} ({what}), got {cfg.stages}")


class StageI(nn.Module):
    """StackGAN Stage-I: its own conditioning augmentation, c + z -> (B, 3, base, base)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        n_up = first_stage_ups(cfg.base_size)
        relu = variant_of(cfg).blocks == PYTORCH
        self.ca_net = (ReluCANet if relu else CANet)(cfg.embedding_dim, cfg.condition_dim)
        self.h_net = (ReluInitStage if relu else InitStage)(cfg.z_dim + cfg.condition_dim, cfg.ngf * 2**n_up, n_up)
        self.img_net = ImageHead(cfg.ngf)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, ca_noise: bool | torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, mu, logvar = self.ca_net(sent_emb, noise=ca_noise)  # (B, c_dim) each
        return self.img_net(self.h_net(z, c)), mu, logvar  # (B, 3, base, base)


class StageII(nn.Module):
    """StackGAN Stage-II: (Stage-I image (B, 3, s, s), sentence) -> (B, 3, 4s, 4s). Official ``STAGE2_G``:
    a down-sampling encoder to s/4 with 8ngf channels, joined with the tiled c of its own conditioning
    augmentation, ``r_num`` residual blocks, four up-blocks halving the channels down to ngf/2."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if cfg.ngf % 2:
            raise AttnGANError(f"--ngf of --arch stackgan must be even (Stage-II ends at ngf/2 channels), got {cfg.ngf}")
        if cfg.base_size < 8:
            raise AttnGANError(f"generator.base_size of --arch stackgan must be >= 8, got {cfg.base_size}")
        g = cfg.ngf
        if variant_of(cfg).blocks == PYTORCH:  # official STAGE2_G: ReLU everywhere
            ca, act, down, joint, res, up = ReluCANet, nn.ReLU(), relu_down_block, relu_block3x3, ReluResBlock, relu_up_block
        else:
            ca, act, down, joint, res, up = CANet, nn.LeakyReLU(0.2), down_block, block3x3_leaky, ResBlock, up_block
        self.ca_net = ca(cfg.embedding_dim, cfg.condition_dim)
        self.encoder = nn.Sequential(conv3x3(3, g * 2), act, down(g * 2, g * 4), down(g * 4, g * 8))
        self.joint = joint(g * 8 + cfg.condition_dim, g * 8)
        self.residual = nn.Sequential(*[res(g * 8) for _ in range(cfg.r_num)])
        self.upsample = nn.Sequential(up(g * 8, g * 4), up(g * 4, g * 2), up(g * 2, g), up(g, g // 2))
        self.img_net = ImageHead(g // 2)

    def forward(self, image: torch.Tensor, sent_emb: torch.Tensor, ca_noise: bool | torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, mu, logvar = self.ca_net(sent_emb, noise=ca_noise)  # (B, c_dim) each
        e = self.encoder(image)  # (B, 8ngf, s/4, s/4)
        h = self.residual(self.joint(torch.cat((e, tile(c, e)), dim=1)))  # (B, 8ngf, s/4, s/4)
        return self.img_net(self.upsample(h)), mu, logvar  # (B, 3, 4s, 4s)


class StackGANGenerator(nn.Module):
    """StackGAN: ``stages=1`` is Stage-I alone; ``stages=2`` is a frozen Stage-I (no gradients, eval mode)
    followed by Stage-II. ``forward(...) -> GeneratorOutput(images (one per stage), [], mu, logvar)``,
    mu/logvar of the last stage's conditioning augmentation. A tensor ``ca_noise`` is used by both stages."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__()
        _check_stages(cfg, (1, 2), "1 = Stage-I, 2 = Stage-II on a frozen Stage-I")
        self.cfg = cfg
        self.stage1 = StageI(cfg)
        self.stage2 = StageII(cfg) if cfg.stages == 2 else None
        if init:
            (init_normal if variant_of(cfg).blocks == PYTORCH else init_weights)(self)
        if self.stage2 is not None:
            self.stage1.requires_grad_(False)
            self.stage1.eval()

    def train(self, mode: bool = True) -> StackGANGenerator:
        super().train(mode)
        if self.stage2 is not None:
            self.stage1.eval()  # frozen: its BatchNorm keeps the statistics Stage-I training left
        return self

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, ca_noise: bool | torch.Tensor = True,
                official_mask: bool = False) -> GeneratorOutput:
        if self.stage2 is None:
            low, mu, logvar = self.stage1(z, sent_emb, ca_noise)  # (B, 3, base, base)
            return GeneratorOutput([low], [], mu, logvar)
        with torch.no_grad():
            low, _, _ = self.stage1(z, sent_emb, ca_noise)
        high, mu, logvar = self.stage2(low, sent_emb, ca_noise)  # (B, 3, 4 base, 4 base)
        return GeneratorOutput([low, high], [], mu, logvar)


class CondDiscriminator(Discriminator):
    """A StackGAN discriminator: AttnGAN's image encoder for its size (the PyTorch port's ``encode_img``)
    and a conditional head on the compressed sentence (linear to ``condition_dim`` + LeakyReLU 0.2, tiled
    to 4x4); with ``unconditional`` also the unconditional head (the PyTorch port's ``STAGE2_D``), else
    none (the losses then use the conditional terms only)."""

    def __init__(self, cfg: DiscriminatorConfig, image_size: int, base_size: int, condition_dim: int, *,
                 init: bool = True, unconditional: bool = False, normal_init: bool = False) -> None:
        super().__init__(cfg, image_size, base_size, init=False)
        self.unconditional = unconditional
        if not unconditional:
            del self.UNCOND_DNET
        self.compress = nn.Sequential(nn.Linear(cfg.embedding_dim, condition_dim), nn.LeakyReLU(0.2))
        self.COND_DNET = LogitsHead(cfg.ndf, condition_dim, conditional=True)
        if init:
            (init_normal if normal_init else init_weights)(self)

    def uncond_logits(self, code: torch.Tensor) -> torch.Tensor:
        if not self.unconditional:
            raise AttnGANError("this StackGAN discriminator has no unconditional head")
        return self.UNCOND_DNET(code)  # (B,)

    def cond_logits(self, code: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return self.COND_DNET(code, self.compress(sent_emb.to(code.dtype)))  # (B,)


def stackgan_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """The discriminator of the stage a StackGAN trains: Stage-I's (base px) for ``stages=1``, Stage-II's
    (4 x base px) for ``stages=2`` (the frozen Stage-I needs none): one, for the last image."""
    size = gcfg.sizes(STAGE_SCALE)[-1]
    variant = variant_of(gcfg)
    return nn.ModuleList([CondDiscriminator(dcfg, size, gcfg.base_size, gcfg.condition_dim, init=init,
                                            unconditional=gcfg.stages == 2 and variant.stage2_unconditional,
                                            normal_init=variant.blocks == PYTORCH)])

