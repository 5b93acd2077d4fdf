"""Evaluation during GAN training (``train --eval-every``): stats.jsonl / TensorBoard / `attngan runs`, best.pt
by the metric's direction, resume keeping the best, the checks before training, torchrun.

Tiny sizes (tiny_train_config: 4 steps per epoch on the 64-image shapes fixture). The tests of best.pt's
logic replace the evaluator by one whose scores are planted per step, so they test the bookkeeping, not
the metrics (tests/evaluation/ does those)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from _sample_fixtures import tiny_train_settings
from typer.testing import CliRunner

import attngan_cli.training.evaluation as train_eval
from attngan_cli.apps.runs_summary import eval_text, run_info
from attngan_cli.cli import app
from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.evaluation.evaluate import EvalOptions, EvalResult, evaluate
from attngan_cli.storage.checkpoints import load_checkpoint
from attngan_cli.storage.rundirs import RunDir, resolve_checkpoint
from attngan_cli.training.gan import train_gan
from attngan_cli.training.tensorboard import scalar_tag

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _evals(run: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(run / "stats.jsonl") if any(k.startswith("eval/") for k in r)]


def test_eval_during_training_logs_scores_and_keeps_best_with_its_manifest(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, **{
        "evaluation.every": 3, "evaluation.samples": 20, "evaluation.batch_size": 8, "tensorboard": False})
    final = train_gan(settings, RunDir.create(tmp_path, "a", "train"))
    run = final.parent
    evals = _evals(run)
    assert [r["step"] for r in evals] == [3, 6]
    for r in evals:
        assert {"eval/rprecision", "eval/rprecision_std", "eval/seconds", "eval/samples", "eval/best"} <= set(r)
        assert 0 <= r["eval/rprecision"] <= 1 and r["eval/samples"] == 20
    # the loss records are still what `attngan runs` shows as the last losses
    info = run_info(run)
    assert {"d", "g"} <= set(info.last) and info.eval_step == 6 and "rprecision" in info.eval_last
    assert "best" in eval_text(info) and "@6" in eval_text(info)

    best = json.loads((run / "best.json").read_text())
    ckpt = load_checkpoint(run / "best.pt", kind="gan")
    assert ckpt.step == best["step"] and best["metric"] == "rprecision" and best["higher_is_better"] is True
    assert ckpt.extra["eval_best"]["value"] == best["value"] == max(r["eval/rprecision"] for r in evals)
    m = best["manifest"]
    assert m["protocol"] == "attngan" and m["metrics"] == ["rprecision"]
    assert m["checkpoint"] == {"path": str((run / "best.pt").resolve()), "sha256": _sha(run / "best.pt"),
                               "step": best["step"], "epoch": ckpt.epoch}
    assert m["files"]["data"]["sha256"] == _sha(shapes_h5)
    assert m["files"]["damsm"]["sha256"] == _sha(damsm_path)
    assert m["settings"]["num_samples"] == 20 and m["settings"]["split"] == "test" and m["seed"] == 0
    assert m["versions"]["torch"] == torch.__version__
    # R-precision with the DAMSM that trained the generator: TISE's caveat
    assert m["rprecision_same_damsm"] is True and "TISE" in m["warnings"][0]
    # best.pt is not a checkpoint a run directory resolves to
    assert resolve_checkpoint(run).name == "final.pt" and resolve_checkpoint(run, for_resume=True).name != "best.pt"


def test_the_scores_are_those_of_attngan_eval_on_the_same_weights(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, **{
        "evaluation.every": 4, "evaluation.samples": 24, "evaluation.batch_size": 8, "max_steps": 4,
        "tensorboard": False})
    final = train_gan(settings, RunDir.create(tmp_path, "a", "train"))
    (logged,) = _evals(final.parent)
    got = evaluate(final, shapes_h5, EvalOptions(metrics=["rprecision"], num_samples=24, batch_size=5,
                                                 device="cpu", log_to_run=False))
    assert logged["eval/rprecision"] == pytest.approx(got.metrics["rprecision"]["mean"], abs=1e-6)


def test_training_goes_exactly_as_without_evaluation(shapes_h5, damsm_path, tmp_path):
    def losses(**over: Any) -> dict[int, dict[str, float]]:
        seen: dict[int, dict[str, float]] = {}
        settings = tiny_train_settings(shapes_h5, damsm_path, max_steps=4, snapshot_every=0, tensorboard=False, **over)
        train_gan(settings, RunDir.create(tmp_path, "a", "train"), callbacks=[lambda i: seen.update({i.step: i.losses})])
        return seen

    plain = losses()
    assert losses(**{"evaluation.every": 1, "evaluation.samples": 8, "evaluation.metrics": ["rprecision", "attributes"]}
                  ) == plain


def test_tensorboard_tags_of_the_scores() -> None:
    assert scalar_tag("eval/fid") == "eval/fid" and scalar_tag("eval/rprecision_std") == "eval/rprecision_std"


# ------------------------------------------------------------------------------------ best.pt by direction
class PlantedEvaluator:
    """Stands in for evaluation.evaluate.Evaluator: the scores of ``SCORES[metric][step]``."""

    SCORES: dict[str, dict[int, float]] = {}

    def __init__(self, bundle, data, options, **kwargs) -> None:
        self.bundle, self.options = bundle, options

    def run(self, abort=None, started=None) -> EvalResult:
        step = self.bundle.step
        metrics = {name: ({"fid": self.SCORES[name][step]} if name == "fid" else {"mean": self.SCORES[name][step]})
                   for name in self.options.metrics}
        return EvalResult(metrics=metrics, checkpoint=Path(""), data=Path(""), num_samples=1, image_size=32, seed=0,
                          seconds=0.0, step=step)

    def manifest(self, checkpoint, step, epoch) -> dict[str, Any]:
        return {"checkpoint": {"path": str(checkpoint), "step": step}}


@pytest.fixture()
def planted(monkeypatch, tmp_path):
    monkeypatch.setattr(train_eval, "Evaluator", PlantedEvaluator)
    weights = tmp_path / "inception.pth"  # the resolver's file check is not under test here
    weights.write_bytes(b"x")
    monkeypatch.setattr("attngan_cli.training.resolve.check_inception_weights", lambda p: Path(p))
    return weights


def _train(shapes_h5, damsm_path, runs: Path, weights: Path, best: str, resume: Path | None = None,
           run: RunDir | None = None, **over: Any) -> Path:
    settings = tiny_train_settings(shapes_h5, damsm_path, resume=resume, **{
        "evaluation.every": 2, "evaluation.metrics": ["rprecision", "fid"], "evaluation.best_metric": best,
        "evaluation.inception_weights": str(weights), "tensorboard": False, "snapshot_every": 0, **over})
    return train_gan(settings, run or RunDir.create(runs, "a", "train")).parent


@pytest.mark.parametrize(("metric", "best_step"), [("fid", 6), ("rprecision", 4)])
def test_best_pt_follows_the_direction_of_its_metric(shapes_h5, damsm_path, tmp_path, planted, metric, best_step):
    PlantedEvaluator.SCORES = {"fid": {2: 30.0, 4: 50.0, 6: 20.0, 8: 25.0},  # lower is better: step 6
                               "rprecision": {2: 0.2, 4: 0.6, 6: 0.1, 8: 0.5}}  # higher is better: step 4
    run = _train(shapes_h5, damsm_path, tmp_path, planted, metric)
    best = json.loads((run / "best.json").read_text())
    assert (best["metric"], best["step"]) == (metric, best_step)
    assert best["value"] == PlantedEvaluator.SCORES[metric][best_step]
    assert load_checkpoint(run / "best.pt").step == best_step
    assert [r["eval/best"] for r in _evals(run)][-1] == best["value"]
    assert [r["eval/fid"] for r in _evals(run)] == [30.0, 50.0, 20.0, 25.0]


def test_resume_keeps_a_better_best(shapes_h5, damsm_path, tmp_path, planted):
    PlantedEvaluator.SCORES = {"fid": dict.fromkeys(range(2, 9, 2), 1.0),
                               "rprecision": {2: 0.2, 4: 0.6, 6: 0.4, 8: 0.5}}
    first = _train(shapes_h5, damsm_path, tmp_path, planted, "rprecision", max_steps=4)
    assert load_checkpoint(first / "final.pt").extra["eval_best"]["step"] == 4
    # a new run directory: the earlier best.pt comes along and is not replaced by the worse steps 6 and 8
    second = _train(shapes_h5, damsm_path, tmp_path, planted, "rprecision", resume=first, max_steps=8)
    assert second != first
    assert load_checkpoint(second / "best.pt").step == 4
    assert json.loads((second / "best.json").read_text())["value"] == 0.6
    assert [r["eval/best"] for r in _evals(second)] == [0.6, 0.6]
    # continued in the same directory (as the demo does): its best.pt stays too
    step4 = tmp_path / "step4.pt"
    shutil.copyfile(first / "final.pt", step4)
    before = _sha(first / "best.pt")
    _train(shapes_h5, damsm_path, tmp_path, planted, "rprecision", resume=first / "final.pt", run=RunDir(first),
           max_steps=8)
    assert _sha(first / "best.pt") == before
    # ... and a better score replaces it
    PlantedEvaluator.SCORES["rprecision"][8] = 0.9
    third = _train(shapes_h5, damsm_path, tmp_path, planted, "rprecision", resume=step4, max_steps=8)
    assert load_checkpoint(third / "best.pt").step == 8


# ------------------------------------------------------------------------------------ checks up front
@pytest.mark.parametrize(("over", "message"), [
    ({"evaluation.every": 2, "evaluation.metrics": ["fid"]}, "--eval-inception-weights"),
    ({"evaluation.every": 2, "evaluation.metrics": ["rprecision", "bleu-4"]}, "--eval-metrics: unknown metric"),
    ({"evaluation.every": 2, "evaluation.best_metric": "fid"}, "--best-metric fid"),
    ({"evaluation.every": 2, "evaluation.split": "val"}, "--eval-split val"),
    ({"evaluation.samples": 100}, "--eval-every N"),
    ({"evaluation.every": 2, "evaluation.encoders": "/nonexistent/damsm.pt"}, "/nonexistent/damsm.pt"),
])
def test_eval_settings_are_checked_before_training(shapes_h5, damsm_path, over, message):
    with pytest.raises(AttnGANError, match=message.replace("(", r"\(")):
        tiny_train_settings(shapes_h5, damsm_path, **over)


def test_a_missing_split_is_named_before_training(shapes_h5, damsm_path, tmp_path):
    from attngan_cli.data.shapes import make_shapes

    no_test = make_shapes(tmp_path / "train-only.h5", n_train=32, n_test=0, image_size=40, seed=0)
    with pytest.raises(InputError, match="no test images"):
        tiny_train_settings(no_test, damsm_path, **{"evaluation.every": 2})


def test_cli_flags(shapes_h5, damsm_path, tmp_path, planted):
    PlantedEvaluator.SCORES = {"rprecision": dict.fromkeys(range(1, 9), 0.5)}
    res = runner.invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--preset", "shapes", "--stages", "2",
                              "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--max-steps", "2", "--device", "cpu",
                              "--no-tensorboard", "--runs", str(tmp_path / "runs"), "--eval-every", "2",
                              "--eval-metrics", "RPrecision", "--eval-samples", "30", "--quiet"])
    assert res.exit_code == 0, res.output
    run = next((tmp_path / "runs").iterdir())
    ev = json.loads((run / "config.json").read_text())["evaluation"]
    assert (ev["every"], ev["metrics"], ev["samples"], ev["best_metric"]) == (2, ["rprecision"], 30, "rprecision")
    assert (run / "best.pt").is_file()
    res = runner.invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--preset", "shapes", "--device", "cpu",
                              "--runs", str(tmp_path / "runs2"), "--eval-metrics", "fid", "--quiet"])
    assert res.exit_code != 0 and "--eval-every" in res.output and not (tmp_path / "runs2").exists()


def test_the_training_speed_leaves_the_evaluation_out(monkeypatch):
    from types import SimpleNamespace

    from attngan_cli.training import loop as loop_module
    from attngan_cli.training.loop import StatsLog, StepInfo

    clock = iter([100.0, 107.0, 107.0])  # StatsLog made at 100 s; the flush after one step at 107 s
    monkeypatch.setattr(loop_module.time, "perf_counter", lambda: next(clock))
    records: list[dict[str, Any]] = []
    fake = SimpleNamespace(task=SimpleNamespace(batch_size=2), state=SimpleNamespace(step=1), log_stats=records.append)
    stats = StatsLog(every=1)
    stats.exclude(5.0)  # 5 of the 7 seconds went to an evaluation
    stats.on_step(fake, StepInfo(1, 0, {"g": 1.0}))
    assert records[0]["images_per_s"] == pytest.approx(2 / 2.0)
