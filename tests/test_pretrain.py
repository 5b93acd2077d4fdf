"""`attngan pretrain` end to end on tiny shapes data, resume, and Inception feature caching (issue 4)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config import make_pretrain_config
from attngan_cli.errors import InputError
from attngan_cli.io import read_jsonl
from attngan_cli.rundir import RunDir

runner = CliRunner()
TERMS = ("w1", "w2", "s1", "s2")


@pytest.fixture(scope="module")
def shapes_small(tmp_path_factory):
    from attngan_cli.data.shapes import make_shapes

    return make_shapes(tmp_path_factory.mktemp("shapes") / "shapes.h5", n_train=48, n_test=24, seed=3)


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


def _learn(tmp_path, n_train, epochs):
    from attngan_cli.data.shapes import make_shapes
    from attngan_cli.train.pretrain import pretrain

    data = make_shapes(tmp_path / "s.h5", n_train=n_train, n_test=100, seed=1)
    cfg = make_pretrain_config("shapes", {"dataset": str(data), "epochs": epochs, "batch_size": 32,
                                          "image.width": 16, "device": "cpu", "snapshot_every": 100})
    run = RunDir.create(tmp_path / "runs", "s", "pretrain")
    pretrain(cfg, run)
    return read_jsonl(run.file("stats.jsonl"))


def test_pretrain_learns_shapes_quick(tmp_path):
    """A few dozen compact steps already lift test retrieval far above chance (1% for both metrics:
    top-1 among 100, and 1 true caption against 99 of other classes)."""
    stats = _learn(tmp_path, n_train=320, epochs=4)
    last = stats[-1]
    assert last["rprec_k"] >= 90  # 100 test images: fewer than 99 of other classes for some
    assert last["rprec"] > 0.06, stats  # > 5 standard deviations above chance for 100 test images
    assert last["test_loss"] < 0.7 * stats[0]["test_loss"], stats


@pytest.mark.slow
def test_pretrain_learns_shapes(tmp_path):
    """A short compact pretraining makes test retrieval clearly better than chance."""
    stats = _learn(tmp_path, n_train=1200, epochs=5)
    last = stats[-1]
    assert last["rprec_k"] >= 90
    assert last["rprec"] > 0.25, stats
    assert last["i2t_top1"] > 0.1 and last["t2i_top1"] > 0.1, stats
    assert last["test_loss"] < stats[0]["test_loss"]


def test_pretrain_inception_cached_features(shapes_small, tmp_path):
    """Frozen Inception-v3 with feature caching: trains, removes its cache, leaves the Inception layers
    exactly as loaded from the weights file."""
    import math

    from torchvision.models import inception_v3

    from attngan_cli.checkpoints import load_checkpoint
    from attngan_cli.train.pretrain import pretrain

    torch.manual_seed(0)
    weights = tmp_path / "inception_v3_google-test.pth"
    sd = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save(sd, weights)
    cfg = make_pretrain_config("shapes", {"dataset": str(shapes_small), "image.backbone": "inception-v3",
                                          "image.image_size": 75, "epochs": 2, "batch_size": 8,
                                          "cache_features": True, "device": "cpu"})
    with pytest.raises(InputError, match="cannot be combined"):  # the shapes preset groups its batches
        pretrain(cfg, RunDir.create(tmp_path / "runs", "s", "pretrain"), inception_weights=weights)
    cfg.group_by = []
    run = RunDir.create(tmp_path / "runs", "s", "pretrain")
    final = pretrain(cfg, run, inception_weights=weights)
    assert not run.file("feature-cache.npy").exists()
    stats = read_jsonl(run.file("stats.jsonl"))
    assert len(stats) == 2 and all(math.isfinite(s[f"train_{k}"]) for s in stats for k in TERMS)
    state = load_checkpoint(final, kind="damsm").state["image_encoder"]
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_6e.branch1x1.bn.running_mean", "Mixed_7c.branch_pool.conv.weight"):
        assert torch.equal(state[k], sd[k]), k
