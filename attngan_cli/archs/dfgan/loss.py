"""DF-GAN's objective (Tao et al., CVPR 2022, equations 1-3): hinge loss with mismatched pairs and the
matching-aware gradient penalty (MA-GP), no DAMSM term and no KL term.

Discriminator, with D(x, s) the one-way logit::

    L_D = relu(1 - D(x, s)) + [relu(1 + D(G(z, s), s)) + relu(1 + D(x', s))] / 2
          + k * mean_b( ||(dD(x, s)/dx, dD(x, s)/ds)||_2 ^ p )                k = 2, p = 6

where x' is the next real image of the (per-process) batch, rolled by one (so the image features are
computed once for the real, mismatched and penalty terms), and the penalty is taken on the real images
with their matching sentences only, with respect to both. ``mismatch=False`` drops the x' term
(``L_D = relu(1 - D(x, s)) + relu(1 + D(G(z, s), s)) + MA-GP``).

Generator: ``L_G = -mean D(G(z, s), s)``.

The penalty's gradients are taken with ``create_graph=True`` (its gradient reaches D's weights); under
bf16/fp16 autocast the gradient norm and its sixth power are computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attngan_cli.archs.base import GANLoss, LossTerms, TextBatch


def roll_one(x: torch.Tensor) -> torch.Tensor:
    """``x[1:] ++ x[:1]`` along dim 0: sample i paired with sample i + 1's image (mismatched pairs)."""
    return torch.cat((x[1:], x[:1]), dim=0)


def ma_gp(score: torch.Tensor, images: torch.Tensor, sent_emb: torch.Tensor, weight: float, power: float
          ) -> torch.Tensor:
    """``weight * mean(||(d score/d images, d score/d sent_emb)||_2 ^ power)`` over the batch, in float32;
    ``images`` (B, 3, s, s) and ``sent_emb`` (B, D) must require gradients and ``score`` (B,) depend on them."""
    g_img, g_sent = torch.autograd.grad(score.sum(), (images, sent_emb), create_graph=True)
    grads = torch.cat((g_img.flatten(1).float(), g_sent.flatten(1).float()), dim=1)  # (B, 3 s^2 + D)
    norm = grads.pow(2).sum(dim=1).sqrt()  # (B,)
    return weight * norm.pow(power).mean()


class DFGANLoss(GANLoss):
    """Hinge + MA-GP on one :class:`attngan_cli.archs.dfgan.networks.DFDiscriminator`."""

    def __init__(self, gp_weight: float = 2.0, gp_power: float = 6.0, mismatch: bool = True) -> None:
        self.gp_weight = float(gp_weight)
        self.gp_power = float(gp_power)
        self.mismatch = mismatch

    def discriminator(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, text: TextBatch) -> LossTerms:
        real = real.detach().requires_grad_(True)
        sent = text.sent_emb.detach().requires_grad_(True)
        real_features = D.features(real)  # (B, 8 ndf, 4, 4)
        real_score = D.head(real_features, sent)  # (B,)
        d_real = F.relu(1.0 - real_score.float()).mean()
        d_fake = F.relu(1.0 + D(fake.detach(), sent).float()).mean()
        logs = {"real": d_real.detach(), "fake": d_fake.detach()}
        if self.mismatch:
            d_wrong = F.relu(1.0 + D.head(roll_one(real_features), sent).float()).mean()
            adv = d_real + (d_fake + d_wrong) / 2.0
            logs["wrong"] = d_wrong.detach()
        else:
            adv = d_real + d_fake
        gp = ma_gp(real_score, real, sent, self.gp_weight, self.gp_power) if self.gp_weight > 0 else adv.new_zeros(())
        logs["gp"] = gp.detach()
        return LossTerms(adv + gp, logs)

    def generator(self, Ds: Sequence[nn.Module], out: Any, text: TextBatch) -> LossTerms:
        adv = -Ds[0](out.images[-1], text.sent_emb).float().mean()
        return LossTerms(adv, {"g_adv0": adv.detach()})
