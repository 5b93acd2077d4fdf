"""StackGAN++'s colour-consistency regulariser (Zhang et al., TPAMI 2018, section 4.2, equation 9).

For an image x (3 channels, N pixels) the pixel mean mu = sum_k x_k / N and covariance
Sigma = sum_k (x_k - mu)(x_k - mu)^T / N. For each pair of neighbouring stages (i - 1, i):

    L_C = lambda_1 * mse(mu_i, mu_{i-1}) + lambda_2 * mse(Sigma_i, Sigma_{i-1}),  lambda_1 = 1, lambda_2 = 5

summed over the pairs; the training multiplies the sum by ``--color-consistency``. As the official
StackGAN-v2 trainer, the smaller stage's statistics are the (detached) target and the larger stage's
image is pulled towards them; mse averages over the batch and the entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

MEAN_WEIGHT = 1.0  # lambda_1 of the paper
COV_WEIGHT = 5.0  # lambda_2


def color_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image pixel mean (B, C) and covariance (B, C, C) of ``images`` (B, C, H, W), in fp32."""
    x = images.float().flatten(2)  # (B, C, N)
    mu = x.mean(dim=2)  # (B, C)
    centred = x - mu[:, :, None]  # (B, C, N)
    cov = centred @ centred.transpose(1, 2) / x.shape[2]  # (B, C, C)
    return mu, cov


def color_consistency(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """The regulariser over the stages' images (each (B, 3, s_i, s_i)): 0 for a single stage."""
    total = images[0].new_zeros((), dtype=torch.float32)
    for small, large in zip(images[:-1], images[1:], strict=True):
        mu_s, cov_s = color_stats(small.detach())
        mu_l, cov_l = color_stats(large)
        total = total + MEAN_WEIGHT * F.mse_loss(mu_l, mu_s) + COV_WEIGHT * F.mse_loss(cov_l, cov_s)
    return total
