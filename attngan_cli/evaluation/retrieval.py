"""Retrieval metrics on DAMSM features (pure functions on tensors).

* R-precision (AttnGAN paper, section 4): for each image, rank its true caption among ``K`` mismatched
  ones (the paper: 99 captions of other classes) by cosine similarity of the global features; a hit when
  the true caption ranks first. Reported as mean and std over folds.
* Top-1 retrieval within a batch: image -> caption and caption -> image accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def r_precision_hits(img: torch.Tensor, txt_true: torch.Tensor, txt_wrong: torch.Tensor,
                     ties: str = "miss") -> torch.Tensor:
    """img (N, D), txt_true (N, D), txt_wrong (N, K, D) -> (N,) bool: the true caption has the highest
    cosine similarity. ``ties``: ``"miss"`` (a tie with a mismatched caption is a miss) or ``"hit"`` (DM-GAN's
    and TISE's ``argmax(scores) == 0`` with the true caption first: the first maximum wins)."""
    img = F.normalize(img.float(), dim=-1)
    true = (img * F.normalize(txt_true.float(), dim=-1)).sum(-1)  # (N,)
    wrong = torch.einsum("nd,nkd->nk", img, F.normalize(txt_wrong.float(), dim=-1))  # (N, K)
    best = wrong.max(dim=1).values
    return true >= best if ties == "hit" else true > best


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


def r_precision_dmgan(hits: torch.Tensor | np.ndarray, folds: int = 10, seed: int = 0) -> tuple[float, float]:
    """DM-GAN's folds (``code/trainer.py`` l.487-491): the hits shuffled, fold i is
    ``R[i * m : (i + 1) * m - 1]`` with ``m = N // folds`` (its last element left out), mean and population
    std of the fold means. The shuffle is seeded here (DM-GAN's uses numpy's global state). A fold of one
    element keeps that element."""
    r = np.asarray(torch.as_tensor(hits).reshape(-1).float().numpy(), dtype=np.float64)
    if r.size == 0:
        return float("nan"), float("nan")
    r = r[np.random.default_rng([seed, 3000]).permutation(r.size)]
    folds = max(1, min(folds, r.size))
    m = r.size // folds
    means = np.array([np.average(r[i * m : max(i * m + 1, (i + 1) * m - 1)]) for i in range(folds)])
    return float(np.average(means)), float(np.std(means))


def top1_retrieval(img: torch.Tensor, txt: torch.Tensor) -> tuple[float, float]:
    """img (B, D), txt (B, D) with img[i] matching txt[i] -> (image->caption, caption->image) top-1
    accuracy by cosine similarity."""
    sims = F.normalize(img.float(), dim=-1) @ F.normalize(txt.float(), dim=-1).t()  # (B, B)
    target = torch.arange(sims.shape[0], device=sims.device)
    i2t = (sims.argmax(dim=1) == target).float().mean()
    t2i = (sims.argmax(dim=0) == target).float().mean()
    return float(i2t), float(t2i)
