"""TextImageDataset: lazy HDF5 access, official augmentation and caption padding."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from attngan_cli.core.errors import InputError
from attngan_cli.data.dataset import TextImageDataset, pad_caption


def test_pad_caption_official():
    ids = np.arange(1, 6)
    out, n = pad_caption(ids, 8)
    assert n == 5 and out.tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    torch.manual_seed(0)
    seen = set()
    for _ in range(50):
        out, n = pad_caption(np.arange(1, 21), 6)
        assert n == 6 and out.dtype == torch.long
        v = out.tolist()
        assert v == sorted(v) and len(set(v)) == 6  # a random subset, original order
        seen.add(tuple(v))
    assert len(seen) > 10


def test_items(shapes_h5):
    ds = TextImageDataset(shapes_h5, "train", image_sizes=(16, 32, 64), words=12)
    assert len(ds) == 64 and len(TextImageDataset(shapes_h5, "test", (64,)).indices) == 32
    assert len(TextImageDataset(shapes_h5, "all", (64,))) == 96
    item = ds[3]
    assert [tuple(x.shape) for x in item["images"]] == [(3, 16, 16), (3, 32, 32), (3, 64, 64)]
    for x in item["images"]:
        assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert item["caption"].shape == (12,) and item["caption"].dtype == torch.long
    assert 1 <= item["length"] <= 12 and (item["caption"][item["length"]:] == 0).all()
    assert item["index"] == int(ds.indices[3]) and item["key"] == "shapes/000003"
    assert item["class_id"] == int(ds.class_ids[3])
    caps = ds.captions(3)
    assert len(caps) == 5
    ids, n = caps[item["caption_index"]]
    assert item["caption"][:n].tolist() == ids.tolist()
    assert ds.vocab.words[0] == "<end>" and ds.info.n_train == 64


def test_no_augment_is_plain_resize(shapes_h5):
    ds = TextImageDataset(shapes_h5, "test", image_sizes=(32, 64), augment=False, caption_index=2)
    item = ds[0]
    raw = Image.fromarray(ds.raw_image(0))
    for size, x in zip((32, 64), item["images"], strict=False):
        ref = np.asarray(raw.resize((size, size), Image.BILINEAR)).astype(np.float32) / 127.5 - 1
        assert np.allclose(x.permute(1, 2, 0).numpy(), ref, atol=1e-6)
    assert item["caption_index"] == 2
    assert torch.equal(ds[0]["images"][1], item["images"][1])  # deterministic


def _as_photo_dataset(shapes_h5, tmp_path):
    """The shapes file relabelled as a plain folder dataset (whose images may be cropped and flipped)."""
    import shutil

    import h5py

    path = tmp_path / "photos.h5"
    shutil.copy(shapes_h5, path)
    with h5py.File(path, "r+") as f:
        f.attrs["source"] = "folder"
    return path


def test_shapes_are_never_augmented(shapes_h5):
    ds = TextImageDataset(shapes_h5, "train", image_sizes=(64,), augment=True)
    assert ds.augment is False
    torch.manual_seed(1)
    outs = {tuple(ds[0]["images"][0].flatten()[:200].tolist()) for _ in range(6)}
    assert len(outs) == 1  # captions name positions: no crop, no flip


def test_augment_crops_and_flips(shapes_h5, tmp_path):
    ds = TextImageDataset(_as_photo_dataset(shapes_h5, tmp_path), "train", image_sizes=(64,), augment=True)
    assert ds.augment is True
    torch.manual_seed(1)
    outs = {tuple(ds[0]["images"][0].flatten()[:200].tolist()) for _ in range(12)}
    assert len(outs) > 3  # random crop / flip
    # a stored 76 px image trained at 64 px: crop of the unresized image
    full = torch.from_numpy(ds.raw_image(0).astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    x = ds[0]["images"][0]
    hits = [(dy, dx) for dy in range(13) for dx in range(13)
            if torch.allclose(full[:, dy:dy + 64, dx:dx + 64], x, atol=1e-6)
            or torch.allclose(full[:, dy:dy + 64, dx:dx + 64].flip(-1), x, atol=1e-6)]
    assert hits


def test_pickles_without_handle_and_dataloader(shapes_h5):
    ds = TextImageDataset(shapes_h5, "train", image_sizes=(16, 32), words=10)
    _ = ds[0]  # opens the file
    state = ds.__getstate__()
    assert state["_h5"] is None
    ds2 = pickle.loads(pickle.dumps(ds))
    assert ds2._h5 is None and ds2[1]["key"] == ds[1]["key"]
    dl = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, shuffle=True)
    batch = next(iter(dl))
    assert batch["caption"].shape == (8, 10) and batch["images"][1].shape == (8, 3, 32, 32)
    assert batch["length"].shape == (8,) and len(batch["key"]) == 8


def test_bad_arguments(shapes_h5, tmp_path):
    with pytest.raises(InputError, match="split"):
        TextImageDataset(shapes_h5, "val")
    with pytest.raises(InputError, match="caption_index"):
        TextImageDataset(shapes_h5, caption_index=5)
    with pytest.raises(InputError, match="does not exist"):
        TextImageDataset(tmp_path / "none.h5")
