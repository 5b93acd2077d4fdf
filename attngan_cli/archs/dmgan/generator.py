"""DM-GAN's generator (Zhu et al., CVPR 2019, section 3; MinfengZhu/DM-GAN ``code/model.py`` ``G_NET``):
AttnGAN's first stage with conditioning augmentation, then at every further stage a dynamic memory over
the words instead of AttnGAN's word attention.

With image features R = h_{i-1} (B, ngf, s, s), their mean r (B, ngf) (detached, as the official
``h_code_avg``) and the word features w_t (B, D, T):

    memory writing gate   g_t = sigmoid(A w_t + B r)                                        (B, 1, T)
    memory slots          m_t = M_w(w_t) g_t + M_r(r) (1 - g_t)                             (B, 2ngf, T)
    key addressing        a_jt = softmax_t(R_j . key(m_t)), padding words masked            (B, N, T)
    value reading         o_j = sum_t a_jt value(m_t)                                       (B, ngf, N)
    response gate         g_j = sigmoid(conv1x1([R_j, o_j])),  R'_j = R_j (1 - g_j) + o_j g_j
    h_i = upBlock(residuals(concat(R', R')))                                                (B, ngf, 2s, 2s)

``M_w``, ``M_r``, ``key`` and ``value`` are 1x1 Conv1d + ReLU, ``A``/``B`` linear maps to one value
without bias. Modules are named as the official ones (``h_net2.A``, ``h_net2.M_w.0``, ``h_net2.key.0``,
``h_net2.response_gate.0``, ...), so an official state dict loads as it is. The output is AttnGAN's
:class:`GeneratorOutput`; its ``attn`` holds the key-addressing weights a (B, T, s, s) of every memory
stage, which ``attend`` draws per word as AttnGAN's word attention.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from attngan_cli.archs.attngan.generator import Generator
from attngan_cli.config.schema import GeneratorConfig
from attngan_cli.networks.attention import official_mask_layout
from attngan_cli.networks.blocks import ResBlock, init_weights, up_block


def _conv1d_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(in_ch, out_ch, kernel_size=1, stride=1, padding=0), nn.ReLU())


class MemoryStage(nn.Module):
    """Dynamic memory, ``r_num`` residual blocks on 2ngf channels, an up-block to ngf: (B, ngf, s, s) ->
    (B, ngf, 2s, 2s) and the addressing weights (B, T, s, s). Official ``NEXT_STAGE_G``."""

    def __init__(self, ngf: int, embedding_dim: int, r_num: int) -> None:
        super().__init__()
        self.A = nn.Linear(embedding_dim, 1, bias=False)
        self.B = nn.Linear(ngf, 1, bias=False)
        self.M_r = _conv1d_relu(ngf, ngf * 2)
        self.M_w = _conv1d_relu(embedding_dim, ngf * 2)
        self.key = _conv1d_relu(ngf * 2, ngf)
        self.value = _conv1d_relu(ngf * 2, ngf)
        self.response_gate = nn.Sequential(nn.Conv2d(ngf * 2, 1, kernel_size=1, stride=1, padding=0), nn.Sigmoid())
        self.residual = nn.Sequential(*[ResBlock(ngf * 2) for _ in range(r_num)])
        self.upsample = up_block(ngf * 2, ngf)

    def write(self, h: torch.Tensor, words_emb: torch.Tensor) -> torch.Tensor:
        """The memory slots (B, 2ngf, T) of the words (B, D, T) given the image features h (B, ngf, s, s)."""
        r = F.avg_pool2d(h, h.shape[2:]).flatten(1).detach()  # (B, ngf): the official AvgPool2d over the map, detached
        gate = torch.sigmoid(self.A(words_emb.transpose(1, 2)).transpose(1, 2) + self.B(r)[:, :, None])  # (B, 1, T)
        return self.M_w(words_emb) * gate + self.M_r(r[:, :, None]) * (1 - gate)  # (B, 2ngf, T)

    def read(self, h: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None,
             official_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory output (B, ngf, s, s), addressing weights (B, T, s, s)) for the queries h (B, ngf, s, s)."""
        B, _, H, W = h.shape
        N, T = H * W, memory.shape[2]
        key, value = self.key(memory), self.value(memory)  # (B, ngf, T) each
        scores = torch.bmm(h.reshape(B, -1, N).transpose(1, 2), key)  # (B, N, T)
        if mask is not None:
            mask = mask.to(device=scores.device, dtype=torch.bool)
            full = official_mask_layout(mask, N) if official_mask else mask[:, None, :]  # (B, N|1, T)
            scores = scores.masked_fill(full, float("-inf"))
        attn = torch.softmax(scores, dim=2)  # (B, N, T), sums to 1 over the caption's words
        out = torch.bmm(value, attn.transpose(1, 2))  # (B, ngf, N)
        return out.view(B, -1, H, W), attn.transpose(1, 2).reshape(B, T, H, W)

    def forward(self, h: torch.Tensor, words_emb: torch.Tensor, mask: torch.Tensor | None,
                official_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        memory = self.write(h, words_emb)  # (B, 2ngf, T)
        out, attn = self.read(h, memory, mask, official_mask)  # (B, ngf, s, s), (B, T, s, s)
        gate = self.response_gate(torch.cat((h, out), dim=1))  # (B, 1, s, s)
        h_new = h * (1 - gate) + out * gate  # (B, ngf, s, s)
        return self.upsample(self.residual(torch.cat((h_new, h_new), dim=1))), attn


class DMGANGenerator(Generator):
    """DM-GAN's generator: AttnGAN's with :class:`MemoryStage` at stages 2 and above. Same call and
    output (``attn``: the memory addressing weights)."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__(cfg, init=False)
        for i in range(2, cfg.stages + 1):
            setattr(self, f"h_net{i}", MemoryStage(cfg.ngf, cfg.embedding_dim, cfg.r_num))
        if init:
            init_weights(self)
