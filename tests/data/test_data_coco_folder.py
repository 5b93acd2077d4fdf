"""COCO (JSON and official layouts) and custom-folder preparation on small fixtures made here."""

from __future__ import annotations

import csv
import json
import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

from attngan_cli.core.errors import InputError
from attngan_cli.data.coco import prep_coco
from attngan_cli.data.folder import prep_folder
from attngan_cli.data.h5 import read_info
from attngan_cli.data.vocab import Vocabulary


def _img(path, w=40, h=30, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture()
def coco_json(tmp_path):
    root = tmp_path / "coco"
    for part, ids in (("train2014", [9, 3, 5]), ("val2014", [7, 8])):
        images = [{"id": i, "file_name": f"COCO_{part}_{i:012d}.jpg"} for i in ids]
        anns = [{"id": 100 * i + k, "image_id": i, "caption": f"A photo {k} of thing {i}."}
                for i in ids for k in range(6 if i == 3 else 5)]
        if part == "val2014":
            anns = [a for a in anns if a["image_id"] != 8 or a["id"] % 100 < 2]  # image 8: only 2 captions
        for im in images:
            _img(root / part / im["file_name"], seed=im["id"])
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{part}.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return root


def test_coco_json(coco_json, tmp_path, attngan_caplog):
    out = tmp_path / "c.h5"
    with attngan_caplog.at_level("WARNING", logger="attngan_cli"):
        res = prep_coco(coco_json, out, image_size=24)
    assert (res.n_train, res.n_test) == (3, 2)
    assert "fewer than 5 captions" in attngan_caplog.text
    info = read_info(out)
    assert info.source == "coco" and info.captions_per_image == 5 and info.image_size == 24
    with h5py.File(out) as f:
        keys = [k.decode() for k in f["keys"][()]]
        assert keys[:3] == [f"COCO_train2014_{i:012d}" for i in (3, 5, 9)]
        assert len(set(f["class_ids"][()].tolist())) == 5  # each image its own class
        v = info.vocab
        first = [v.decode(f["captions"][0, c]) for c in range(5)]
        assert first == [f"a photo {k} of thing 3" for k in range(5)]
        row8 = keys.index("COCO_val2014_000000000008")
        assert [v.decode(f["captions"][row8, c]) for c in range(4)] == [
            "a photo 0 of thing 8", "a photo 1 of thing 8", "a photo 0 of thing 8", "a photo 1 of thing 8"]


def test_coco_json_missing_image(coco_json, tmp_path):
    (coco_json / "val2014" / "COCO_val2014_000000000007.jpg").unlink()
    with pytest.raises(InputError, match=r"1 of 5 listed images are missing.*COCO_val2014_000000000007"):
        prep_coco(coco_json, tmp_path / "c.h5")
    res = prep_coco(coco_json, tmp_path / "c.h5", allow_missing=True, image_size=16)
    assert res.n_images == 4 and res.n_missing == 1
    (coco_json / "annotations" / "captions_train2014.json").write_text("{broken")
    with pytest.raises(InputError, match="captions_train2014.json"):
        prep_coco(coco_json, tmp_path / "d.h5")


def test_coco_official_layout(tmp_path):
    root = tmp_path / "coco"
    keys = {"train": ["COCO_train2014_1", "COCO_train2014_2"], "test": ["COCO_val2014_3"]}
    for split, ks in keys.items():
        (root / split).mkdir(parents=True)
        with open(root / split / "filenames.pickle", "wb") as f:
            pickle.dump(ks, f, protocol=2)
        for k in ks:
            _img(root / "images" / f"{k}.jpg")
            (root / "text").mkdir(exist_ok=True)
            (root / "text" / f"{k}.txt").write_text("\n".join(f"caption {j} for {k}" for j in range(5)))
    vocab = Vocabulary.build([["caption", "for"], ["0", "1", "2", "3", "4"], ["coco_train2014_1"]])
    vocab.save(tmp_path / "v.json")
    res = prep_coco(root, tmp_path / "o.h5", image_size=16, vocab=tmp_path / "v.json")
    assert (res.n_train, res.n_test) == (2, 1)
    info = read_info(tmp_path / "o.h5")
    assert info.vocab == vocab  # --vocab kept as given; unknown words dropped
    with h5py.File(tmp_path / "o.h5") as f:
        assert vocab.decode(f["captions"][0, 2]) == "caption 2 for coco_train2014_1"
        assert vocab.decode(f["captions"][1, 0]) == "caption 0 for"
    (root / "text" / "COCO_val2014_3.txt").unlink()
    with pytest.raises(InputError, match=r"caption files are missing.*COCO_val2014_3.txt"):
        prep_coco(root, tmp_path / "p.h5")


def test_folder_txt(tmp_path, attngan_caplog):
    root = tmp_path / "mine"
    for i in range(5):
        _img(root / ("cats" if i < 3 else "dogs") / f"{i}.png", seed=i)
        if i != 4:
            (root / ("cats" if i < 3 else "dogs") / f"{i}.txt").write_text(f"animal number {i}\nanother line {i}\n")
    with attngan_caplog.at_level("WARNING", logger="attngan_cli"):
        res = prep_folder(root, tmp_path / "f.h5", image_size=16, labels_from_folders=True, test_fraction=0.25)
    assert "without a .txt caption" in attngan_caplog.text and "4.png" in attngan_caplog.text
    assert res.n_images == 4 and res.n_test == 1
    with h5py.File(tmp_path / "f.h5") as f:
        keys = [k.decode() for k in f["keys"][()]]
        cls = dict(zip(keys, f["class_ids"][()].tolist(), strict=False))
        assert cls["cats/0.png"] == cls["cats/1.png"] != cls["dogs/3.png"]
        assert f["captions"].shape[1] == 2


def test_folder_jsonl_and_csv(tmp_path):
    root = tmp_path / "j"
    for i in range(4):
        _img(root / f"im{i}.jpg", seed=i)
    rows = [{"file": f"im{i}.jpg", "caption": f"a thing {i}", "label": "x" if i % 2 else "y",
             "split": "test" if i == 3 else "train"} for i in range(4)]
    rows.append({"file": "im0.jpg", "captions": ["second caption", "third one"]})
    (root / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = prep_folder(root, tmp_path / "j.h5", image_size=16)
    assert (res.n_train, res.n_test) == (3, 1)
    with h5py.File(tmp_path / "j.h5") as f:
        assert f["captions"].shape[1] == 3
        assert f["class_ids"][()].tolist() == [1, 0, 1, 0]  # labels x, y sorted: x = 0, y = 1
    (root / "captions.jsonl").unlink()
    with open(root / "captions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "caption"])
        for i in range(4):
            w.writerow([f"im{i}.jpg", f"picture {i}, nice"])
        w.writerow(["im9.jpg", "not there"])
    with pytest.raises(InputError, match=r"1 of 5 listed images are missing.*im9.jpg"):
        prep_folder(root, tmp_path / "k.h5")
    res = prep_folder(root, tmp_path / "k.h5", allow_missing=True, image_size=16, test_fraction=0.0)
    assert res.n_images == 4 and res.n_test == 0


def test_folder_bad_input(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (root / "captions.jsonl").write_text('{"file": "a.jpg", "caption": "x"}\nnot json\n')
    with pytest.raises(InputError, match=r"captions.jsonl, line 2: not valid JSON"):
        prep_folder(root, tmp_path / "o.h5")
    (root / "captions.jsonl").write_text('{"name": "a.jpg"}\n')
    with pytest.raises(InputError, match=r"line 1: expected an object with \"file\""):
        prep_folder(root, tmp_path / "o.h5")
    (root / "captions.jsonl").unlink()
    (root / "captions.csv").write_text("image,text\na.jpg,hello\n")
    with pytest.raises(InputError, match="'file' and 'caption'"):
        prep_folder(root, tmp_path / "o.h5")
    (root / "captions.csv").unlink()
    _img(root / "a.jpg")
    (root / "a.txt").write_text("\n \n")
    with pytest.raises(InputError, match="no image has a usable caption"):
        prep_folder(root, tmp_path / "o.h5")
    assert not (tmp_path / "o.h5").exists()
