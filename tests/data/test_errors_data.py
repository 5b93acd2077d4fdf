"""Bad input, unwritable outputs and interruptions in `attngan prep` and the dataset reader: each ends in a
one-line message naming the file (exit 1), and no file is created or damaged (issue 19)."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.cli.console import set_quiet
from attngan_cli.core.errors import InputError, OutputError
from attngan_cli.core.fileio import atomic_path, check_output_location, safe_unpickle
from attngan_cli.data.h5 import read_info

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _img(path: Path, seed: int = 0, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _prep(*args: str):
    if "-q" not in args:
        set_quiet(False)  # an earlier in-process `-q` run leaves the console quiet
    return runner.invoke(app, ["prep", *args])


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _TouchOnLoad:
    """A crafted pickle: loading it with pickle.load calls Path.touch(target), creating the file."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (str(self.target),))


def _dump(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


# --------------------------------------------------------------------------------------------------
# 1. Every pickle goes through the one restricted unpickler
# --------------------------------------------------------------------------------------------------
def _mini_cub(root: Path) -> list[str]:
    """Two birds in the official layout with the split pickles (train: a_1, test: b_1)."""
    cub = root / "CUB_200_2011"
    keys = ["001.A/a_1", "002.B/b_1"]
    for i, k in enumerate(keys):
        _img(cub / "images" / f"{k}.jpg", seed=i)
        (root / "text" / k).parent.mkdir(parents=True, exist_ok=True)
        (root / "text" / f"{k}.txt").write_text("a small bird with red wings\nthe bird is red\n")
    (cub / "images.txt").write_text("".join(f"{i + 1} {k}.jpg\n" for i, k in enumerate(keys)))
    (cub / "bounding_boxes.txt").write_text("1 0 0 20 20\n2 2 2 18 18\n")
    (cub / "image_class_labels.txt").write_text("1 1\n2 2\n")
    for split, k, c in (("train", keys[0], 1), ("test", keys[1], 2)):
        _dump([k], root / split / "filenames.pickle")
        _dump([np.int64(c)], root / split / "class_info.pickle")  # numpy scalars, like the birds' file
    return keys


def _mini_coco(root: Path) -> None:
    for split, k in (("train", "COCO_train2014_1"), ("test", "COCO_val2014_2")):
        _dump([k], root / split / "filenames.pickle")
        _img(root / "images" / f"{k}.jpg")
        (root / "text").mkdir(parents=True, exist_ok=True)
        (root / "text" / f"{k}.txt").write_text("\n".join(f"a photo {j} of a cat" for j in range(5)))


def test_mini_layouts_prepare(tmp_path):
    """The baseline of the tests below: the untouched mini layouts prepare fine."""
    _mini_cub(tmp_path / "birds")
    r = _prep("cub", str(tmp_path / "birds"), "--out", str(tmp_path / "cub.h5"), "--image-size", "16", "-q")
    assert r.exit_code == 0, r.output
    assert read_info(tmp_path / "cub.h5").n_images == 2
    _mini_coco(tmp_path / "coco")
    r = _prep("coco", str(tmp_path / "coco"), "--out", str(tmp_path / "coco.h5"), "--image-size", "16", "-q")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("source,bad", [
    ("cub", "train/filenames.pickle"),
    ("cub", "test/class_info.pickle"),
    ("coco", "test/filenames.pickle"),
    ("folder", "--vocab"),
])
def test_crafted_pickle_runs_no_code(tmp_path, source, bad):
    """Code in a pickle never runs: pickle.load would create `target` before any check."""
    target = tmp_path / "pwned"
    root = tmp_path / "data"
    out = tmp_path / "out.h5"
    args = [source, str(root), "--out", str(out), "--image-size", "16"]
    if source == "cub":
        _mini_cub(root)
        _dump([_TouchOnLoad(target)], root / bad)
        bad_file = root / bad
    elif source == "coco":
        _mini_coco(root)
        _dump([_TouchOnLoad(target)], root / bad)
        bad_file = root / bad
    else:
        _img(root / "a.png")
        (root / "a.txt").write_text("a red square\n")
        bad_file = tmp_path / "captions.pickle"
        _dump([[], [], {0: "<end>", 1: _TouchOnLoad(target)}, {}], bad_file)
        args += ["--vocab", str(bad_file), "--test-fraction", "0"]
    r = _prep(*args)
    assert not target.exists()  # the pickle's code did not run
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    assert str(bad_file) in msg and "cannot be read safely" in msg and "not allowed" in msg, msg
    assert r.exception is None or isinstance(r.exception, SystemExit)  # a message, not a traceback
    assert not out.exists() and not list(tmp_path.glob(".*.tmp*"))


def test_real_official_pickles_load(cub_root):
    """The released files (Python 2 pickles; numpy int64 in train/class_info.pickle) still load, with the
    same content as an unrestricted pickle.load."""
    for name in ("captions.pickle", "train/filenames.pickle", "test/filenames.pickle",
                 "train/class_info.pickle", "test/class_info.pickle"):
        with open(cub_root / name, "rb") as f:
            expected = pickle.load(f, encoding="latin1")
        got = safe_unpickle(cub_root / name, "an official file")
        assert got == expected, name


# --------------------------------------------------------------------------------------------------
# 2. Caption files must be text
# --------------------------------------------------------------------------------------------------
def test_binary_cub_caption_file_is_refused(tmp_path):
    root = tmp_path / "birds"
    keys = _mini_cub(root)
    bad = root / "text" / f"{keys[1]}.txt"
    bad.write_bytes((root / "CUB_200_2011" / "images" / f"{keys[1]}.jpg").read_bytes())  # a JPEG
    out = tmp_path / "cub.h5"
    r = _prep("cub", str(root), "--out", str(out), "--image-size", "16")
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    assert str(bad) in msg and "is not a text file" in msg and "Traceback" not in msg, msg
    assert not out.exists()


@pytest.mark.parametrize("what,content", [
    ("txt", b"a red caf\xe9 bird\n"),  # Latin-1, not UTF-8
    ("txt", "a red bird\n".encode("utf-16")),  # NUL bytes
    ("csv", b"file,caption\na.png,a caf\xe9 bird\n"),
    ("jsonl", b'{"file": "a.png", "caption": "a caf\xe9 bird"}\n'),
])
def test_non_utf8_folder_captions_are_refused(tmp_path, what, content):
    root = tmp_path / "mine"
    _img(root / "a.png")
    bad = root / ("a.txt" if what == "txt" else f"captions.{what}")
    bad.write_bytes(content)
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0")
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    assert str(bad) in msg and ("not UTF-8 text" in msg or "NUL bytes" in msg), msg
    assert "line 1" in msg or "line 2" in msg
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# 3. The folder split is drawn among the images actually written
# --------------------------------------------------------------------------------------------------
def _folder(root: Path, n: int) -> list[str]:
    names = [f"im{i}.png" for i in range(n)]
    for i, name in enumerate(names):
        _img(root / name, seed=i)
        (root / name).with_suffix(".txt").write_text(f"a picture number {i}\n")
    return names


def test_split_after_dropping_unreadable_images(tmp_path, attngan_caplog):
    root = tmp_path / "mine"
    names = _folder(root, 5)
    # the image a split drawn before decoding (seed 0, 1 test image of 5) puts in the test split: unreadable
    (root / names[int(np.random.default_rng(0).permutation(5)[0])]).write_bytes(b"not an image")
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0.25")
    assert r.exit_code == 0, r.output
    info = read_info(out)
    assert (info.n_train, info.n_test) == (3, 1)
    assert "(3 train, 1 test)" in attngan_caplog.text  # the counts of the file, not of the listing


def test_empty_test_split_is_refused_unless_asked(tmp_path):
    root = tmp_path / "one"
    _folder(root, 1)
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16")
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    assert "test split would be empty" in msg and "--test-fraction 0" in msg, msg
    assert not out.exists()
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0", "-q")
    assert r.exit_code == 0, r.output
    assert (read_info(out).n_train, read_info(out).n_test) == (1, 0)


def test_split_column_whose_test_images_are_unreadable(tmp_path):
    root = tmp_path / "mine"
    names = _folder(root, 3)
    rows = [{"file": n, "caption": f"picture {i}", "split": "test" if i == 2 else "train"}
            for i, n in enumerate(names)]
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / names[2]).write_bytes(b"broken")
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16")
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    assert "test split would be empty" in msg and "'split' column" in msg, msg
    assert not out.exists() and not list(tmp_path.rglob(".*.tmp*"))
    # a split column naming no test image at all is refused before any image is decoded
    (root / "captions.jsonl").write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in rows))
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16")
    assert r.exit_code == 1 and "test split would be empty" in _one_line(r.output)


# --------------------------------------------------------------------------------------------------
# 4. SIGTERM cleans up like Ctrl-C
# --------------------------------------------------------------------------------------------------
_SIGTERM_SCRIPT = """
import os, signal, sys
import attngan_cli.data.shapes as shapes
from attngan_cli.cli import main

render, calls = shapes.render, []

def killing_render(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:  # mid-write: the temporary .h5 exists
        os.kill(os.getpid(), signal.SIGTERM)
    return render(*args, **kwargs)

shapes.render = killing_render
sys.argv = ["attngan", "prep", "shapes", "--out", sys.argv[1], "--train", "6", "--test", "2",
            "--image-size", "16", "--seed", "1", "--overwrite", "-q"]
main()
"""


def test_sigterm_during_prep_leaves_no_temp_file(tmp_path):
    out = tmp_path / "s.h5"
    r = _prep("shapes", "--out", str(out), "--train", "4", "--test", "2", "--image-size", "16", "-q")
    assert r.exit_code == 0, r.output
    before = out.read_bytes()
    previous = signal.getsignal(signal.SIGTERM)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", _SIGTERM_SCRIPT, str(out)], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert p.returncode == 143, (p.returncode, p.stderr[-2000:])  # not killed (-15): terminated, cleaned up
    assert "terminated" in p.stderr and "Traceback" not in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.h5"]  # no .s.h5.*.tmp.h5 left
    assert out.read_bytes() == before  # the previous output is intact
    assert signal.getsignal(signal.SIGTERM) == previous


# --------------------------------------------------------------------------------------------------
# 5. captions.csv / captions.jsonl loose ends
# --------------------------------------------------------------------------------------------------
def test_csv_unterminated_quote(tmp_path):
    root = tmp_path / "mine"
    for name in ("a.png", "b.png", "c.png"):
        _img(root / name)
    (root / "captions.csv").write_text('file,caption\na.png,a red bird\nb.png,"a blue bird\nc.png,a green bird\n')
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16")
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    assert f"{root / 'captions.csv'}, line 3" in msg and "unterminated" in msg, msg
    assert not out.exists()
    # a caption with an unquoted comma would lose its end: refused too
    (root / "captions.csv").write_text("file,caption\na.png,a red, small bird\n")
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16")
    assert r.exit_code == 1 and "line 2" in r.output and "comma" in r.output, r.output


def test_rows_without_caption_and_unlisted_images_are_reported(tmp_path, attngan_caplog):
    root = tmp_path / "mine"
    for name in ("a.png", "b.png", "c.png", "sub/d.png"):
        _img(root / name)
    (root / "captions.csv").write_text("file,caption\na.png,a red bird\nb.png,a blue bird\nb.png\n")
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0.5")
    assert r.exit_code == 0, r.output
    log = attngan_caplog.text
    assert "captions.csv, line 4: the row has no caption" in log and "None" not in log
    assert "2 images under" in log and "not listed in captions.csv" in log and "c.png" in log and "sub/d.png" in log
    assert read_info(out).n_images == 2
    (root / "captions.csv").unlink()
    (root / "captions.jsonl").write_text('{"file": "a.png", "caption": "red"}\n{"file": "b.png", "caption": null}\n')
    attngan_caplog.clear()
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0", "--overwrite")
    assert r.exit_code == 0, r.output
    assert "captions.jsonl, line 2: the row has no caption" in attngan_caplog.text


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_files_outside_root_are_refused(tmp_path, kind, where):
    root = tmp_path / "mine"
    _img(root / "a.png")
    _img(tmp_path / "x.png")  # exists: it would be read
    name = "../x.png" if where == "parent" else str(tmp_path / "x.png")
    table = root / f"captions.{kind}"
    if kind == "csv":
        table.write_text(f"file,caption\na.png,a red bird\n{name},a stolen picture\n")
    else:
        table.write_text(json.dumps({"file": "a.png", "caption": "a red bird"}) + "\n"
                         + json.dumps({"file": name, "caption": "a stolen picture"}) + "\n")
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0")
    assert r.exit_code == 1, r.output
    msg = _one_line(r.output)
    line = 3 if kind == "csv" else 2
    assert f"{table}, line {line}" in msg and repr(name) in msg, msg
    assert ("outside" in msg) if where == "parent" else ("absolute path" in msg)
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# 6. Unwritable outputs and damaged datasets: messages, not tracebacks
# --------------------------------------------------------------------------------------------------
def test_out_under_a_regular_file(tmp_path):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("keep me\n")
    for out in (blocker / "x.h5", blocker / "deeper" / "x.h5"):
        r = _prep("shapes", "--out", str(out), "--train", "2", "--test", "1", "--image-size", "16")
        assert r.exit_code == 1, r.output
        msg = _one_line(r.output)
        assert f"cannot write {out}" in msg and f"{blocker} is a file, not a folder" in msg, msg
        assert r.exception is None or isinstance(r.exception, SystemExit)
    assert blocker.read_text() == "keep me\n"
    with pytest.raises(OutputError, match="is a file, not a folder"), atomic_path(blocker / "x.json"):
        pass  # the writers of every command share this message


def test_read_only_output_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permission bits: fail as the OS does for a user
            def denied(suffix=None, prefix=None, dir=None, text=False):
                raise PermissionError(13, "Permission denied", os.path.join(dir, f"{prefix}x1y2z3{suffix}"))

            monkeypatch.setattr(tempfile, "mkstemp", denied)
        out = ro / "s.h5"
        r = _prep("shapes", "--out", str(out), "--train", "2", "--test", "1", "--image-size", "16")
        assert r.exit_code == 1, r.output
        msg = _one_line(r.output)
        assert f"cannot write {out}" in msg and f"no permission to create files in {ro}" in msg, msg
        assert r.exception is None or isinstance(r.exception, SystemExit)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_unwritable_output_is_found_before_the_scan(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != ro)
    with pytest.raises(OutputError, match=f"no permission to create files in {ro}"):
        check_output_location(ro / "sub" / "x.h5")


def test_damaged_image_chunk_names_file_and_item(tmp_path):
    from attngan_cli.data.dataset import TextImageDataset
    from attngan_cli.data.shapes import make_shapes

    path = make_shapes(tmp_path / "s.h5", n_train=4, n_test=2, image_size=16, compression="lzf")
    with h5py.File(path) as f:
        chunk = f["images"].id.get_chunk_info_by_coord((2, 0, 0, 0))
    with open(path, "r+b") as fh:  # 0xff first: an LZF back-reference before any output, never valid
        fh.seek(chunk.byte_offset)
        fh.write(b"\xff" * chunk.size)
    ds = TextImageDataset(path, "train", image_sizes=(16,), augment=False)
    assert ds[1]["key"] == "shapes/000001"  # the other images still read
    with pytest.raises(InputError) as e:
        ds[2]
    msg = str(e.value)
    assert str(path) in msg and "item 2" in msg and "shapes/000002" in msg and "damaged" in msg, msg
    assert "attngan prep" in msg


# --------------------------------------------------------------------------------------------------
# 7. Non-ASCII letters: dropped as officially, with a warning naming the word
# --------------------------------------------------------------------------------------------------
def test_non_ascii_letters_are_reported(tmp_path, attngan_caplog):
    root = tmp_path / "mine"
    _img(root / "a.png")
    (root / "a.txt").write_text("a café bird near the crème brûlée\na plain red bird\n", encoding="utf-8")
    out = tmp_path / "f.h5"
    r = _prep("folder", str(root), "--out", str(out), "--image-size", "16", "--test-fraction", "0")
    assert r.exit_code == 0, r.output
    warnings = [rec.getMessage() for rec in attngan_caplog.records if "non-ASCII" in rec.getMessage()]
    assert len(warnings) == 1  # once per caption, the plain caption says nothing
    assert "'café' -> 'caf'" in warnings[0] and "'crème' -> 'crme'" in warnings[0]
    assert "'brûlée' -> 'brle'" in warnings[0]
    assert "caf" in read_info(out).vocab  # the official behaviour is kept


def test_a_full_disk_during_prep_overwrite_ends_in_one_line_and_keeps_the_old_file(tmp_path):
    """The HDF5 writer runs out of space mid-write (issue 31, item 8), in a process of its own as a real
    prep (a file HDF5 could not close made the interpreter segfault at exit): exit 1, one line naming the
    file and the free space, the old file intact, no temporary file left."""
    out = tmp_path / "s.h5"
    r = _prep("shapes", "--out", str(out), "--train", "4", "--test", "2", "--image-size", "16", "-q")
    assert r.exit_code == 0, r.output
    before = out.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", _FULL_DISK_SCRIPT, str(out)], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])  # not 139 (a segfault)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {out}: no space left on device ("), p.stderr
    assert f"free on {tmp_path}); free some space or choose another output path" in lines[0], p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.h5"]  # no .s.h5.*.tmp.h5 left
    assert out.read_bytes() == before


_FULL_DISK_SCRIPT = """
import errno, sys
import attngan_cli.data.h5 as h5
from attngan_cli.cli import main

def full_disk(self):  # mid-write: the temporary .h5 is open, and one image is in HDF5's cache
    self.images[0] = 0
    raise OSError(errno.ENOSPC, "No space left on device")

h5.H5Writer._flush = full_disk
sys.argv = ["attngan", "prep", "shapes", "--out", sys.argv[1], "--train", "40", "--test", "2",
            "--image-size", "16", "--seed", "1", "--overwrite", "-q"]
main()
"""
