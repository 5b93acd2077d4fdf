"""Image conversion, grids and atomic PNG writing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from attngan_cli.core.fileio import atomic_path


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 tensor of the same shape (and device), rounded as when saved as
    PNG: ``round((clamp(x, -1, 1) + 1) * 127.5)``. The one [-1, 1] -> uint8 conversion of the package."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images (B, 3, H, W) (or (3, H, W)) in [-1, 1] -> uint8 array (B, H, W, 3) (or (H, W, 3)):
    :func:`images_to_uint8` with the channels moved last, on the CPU."""
    return images_to_uint8(images).movedim(-3, -1).cpu().numpy()


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, 3, h, w) images to (B, 3, size, size) (identity when already that size)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)


def make_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2,
              background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Tiles (H, W, 3) uint8 arranged in rows (rows may be ragged; tiles of one size) -> (H', W', 3) uint8."""
    tiles = [t for r in rows for t in r]
    if not tiles:
        raise ValueError("make_grid needs at least one tile")
    h, w = tiles[0].shape[:2]
    ncols = max(len(r) for r in rows)
    out = np.empty((len(rows) * h + (len(rows) + 1) * pad, ncols * w + (ncols + 1) * pad, 3), np.uint8)
    out[:] = np.asarray(background, np.uint8)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            if t.shape[:2] != (h, w):
                raise ValueError(f"grid tiles must share one size: {t.shape[:2]} vs {(h, w)}")
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = t
    return out


def wrap(tiles: Sequence[np.ndarray], ncols: int | None = None) -> list[list[np.ndarray]]:
    """Tiles split into rows of ``ncols`` (default: a near-square layout)."""
    n = len(tiles)
    ncols = ncols or max(1, int(np.ceil(np.sqrt(n))))
    return [list(tiles[i:i + ncols]) for i in range(0, n, ncols)]


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write a uint8 (H, W, 3) / (H, W) array or a PIL image as PNG, atomically."""
    path = Path(path)
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return path
