"""The DAMSM attention-map figure written during pretraining: each row is one real image followed by its
caption's words, each with its word-to-region attention map (upsampled) laid over the image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from attngan_cli.viz.grid import to_uint8

CELL = 96  # pixels per tile
LABEL = 14  # label strip height


def _tile(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (CELL, CELL, 3) uint8."""
    return to_uint8(F.interpolate(img[None].float(), size=(CELL, CELL), mode="bilinear", align_corners=False)[0])


def _overlay(base: np.ndarray, amap: torch.Tensor) -> np.ndarray:
    """Blend a (h, w) attention map (normalised to its max) over ``base`` as a red-yellow heat overlay."""
    m = F.interpolate(amap[None, None].float(), size=(CELL, CELL), mode="bilinear", align_corners=False)[0, 0]
    m = (m - m.min()) / (m.max() - m.min()).clamp(min=1e-12)
    heat = torch.stack([torch.ones_like(m), m, torch.zeros_like(m)], dim=-1).cpu().numpy() * 255.0
    a = (0.15 + 0.7 * m.cpu().numpy())[..., None]
    dim = base.astype(np.float32) * 0.45
    return (dim * (1 - a) + heat * a).clip(0, 255).astype(np.uint8)


def damsm_attention_image(images: torch.Tensor, words: list[list[str]], maps: list[torch.Tensor],
                          max_rows: int = 8, max_words: int = 12) -> Image.Image:
    """images (N, 3, H, W) in [-1, 1]; ``words[i]`` the tokens of caption i; ``maps[i]`` (1, T_i, h, w)
    its attention over image i (from :func:`attngan_cli.losses.damsm.words_loss`). Returns an RGB image."""
    n = min(len(maps), len(words), images.shape[0], max_rows)
    cols = 1 + min(max_words, max((len(w) for w in words[:n]), default=0))
    canvas = Image.new("RGB", (cols * CELL, max(1, n) * (CELL + LABEL)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r in range(n):
        y = r * (CELL + LABEL)
        base = _tile(images[r])
        canvas.paste(Image.fromarray(base), (0, y + LABEL))
        draw.text((2, y + 1), "image", fill=(0, 0, 0))
        amaps = maps[r][0]  # (T_i, h, w)
        for c, word in enumerate(words[r][: min(max_words, amaps.shape[0])]):
            x = (c + 1) * CELL
            canvas.paste(Image.fromarray(_overlay(base, amaps[c])), (x, y + LABEL))
            draw.text((x + 2, y + 1), word[:14], fill=(0, 0, 0))
    return canvas
