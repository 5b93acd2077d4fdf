"""CUB preparation: official crop, split, partial download and bad input (real data when present)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torchvision.transforms as T
from PIL import Image

from attngan_cli.core.errors import InputError
from attngan_cli.data.cub import prep_cub
from attngan_cli.data.h5 import read_info
from attngan_cli.data.records import write_records
from attngan_cli.data.vocab import Vocabulary


def official_crop_reference(root: Path, key: str, size: int) -> np.ndarray:
    """The crop computed independently: bbox from the text files, the official formula, torchvision."""
    ids = {line.split()[1][:-4]: line.split()[0] for line in (root / "CUB_200_2011/images.txt").read_text().splitlines()}
    boxes = {line.split()[0]: line.split()[1:] for line in (root / "CUB_200_2011/bounding_boxes.txt").read_text().splitlines()}
    x, y, w, h = (int(float(v)) for v in boxes[ids[key]])
    img = Image.open(root / "CUB_200_2011/images" / f"{key}.jpg").convert("RGB")
    width, height = img.size
    r = int(np.maximum(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    img = img.crop([max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)])
    img = T.CenterCrop(size)(T.Resize(size, interpolation=T.InterpolationMode.BILINEAR)(img))
    return np.asarray(img)


def test_real_cub_partial_download(cub_root, cub_records, tmp_path):
    """prep_cub = cub_records + write_records; the records (slow to read) come from a session fixture."""
    out = tmp_path / "cub.h5"
    vocab = Vocabulary.load(cub_root / "captions.pickle")
    kw = dict(source="cub", captions_per_image=10, vocab=vocab, image_size=304)
    with pytest.raises(InputError, match=r"11779 of 11788 listed images are missing.*--allow-missing"):
        write_records([copy.copy(r) for r in cub_records], out, **kw)
    assert not out.exists()
    write_records([copy.copy(r) for r in cub_records], out, allow_missing=True, **kw)
    info = read_info(out)
    assert info.n_images == 9 and info.captions_per_image == 10 and len(info.vocab) == 5450
    with open(cub_root / "captions.pickle", "rb") as f:
        off_train, off_test, _, _ = pickle.load(f, encoding="latin1")
    names = {s: pickle.load(open(cub_root / s / "filenames.pickle", "rb"), encoding="latin1") for s in ("train", "test")}
    with h5py.File(out) as f:
        keys = [k.decode() for k in f["keys"][()]]
        assert sorted(keys) == sorted(str(p.relative_to(cub_root / "CUB_200_2011/images"))[:-4]
                                      for p in (cub_root / "CUB_200_2011/images").rglob("*.jpg"))
        for row, key in enumerate(keys):
            assert np.array_equal(f["images"][row], official_crop_reference(cub_root, key, 304)), key
            split = "train" if f["split"][row] == 0 else "test"
            i = names[split].index(key)
            ref = (off_train if split == "train" else off_test)[10 * i: 10 * i + 10]
            for c in range(10):
                n = f["caption_lengths"][row, c]
                assert f["captions"][row, c, :n].tolist() == ref[c]
        assert f["class_ids"][keys.index(keys[0])] == int(keys[0][:3])


@pytest.fixture()
def mini_cub(tmp_path):
    """A 4-image CUB in the official layout, without the split pickles (CUB's own split is used)."""
    root = tmp_path / "birds"
    cub = root / "CUB_200_2011"
    rng = np.random.default_rng(0)
    keys = ["001.A/a_1", "001.A/a_2", "002.B/b_1", "002.B/b_2"]
    sizes = [(120, 90), (80, 100), (64, 64), (100, 100)]
    boxes = [(10.7, 5.2, 50.0, 40.9), (0.0, 0.0, 80.0, 100.0), (30, 30, 10, 20), (60, 70, 39, 29)]
    for k, (w, h) in zip(keys, sizes, strict=False):
        (cub / "images" / k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(cub / "images" / f"{k}.jpg")
        (root / "text" / k).parent.mkdir(parents=True, exist_ok=True)
        (root / "text" / f"{k}.txt").write_text("\n".join(f"bird {k[-1]} has colour {c}" for c in range(12)) + "\n")
    (cub / "images.txt").write_text("".join(f"{i + 1} {k}.jpg\n" for i, k in enumerate(keys)))
    (cub / "bounding_boxes.txt").write_text("".join(f"{i + 1} {' '.join(map(str, b))}\n" for i, b in enumerate(boxes)))
    (cub / "image_class_labels.txt").write_text("1 1\n2 1\n3 2\n4 2\n")
    (cub / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n4 1\n")
    return root, keys


def test_mini_cub_fallback_split_and_crop(mini_cub, tmp_path, attngan_caplog):
    root, keys = mini_cub
    out = tmp_path / "m.h5"
    with attngan_caplog.at_level("INFO", logger="attngan_cli"):
        res = prep_cub(root, out, image_size=32)
    assert "train_test_split.txt" in attngan_caplog.text
    assert (res.n_train, res.n_test) == (3, 1)
    with h5py.File(out) as f:
        assert [k.decode() for k in f["keys"][()]] == [keys[0], keys[2], keys[3], keys[1]]
        assert f["class_ids"][()].tolist() == [1, 2, 2, 1]
        for row, key in enumerate([keys[0], keys[2], keys[3], keys[1]]):
            assert np.array_equal(f["images"][row], official_crop_reference(root, key, 32))
        assert f["captions"].shape[1] == 10  # first 10 of 12 lines


def test_mini_cub_bad_input(mini_cub, tmp_path, attngan_caplog):
    root, keys = mini_cub
    # an empty caption file and a corrupt image: reported and skipped
    (root / "text" / f"{keys[1]}.txt").write_text("\n\n")
    (root / "CUB_200_2011/images" / f"{keys[2]}.jpg").write_bytes(b"not a jpeg")
    (root / "text" / f"{keys[3]}.txt").write_text("only one caption\n")
    with attngan_caplog.at_level("WARNING", logger="attngan_cli"):
        res = prep_cub(root, tmp_path / "b.h5", image_size=32)
    assert res.n_images == 2 and res.n_corrupt == 1
    assert "without any usable caption" in attngan_caplog.text and keys[1] in attngan_caplog.text
    assert "corrupt" in attngan_caplog.text and "b_1.jpg" in attngan_caplog.text
    assert "fewer than 10 captions" in attngan_caplog.text
    with h5py.File(tmp_path / "b.h5") as f:
        row = [k.decode() for k in f["keys"][()]].index(keys[3])
        assert (f["caption_lengths"][row] == 3).all()  # padded by repeating
    # existing output
    with pytest.raises(InputError, match="already exists.*--overwrite"):
        prep_cub(root, tmp_path / "b.h5", image_size=32)
    # a malformed table line names the file and the line
    good = (root / "CUB_200_2011/bounding_boxes.txt").read_text()
    (root / "CUB_200_2011/bounding_boxes.txt").write_text("1 1 2 3\n")
    with pytest.raises(InputError, match=r"bounding_boxes.txt, line 1"):
        prep_cub(root, tmp_path / "c.h5")
    (root / "CUB_200_2011/bounding_boxes.txt").write_text(good)
    # no split at all
    (root / "CUB_200_2011/train_test_split.txt").unlink()
    with pytest.raises(InputError, match="no split"):
        prep_cub(root, tmp_path / "c.h5")
    with pytest.raises(InputError, match="text"):
        prep_cub(tmp_path, tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()
