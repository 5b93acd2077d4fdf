"""Watching runs (issue 20): TensorBoard events from `train` and `pretrain`, `attngan runs`, `attngan plot`,
and what each says without its optional package.

The trainings are tiny (2 stages of 16 and 32 px, ngf = ndf = 8, random compact DAMSM encoders, 64 shapes
images); the run directories that `runs` lists come from the real loop on a toy task that runs in
milliseconds, so each status is the one a real run of that kind leaves.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from _sample_fixtures import pretrain_settings, tiny_train_settings
from PIL import Image
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.core.errors import TrainingAborted
from attngan_cli.core.fileio import append_jsonl, atomic_write_json, read_jsonl
from attngan_cli.storage.checkpoints import Checkpoint
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training import loop as loop_module
from attngan_cli.training import tensorboard as tb_module
from attngan_cli.training.loop import Callback, Loop, LoopState, StatsLog, cpu_state, epoch_batches

runner = CliRunner()
NEEDS_TB = "the tensorboard package is not installed (pip install -e '.[tensorboard]', part of .[dev])"


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny_train(shapes_h5: Path, damsm_path: Path, **over):
    return tiny_train_settings(shapes_h5, damsm_path, **{"epochs": 10, "snapshot_every": 2, "sample_every": 10, **over})


def tiny_pretrain(shapes_h5: Path, **over):
    values = {"dataset": str(shapes_h5), "epochs": 2, "batch_size": 16, "image.width": 8, "image.image_size": 32,
              "device": "cpu", "snapshot_every": 1, "seed": 5}
    values.update(over)
    return pretrain_settings("shapes", values)


def events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalar_series(acc, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


class SeenAtCheckpoint(Callback):
    """Reads the run's event files at each checkpoint (after the TensorBoard callback has seen it)."""

    def __init__(self) -> None:
        self.steps: dict[int, set[int]] = {}

    def on_checkpoint(self, loop, path, kind):
        acc = events(loop.run.path)
        tags = acc.Tags()["scalars"]
        self.steps[loop.state.step] = set(scalar_series(acc, "D/total")) if "D/total" in tags else set()


# --------------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------------
GAN_TAGS = {"d": "D/total", "d0": "D/stage0", "d1": "D/stage1", "g": "G/total", "g_adv0": "G/adv_stage0",
            "g_adv1": "G/adv_stage1", "kl": "G/kl", "w_loss": "DAMSM/word", "s_loss": "DAMSM/sentence",
            "images_per_s": "speed/images_per_s"}


def test_train_writes_every_stats_scalar_and_sample_grid_to_tensorboard(shapes_h5, damsm_path, tmp_path, attngan_caplog):
    pytest.importorskip("tensorboard", reason=NEEDS_TB)
    from attngan_cli.training.gan import train_gan

    settings = tiny_train(shapes_h5, damsm_path, max_steps=20)  # 4 steps per epoch: checkpoints at steps 8, 16
    cfg = settings.config
    run = RunDir.create(tmp_path / "runs", "s", "train")
    seen = SeenAtCheckpoint()
    train_gan(settings, run, callbacks=[seen])
    acc = events(run.path)
    stats = read_jsonl(run.file("stats.jsonl"))
    assert [r["step"] for r in stats] == [10, 20]
    tags = set(acc.Tags()["scalars"])
    for key, tag in GAN_TAGS.items():  # grouped tags, the same means at the same steps as stats.jsonl
        assert tag in tags, (tag, sorted(tags))
        assert scalar_series(acc, tag) == {r["step"]: pytest.approx(r[key], rel=1e-6) for r in stats}, tag
    numeric = {k for r in stats for k, v in r.items() if isinstance(v, int | float) and k not in ("step", "epoch")}
    assert {tb_module.scalar_tag(k) for k in numeric} <= tags  # every logged scalar, not only the known ones
    assert scalar_series(acc, "lr/G") == {10: pytest.approx(cfg.lr_g), 20: pytest.approx(cfg.lr_g)}
    assert scalar_series(acc, "lr/D") == {10: pytest.approx(cfg.lr_d), 20: pytest.approx(cfg.lr_d)}
    # every sample grid, at its step and size
    grids = acc.Images(tb_module.SAMPLES_TAG)
    assert [e.step for e in grids] == [0, 10, 20]
    with Image.open(run.file("samples-000010.png")) as png:
        assert (grids[1].width, grids[1].height) == png.size
    # readable while the run goes on: at the checkpoint of step 16 the scalars of step 10 are there
    # (that each checkpoint flushes is checked with a recording writer below)
    assert seen.steps[16] == {10}
    assert any("tensorboard --logdir" in r.getMessage() and str(run.path.parent) in r.getMessage()
               for r in attngan_caplog.records)


def test_pretrain_writes_losses_retrieval_and_attention_maps_to_tensorboard(shapes_h5, tmp_path):
    pytest.importorskip("tensorboard", reason=NEEDS_TB)
    from attngan_cli.training.damsm import pretrain

    settings = tiny_pretrain(shapes_h5)  # 64 images in batches of 16: 4 steps per epoch
    run = RunDir.create(tmp_path / "runs", "s", "pretrain")
    pretrain(settings, run)
    acc = events(run.path)
    stats = read_jsonl(run.file("stats.jsonl"))
    assert [r["step"] for r in stats] == [4, 8]
    expected = {"train_w1": "DAMSM_train/word1", "train_w2": "DAMSM_train/word2", "train_s1": "DAMSM_train/sentence1",
                "train_s2": "DAMSM_train/sentence2", "train_loss": "DAMSM_train/total", "test_w1": "DAMSM_test/word1",
                "test_s2": "DAMSM_test/sentence2", "test_loss": "DAMSM_test/total", "rprec": "retrieval/rprec",
                "i2t_top1": "retrieval/i2t_top1", "t2i_top1": "retrieval/t2i_top1", "lr": "lr/encoders",
                "train_images_per_s": "speed/images_per_s"}
    for key, tag in expected.items():
        assert scalar_series(acc, tag) == {r["step"]: pytest.approx(r[key], rel=1e-6) for r in stats}, tag
    maps = acc.Images(tb_module.ATTENTION_TAG)  # with checkpoint-1.pt and with final.pt
    assert [e.step for e in maps] == [4, 8]
    with Image.open(run.file("attention.png")) as png:
        assert (maps[-1].width, maps[-1].height) == png.size


def test_tensorboard_options_reach_the_config(shapes_h5, damsm_path, tmp_path):
    """--no-tensorboard writes no events; on by default; --tensorboard turns it back on when resuming."""
    pytest.importorskip("tensorboard", reason=NEEDS_TB)
    runs = tmp_path / "runs"

    def run_dir(args) -> tuple[Path, bool]:
        res = runner.invoke(app, [*args, "--runs", str(runs), "--device", "cpu", "--quiet"])
        assert res.exit_code == 0, (res.output, res.exception)
        run = Path(res.stdout.strip().splitlines()[-1]).parent
        on = json.loads((run / "config.json").read_text())["tensorboard"]
        assert on is bool(list(run.glob("events.out.tfevents.*"))), (args, on)
        return run, on

    train = ["train", str(shapes_h5), "--encoders", str(damsm_path), "--preset", "shapes", "--stages", "1",
             "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--max-steps", "2", "--sample-every", "0"]
    pretrain = ["pretrain", str(shapes_h5), "--preset", "shapes", "--epochs", "1", "--batch-size", "32"]
    off, on = run_dir([*train, "--no-tensorboard"])
    assert on is False
    assert run_dir(["train", "--resume", str(off), "--max-steps", "3", "--tensorboard"])[1] is True
    assert run_dir([*pretrain, "--no-tensorboard"])[1] is False
    assert run_dir(pretrain)[1] is True


def test_without_tensorboard_training_runs_and_says_once_how_to_install_it(shapes_h5, damsm_path, tmp_path,
                                                                            monkeypatch, attngan_caplog):
    from attngan_cli.training.gan import train_gan

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # any import of it fails
    monkeypatch.setattr(tb_module, "_said", set())
    run = RunDir.create(tmp_path / "runs", "s", "train")
    final = train_gan(tiny_train(shapes_h5, damsm_path, max_steps=2, sample_every=0), run)
    assert final.is_file() and not list(run.path.glob("events.out.tfevents.*"))
    assert tb_module.tensorboard_callbacks(True, run) == []  # a second time: no second message
    said = [r.getMessage() for r in attngan_caplog.records if "TensorBoard logging is off" in r.getMessage()]
    assert len(said) == 1 and "pip install tensorboard" in said[0] and "--no-tensorboard" in said[0], said


# ------------------------------------------------------------------------------------ a toy task
class ToyTask:
    """Least squares in milliseconds (the loop's own tests use the same kind of task)."""

    label, unit, batch_size, steps_per_epoch = "toy", "step", 4, 6

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(24, 3, generator=g), torch.randn(24, generator=g)
        self.models = torch.nn.Linear(3, 1)
        self.opt = torch.optim.SGD(self.models.parameters(), lr=0.1)

    def start_epoch(self, epoch):
        pass

    def batches(self, epoch, skip):
        return [torch.tensor(b) for b in epoch_batches(24, 4, 0, epoch)[skip:]]

    def step(self, batch, state):
        loss = ((self.models(self.x[batch]).squeeze(1) - self.y[batch]) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"d": loss.detach(), "g": 2 * loss.detach()}

    def end_epoch(self, state, complete):
        return {}

    def checkpoint(self, state):
        return Checkpoint(kind="toy", config={}, state={"model": cpu_state(self.models)}, step=state.step,
                          epoch=state.epoch, extra={"batch_in_epoch": state.batch_in_epoch})


class AtStep(Callback):
    def __init__(self, step, fn):
        self.step, self.fn = step, fn

    def on_step(self, loop, info):
        if info.step == self.step:
            self.fn(loop)


def toy_run(root: Path, name: str, *callbacks, **kw) -> Path:
    run = RunDir.create(root, name, "train")
    run.write_config({"preset": "shapes", "dataset": f"/data/{name}.h5", "generator": {}, "epochs": 3, "max_steps": 0})
    try:
        Loop(ToyTask(), run, LoopState(), epochs=3, snapshot_every=1,
             callbacks=[StatsLog(every=4), *callbacks], **kw).run_loop()
    except TrainingAborted:
        pass
    return run.path


def poison(loop):
    with torch.no_grad():
        loop.task.models.weight.fill_(float("nan"))


class FakeWriter:
    """Records what the TensorBoard callback asks of a SummaryWriter."""

    log: list[tuple[str, object]] = []

    def __init__(self, log_dir, purge_step=None):
        FakeWriter.log = [("open", log_dir)]

    def add_scalar(self, tag, value, step):
        FakeWriter.log.append(("scalar", (tag, step)))

    def add_image(self, tag, image, step, dataformats):
        FakeWriter.log.append(("image", (tag, step)))

    def add_text(self, tag, text, step):
        FakeWriter.log.append(("text", tag))

    def flush(self):
        FakeWriter.log.append(("flush", None))

    def close(self):
        FakeWriter.log.append(("close", None))


def test_tensorboard_flushes_at_each_checkpoint_and_closes_after_the_last_event(tmp_path):
    from attngan_cli.training.tensorboard import TensorBoard

    class Images(Callback):  # as SampleGrids / AttentionImages: an image with every checkpoint
        def on_checkpoint(self, loop, path, kind):
            loop.log_image("samples", torch.zeros(4, 4, 3, dtype=torch.uint8).numpy())

    run = RunDir.create(tmp_path, "toy", "train")
    Loop(ToyTask(), run, LoopState(), epochs=3, snapshot_every=1,
         callbacks=[StatsLog(every=4), Images(), TensorBoard(run, FakeWriter)]).run_loop()
    kinds = [k for k, _ in FakeWriter.log]
    assert kinds.count("open") == 1 and kinds[-1] == "close" and kinds.count("close") == 1
    # checkpoints after epochs 1 and 2 (steps 6, 12) and final.pt (step 18): each image is followed by a flush
    images = [i for i, (k, _) in enumerate(FakeWriter.log) if k == "image"]
    assert [FakeWriter.log[i][1] for i in images] == [("samples", 6), ("samples", 12), ("samples", 18)]
    assert all(kinds[i + 1] == "flush" for i in images)
    assert ("scalar", ("D/total", 16)) in FakeWriter.log and ("scalar", ("G/total", 16)) in FakeWriter.log
    # a run stopped by a non-finite loss writes no final.pt: the writer closes when the loop ends
    run = RunDir.create(tmp_path, "nan", "train")
    with pytest.raises(TrainingAborted):
        Loop(ToyTask(), run, LoopState(), epochs=3, callbacks=[StatsLog(every=4), AtStep(5, poison),
                                                               TensorBoard(run, FakeWriter)]).run_loop()
    assert FakeWriter.log[-2:] == [("flush", None), ("close", None)]


def test_a_failing_tensorboard_never_stops_training(tmp_path, attngan_caplog):
    from attngan_cli.training.tensorboard import TensorBoard

    class Broken(FakeWriter):
        def add_scalar(self, tag, value, step):
            raise OSError("disk full")

    run = RunDir.create(tmp_path, "toy", "train")
    final = Loop(ToyTask(), run, LoopState(), epochs=2, callbacks=[StatsLog(every=4), TensorBoard(run, Broken)]).run_loop()
    assert final.is_file() and len(read_jsonl(run.file("stats.jsonl"))) == 3
    warned = [r.getMessage() for r in attngan_caplog.records if "TensorBoard logging stopped" in r.getMessage()]
    assert len(warned) == 1 and "disk full" in warned[0]


# --------------------------------------------------------------------------------------------------
# attngan runs
# --------------------------------------------------------------------------------------------------
def test_runs_lists_each_run_with_its_status(tmp_path):
    root = tmp_path / "runs"
    finished = toy_run(root, "fin")
    append_jsonl(finished / "metrics.jsonl", {"step": 18, "metrics": {"rprecision": {"mean": 0.61, "std": 0.02}}})
    append_jsonl(finished / "metrics.jsonl", {"step": 18, "metrics": {"rprecision": {"mean": 0.72, "std": 0.02}}})
    aborted = toy_run(root, "abort", abort=lambda: True)  # stops after step 1, saving interrupted.pt
    # NaN at step 13, right after the stats line of step 12: the end line is all that says why it stopped
    nan = toy_run(root, "nan", AtStep(12, poison))
    running = RunDir.create(root, "live", "pretrain")
    running.write_config({"preset": "shapes", "dataset": "/data/live.h5", "image": {}, "text": {}, "epochs": 5})
    running.log_stats({"step": 3, "epoch": 1, "train_loss": 9.5, "test_loss": 9.9, "rprec": 0.25})
    running.write_environment({"world_size": 2, "backend": "nccl", "device": "cuda:0",
                               "device_names": ["NVIDIA H200", "NVIDIA H200"]})
    stopped = RunDir.create(root, "dead", "train")
    stopped.log_stats({"step": 40, "epoch": 2, "d": 1.0, "g": 3.0})
    old = time.time() - 3 * 3600
    for f in stopped.path.iterdir():
        os.utime(f, (old, old))

    res = runner.invoke(app, ["runs", str(root), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert list(rows) == ["00000-fin-train", "00001-abort-train", "00002-nan-train", "00003-live-pretrain",
                          "00004-dead-train"]
    status = {name: r["status"] for name, r in rows.items()}
    assert status == {"00000-fin-train": "finished", "00001-abort-train": "interrupted", "00002-nan-train": "NaN",
                      "00003-live-pretrain": "running", "00004-dead-train": "stopped"}
    fin, nan_row, live = rows["00000-fin-train"], rows["00002-nan-train"], rows["00003-live-pretrain"]
    assert (fin["kind"], fin["dataset"], fin["preset"], fin["step"], fin["epoch"]) == ("train", "fin", "shapes", 18, 3)
    assert fin["best_rprec"] == pytest.approx(0.72) and fin["evals"] == 2
    assert fin["size_bytes"] == sum(f.stat().st_size for f in finished.iterdir())
    assert nan_row["end"] == "non-finite loss" and nan_row["step"] == 13 and nan_row["last"]["d"] > 0
    assert rows["00001-abort-train"]["end"] == "aborted" and (aborted / "interrupted.pt").is_file()
    assert (live["kind"], live["dataset"], live["best_rprec"], live["epochs"]) == ("pretrain", "live", 0.25, 5)
    assert (live["world_size"], live["device"]) == (2, "NVIDIA H200")
    assert (fin["world_size"], fin["device"]) == (None, None)  # no environment.json
    assert not (nan / "final.pt").exists()

    res = runner.invoke(app, ["runs", str(root)])  # the table
    assert res.exit_code == 0, res.output
    for word in ("00002-nan-train", "NaN", "interrupted", "running", "stopped", "72.0 %", "2 x NVIDIA H200"):
        assert word in res.stdout, word


def test_runs_of_a_missing_folder_or_none_and_the_end_reasons_agree(tmp_path):
    from attngan_cli.apps import runs_summary as runs

    res = runner.invoke(app, ["runs", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "nowhere" in res.output
    res = runner.invoke(app, ["runs", str(tmp_path)])
    assert res.exit_code == 0 and "no run directories" in res.stdout
    # runs.py spells the loop's end reasons itself (to list runs without importing torch)
    assert (runs.INTERRUPTED, runs.ABORTED, runs.NON_FINITE) == (
        loop_module.INTERRUPTED, loop_module.ABORTED, loop_module.NON_FINITE)


@pytest.mark.parametrize("end,status", [("save failed", "save failed"), ("error: d.h5: image chunk 2 is damaged", "failed")])
def test_runs_shows_a_failed_save_and_a_failed_run(tmp_path, end, status):
    """A run whose checkpoint could not be written, or that died of an error, is not shown as running
    (issue 31, items 8 and 10)."""
    run = RunDir.create(tmp_path, "bad", "train")
    run.log_stats({"step": 4, "epoch": 1, "d": 1.0, "g": 2.0})
    run.log_stats({"step": 6, "epoch": 1, "end": end})
    res = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert (row["status"], row["end"]) == (status, end)
    res = runner.invoke(app, ["runs", str(tmp_path)])
    assert res.exit_code == 0 and status in res.stdout


# --------------------------------------------------------------------------------------------------
# attngan plot
# --------------------------------------------------------------------------------------------------
def fake_train_run(root: Path, name: str, lambda_damsm: float) -> Path:
    """A train run directory as the loop leaves it: a stats line every 10 steps, an eval at the end."""
    run = root / name
    run.mkdir(parents=True)
    atomic_write_json(run / "config.json", {"preset": "shapes", "dataset": "/d/s.h5", "generator": {}})
    for step in range(10, 101, 10):
        rec = {"step": step, "epoch": step // 40 + 1, "d0": 1.0, "d1": 1.1, "d": 2.1 - step / 200, "g": 9.0,
               "g_adv0": 2.0 + step / 100, "g_adv1": 2.5, "kl": 0.01, "images_per_s": 50.0}
        if lambda_damsm > 0:
            rec.update(w_loss=6.0 - step / 50, s_loss=5.0 - step / 60)
        append_jsonl(run / "stats.jsonl", rec)
    append_jsonl(run / "metrics.jsonl", {"step": 100, "metrics": {"rprecision": {"mean": 0.4 + lambda_damsm / 10, "std": 0.1},
                                                                  "fid": {"fid": 80.0, "real_images": 100}}})
    return run


def test_plot_overlays_runs_with_one_line_per_run(tmp_path):
    from attngan_cli.apps.plot import curves, load_runs

    a, b = fake_train_run(tmp_path / "a" / "runs", "00001-s-train", 5), fake_train_run(tmp_path / "b" / "runs", "00001-s-train", 0)
    panels, lines = curves(load_runs([a, b]))
    by_panel = {}
    for line in lines:
        by_panel.setdefault(line.panel.title, []).append((line.run, line.series.label))
    assert by_panel["discriminator loss (sum over stages)"] == [("a/runs/00001-s-train", "D"), ("b/runs/00001-s-train", "D")]
    assert by_panel["DAMSM terms of the generator loss"] == [("a/runs/00001-s-train", "word"), ("a/runs/00001-s-train", "sentence")]
    assert by_panel["R-precision"] == [("a/runs/00001-s-train", "generated (eval)"), ("b/runs/00001-s-train", "generated (eval)")]
    assert "eval: fid" in by_panel and "DAMSM pretraining loss" not in by_panel
    adv = next(line for line in lines if line.panel.title.startswith("generator adversarial"))
    assert adv.xs[:2] == [10.0, 20.0] and adv.ys[0] == pytest.approx(2.1 + 2.5)  # summed over the stages
    assert len(panels) == len(by_panel)


def test_plot_writes_a_png_for_one_and_for_two_runs(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[plot]', part of .[dev])")
    a = fake_train_run(tmp_path / "runs", "00001-s-train", 5)
    b = fake_train_run(tmp_path / "runs", "00002-s-train", 0)
    res = runner.invoke(app, ["plot", str(a), "-o", str(tmp_path / "one.png")])
    assert res.exit_code == 0, (res.output, res.exception)
    assert res.stdout.strip() == str(tmp_path / "one.png")
    res = runner.invoke(app, ["plot", str(a), str(b), "-o", str(tmp_path / "two.png"), "--labels", "lambda 5,lambda 0",
                              "--title", "lambda 5 vs 0"])
    assert res.exit_code == 0, (res.output, res.exception)
    for name in ("one.png", "two.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 300, (name, im.size)
    res = runner.invoke(app, ["plot", str(a), str(b), "--labels", "just one"])
    assert res.exit_code == 1 and "one label per run" in res.output
    res = runner.invoke(app, ["plot", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "stats.jsonl" in res.output


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, attngan_caplog):
    from attngan_cli.apps.plot import plot_runs_if_possible

    run = fake_train_run(tmp_path / "runs", "00001-s-train", 5)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # any import of it fails
    res = runner.invoke(app, ["plot", str(run), "-o", str(tmp_path / "c.png")])
    assert res.exit_code == 1, res.output
    assert "pip install matplotlib" in res.output and ".[plot]" in res.output
    assert not (tmp_path / "c.png").exists()
    # a pipeline (the demo) goes on without its plot, saying why
    assert plot_runs_if_possible([run], tmp_path / "c.png") is None and not (tmp_path / "c.png").exists()
    assert any("pip install matplotlib" in r.getMessage() for r in attngan_caplog.records)


def test_tensorboard_tags_group_the_stats_keys():
    tag = tb_module.scalar_tag
    assert [tag(k) for k in ("d", "d2", "g_adv1", "kl", "w_loss", "lr", "train_s2", "test_loss", "rprec")] == [
        "D/total", "D/stage2", "G/adv_stage1", "G/kl", "DAMSM/word", "lr/encoders", "DAMSM_train/sentence2",
        "DAMSM_test/total", "retrieval/rprec"]
    assert tag("step") is None and tag("end") is None and tag("something_new") == "other/something_new"
    assert tb_module.scalars({"step": 3, "end": "finished", "d": 1.5, "rprec": None, "g": float("nan")}) == {"D/total": 1.5}


def test_plot_and_runs_show_the_evaluations_during_training(tmp_path):
    from attngan_cli.apps.plot import curves, load_runs
    from attngan_cli.apps.runs_summary import eval_text, run_info

    run = fake_train_run(tmp_path / "runs", "00001-s-train", 5)
    for step, rp, fid in ((50, 0.3, 90.0), (100, 0.5, 70.0)):
        append_jsonl(run / "stats.jsonl", {"step": step, "epoch": 2, "eval/rprecision": rp, "eval/rprecision_std": 0.1,
                                           "eval/fid": fid, "eval/seconds": 3.0, "eval/samples": 500, "eval/best": rp})
    atomic_write_json(run / "best.json", {"metric": "rprecision", "value": 0.5, "step": 100})
    _, lines = curves(load_runs([run]))
    got = {(line.panel.title, line.series.label): (line.xs, line.ys) for line in lines}
    assert got[("R-precision", "generated (--eval-every)")] == ([50.0, 100.0], [0.3, 0.5])
    assert got[("eval: fid", "fid (--eval-every)")] == ([50.0, 100.0], [90.0, 70.0])
    assert not any(title.startswith("eval: rprecision_") or title == "eval: seconds" for title, _ in got)
    info = run_info(run)
    assert info.last["d"] == pytest.approx(1.6)  # the last loss line, not the evaluation's
    assert info.eval_last == {"rprecision": 0.5, "fid": 70.0} and info.eval_step == 100
    assert info.best_rprec == pytest.approx(0.9)  # metrics.jsonl's 0.9 beats the 0.5 during training
    assert eval_text(info) == "rprecision 0.5 fid 70 @100, best 0.5 @100"
