"""`attngan prep` as a user runs it."""

from __future__ import annotations

from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.data.h5 import read_info

runner = CliRunner()


def test_prep_help_documents_layouts():
    for source, needle in (("cub", "bounding_boxes.txt"), ("coco", "captions_train2014.json"),
                           ("folder", "captions.jsonl"), ("shapes", "Examples")):
        r = runner.invoke(app, ["prep", source, "--help"], env={"COLUMNS": "120"})
        assert r.exit_code == 0 and needle in r.output and "Examples" in r.output


def test_prep_shapes_cli(tmp_path):
    out = tmp_path / "s.h5"
    r = runner.invoke(app, ["prep", "shapes", "--out", str(out), "--train", "8", "--test", "4", "--image-size", "32", "-q"])
    assert r.exit_code == 0, r.output
    assert str(out) in r.stdout
    info = read_info(out)
    assert (info.n_train, info.n_test, info.image_size) == (8, 4, 32)
    r = runner.invoke(app, ["prep", "shapes", "--out", str(out), "--train", "8", "--test", "4"])
    assert r.exit_code == 1 and "--overwrite" in r.output


def test_prep_bad_input_cli(tmp_path):
    r = runner.invoke(app, ["prep", "cub", str(tmp_path / "nope"), "--out", str(tmp_path / "x.h5")])
    assert r.exit_code == 1
    assert "does not exist" in r.output and "bounding_boxes.txt" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["prep", "coco", str(tmp_path)])
    assert r.exit_code == 1 and "captions_*.json" in r.output
