"""Attribute accuracy for the synthetic ``shapes`` data, read off images by pixel statistics.

No learned model: each image is explained with the known palette and geometry of
:mod:`attngan_cli.data.shapes`.

1. ``bg_color``: every border pixel votes for its nearest palette colour; the most voted background
   colour wins.
2. Every pixel is labelled with its nearest colour among the object colours and the background colour
   found in 1. The largest 8-connected region of one object colour is the main object (the scenes draw
   it largest): its label is ``color``.
3. ``shape``: *solidity* (area / convex-hull area) below 0.75 -> star; otherwise *extent* (area /
   bounding-box area) >= 0.9 -> square, >= 0.65 -> circle, else triangle (ideal values: square 1.0,
   circle 0.79, triangle 0.5, star solidity 0.56).
4. ``size``: bounding-box side over the shape's box-to-diameter ratio, nearest of ``SIZE_FRACTIONS``.
5. ``position``: the bounding-box centre (corrected to the drawing centre for triangles and stars), named
   by the dataset's own 3x3 grid rule (:func:`~attngan_cli.data.shapes.position_name`).

On the real shapes images this recovers the stored attributes almost perfectly (see
tests/test_metrics_attributes.py); on noise it is at chance level.

The metric scores an attribute only on the images whose caption names it
(:func:`~attngan_cli.data.shapes.named_attributes`): every caption names the colours, the shape and the
position, but only 3 of the 8 caption templates name the size, and an image drawn for "a blue square in
the center" may have any size. ``<name>_n`` gives the number of images each accuracy is over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from attngan_cli.data import shapes as S

if TYPE_CHECKING:
    # types only: a runtime import would cycle (evaluate -> registry -> this module)
    from attngan_cli.evaluation.evaluate import EvalContext, GeneratedBatch

BG_NAMES = list(S.BG_COLORS)
OBJ_NAMES = list(S.COLORS)
_BG_RGB = np.array([S.BG_COLORS[n] for n in BG_NAMES], dtype=np.float32)  # (4, 3)
_OBJ_RGB = np.array([S.COLORS[n] for n in OBJ_NAMES], dtype=np.float32)  # (8, 3)
# bounding-box side / object diameter as drawn by shapes.render
_BOX_RATIO = {"circle": 1.0, "square": 0.9, "triangle": 1.0, "star": 0.951}
# drawing centre - bounding-box centre, in units of the radius (y down), as drawn by shapes.render
_CENTRE_DY = {"triangle": 0.075, "star": 0.016}
_EIGHT = np.ones((3, 3), dtype=bool)


def _nearest(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """pixels (..., 3), palette (K, 3) -> (...) index of the nearest palette colour (RGB distance)."""
    d = ((pixels[..., None, :].astype(np.float32) - palette) ** 2).sum(-1)  # (..., K)
    return d.argmin(-1)


def read_attributes(image: np.ndarray) -> dict[str, str]:
    """Attributes of one uint8 image (H, W, 3) as value names (see the module docstring)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    h, w, _ = img.shape
    # 1. background: border pixels vote among all palette colours; take the best background colour.
    b = max(1, min(h, w) // 32)
    border = np.concatenate([img[:b].reshape(-1, 3), img[-b:].reshape(-1, 3),
                             img[:, :b].reshape(-1, 3), img[:, -b:].reshape(-1, 3)])
    votes = np.bincount(_nearest(border, np.concatenate([_BG_RGB, _OBJ_RGB])), minlength=len(_BG_RGB) + len(_OBJ_RGB))
    bg = int(votes[: len(_BG_RGB)].argmax())
    out = {"bg_color": BG_NAMES[bg]}
    # 2. main object: largest connected region of one object colour.
    labels = _nearest(img, np.concatenate([_OBJ_RGB, _BG_RGB[bg : bg + 1]]))  # (H, W); len(OBJ) = background
    best_area, best_color, best_mask = 0, 0, None
    for c in np.unique(labels):
        if c == len(_OBJ_RGB):
            continue
        comp, n = ndimage.label(labels == c, structure=_EIGHT)
        if n == 0:
            continue
        areas = np.bincount(comp.ravel())[1:]
        k = int(areas.argmax())
        if areas[k] > best_area:
            best_area, best_color, best_mask = int(areas[k]), int(c), comp == k + 1
    if best_mask is None:  # nothing but background: guess the first value of each
        return {**out, "color": OBJ_NAMES[0], "shape": S.SHAPES[0], "position": S.POSITIONS[4],
                "size": S.SIZES[0]}
    out["color"] = OBJ_NAMES[best_color]
    ys, xs = np.nonzero(best_mask)
    # 3. shape from extent and solidity
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    extent = best_area / float(bw * bh)
    solidity = best_area / _hull_area(xs, ys)
    if solidity < 0.75:
        shape = "star"
    elif extent >= 0.9:
        shape = "square"
    elif extent >= 0.65:
        shape = "circle"
    else:
        shape = "triangle"
    out["shape"] = shape if shape in S.SHAPES else S.SHAPES[0]
    # 4. size from the bounding box
    diameter = max(bw / w, bh / h) / _BOX_RATIO.get(shape, 1.0)
    out["size"] = min(S.SIZES, key=lambda name: abs(S.SIZE_FRACTIONS[name] - diameter))
    # 5. position: the bounding-box centre, moved to the drawing centre of the shape
    cx = (xs.min() + xs.max() + 1) / 2 / w
    cy = (ys.min() + ys.max() + 1) / 2 / h + _CENTRE_DY.get(shape, 0.0) * diameter / 2
    out["position"] = S.position_name(cx, cy)
    return out


def _hull_area(xs: np.ndarray, ys: np.ndarray) -> float:
    """Area of the convex hull of the pixel squares at (xs, ys)."""
    pts = np.stack([xs, ys], 1).astype(np.float64)
    corners = np.concatenate([pts + d for d in ((0, 0), (1, 0), (0, 1), (1, 1))])
    try:
        return float(ConvexHull(corners).volume)  # 2-D "volume" is the area
    except (QhullError, ValueError):
        return float(len(xs))


def attribute_hits(images: np.ndarray | torch.Tensor, truth: dict[str, np.ndarray],
                   values: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """images uint8 (B, H, W, 3) or (B, 3, H, W); truth[name] (B,) value indices into values[name] ->
    {name: (B,) bool} for each attribute in ``truth`` that the reader knows."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
        if images.dim() == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
            images = images.permute(0, 2, 3, 1)
        images = images.numpy()
    preds = [read_attributes(im) for im in images]
    out = {}
    for name, idx in truth.items():
        if name not in S.ATTRIBUTE_VALUES:
            continue
        names = values[name]
        out[name] = np.array([p[name] == names[int(i)] for p, i in zip(preds, idx, strict=True)], dtype=bool)
    return out


class AttributeAccuracyMetric:
    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.hits: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def update(self, batch: GeneratedBatch) -> None:
        truth = {name: arr[batch.items] for name, arr in self.ctx.attribute_truth.items()}
        hits = attribute_hits(batch.uint8(), truth, self.ctx.attribute_values)
        named = [S.named_attributes(self._words(int(i), int(c))) for i, c in zip(batch.items, batch.captions, strict=True)]
        for name, h in hits.items():
            mask = np.array([name in n for n in named], dtype=bool)
            self.hits[name] = self.hits.get(name, 0) + int(h[mask].sum())
            self.counts[name] = self.counts.get(name, 0) + int(mask.sum())

    def _words(self, item: int, caption: int) -> list[str]:
        ids, _ = self.ctx.dataset.captions(item)[caption]
        return self.ctx.dataset.vocab.decode(ids.tolist()).split()

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {name: h / self.counts[name] for name, h in self.hits.items() if self.counts[name]}
        if out:
            out["mean"] = float(np.mean(list(out.values())))
        out.update({f"{name}_n": float(n) for name, n in self.counts.items()})
        return out
