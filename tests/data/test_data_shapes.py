"""The built-in shapes dataset and the HDF5 format it is written in."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from attngan_cli.core.errors import InputError
from attngan_cli.data import shapes as S
from attngan_cli.data.h5 import read_info


def test_palette_constants():
    assert len(S.COLORS) >= 6 and len(S.SHAPES) >= 4 and len(S.POSITIONS) == 9
    assert set(S.ATTRIBUTES) == {"bg_color", "color", "shape", "position", "size"}
    # object colours are well separated from each other and from every background colour
    cols = np.array(list(S.COLORS.values()), dtype=float)
    bgs = np.array(list(S.BG_COLORS.values()), dtype=float)
    d = np.linalg.norm(cols[:, None] - cols[None], axis=-1) + np.eye(len(cols)) * 1e9
    assert d.min() > 80
    assert np.linalg.norm(cols[:, None] - bgs[None], axis=-1).min() > 80
    assert set(S.COLORS).isdisjoint(S.BG_COLORS)


def test_position_mapping():
    assert S.position_name(0.1, 0.1) == "top left"
    assert S.position_name(0.5, 0.1) == "top"
    assert S.position_name(0.9, 0.5) == "right"
    assert S.position_name(0.5, 0.5) == "center"
    assert S.position_name(0.2, 0.99) == "bottom left"
    assert S.position_name(1.0, 1.0) == "bottom right"


def test_scenes_and_captions():
    vocab = S.shapes_vocabulary()
    for i in range(200):
        rng = np.random.default_rng([3, i])
        scene = S.sample_scene(rng)
        assert 1 <= len(scene.objects) <= S.MAX_OBJECTS
        main = scene.main
        assert all(o.diameter < main.diameter * 0.65 for o in scene.objects[1:])
        assert main.color not in S.BG_COLORS
        caps = S.scene_captions(scene, rng, 5)
        assert len(set(caps)) >= 4  # differently worded
        for c in caps:
            ids, unknown = vocab.encode(c)
            assert not unknown and 1 <= len(ids) <= S.MAX_CAPTION_WORDS
            words = c.replace(",", "").split()
            assert set(words) & set(S.COLOR_WORDS[main.color])
            assert set(words) & set(S.SHAPE_WORDS[main.shape])
            assert set(words) & set(S.BG_WORDS[scene.bg_color])
        img = S.render(scene, 76)
        assert img.shape == (76, 76, 3) and img.dtype == np.uint8
        # the main object's colour is at its centre; the background colour at a free corner pixel
        cx, cy = int(main.cx * 76), int(main.cy * 76)
        assert np.abs(img[cy, cx].astype(int) - S.COLORS[main.color]).max() <= 2


def test_shapes_file(shapes_h5):
    info = read_info(shapes_h5)
    assert (info.source, info.n_train, info.n_test, info.image_size) == ("shapes", 64, 32, 76)
    assert info.captions_per_image == 5 and info.max_len <= 12
    assert info.attributes["color"] == list(S.COLORS)
    assert info.vocab == S.shapes_vocabulary()
    with h5py.File(shapes_h5) as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (96, 76, 76, 3)
        assert f["captions"].dtype == np.int32 and f["captions"].shape[:2] == (96, 5)
        assert f["caption_lengths"].dtype == np.int32
        assert f["split"][()].tolist() == [0] * 64 + [1] * 32
        assert f.attrs["format"] == "attngan-data" and f.attrs["format_version"] == 1
        assert json.loads(f.attrs["prep_options"])["seed"] == 0
        cls = f["class_ids"][()]
        color = f["attributes/color"][()]
        shape = f["attributes/shape"][()]
        assert (cls == shape * len(S.COLORS) + color).all()
        # regenerate row 5 from its seed: same class and image
        rng = np.random.default_rng([0, 5])
        scene = S.sample_scene(rng)
        assert scene.class_id == cls[5]
        assert np.array_equal(S.render(scene, 76, 4), f["images"][5])
        lens = f["caption_lengths"][()]
        caps = f["captions"][()]
        assert (lens >= 1).all() and all((caps[i, c, lens[i, c]:] == 0).all() for i in range(96) for c in range(5))


def test_shapes_is_deterministic_and_refuses_overwrite(tmp_path):
    a = S.make_shapes(tmp_path / "a.h5", n_train=6, n_test=2, image_size=32, seed=7)
    b = S.make_shapes(tmp_path / "b.h5", n_train=6, n_test=2, image_size=32, seed=7)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for k in ("images", "captions", "class_ids"):
            assert np.array_equal(fa[k][()], fb[k][()])
    with pytest.raises(InputError, match="--overwrite"):
        S.make_shapes(a, n_train=2, n_test=1)
    S.make_shapes(a, n_train=2, n_test=1, image_size=32, overwrite=True)
    assert read_info(a).n_images == 3
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left


def test_read_info_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_info(tmp_path / "nope.h5")
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="x.h5"):
        read_info(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(InputError, match="not a dataset written by"):
        read_info(tmp_path / "y.h5")
