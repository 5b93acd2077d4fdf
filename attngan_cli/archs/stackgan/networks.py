"""The baselines AttnGAN is measured against, with the AttnGAN generator call and built from its blocks.

**StackGAN++** (Zhang et al., TPAMI 2018; official ``G_NET`` of hanzhanggit/StackGAN-v2), ``--arch stackgan++``:
a tree of generators trained jointly, every stage conditioned on the conditioning-augmented sentence
vector c instead of word attention::

    c, mu, logvar = F_ca(sentence)
    h_0 = F_0(concat(c, z))                                          (B, ngf, base, base)
    h_i = up(res(joint(concat(h_{i-1}, tile(c)))))    for i >= 1     (B, ngf / 2^i, base*2^i, ...)
    x_i = tanh(conv3x3(h_i))

The channels halve at every stage as the official tree (64 -> 32 -> 16 at GF_DIM 64). Its
discriminators are AttnGAN's (which are StackGAN++'s ``D_NET64/128/256``), conditioned on the sentence
vector.

**StackGAN** (Zhang et al., ICCV 2017; official hanzhanggit/StackGAN), ``--arch stackgan``: two stages
trained one after the other. Stage-I is c + z -> ``base`` px (the first stage above). Stage-II
(``stages=2``) encodes the Stage-I image down to base/4, joins it with its own conditioning
augmentation of the sentence, runs residual blocks and four up-blocks to 4 x base px::

    e = down(down(conv3x3(x_0)))                                     (B, 8ngf, base/4, base/4)
    h = up^4(res(joint(concat(e, tile(c2)))))                        (B, ngf/2, 4 base, 4 base)

Stage-I is frozen in a 2-stage StackGAN (its weights come from the finished Stage-I run and stay in eval
mode); ``mu``/``logvar`` are the conditioning augmentation of the stage being trained. Its
discriminators have only the conditional head, on the text embedding compressed by a learned linear
layer + LeakyReLU and tiled spatially (the official ``context_embedding``).
"""

from __future__ import annotations

import torch
from torch import nn

from attngan_cli.archs.attngan.discriminators import Discriminator, LogitsHead, make_discriminators
from attngan_cli.archs.attngan.generator import GeneratorOutput, ImageHead, InitStage, first_stage_ups
from attngan_cli.archs.registry import Architecture, register_arch
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.networks.blocks import (
    GLU,
    CANet,
    ResBlock,
    block3x3_leaky,
    conv3x3,
    down_block,
    init_weights,
    up_block,
)


def tile(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C, h, w), the spatial size of ``like`` (B, *, h, w), in its dtype."""
    return c.to(like.dtype)[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])


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


def _check_stages(cfg: GeneratorConfig, allowed: tuple[int, ...], what: str) -> None:
    if cfg.stages not in allowed:
        raise AttnGANError(f"--stages (generator.stages) of --arch {cfg.arch} must be "
                           f"{' or '.join(map(str, allowed))} ({what}), got {cfg.stages}")


class StackGANppGenerator(nn.Module):
    """StackGAN++: ``forward(z, sent_emb, words_emb, mask, ca_noise=True) -> GeneratorOutput`` with
    ``attn`` empty (the words are not used)."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__()
        _check_stages(cfg, (1, 2, 3, 4), "images of base_size * 2^i")
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


class StageI(nn.Module):
    """StackGAN Stage-I: its own conditioning augmentation, c + z -> (B, 3, base, base)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        n_up = first_stage_ups(cfg.base_size)
        self.ca_net = CANet(cfg.embedding_dim, cfg.condition_dim)
        self.h_net = InitStage(cfg.z_dim + cfg.condition_dim, cfg.ngf * 2**n_up, n_up)
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
        self.ca_net = CANet(cfg.embedding_dim, cfg.condition_dim)
        self.encoder = nn.Sequential(conv3x3(3, g * 2), nn.LeakyReLU(0.2), down_block(g * 2, g * 4),
                                     down_block(g * 4, g * 8))
        self.joint = block3x3_leaky(g * 8 + cfg.condition_dim, g * 8)
        self.residual = nn.Sequential(*[ResBlock(g * 8) for _ in range(cfg.r_num)])
        self.upsample = nn.Sequential(up_block(g * 8, g * 4), up_block(g * 4, g * 2), up_block(g * 2, g),
                                      up_block(g, g // 2))
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
            init_weights(self)
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
    """A StackGAN discriminator: AttnGAN's image encoder for its size and one conditional head on the
    compressed sentence (linear to ``condition_dim`` + LeakyReLU 0.2, tiled to 4x4). No unconditional head
    (``unconditional = False``: the losses use the conditional terms only, as the official StackGAN)."""

    unconditional = False

    def __init__(self, cfg: DiscriminatorConfig, image_size: int, base_size: int, condition_dim: int, *,
                 init: bool = True) -> None:
        super().__init__(cfg, image_size, base_size, init=False)
        del self.UNCOND_DNET
        self.compress = nn.Sequential(nn.Linear(cfg.embedding_dim, condition_dim), nn.LeakyReLU(0.2))
        self.COND_DNET = LogitsHead(cfg.ndf, condition_dim, conditional=True)
        if init:
            init_weights(self)

    def uncond_logits(self, code: torch.Tensor) -> torch.Tensor:
        raise AttnGANError("a StackGAN discriminator has no unconditional head")

    def cond_logits(self, code: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return self.COND_DNET(code, self.compress(sent_emb.to(code.dtype)))  # (B,)


def stackgan_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """The discriminator of the stage a StackGAN trains: Stage-I's (base px) for ``stages=1``, Stage-II's
    (4 x base px) for ``stages=2`` (the frozen Stage-I needs none): one, for the last image."""
    size = gcfg.image_sizes[-1]
    return nn.ModuleList([CondDiscriminator(dcfg, size, gcfg.base_size, gcfg.condition_dim, init=init)])


register_arch(Architecture(
    name="stackgan++",
    summary="StackGAN++ tree: sentence-conditioned stages, no word attention (--lambda 5: AttnGAN without attention)",
    paper="Zhang et al., TPAMI 2018 (StackGAN++)",
    build_generator=StackGANppGenerator,
    build_discriminators=make_discriminators,
    word_attention=False,
))

register_arch(Architecture(
    name="stackgan",
    summary="StackGAN: Stage-I (base px) then Stage-II (4 x base) on the frozen Stage-I (--stage 1, --stage 2)",
    paper="Zhang et al., ICCV 2017 (StackGAN)",
    build_generator=StackGANGenerator,
    build_discriminators=stackgan_discriminators,
    word_attention=False,
))

