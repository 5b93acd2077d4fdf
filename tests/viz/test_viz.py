"""Figures: top-k words per equation 15 with a known answer, Gaussian maps, blending, grids, fonts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attngan_cli.viz.attention import all_word_maps, attention_figure, blend, rank_words, threshold, word_map
from attngan_cli.viz.damsm_maps import CELL, LABEL, damsm_attention_image
from attngan_cli.viz.fonts import fit_text, get_font, text_size
from attngan_cli.viz.grid import images_to_uint8, make_grid, save_png, to_uint8, wrap

WORDS = ["this", "bird", "is", "red", "with", "white", "and", "beak"]  # T = 8, 1/T = 0.125


def known_maps() -> torch.Tensor:
    """(T, 4, 4) attention (each region's weights over the words sum to 1) with a known ranking.

    Word 0 gets 0.12 (< 1/T) everywhere: summed naively it would rank high, but equation 15 zeroes it.
    In each region one "winner" word gets 0.5; word 6 gets 0.2 (between 1/T and 2/T, so kept by the
    paper's threshold but not by the official code's 2/T) in 8 regions; the others share the rest below
    1/T. Winners: word 3 in 6 regions, word 5 in 4, word 1 in 3, word 7 in 2, word 2 in 1 -> top-5 =
    3, 5, 6, 1, 7 with kept sums 3.0, 2.0, 1.6, 1.5, 1.0.
    """
    winners = [3] * 6 + [5] * 4 + [1] * 3 + [7] * 2 + [2]
    T, N = len(WORDS), 16
    a = torch.zeros(T, N)
    for r, w in enumerate(winners):
        a[0, r] = 0.12
        a[w, r] = 0.5
        fixed = [0, w]
        if r < 8:
            a[6, r] = 0.2
            fixed.append(6)
        others = [i for i in range(T) if i not in fixed]
        a[others, r] = (1 - a[:, r].sum()) / len(others)
    assert torch.allclose(a.sum(0), torch.ones(N)) and (a[a < 0.2] < 1 / T).all()
    return a[:, torch.randperm(N, generator=torch.Generator().manual_seed(0))].reshape(T, 4, 4)


def test_rank_words_known_top5_uses_equation_15() -> None:
    a = known_maps()
    ranked = rank_words(a, WORDS)
    assert [w.index for w in ranked[:5]] == [3, 5, 6, 1, 7]
    assert [round(w.score, 5) for w in ranked[:5]] == [3.0, 2.0, 1.6, 1.5, 1.0]
    assert ranked[0].label == "3:red"
    naive = a.flatten(1).sum(1).argsort(descending=True)[:5].tolist()
    assert naive != [3, 5, 6, 1, 7]  # the threshold matters for this answer
    assert {w.index for w in ranked[6:]} == {0, 4} and all(w.score == 0 for w in ranked[6:])


def test_rank_words_accepts_flat_regions_and_padding() -> None:
    a = known_maps()
    padded = torch.cat([a, torch.full((3, 4, 4), 0.9)])  # padding positions past the caption are ignored
    assert [w.index for w in rank_words(padded.flatten(1), WORDS)[:5]] == [3, 5, 6, 1, 7]
    with pytest.raises(ValueError, match="square"):
        rank_words(torch.rand(8, 15), WORDS)


def test_figure_shows_the_real_top5() -> None:
    imgs = [torch.rand(3, s, s) * 2 - 1 for s in (8, 16, 32)]
    a = known_maps()
    other = known_maps().flip(0)  # second attention model: reversed words -> 4, 2, 1, 6, 0
    fig = attention_figure(imgs, [a, other], WORDS, top=5, caption="a caption")
    assert [w.label for w in fig.top[0]] == ["3:red", "5:white", "6:and", "1:bird", "7:beak"]
    assert [w.index for w in fig.top[1]] == [4, 2, 1, 6, 0]
    assert isinstance(fig.image, Image.Image) and fig.image.mode == "RGB"
    w3 = attention_figure(imgs, [a, other], WORDS, top=3).image.size[0]
    assert fig.image.size[0] > w3  # five columns are wider than three
    assert len(attention_figure(imgs, [a], WORDS, top=2).top[0]) == 2


def test_threshold_and_word_map() -> None:
    a = known_maps()
    kept = threshold(a, len(WORDS))
    assert (kept[0] == 0).all() and (kept[3] > 0).any()
    m = word_map(a[3], len(WORDS), 64)
    assert m.shape == (64, 64) and m.dtype == np.float32
    assert m.min() == pytest.approx(0.0) and m.max() == pytest.approx(1.0)
    assert (word_map(a[0], len(WORDS), 64) == 0).all()  # nothing kept -> an all-dark map
    maps = all_word_maps(a, WORDS, 32)
    assert len(maps) == len(WORDS) and all(x.shape == (32, 32) for x in maps)


def test_gaussian_smoothing_spreads_a_single_region() -> None:
    one = torch.zeros(4, 4)
    one[1, 1] = 1.0
    smooth, sharp = word_map(one, 2, 64), word_map(one, 2, 64, sigma=0)
    assert (smooth > 0.05).sum() > (sharp > 0.05).sum()


def test_blend() -> None:
    img = np.full((4, 4, 3), 100, np.uint8)
    assert (blend(img, np.zeros((4, 4)), alpha=0.5) == 50).all()
    assert (blend(img, np.ones((4, 4)), alpha=1.0) == 255).all()


def test_grid_and_png(tmp_path) -> None:
    x = torch.linspace(-1, 1, 3 * 4 * 4).reshape(1, 3, 4, 4)
    u = to_uint8(x)
    assert u.shape == (1, 4, 4, 3) and u.dtype == np.uint8 and u.min() == 0 and u.max() == 255
    tiles = [np.zeros((4, 4, 3), np.uint8)] * 5
    rows = wrap(tiles)
    assert [len(r) for r in rows] == [3, 2]
    g = make_grid(rows, pad=1)
    assert g.shape == (2 * 4 + 3, 3 * 4 + 4, 3)
    p = save_png(g, tmp_path / "g.png")
    assert Image.open(p).size == (16, 11)
    assert not list(tmp_path.glob(".*tmp*"))


def test_images_to_uint8_rounds_like_saving() -> None:
    x = torch.tensor([-1.0, -2.0, 0.0, 1.0, 3.0, 0.5]).view(1, 1, 2, 3)
    u = images_to_uint8(x)
    assert u.dtype == torch.uint8 and u.shape == x.shape
    assert u.flatten().tolist() == [0, 0, 128, 255, 255, 191]


def test_to_uint8_is_images_to_uint8_channels_last() -> None:
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 1.5
    expected = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(to_uint8(x), expected)
    assert np.array_equal(to_uint8(x[1]), expected[1])
    assert np.array_equal(to_uint8(x), images_to_uint8(x).permute(0, 2, 3, 1).numpy())


def test_damsm_attention_image_tiles_keep_their_pixels() -> None:
    """The image column is the image resized to CELL and converted exactly as PNG saving does."""
    img = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fig = damsm_attention_image(img, [["red", "bird"]], [torch.rand(1, 2, 4, 4)])
    resized = torch.nn.functional.interpolate(img, size=(CELL, CELL), mode="bilinear", align_corners=False)
    expected = ((resized[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(fig)[LABEL:LABEL + CELL, :CELL], expected)


def test_fonts_come_from_the_packages() -> None:
    f = get_font(20)
    w, h = text_size("3:red", f)
    assert w > 0 and h > 0
    assert text_size("3:red", get_font(40))[0] > w
    s = fit_text("0:extraordinarily", f, 60)
    assert text_size(s, f)[0] <= 60 and s.endswith("..")
