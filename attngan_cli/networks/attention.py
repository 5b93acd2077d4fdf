"""Word attention of the attentional generative network (paper section 3.1, equation 2).

For each image region (query h_j, a column of the hidden features) and word (e_i, projected from the
text feature space to the image feature space by a 1x1 convolution ``conv_context``), the score is
s_ji = h_j . e'_i; padding words are masked out; beta_ji = softmax_i(s_ji); the word-context vector of
region j is c_j = sum_i beta_ji e'_i. Parameter name as the official ``GlobalAttentionGeneral``.
"""

from __future__ import annotations

import torch
from torch import nn

from attngan_cli.networks.blocks import conv1x1


def official_mask_layout(mask: torch.Tensor, n_regions: int) -> torch.Tensor:
    """The padding mask as the official code applies it: (B, T) -> (B, N, T).

    The official ``GlobalAttentionGeneral`` repeats the (B, T) mask N times along the batch dimension
    (``mask.repeat(queryL, 1)``) and applies it to scores laid out batch-major (row b*N + j), so region j of
    caption b is masked with the mask of caption (b*N + j) mod B: with B dividing N, every fourth pixel of
    every image (for B = 4) gets caption 3's padding. Reproduced only to match the official outputs exactly.
    """
    B, T = mask.shape
    return mask.repeat(n_regions, 1).view(B, n_regions, T)


class WordAttention(nn.Module):
    """(h (B, idf, H, W), words (B, cdf, T), mask (B, T) True = padding) -> (context (B, idf, H, W),
    attention (B, T, H, W))."""

    def __init__(self, idf: int, cdf: int) -> None:
        super().__init__()
        self.conv_context = conv1x1(cdf, idf)

    def forward(self, h: torch.Tensor, words: torch.Tensor, mask: torch.Tensor | None = None,
                official_mask: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, H, W = h.shape
        N, T = H * W, words.shape[2]
        source = self.conv_context(words.unsqueeze(3)).squeeze(3)  # (B, idf, T)
        query = h.reshape(B, -1, N).transpose(1, 2)  # (B, N, idf)
        scores = torch.bmm(query, source)  # (B, N, T)
        if mask is not None:
            mask = mask.to(device=scores.device, dtype=torch.bool)
            full = official_mask_layout(mask, N) if official_mask else mask[:, None, :]  # (B, N|1, T)
            scores = scores.masked_fill(full, float("-inf"))
        attn = torch.softmax(scores, dim=2)  # (B, N, T), sums to 1 over non-padding words
        context = torch.bmm(source, attn.transpose(1, 2))  # (B, idf, N)
        return context.view(B, -1, H, W), attn.transpose(1, 2).reshape(B, T, H, W)
