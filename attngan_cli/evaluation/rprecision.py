"""R-precision (AttnGAN paper section 4, with DM-GAN's released protocol), streamed.

For each generated image: the DAMSM global image vector is compared by cosine similarity with the
DAMSM sentence vector of its true caption and of 99 captions of images of *other* classes (drawn at
random from the test split); a hit when the true caption ranks first (R = 1). Hits are collected per
image (one bool each) and reported as mean and standard deviation over 10 folds.

The caption vectors come from a table of all test captions encoded once
(:meth:`EvalContext.caption_embeddings`), identical to DM-GAN's encoding them on the fly; the
mismatched captions of every sample are drawn up front in the sampling plan, so the result does not
depend on the batch size. The pure functions live in :mod:`attngan_cli.evaluation.retrieval`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from attngan_cli.evaluation.retrieval import r_precision, r_precision_dmgan, r_precision_hits

if TYPE_CHECKING:
    # types only: a runtime import would cycle (evaluate -> registry -> this module)
    from attngan_cli.evaluation.evaluate import EvalContext, GeneratedBatch


class RPrecisionMetric:
    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.hits: list[torch.Tensor] = []

    def update(self, batch: GeneratedBatch) -> None:
        table = self.ctx.caption_embeddings()  # (M, D)
        img = batch.damsm_global().float().cpu()  # (B, D)
        true = table[torch.as_tensor(batch.caption_rows)]  # (B, D)
        wrong = table[torch.as_tensor(batch.wrong_rows)]  # (B, K, D)
        self.hits.append(r_precision_hits(img, true, wrong, ties=_settings(self.ctx).get("rp_ties", "miss")).cpu())

    def compute(self) -> dict[str, float]:
        hits = torch.cat(self.hits) if self.hits else torch.zeros(0, dtype=torch.bool)
        return fold_scores(hits, self.ctx.options.rp_folds, _settings(self.ctx).get("rp_fold_style", "consecutive"),
                           getattr(self.ctx.options, "seed", 0))


def _settings(ctx: EvalContext) -> dict:
    return getattr(ctx, "settings", None) or {}  # contexts built by hand (tests, callers) may have none


def fold_scores(hits: torch.Tensor, folds: int, style: str, seed: int) -> dict[str, float]:
    """Mean and std of the hit rate over folds: ``consecutive`` parts, or DM-GAN's shuffled folds."""
    if style == "dmgan":
        mean, std = r_precision_dmgan(hits, folds=folds, seed=seed)
    else:
        mean, std = r_precision(hits, folds=folds)
    return {"mean": mean, "std": std}
