"""The paper's attention figure (Figure 1 / Figure 4 of Xu et al., CVPR 2018).

First row: the image of each stage, earlier stages bilinearly upsampled to the last size. Then one row
per attention model (the word attention at the input of stages 2, 3, ...), showing its top-K words:

1. equation 15: in a region's attention over the T words of the caption, weights below 1/T (what a
   uniform attention would give) are set to 0;
2. words are ranked by the sum of their kept weights over all N regions;
3. each word's map is reshaped to sqrt(N) x sqrt(N), upsampled to the image size (bilinear, then a
   Gaussian filter, as the official ``pyramid_expand(sigma=20)`` at 256 px), normalised to [0, 1]
4. and blended over that stage's image, labelled ``index:word`` (index = position in the caption).

(The official ``build_super_images2`` thresholded at 2/T and scored with 4/T; we follow the paper.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from attngan_cli.viz.fonts import Font, fit_text, get_font, text_size
from attngan_cli.viz.grid import to_uint8, upsample

BLEND_ALPHA = 180 / 255  # the official mask value: how much of the map covers the image
OFFICIAL_SIGMA = 20.0  # Gaussian sigma of the official figure at 256 px


@dataclass
class WordScore:
    index: int  # position in the (encoded) caption
    word: str
    score: float  # sum over regions of the weights kept by equation 15

    @property
    def label(self) -> str:
        return f"{self.index}:{self.word}"

    def to_dict(self) -> dict:
        return asdict(self)


def _as_maps(attn: torch.Tensor | np.ndarray, n_words: int) -> torch.Tensor:
    """One attention model's weights (T', h, w) or (T', N) -> (T, s, s) float for the caption's T words."""
    a = torch.as_tensor(np.asarray(attn) if not isinstance(attn, torch.Tensor) else attn).detach().float().cpu()
    if a.dim() == 4 and a.shape[0] == 1:
        a = a[0]
    if a.dim() == 2:  # (T, N): reshape each word's weights to sqrt(N) x sqrt(N)
        side = math.isqrt(a.shape[1])
        if side * side != a.shape[1]:
            raise ValueError(f"attention over {a.shape[1]} regions is not a square number of regions")
        a = a.reshape(a.shape[0], side, side)
    if a.dim() != 3:
        raise ValueError(f"attention maps must be (T, h, w) or (T, N), got shape {tuple(a.shape)}")
    if a.shape[0] < n_words:
        raise ValueError(f"attention covers {a.shape[0]} words but the caption has {n_words}")
    return a[:n_words]  # (T, s, s): padding positions beyond the caption dropped


def threshold(attn: torch.Tensor, n_words: int) -> torch.Tensor:
    """Equation 15: weights below 1/T set to 0 (``attn`` (T, ...) for a caption of T words)."""
    return attn * (attn >= 1.0 / n_words)


def rank_words(attn: torch.Tensor | np.ndarray, words: Sequence[str]) -> list[WordScore]:
    """All words of the caption ranked by their summed kept weight (ties: earlier word first)."""
    maps = threshold(_as_maps(attn, len(words)), len(words))  # (T, s, s)
    scores = maps.flatten(1).sum(1).tolist()  # (T,)
    order = sorted(range(len(words)), key=lambda i: (-scores[i], i))
    return [WordScore(i, words[i], float(scores[i])) for i in order]


def word_map(one: torch.Tensor, n_words: int, size: int, sigma: float | None = None) -> np.ndarray:
    """One word's attention (s, s) -> float (size, size) in [0, 1]: thresholded (eq. 15), bilinearly
    upsampled, smoothed by a Gaussian (default sigma: the official 20 px at 256 px), min-max normalised."""
    m = threshold(one.float(), n_words)
    if m.shape[-1] != size:
        m = F.interpolate(m[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    sigma = OFFICIAL_SIGMA * size / 256 if sigma is None else sigma
    out = m.numpy().astype(np.float64)
    if sigma > 0 and one.shape[-1] < size:
        out = gaussian_filter(out, sigma=sigma, mode="reflect")
    lo, hi = float(out.min()), float(out.max())
    if hi - lo <= 1e-12:
        return np.zeros((size, size), np.float32)
    return ((out - lo) / (hi - lo)).astype(np.float32)


def blend(image: np.ndarray, m: np.ndarray, alpha: float = BLEND_ALPHA) -> np.ndarray:
    """A grey map in [0, 1] (H, W) pasted over a uint8 image (H, W, 3) with opacity ``alpha``."""
    out = image.astype(np.float32) * (1 - alpha) + (m[..., None] * 255.0) * alpha
    return out.round().clip(0, 255).astype(np.uint8)


def all_word_maps(attn: torch.Tensor | np.ndarray, words: Sequence[str], size: int,
                  sigma: float | None = None) -> list[np.ndarray]:
    """Every word's map (size, size) in [0, 1], in caption order."""
    maps = _as_maps(attn, len(words))
    return [word_map(maps[i], len(words), size, sigma) for i in range(len(words))]


# --------------------------------------------------------------------------------------------------
# Figure assembly
# --------------------------------------------------------------------------------------------------
@dataclass
class AttentionFigure:
    image: Image.Image
    rankings: list[list[WordScore]]  # per attention model, all words ranked
    top: list[list[WordScore]]  # per attention model, the words shown


def attention_figure(stage_images: Sequence[torch.Tensor], attn: Sequence[torch.Tensor | np.ndarray],
                     words: Sequence[str], top: int = 5, caption: str | None = None,
                     tile: int | None = None, sigma: float | None = None,
                     sentence_maps: Sequence[torch.Tensor] = (), kind: str = "attention") -> AttentionFigure:
    """Draw the figure.

    stage_images: one (3, s, s) image in [-1, 1] per stage. attn: one (T', h, w) (or (T', N)) map per
    attention model; attention model k sits at the input of stage k + 2 and is drawn over that stage's
    image. words: the caption's T words (T <= T'). tile: side of each cell (default: the last stage's
    size, at least 128 so labels stay legible). sentence_maps: MirrorGAN's sentence attention, one (h, w)
    map per attention model summing to 1 over the regions, drawn in a last row (regions below the uniform
    share 1/(h w) set to 0, as equation 15 does for words). kind: what the maps are, in the row labels
    (``memory`` for DM-GAN's memory addressing weights, drawn the same way).
    """
    if not stage_images:
        raise ValueError("attention_figure needs at least one stage image")
    if not words:
        raise ValueError("attention_figure needs at least one word")
    top = max(1, int(top))
    last = int(stage_images[-1].shape[-1])
    tile = tile or max(last, 128)
    # first row: every stage at the last size (bilinear), then to the tile size
    imgs = [to_uint8(upsample(upsample(im[None].float(), last), tile)[0]) for im in stage_images]
    rankings = [rank_words(a, words) for a in attn]
    shown = [r[:top] for r in rankings]
    maps = [_as_maps(a, len(words)) for a in attn]
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = [
        ("images", [(f"stage {i + 1}: {int(im.shape[-1])}px", imgs[i]) for i, im in enumerate(stage_images)])
    ]
    for k, ranked in enumerate(shown):
        base = imgs[min(k + 1, len(imgs) - 1)]
        cells = [(ws.label, blend(base, word_map(maps[k][ws.index], len(words), tile, sigma))) for ws in ranked]
        side = maps[k].shape[-1]
        rows.append((f"{kind} {k + 1}\n(stage {k + 2}, {side}x{side})", cells))
    if sentence_maps:
        cells = []
        for k, m in enumerate(sentence_maps):
            m = torch.as_tensor(m).float().reshape(m.shape[-2], m.shape[-1])  # (h, w)
            base = imgs[min(k + 1, len(imgs) - 1)]
            cells.append((f"sentence {k + 1} (stage {k + 2})", blend(base, word_map(m, m.numel(), tile, sigma))))
        rows.append(("sentence\nattention", cells))
    return AttentionFigure(_assemble(rows, tile, caption), rankings, shown)


def _assemble(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], tile: int, caption: str | None) -> Image.Image:
    pad = max(2, tile // 64)
    font = get_font(max(11, tile // 14))
    head_font = get_font(max(10, tile // 16))
    label_h = text_size("0:Mg", font)[1] + 2 * pad
    header_w = max(max(text_size(line, head_font)[0] for line in name.split("\n")) for name, _ in rows) + 3 * pad
    ncols = max(len(cells) for _, cells in rows)
    width = header_w + ncols * (tile + pad) + pad
    title_lines = _wrap_text(caption, font, width - 2 * pad) if caption else []
    title_h = (len(title_lines) * (label_h - pad) + pad) if title_lines else 0
    height = title_h + len(rows) * (label_h + tile + pad) + pad
    fig = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    y = pad
    for line in title_lines:
        draw.text((pad, y), line, fill=(0, 0, 0), font=font)
        y += label_h - pad
    y = title_h
    for name, cells in rows:
        lines = name.split("\n")
        line_h = text_size("Mg", head_font)[1] + 2
        ty = y + label_h + (tile - len(lines) * line_h) // 2
        for i, line in enumerate(lines):
            draw.text((pad, ty + i * line_h), line, fill=(60, 60, 60), font=head_font)
        for j, (label, arr) in enumerate(cells):
            x = header_w + j * (tile + pad)
            draw.text((x + 1, y + pad), fit_text(label, font, tile - 2), fill=(0, 0, 0), font=font)
            fig.paste(Image.fromarray(arr), (x, y + label_h))
        y += label_h + tile + pad
    return fig


def _wrap_text(text: str, font: Font, width: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in text.split():
        cand = f"{cur} {word}".strip()
        if cur and text_size(cand, font)[0] > width:
            lines.append(cur)
            cur = word
        else:
            cur = cand
    if cur:
        lines.append(cur)
    return [fit_text(line, font, width) for line in lines]
