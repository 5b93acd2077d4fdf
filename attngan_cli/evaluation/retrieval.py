"""Retrieval metrics on DAMSM features (pure functions on tensors).

* R-precision (AttnGAN paper, section 4): for each image, rank its true caption among ``K`` mismatched
  ones (the paper: 99 captions of other classes) by cosine similarity of the global features; a hit when
  the true caption ranks first. Reported as mean and std over folds.
* Top-1 retrieval within a batch: image -> caption and caption -> image accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def r_precision_hits(img: torch.Tensor, txt_true: torch.Tensor, txt_wrong: torch.Tensor) -> torch.Tensor:
    """img (N, D), txt_true (N, D), txt_wrong (N, K, D) -> (N,) bool: the true caption has the highest
    cosine similarity (ties count as misses)."""
    img = F.normalize(img.float(), dim=-1)
    true = (img * F.normalize(txt_true.float(), dim=-1)).sum(-1)  # (N,)
    wrong = torch.einsum("nd,nkd->nk", img, F.normalize(txt_wrong.float(), dim=-1))  # (N, K)
    return true > wrong.max(dim=1).values


def r_precision(hits: torch.Tensor, folds: int = 10) -> tuple[float, float]:
    """Mean and standard deviation of the hit rate over ``folds`` equal consecutive splits."""
    h = torch.as_tensor(hits).reshape(-1).float()
    if h.numel() == 0:
        return float("nan"), float("nan")
    folds = max(1, min(folds, h.numel()))
    parts = torch.tensor_split(h, folds)
    means = torch.stack([p.mean() for p in parts])
    std = float(means.std(unbiased=False)) if folds > 1 else 0.0
    return float(means.mean()), std


def top1_retrieval(img: torch.Tensor, txt: torch.Tensor) -> tuple[float, float]:
    """img (B, D), txt (B, D) with img[i] matching txt[i] -> (image->caption, caption->image) top-1
    accuracy by cosine similarity."""
    sims = F.normalize(img.float(), dim=-1) @ F.normalize(txt.float(), dim=-1).t()  # (B, B)
    target = torch.arange(sims.shape[0], device=sims.device)
    i2t = (sims.argmax(dim=1) == target).float().mean()
    t2i = (sims.argmax(dim=0) == target).float().mean()
    return float(i2t), float(t2i)
