"""`attngan pretrain` end to end on tiny shapes data, resume, and Inception feature caching (issue 4)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config import make_pretrain_config
from attngan_cli.io import read_jsonl
from attngan_cli.rundir import RunDir

runner = CliRunner()
TERMS = ("w1", "w2", "s1", "s2")


@pytest.fixture(scope="module")
def shapes_small(tmp_path_factory):
    from attngan_cli.data.shapes import make_shapes

    return make_shapes(tmp_path_factory.mktemp("shapes") / "shapes.h5", n_train=48, n_test=24, image_size=40, seed=3)


def _invoke(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res


def test_pretrain_cli_run_dir_and_resume(shapes_small, tmp_path):
    from attngan_cli.models.damsm import load_damsm

    runs = tmp_path / "runs"
    common = [str(shapes_small), "--preset", "shapes", "--batch-size", "16", "--runs", str(runs),
              "--device", "cpu", "--quiet"]
    res = _invoke(["pretrain", *common, "--epochs", "2", "--snapshot-every", "1"])
    run = runs / "00000-shapes-pretrain"
    assert res.stdout.strip().endswith(str(run / "final.pt"))
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "stats.jsonl", "final.pt", "checkpoint-1.pt", "attention.png", "attention-1.png"} <= names
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["image"]["backbone"] == "compact" and cfg["epochs"] == 2 and cfg["text"]["vocab_size"] > 10
    stats = read_jsonl(run / "stats.jsonl")
    assert [s["epoch"] for s in stats] == [1, 2]
    for s in stats:
        for k in TERMS:
            assert s[f"train_{k}"] > 0 and s[f"test_{k}"] > 0
        assert 0 <= s["i2t_top1"] <= 1 and 0 <= s["rprec"] <= 1 and s["rprec_k"] >= 1
    bundle = load_damsm(run)
    assert bundle.path == run / "final.pt" and bundle.config.epochs == 2
    # resume from the run directory: continues at epoch 3 in a new run directory
    res = _invoke(["pretrain", *common, "--epochs", "3", "--resume", str(run)])
    run2 = runs / "00001-shapes-pretrain"
    assert [s["epoch"] for s in read_jsonl(run2 / "stats.jsonl")] == [3]
    # the resumed run started from the saved weights: its first epoch's lr continues the schedule
    assert read_jsonl(run2 / "stats.jsonl")[0]["lr"] == pytest.approx(0.002 * 0.98**2)


def test_pretrain_cli_errors(shapes_small, tmp_path):
    res = runner.invoke(app, ["pretrain", str(tmp_path / "missing.h5"), "--runs", str(tmp_path)])
    assert res.exit_code == 1 and "missing.h5" in res.output
    res = runner.invoke(app, ["pretrain", str(shapes_small), "--image-encoder", "inception-v3", "--epochs", "1",
                              "--runs", str(tmp_path / "r"), "--inception-weights", str(tmp_path / "inc.pth")])
    assert res.exit_code == 1 and "inc.pth" in res.output
    res = runner.invoke(app, ["pretrain", str(shapes_small), "--image-encoder", "resnet", "--runs", str(tmp_path / "r")])
    assert res.exit_code == 1 and "resnet" in res.output


def test_pretrain_learns_shapes(tmp_path):
    """A short compact pretraining makes test retrieval clearly better than chance."""
    from attngan_cli.data.shapes import make_shapes
    from attngan_cli.train.pretrain import pretrain

    data = make_shapes(tmp_path / "s.h5", n_train=600, n_test=100, image_size=40, seed=1)
    cfg = make_pretrain_config("shapes", {"dataset": str(data), "epochs": 6, "batch_size": 32, "device": "cpu",
                                          "snapshot_every": 100})
    run = RunDir.create(tmp_path / "runs", "s", "pretrain")
    pretrain(cfg, run)
    stats = read_jsonl(run.file("stats.jsonl"))
    last = stats[-1]
    # chance: top-1 among 100 = 1%; R-precision against K other-class captions = 1/(K+1) = 1%
    assert last["rprec_k"] == 99
    assert last["rprec"] > 0.25, stats
    assert last["i2t_top1"] > 0.05 and last["t2i_top1"] > 0.05, stats
    assert last["test_loss"] < stats[0]["test_loss"]
