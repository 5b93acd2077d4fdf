"""Inception Score (Salimans et al. 2016), streamed.

IS = exp(E_x KL(p(y|x) || p(y))), computed on each of ``splits`` (10) consecutive, equal parts of the
samples; reported as mean and standard deviation over the parts. Per part, with p_i = p(y|x_i),

    E_x KL = mean_i sum_y p_i log p_i  -  sum_y pbar_y log pbar_y,    pbar = mean_i p_i,

so only ``sum_i p_i`` (C,) and ``sum_i sum_y p_i log p_i`` per part are kept: memory does not grow with
the number of samples and the result does not depend on the batch size. The parts are the same as
torch-fidelity's ``isc_features_to_metric(..., shuffle=False)`` (our samples come in random order).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    # types only: a runtime import would cycle (evaluate -> registry -> this module)
    from attngan_cli.evaluation.evaluate import EvalContext, GeneratedBatch


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Reference (non-streaming) IS of ``logits`` (N, C): (mean, std) over ``splits`` parts."""
    acc = InceptionScoreAccumulator(logits.shape[0], splits)
    acc.update(logits)
    return acc.compute()


class InceptionScoreAccumulator:
    """Feed logits (B, C) in sample order with :meth:`update`; :meth:`compute` gives (mean, std)."""

    def __init__(self, total: int, splits: int = 10) -> None:
        if total < splits:
            raise ValueError(f"the Inception Score needs at least {splits} samples for {splits} splits, got {total}")
        self.total = total
        self.splits = splits
        # part s holds samples [bounds[s], bounds[s+1])
        self.bounds = np.array([s * total // splits for s in range(splits + 1)])
        self.seen = 0
        self.sum_p: torch.Tensor | None = None  # (splits, C) float64
        self.sum_neg_entropy = torch.zeros(splits, dtype=torch.float64)
        self.count = torch.zeros(splits, dtype=torch.float64)

    def update(self, logits: torch.Tensor) -> None:
        logits = logits.detach().to("cpu", torch.float64)  # (B, C)
        b = logits.shape[0]
        if self.seen + b > self.total:
            raise ValueError(f"more samples than announced ({self.seen + b} > {self.total})")
        if self.sum_p is None:
            self.sum_p = torch.zeros(self.splits, logits.shape[1], dtype=torch.float64)
        log_p = logits.log_softmax(dim=1)
        p = log_p.exp()
        neg_entropy = (p * log_p).sum(dim=1)  # (B,)
        part = torch.from_numpy(np.searchsorted(self.bounds, np.arange(self.seen, self.seen + b), side="right") - 1)
        self.sum_p.index_add_(0, part, p)
        self.sum_neg_entropy.index_add_(0, part, neg_entropy)
        self.count.index_add_(0, part, torch.ones(b, dtype=torch.float64))
        self.seen += b

    def compute(self) -> tuple[float, float]:
        if self.sum_p is None or self.seen < self.total:
            raise ValueError(f"only {self.seen} of {self.total} samples were given")
        scores = []
        for s in range(self.splits):
            n = self.count[s].item()
            pbar = self.sum_p[s] / n
            mean_kl = self.sum_neg_entropy[s].item() / n - float((pbar * pbar.clamp_min(1e-300).log()).sum())
            scores.append(math.exp(mean_kl))
        return float(np.mean(scores)), float(np.std(scores))


class InceptionScoreMetric:
    """IS, or IS* (TISE) when the temperature T is not 1: the softmax of ``logits / T``."""

    def __init__(self, ctx: EvalContext) -> None:
        self.acc = InceptionScoreAccumulator(ctx.num_samples, ctx.options.is_splits)
        self.temperature = float((getattr(ctx, "settings", None) or {}).get("is_temperature", 1.0))

    def update(self, batch: GeneratedBatch) -> None:
        logits = batch.inception()["logits"]
        self.acc.update(logits if self.temperature == 1.0 else logits.double() / self.temperature)

    def compute(self) -> dict[str, float]:
        mean, std = self.acc.compute()
        out = {"mean": mean, "std": std}
        if self.temperature != 1.0:
            out["temperature"] = self.temperature
        return out
