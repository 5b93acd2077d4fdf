"""The shapes attribute reader: near-perfect on the real images, chance level on noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from attngan_cli.data.shapes import ATTRIBUTE_VALUES, Scene, ShapeObject, render
from attngan_cli.evaluation.attributes import attribute_hits, read_attributes


def _load(path):
    import h5py

    with h5py.File(path, "r") as f:
        images = f["images"][()]
        truth = {k: f["attributes"][k][()] for k in f["attributes"]}
        values = {k: json.loads(f["attributes"][k].attrs["values"]) for k in f["attributes"]}
    return images, truth, values


@pytest.mark.parametrize("size", [76, 64])
def test_real_shapes_images_are_read_almost_perfectly(shapes_h5, size):
    images, truth, values = _load(shapes_h5)
    if size != images.shape[1]:  # the generator's size for the shapes preset
        images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    hits = attribute_hits(images, truth, values)
    assert set(hits) == {"bg_color", "color", "shape", "position", "size"}
    for name, h in hits.items():
        assert h.mean() >= 0.95, (name, h.mean())
    assert np.mean([h.mean() for h in hits.values()]) >= 0.98


def test_noise_is_read_at_chance(shapes_h5):
    images, truth, values = _load(shapes_h5)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    hits = attribute_hits(noise, truth, values)
    for name, h in hits.items():
        chance = 1 / len(values[name])
        assert h.mean() <= chance + 0.25, (name, h.mean(), chance)
    assert np.mean([h.mean() for h in hits.values()]) < 0.45  # vs >= 0.98 on real images


def test_each_attribute_value_is_read_back_from_a_drawn_scene():
    for shape in ATTRIBUTE_VALUES["shape"]:
        for color in ("red", "cyan", "purple"):
            scene = Scene(bg_color="white", objects=[ShapeObject(shape, color, 0.38, 0.8, 0.2)], size="medium")
            got = read_attributes(render(scene, 64))
            assert got == {"bg_color": "white", "color": color, "shape": shape, "position": "top right",
                           "size": "medium"}
    blank = np.full((32, 32, 3), 125, np.uint8)  # gray background only: still an answer for each attribute
    assert read_attributes(blank)["bg_color"] == "gray"
    with pytest.raises(ValueError, match="expected an"):
        read_attributes(np.zeros((4, 4)))


def test_channels_first_tensors_are_accepted(shapes_h5):
    import torch

    images, truth, values = _load(shapes_h5)
    t = torch.from_numpy(images[:4]).permute(0, 3, 1, 2)
    a = attribute_hits(t, {k: v[:4] for k, v in truth.items()}, values)
    b = attribute_hits(images[:4], {k: v[:4] for k, v in truth.items()}, values)
    assert all((a[k] == b[k]).all() for k in a)


def test_captions_name_the_size_only_in_some_templates():
    from attngan_cli.data.shapes import TEMPLATES, named_attributes, sample_scene, scene_captions
    from attngan_cli.data.tokenizer import tokenize

    rng = np.random.default_rng(0)
    with_size = 0
    caps = [c for _ in range(60) for c in scene_captions(sample_scene(rng), rng, 5)]
    for cap in caps:
        named = named_attributes(tokenize(cap))
        assert {"bg_color", "color", "shape", "position"} <= named, cap
        with_size += "size" in named
    share = sum("{size}" in t for t in TEMPLATES) / len(TEMPLATES)
    assert abs(with_size / len(caps) - share) < 0.1
    assert named_attributes(["a", "blue", "square"]) == {"color", "shape"}
    assert named_attributes(["a", "huge", "dark", "star", "upper"]) == {"size", "bg_color", "shape", "position"}
