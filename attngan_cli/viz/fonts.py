"""Fonts from the installed packages only: Pillow's bundled default font (no font files on disk needed)."""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=32)
def get_font(size: int = 14) -> Font:
    """Pillow's bundled font at ``size`` pixels (Pillow >= 10.1 with FreeType), else its fixed bitmap font."""
    size = max(6, int(size))
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError, AttributeError):  # old Pillow or no FreeType: fixed-size bitmap
        return ImageFont.load_default()


def text_size(text: str, font: Font) -> tuple[int, int]:
    """Width and height in pixels of ``text`` drawn with ``font``."""
    draw = ImageDraw.Draw(_scratch())
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - min(top, 0))


def fit_text(text: str, font: Font, width: int) -> str:
    """``text``, shortened with a trailing ``…``-style ".." until it is at most ``width`` pixels wide."""
    if text_size(text, font)[0] <= width:
        return text
    cut = text
    while cut and text_size(cut + "..", font)[0] > width:
        cut = cut[:-1]
    return cut + ".." if cut else ""


@functools.lru_cache(maxsize=1)
def _scratch() -> Image.Image:
    return Image.new("L", (1, 1))
