"""MirrorGAN's GLAM (Qiao et al., CVPR 2019, section 3.2): the AttnGAN cascade with global-local
collaborative attention at every stage after the first.

    c, mu, logvar = F_ca(sentence)                                     the CA sentence vector (B, c_dim)
    h_0 = F_0(concat(c, z))
    word context   w_i = F_att(e, h_{i-1})                             AttnGAN's word attention (B, ngf, s, s)
    sentence ctx   s_i = (U c) * softmax_channels(conv1x1(h_{i-1} * U c))   (B, ngf, s, s)
    h_i = F_i(conv1x1(concat(h_{i-1}, w_i, s_i)))                      3 ngf -> 2 ngf, residuals, up-block

``U`` (``sent_att.linear``; the official ``h_netN.att.linear``, whose one attention module holds both
attentions: docs/differences.md) maps the CA vector into the image feature space; the sentence attention
weighs, at every region, the channels of ``U c`` against the hidden feature there. The softmax runs over
channels, as the official ``GLAttentionGeneral`` (``nn.Softmax()`` on a 4-d tensor: dimension 1). Its
map for ``attend`` is each region's share of the sentence context (the L1 norm of ``s_i`` over channels,
normalised over regions): where the sentence feature is put into the image.

The first stage, the image heads, the discriminators, the call and the output are AttnGAN's
(:mod:`attngan_cli.archs.attngan.generator`); the output's ``sent_attn`` holds one (B, 1, s, s) map per GLAM
stage. The ``mirrorgan`` architecture (``--arch mirrorgan``, ``--sentence-attention``): :mod:`attngan_cli.archs.mirrorgan`.
"""

from __future__ import annotations

import torch
from torch import nn

from attngan_cli.archs.attngan.generator import Generator, GeneratorOutput
from attngan_cli.config.schema import GeneratorConfig
from attngan_cli.networks.attention import WordAttention
from attngan_cli.networks.blocks import ResBlock, conv1x1, init_weights, up_block


class SentenceAttention(nn.Module):
    """(h (B, ngf, H, W), c (B, c_dim)) -> (sentence context (B, ngf, H, W), map (B, 1, H, W) summing to 1)."""

    def __init__(self, ngf: int, condition_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(condition_dim, ngf)  # U: CA vector -> image feature space
        self.conv_sentence_vis = conv1x1(ngf, ngf)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.linear(c)[:, :, None, None].to(h.dtype)  # (B, ngf, 1, 1)
        scores = self.conv_sentence_vis(h * s)  # (B, ngf, H, W)
        weights = torch.softmax(scores, dim=1)  # (B, ngf, H, W), sums to 1 over channels at every region
        context = s * weights  # (B, ngf, H, W)
        amount = context.float().abs().sum(dim=1, keepdim=True)  # (B, 1, H, W)
        share = amount / amount.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)
        return context, share


class GLAMStage(nn.Module):
    """Word and sentence attention on h, concat(h, word ctx, sentence ctx) -> 1x1 conv to 2ngf, ``r_num``
    residual blocks, an up-block to ngf: (B, ngf, s, s) -> (B, ngf, 2s, 2s), the word attention
    (B, T, s, s) and the sentence map (B, 1, s, s). Official MirrorGAN ``NEXT_STAGE_G``."""

    def __init__(self, ngf: int, embedding_dim: int, condition_dim: int, r_num: int) -> None:
        super().__init__()
        self.att = WordAttention(ngf, embedding_dim)
        self.sent_att = SentenceAttention(ngf, condition_dim)
        self.conv = conv1x1(ngf * 3, ngf * 2)
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(r_num)])
        self.upsample = up_block(ngf * 2, ngf)

    def forward(self, h: torch.Tensor, c: torch.Tensor, words_emb: torch.Tensor, mask: torch.Tensor | None,
                official_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        word_ctx, attn = self.att(h, words_emb, mask, official_mask=official_mask)  # (B, ngf, s, s), (B, T, s, s)
        sent_ctx, sent_map = self.sent_att(h, c)  # (B, ngf, s, s), (B, 1, s, s)
        out = self.conv(torch.cat((h, word_ctx, sent_ctx), dim=1))  # (B, 2ngf, s, s)
        return self.upsample(self.residual(out)), attn, sent_map


class MirrorGANGenerator(Generator):
    """The GLAM generator: AttnGAN's with :class:`GLAMStage` at stages 2 and above. Same call and output,
    plus ``sent_attn``."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__(cfg, init=False)
        for i in range(2, cfg.stages + 1):
            setattr(self, f"h_net{i}", GLAMStage(cfg.ngf, cfg.embedding_dim, cfg.condition_dim, cfg.r_num))
        if init:
            init_weights(self)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: torch.Tensor,
                mask: torch.Tensor | None = None, ca_noise: bool | torch.Tensor = True,
                official_mask: bool = False) -> GeneratorOutput:
        c, mu, logvar = self.ca_net(sent_emb, noise=ca_noise)  # (B, c_dim) each
        h = self.h_net1(z, c)  # (B, ngf, base, base)
        images = [self.img_net1(h)]
        attn: list[torch.Tensor] = []
        sent_attn: list[torch.Tensor] = []
        for stage, head in zip(self.stage_nets[1:], self.image_nets[1:], strict=True):
            h, a, s = stage(h, c, words_emb, mask, official_mask=official_mask)  # (B, ngf, 2s, 2s), maps at s
            images.append(head(h))
            attn.append(a)
            sent_attn.append(s)
        return GeneratorOutput(images, attn, mu, logvar, sent_attn)

