"""Fréchet Inception Distance (Heusel et al. 2017), streamed.

Features (2048-d pool3 of the TF Inception) are folded batch by batch into running Gaussian statistics
(:class:`GaussianStats`: count, mean, centred sum of outer products, merged with Chan et al.'s parallel
update in float64), so generated images and their features are never all in memory. Then

    FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

with scipy's ``linalg.sqrtm`` as in the reference TTUR code (including its eps fallback for a singular
product and the check on the imaginary residue).

The statistics of the real test images are cached next to the dataset, keyed by a hash of the test
images, the image size they are scored at and the extractor (see :func:`stats_cache_path`).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import linalg

from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.core.fileio import atomic_path

if TYPE_CHECKING:
    # types only: a runtime import would cycle (evaluate -> registry -> this module)
    from attngan_cli.evaluation.evaluate import EvalContext, GeneratedBatch

log = logging.getLogger(__name__)

STATS_FORMAT = 1


class GaussianStats:
    """Running mean and covariance of feature vectors (D,)."""

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None if dim is None else np.zeros(dim)
        self.m2: np.ndarray | None = None if dim is None else np.zeros((dim, dim))  # sum (x - mean)(x - mean)^T

    def update(self, feats: torch.Tensor | np.ndarray) -> None:
        x = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            if x.ndim == 2:
                return
            raise ValueError(f"features must be (B, D), got shape {x.shape}")
        nb = x.shape[0]
        mb = x.mean(axis=0)
        xc = x - mb
        m2b = xc.T @ xc
        if self.n == 0 or self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        if self.mean.shape != mb.shape:
            raise ValueError(f"feature size changed from {self.mean.shape[0]} to {mb.shape[0]}")
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + np.outer(delta, delta) * (self.n * nb / n)
        self.n = n

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2 or self.m2 is None:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.n}")
        return self.m2 / (self.n - 1)

    @property
    def mu(self) -> np.ndarray:
        if self.n == 0 or self.mean is None:
            raise ValueError("no samples")
        return self.mean

    def save(self, path: str | os.PathLike[str], key: str = "") -> Path:
        path = Path(path)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, n=np.int64(self.n), mu=self.mu, sigma=self.cov, key=np.array(key),
                         format=np.int64(STATS_FORMAT))
        return path

    @classmethod
    def from_moments(cls, n: int, mu: np.ndarray, sigma: np.ndarray) -> GaussianStats:
        s = cls()
        s.n, s.mean, s.m2 = int(n), np.asarray(mu, np.float64), np.asarray(sigma, np.float64) * (int(n) - 1)
        return s

    @classmethod
    def load(cls, path: str | os.PathLike[str], key: str | None = None) -> GaussianStats:
        with np.load(path, allow_pickle=False) as z:
            if key is not None and str(z["key"]) != key:
                raise InputError(f"FID statistics {path} were computed for other data or another extractor")
            return cls.from_moments(int(z["n"]), z["mu"], z["sigma"])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (TTUR's computation)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        log.warning("FID: the product of the covariances is singular; adding %g to their diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise AttnGANError(f"FID: the matrix square root has a large imaginary part ({imag:.3g}); "
                               "too few samples for the feature size?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sqrtm(m: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a singular product is handled by the caller (eps offset / check)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        out = linalg.sqrtm(m)
    return out[0] if isinstance(out, tuple) else out  # old scipy returned (sqrtm, errest) with disp=False


def fid_from_stats(a: GaussianStats, b: GaussianStats) -> float:
    return frechet_distance(a.mu, a.cov, b.mu, b.cov)


def fid_from_features(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    sa, sb = GaussianStats(), GaussianStats()
    sa.update(a)
    sb.update(b)
    return fid_from_stats(sa, sb)


def stats_cache_path(data_path: str | os.PathLike[str], key_hash: str) -> Path:
    """``DATA.h5`` -> ``DATA.fid-<hash16>.npz`` beside it."""
    data_path = Path(data_path)
    return data_path.with_name(f"{data_path.stem}.fid-{key_hash[:16]}.npz")


class FIDMetric:
    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.fake = GaussianStats()

    def update(self, batch: GeneratedBatch) -> None:
        self.fake.update(batch.fid_pool())

    def compute(self) -> dict[str, float]:
        real = self.ctx.real_fid_stats()
        return {"fid": fid_from_stats(self.fake, real), "real_images": float(real.n)}
