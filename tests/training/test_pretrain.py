"""`attngan pretrain` end to end on tiny shapes data, resume, and Inception feature caching."""

from __future__ import annotations

import json

import pytest
import torch
from _sample_fixtures import pretrain_settings
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.core.errors import InputError, TrainingAborted
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.storage.rundirs import RunDir

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
    from attngan_cli.inference.pipeline import load_damsm

    runs = tmp_path / "runs"
    common = [str(shapes_small), "--preset", "shapes", "--batch-size", "16", "--runs", str(runs),
              "--device", "cpu", "--quiet"]
    res = _invoke(["pretrain", *common, "--epochs", "2", "--snapshot-every", "1", "--seed", "5"])
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
    # resumed from epoch 1 with no flags: the run's own batch, seed and epochs, and the uninterrupted weights
    runs_b = tmp_path / "runs-b"
    _invoke(["pretrain", str(shapes_small), "--resume", str(run / "checkpoint-1.pt"), "--runs", str(runs_b), "--quiet"])
    run_b = runs_b / "00000-shapes-pretrain"
    cfg_b = json.loads((run_b / "config.json").read_text())
    assert (cfg_b["batch_size"], cfg_b["seed"], cfg_b["epochs"]) == (16, 5, 2)
    assert [s["epoch"] for s in read_jsonl(run_b / "stats.jsonl")] == [2]
    env = json.loads((run_b / "environment.json").read_text())
    assert (env["world_size"], env["backend"], env["per_process_batch"], env["grad_accum"], env["device"]) == \
        (1, None, 16, 1, "cpu")
    _assert_same_weights(run / "final.pt", run_b / "final.pt", "damsm", ("text_encoder", "image_encoder"))
    # a flag that changes the data order or the updates is refused, naming it; no run directory is made
    for flag, value in (("--batch-size", "32"), ("--seed", "6"), ("--lr", "0.01"), ("--group-by", "color")):
        res = runner.invoke(app, ["pretrain", str(shapes_small), "--resume", str(run), "--epochs", "3", flag, value,
                                  "--runs", str(runs_b)])
        assert res.exit_code == 1 and f"{flag} (" in res.output and "resumed run keeps" in res.output, res.output
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1, res.output
    # the finished run resumed without a larger --epochs: refused before a run directory exists
    res = runner.invoke(app, ["pretrain", str(shapes_small), "--resume", str(run), "--runs", str(runs_b)])
    assert res.exit_code == 1 and "finished run" in res.output and "--epochs N larger than 2" in res.output, res.output
    assert sorted(p.name for p in runs_b.iterdir()) == ["00000-shapes-pretrain"]
    # resume from the run directory: continues at epoch 3 in a new run directory
    res = _invoke(["pretrain", *common, "--epochs", "3", "--resume", str(run)])
    run2 = runs / "00001-shapes-pretrain"
    assert [s["epoch"] for s in read_jsonl(run2 / "stats.jsonl")] == [3]
    # the resumed run started from the saved weights: its first epoch's lr continues the schedule
    assert read_jsonl(run2 / "stats.jsonl")[0]["lr"] == pytest.approx(0.002 * 0.98**2)


def _assert_same_weights(a_path, b_path, kind, parts):
    from attngan_cli.storage.checkpoints import load_checkpoint

    a, b = load_checkpoint(a_path, kind=kind), load_checkpoint(b_path, kind=kind)
    for part in parts:
        for k, v in a.state[part].items():
            assert torch.equal(v, b.state[part][k]), (part, k)


def test_pretrain_cli_errors(shapes_small, tmp_path):
    res = runner.invoke(app, ["pretrain", str(tmp_path / "missing.h5"), "--runs", str(tmp_path)])
    assert res.exit_code == 1 and "missing.h5" in res.output
    res = runner.invoke(app, ["pretrain", str(shapes_small), "--image-encoder", "inception-v3", "--epochs", "1",
                              "--runs", str(tmp_path / "r"), "--inception-weights", str(tmp_path / "inc.pth")])
    assert res.exit_code == 1 and "inc.pth" in res.output
    res = runner.invoke(app, ["pretrain", str(shapes_small), "--image-encoder", "resnet", "--runs", str(tmp_path / "r")])
    assert res.exit_code == 1 and "resnet" in res.output
    res = runner.invoke(app, ["pretrain", str(shapes_small), "--frozen-bn", "batch", "--runs", str(tmp_path / "r")])
    assert res.exit_code == 1 and "image.frozen_bn must be one of train, eval" in res.output


def _learn(tmp_path, n_train, epochs):
    from attngan_cli.data.shapes import make_shapes
    from attngan_cli.training.damsm import pretrain

    data = make_shapes(tmp_path / "s.h5", n_train=n_train, n_test=100, seed=1)
    settings = pretrain_settings("shapes", {"dataset": str(data), "epochs": epochs, "batch_size": 32,
                                            "image.width": 16, "device": "cpu", "snapshot_every": 100})
    run = RunDir.create(tmp_path / "runs", "s", "pretrain")
    pretrain(settings, run)
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


def test_pretrain_inception_cached_features(shapes_small, tmp_path, attngan_caplog):
    """Frozen Inception-v3 with feature caching: trains, removes its cache, leaves the Inception layers
    exactly as loaded from the weights file. Caching is the faster mode with eval-mode BatchNorm: asked
    for the official batch statistics (image.frozen_bn = train), it says so once and uses eval mode."""
    import math

    from torchvision.models import inception_v3

    from attngan_cli.storage.checkpoints import load_checkpoint
    from attngan_cli.training.damsm import pretrain

    torch.manual_seed(0)
    weights = tmp_path / "inception_v3_google-test.pth"
    sd = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save(sd, weights)
    values = {"dataset": str(shapes_small), "image.backbone": "inception-v3", "image.image_size": 75, "epochs": 2,
              "batch_size": 8, "cache_features": True, "device": "cpu", "image.frozen_bn": "train"}
    with pytest.raises(InputError, match="cannot be combined"):  # the shapes preset groups its batches
        pretrain_settings("shapes", {**values, "group_by": ["bg_color", "color"]}, inception_weights=weights)
    run = RunDir.create(tmp_path / "runs", "s", "pretrain")
    with attngan_caplog.at_level("INFO", logger="attngan_cli"):
        final = pretrain(pretrain_settings("shapes", {**values, "group_by": []}, inception_weights=weights), run)
    assert attngan_caplog.text.count("--cache-features: the frozen Inception layers use their stored") == 1
    assert load_checkpoint(final, kind="damsm").config["image"]["frozen_bn"] == "eval"
    assert not run.file("feature-cache.npy").exists()
    stats = read_jsonl(run.file("stats.jsonl"))
    assert len(stats) == 2 and all(math.isfinite(s[f"train_{k}"]) for s in stats for k in TERMS)
    state = load_checkpoint(final, kind="damsm").state["image_encoder"]
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_6e.branch1x1.bn.running_mean", "Mixed_7c.branch_pool.conv.weight"):
        assert torch.equal(state[k], sd[k]), k


# --------------------------------------------------------------------------------------------------
# Pretraining runs on the shared loop: exact resume, Ctrl-C, NaN stop
# --------------------------------------------------------------------------------------------------
def _tiny_pretrain(data, resume=None, **over):
    values = {"dataset": str(data), "epochs": 2, "batch_size": 16, "image.width": 8, "image.image_size": 32,
              "device": "cpu", "snapshot_every": 1, "seed": 5}
    values.update(over)
    return pretrain_settings("shapes", values, resume=resume)


class _Losses:
    def __init__(self, at=None):
        self.losses, self.at = {}, at or {}

    def __call__(self, info):
        self.losses[info.step] = dict(info.losses)
        if info.step in self.at:
            self.at[info.step](info)


def test_pretrain_resume_repeats_the_uninterrupted_run(shapes_small, tmp_path):
    """48 images in batches of 16: 3 steps per epoch. Stopped after step 4 (mid-epoch 2) and resumed from
    the run directory, the next losses are the uninterrupted run's, to the bit; so are the final weights."""
    from attngan_cli.storage.checkpoints import load_checkpoint
    from attngan_cli.training.damsm import pretrain

    settings = _tiny_pretrain(shapes_small)
    full = _Losses()
    final_a = pretrain(settings, RunDir.create(tmp_path, "a", "pretrain"), callbacks=[full])
    assert sorted(full.losses) == [1, 2, 3, 4, 5, 6]
    part = _Losses()
    run_b = RunDir.create(tmp_path, "b", "pretrain")
    with pytest.raises(TrainingAborted, match="step 4"):
        pretrain(_tiny_pretrain(shapes_small), run_b, callbacks=[part], abort=lambda: max(part.losses) >= 4)
    ck = load_checkpoint(run_b.file("interrupted.pt"), kind="damsm")
    assert (ck.step, ck.epoch, ck.extra["batch_in_epoch"]) == (4, 1, 1)
    rest = _Losses()
    final_c = pretrain(_tiny_pretrain(shapes_small, resume=run_b.path), RunDir.create(tmp_path, "c", "pretrain"),
                       callbacks=[rest])
    assert sorted(rest.losses) == [5, 6]
    for s in (5, 6):
        assert rest.losses[s] == full.losses[s], s
    a, c = load_checkpoint(final_a, kind="damsm"), load_checkpoint(final_c, kind="damsm")
    for part_name in ("text_encoder", "image_encoder"):
        for k, v in a.state[part_name].items():
            assert torch.equal(v, c.state[part_name][k]), (part_name, k)


def test_pretrain_sigint_and_nan_keep_a_good_checkpoint(shapes_small, tmp_path):
    import math
    import os
    import signal

    from attngan_cli.storage.checkpoints import load_checkpoint
    from attngan_cli.training.damsm import pretrain

    # a real Ctrl-C inside step 2 (from the image encoder's forward): the step finishes, interrupted.pt at
    # step 2, resumable (sent between steps, Python's own KeyboardInterrupt would give the same result)
    def ctrl_c_inside_next_step(info):
        def hook(module, args):
            handle.remove()
            os.kill(os.getpid(), signal.SIGINT)

        handle = info.models.image.register_forward_pre_hook(hook)

    run = RunDir.create(tmp_path, "sig", "pretrain")
    rec = _Losses({1: ctrl_c_inside_next_step})
    with pytest.raises(KeyboardInterrupt):
        pretrain(_tiny_pretrain(shapes_small), run, callbacks=[rec])
    assert sorted(rec.losses) == [1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert load_checkpoint(run.file("interrupted.pt"), kind="damsm").step == 2
    assert read_jsonl(run.file("stats.jsonl"))[-1]["end"] == "interrupted"

    # a non-finite loss in epoch 2: stops, names checkpoint-1.pt, which holds finite weights
    def poison(info):
        with torch.no_grad():
            for p in info.models.text.parameters():
                p.fill_(float("nan"))

    run = RunDir.create(tmp_path, "nan", "pretrain")
    with pytest.raises(TrainingAborted, match=r"non-finite loss at step 5.*checkpoint-1\.pt"):
        pretrain(_tiny_pretrain(shapes_small, epochs=3), run, callbacks=[_Losses({4: poison})])
    assert not run.file("final.pt").exists()
    ck = load_checkpoint(run.file("checkpoint-1.pt"), kind="damsm")
    assert ck.step == 3 and all(math.isfinite(float(v.float().sum())) for v in ck.state["text_encoder"].values())
