"""The built-in synthetic dataset: coloured shapes on coloured backgrounds, with captions.

Each image holds 1 to 3 objects; the *main* object is the largest one and is drawn on top. Its colour,
shape, position and size, and the background colour, are the stored attributes; the class id is
(shape, colour) of the main object: ``class_id = SHAPES.index(shape) * len(COLORS) + colour index``.
Every caption names the main object's colour and shape, its position and the background colour, with
synonyms and varied word order, in at most 12 words (the ``shapes`` preset's ``words``).

Positions: the object centre ``(cx, cy)`` (fractions of the image width / height, y down) falls in a
3x3 grid cell: column ``min(2, int(3 * cx))`` (left, centre, right), row ``min(2, int(3 * cy))``
(top, middle, bottom), named ``POSITIONS[3 * row + col]`` (see :func:`position_name`). Main objects are
placed at least 2% of the image away from cell borders, so the position is unambiguous.

Object colours (``COLORS``) are bold and saturated; backgrounds come from a separate palette
(``BG_COLORS``: black, gray, white, brown), so an object never has the background's colour.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.h5 import DEFAULT_COMPRESSION, TEST, TRAIN, write_dataset
from attngan_cli.data.tokenizer import tokenize
from attngan_cli.data.vocab import Vocabulary

log = logging.getLogger(__name__)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 20, 30),
    "orange": (255, 135, 0),
    "yellow": (255, 225, 0),
    "green": (20, 170, 40),
    "cyan": (0, 215, 235),
    "blue": (25, 60, 235),
    "purple": (135, 35, 205),
    "pink": (255, 110, 205),
}
BG_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "gray": (125, 125, 125),
    "white": (242, 242, 242),
    "brown": (105, 65, 35),
}
SHAPES: list[str] = ["circle", "square", "triangle", "star"]
POSITIONS: list[str] = [
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
]
SIZES: list[str] = ["small", "medium", "large"]
# Main object diameter (bounding-box side) as a fraction of the image side, per size name.
SIZE_FRACTIONS: dict[str, float] = {"small": 0.26, "medium": 0.38, "large": 0.50}
SIZE_JITTER = 0.02
ATTRIBUTES: list[str] = ["bg_color", "color", "shape", "position", "size"]
ATTRIBUTE_VALUES: dict[str, list[str]] = {
    "bg_color": list(BG_COLORS), "color": list(COLORS), "shape": SHAPES, "position": POSITIONS, "size": SIZES,
}
N_CLASSES = len(SHAPES) * len(COLORS)
MAX_OBJECTS = 3

# ---------------------------------------------------------------------------------- caption language
COLOR_WORDS = {"red": ["red"], "orange": ["orange"], "yellow": ["yellow"], "green": ["green"],
               "cyan": ["cyan", "turquoise"], "blue": ["blue"], "purple": ["purple", "violet"], "pink": ["pink"]}
BG_WORDS = {"black": ["black", "dark"], "gray": ["gray", "grey"], "white": ["white"], "brown": ["brown"]}
SHAPE_WORDS = {"circle": ["circle", "disk", "ball"], "square": ["square", "box", "block"],
               "triangle": ["triangle"], "star": ["star"]}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "medium": ["medium"], "large": ["large", "big", "huge"]}
POSITION_PHRASES = {
    "top left": ["in the top left", "at the upper left", "in the top left corner"],
    "top": ["at the top", "in the upper middle", "at the top center"],
    "top right": ["in the top right", "at the upper right", "in the top right corner"],
    "left": ["on the left", "at the left side", "in the middle left"],
    "center": ["in the center", "in the middle", "at the centre"],
    "right": ["on the right", "at the right side", "in the middle right"],
    "bottom left": ["in the bottom left", "at the lower left", "in the bottom left corner"],
    "bottom": ["at the bottom", "in the lower middle", "at the bottom center"],
    "bottom right": ["in the bottom right", "at the lower right", "in the bottom right corner"],
}
TEMPLATES = [
    "a {size} {color} {shape} {pos} on {bg}",
    "{pos}, a {color} {shape} on a {bg} background",
    "a {color} {shape} {pos} of a {bg} image",
    "the {bg} background has a {color} {shape} {pos}",
    "{size} {color} {shape} {pos}, {bg} background",
    "a {color} {shape} sits {pos} on {bg}",
    "{bg} background with a {size} {color} {shape} {pos}",
    "{pos} there is a {color} {shape} on {bg}",
]
MAX_CAPTION_WORDS = 12

# The words that name each attribute (any value). Every template names colour, shape, position and
# background; only 3 of the 8 name the size.
ATTRIBUTE_WORDS: dict[str, frozenset[str]] = {
    "bg_color": frozenset(w for ws in BG_WORDS.values() for w in ws),
    "color": frozenset(w for ws in COLOR_WORDS.values() for w in ws),
    "shape": frozenset(w for ws in SHAPE_WORDS.values() for w in ws),
    "position": frozenset({"top", "bottom", "left", "right", "center", "centre", "middle", "upper", "lower"}),
    "size": frozenset(w for ws in SIZE_WORDS.values() for w in ws),
}


def named_attributes(words: list[str] | tuple[str, ...]) -> set[str]:
    """The attributes a (tokenized, lower-case) caption names: a caption that does not name the size
    leaves it open, so the size of its image cannot be right or wrong."""
    present = set(words)
    return {name for name, vocab in ATTRIBUTE_WORDS.items() if present & vocab}


def position_name(cx: float, cy: float) -> str:
    """Name of the 3x3 grid cell holding the centre ``(cx, cy)`` (fractions of width / height, y down)."""
    col = min(2, max(0, int(3 * cx)))
    row = min(2, max(0, int(3 * cy)))
    return POSITIONS[3 * row + col]


def class_id(shape: str, color: str) -> int:
    return SHAPES.index(shape) * len(COLORS) + list(COLORS).index(color)


def class_name(cid: int) -> str:
    return f"{list(COLORS)[cid % len(COLORS)]} {SHAPES[cid // len(COLORS)]}"


@dataclass
class ShapeObject:
    shape: str
    color: str
    diameter: float  # fraction of the image side
    cx: float
    cy: float


@dataclass
class Scene:
    bg_color: str
    objects: list[ShapeObject]  # objects[0] is the main (largest) object; drawn last
    size: str  # size name of the main object
    attributes: dict[str, int] = field(default_factory=dict)

    @property
    def main(self) -> ShapeObject:
        return self.objects[0]

    @property
    def position(self) -> str:
        return position_name(self.main.cx, self.main.cy)

    @property
    def class_id(self) -> int:
        return class_id(self.main.shape, self.main.color)

    def attribute_indices(self) -> dict[str, int]:
        m = self.main
        return {"bg_color": list(BG_COLORS).index(self.bg_color), "color": list(COLORS).index(m.color),
                "shape": SHAPES.index(m.shape), "position": POSITIONS.index(self.position),
                "size": SIZES.index(self.size)}


def _cell_interval(cell: int, radius: float, margin: float = 0.02, edge: float = 0.01) -> tuple[float, float]:
    lo = max(cell / 3 + margin, radius + edge)
    hi = min((cell + 1) / 3 - margin, 1 - radius - edge)
    return lo, max(lo, hi)


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene (the main object first, then 0-2 smaller, non-overlapping others)."""
    colors, bgs = list(COLORS), list(BG_COLORS)
    size = SIZES[rng.integers(len(SIZES))]
    d = SIZE_FRACTIONS[size] + rng.uniform(-SIZE_JITTER, SIZE_JITTER)
    pos = int(rng.integers(len(POSITIONS)))
    row, col = divmod(pos, 3)
    cx = rng.uniform(*_cell_interval(col, d / 2))
    cy = rng.uniform(*_cell_interval(row, d / 2))
    main = ShapeObject(SHAPES[rng.integers(len(SHAPES))], colors[rng.integers(len(colors))], d, cx, cy)
    objects = [main]
    n_extra = int(rng.integers(MAX_OBJECTS))  # 0, 1 or 2
    for _ in range(n_extra):
        dd = d * rng.uniform(0.35, 0.6)
        for _try in range(20):
            ox, oy = rng.uniform(dd / 2 + 0.01, 1 - dd / 2 - 0.01, size=2)
            if all(math.hypot(ox - o.cx, oy - o.cy) > (o.diameter + dd) / 2 * 1.05 for o in objects):
                objects.append(ShapeObject(SHAPES[rng.integers(len(SHAPES))], colors[rng.integers(len(colors))],
                                           dd, float(ox), float(oy)))
                break
    return Scene(bg_color=bgs[rng.integers(len(bgs))], objects=objects, size=size)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        s = r * 0.9
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.85), (cx - r, cy + r * 0.85)]
    if shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a) + r * 0.08))
        return pts
    return None


def render(scene: Scene, size: int, supersample: int = 3) -> np.ndarray:
    """Draw ``scene`` as a uint8 (size, size, 3) array (anti-aliased by drawing at ``supersample`` x)."""
    big = size * supersample
    img = Image.new("RGB", (big, big), BG_COLORS[scene.bg_color])
    draw = ImageDraw.Draw(img)
    for obj in reversed(scene.objects):  # main object last, on top
        cx, cy, r = obj.cx * big, obj.cy * big, obj.diameter * big / 2
        fill = COLORS[obj.color]
        poly = _polygon(obj.shape, cx, cy, r)
        if poly is None:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    if supersample > 1:
        img = img.resize((size, size), Image.BOX)
    return np.asarray(img, dtype=np.uint8)


def scene_captions(scene: Scene, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` differently worded captions of ``scene`` (distinct templates while there are enough)."""
    m = scene.main
    order = rng.permutation(len(TEMPLATES))
    out = []
    for k in range(n):
        t = TEMPLATES[order[k % len(TEMPLATES)]]

        def pick(options: list[str]) -> str:
            return options[rng.integers(len(options))]

        out.append(t.format(size=pick(SIZE_WORDS[scene.size]), color=pick(COLOR_WORDS[m.color]),
                            shape=pick(SHAPE_WORDS[m.shape]), pos=pick(POSITION_PHRASES[scene.position]),
                            bg=pick(BG_WORDS[scene.bg_color])))
    return [_articles(c) for c in out]


def _articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def shapes_vocabulary() -> Vocabulary:
    """Every word the captions can use (the same vocabulary for every shapes file, whatever the seed)."""
    words: set[str] = {"an"}
    for t in TEMPLATES:
        words.update(tokenize(t.format(size="", color="", shape="", pos="", bg="")))
    for table in (COLOR_WORDS, BG_WORDS, SHAPE_WORDS, SIZE_WORDS, POSITION_PHRASES):
        for options in table.values():
            for o in options:
                words.update(tokenize(o))
    return Vocabulary(["<end>", *sorted(words)])


def make_shapes(out: str | Path, *, n_train: int = 4000, n_test: int = 1000, image_size: int = 76,
                captions_per_image: int = 5, seed: int = 0, overwrite: bool = False,
                progress: Progress | None = None, abort: Callable[[], bool] | None = None,
                compression: str | None = None) -> Path:
    """Render the shapes dataset to ``out`` (HDF5, see :mod:`attngan_cli.data.h5`). Deterministic in
    ``seed``: image ``i`` depends only on ``(seed, i)``."""
    if n_train < 1 or n_test < 0:
        raise InputError(f"need at least 1 train image and >= 0 test images (got {n_train} and {n_test})")
    if not 8 <= image_size <= 1024:
        raise InputError(f"--image-size must be between 8 and 1024, got {image_size}")
    if captions_per_image < 1:
        raise InputError(f"captions per image must be >= 1, got {captions_per_image}")
    vocab = shapes_vocabulary()
    n = n_train + n_test
    options = {"n_train": n_train, "n_test": n_test, "image_size": image_size,
               "captions_per_image": captions_per_image, "seed": seed}
    supersample = max(1, min(4, math.ceil(256 / image_size)))
    with write_dataset(out, overwrite=overwrite, source="shapes", image_size=image_size,
                       captions_per_image=captions_per_image, max_len=MAX_CAPTION_WORDS, vocab=vocab,
                       prep_options=options, capacity=n, attributes=ATTRIBUTE_VALUES,
                       compression=compression or DEFAULT_COMPRESSION) as w:
        with (progress or NullProgress()).task("rendering shapes", total=n, unit="img") as task:
            for i in range(n):
                if abort is not None and abort():
                    raise AttnGANError("prep interrupted; no file was written")
                rng = np.random.default_rng([seed, i])
                scene = sample_scene(rng)
                caps = []
                for text in scene_captions(scene, rng, captions_per_image):
                    ids, unknown = vocab.encode(text)
                    assert not unknown and 1 <= len(ids) <= MAX_CAPTION_WORDS, (text, unknown)
                    caps.append(ids)
                w.add(render(scene, image_size, supersample), caps, scene.class_id, f"shapes/{i:06d}",
                      TRAIN if i < n_train else TEST, scene.attribute_indices())
                task.advance(1)
    log.info("wrote %d shapes images (%d train, %d test) at %d px to %s", n, n_train, n_test, image_size, out)
    return Path(out)
