"""`attngan demo` end to end at a tiny budget: every phase, every output, the summary, and continuation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attngan_cli.apps.demo import PHASES, DemoOptions, run_demo
from attngan_cli.cli import app
from attngan_cli.core.errors import TrainingAborted
from attngan_cli.core.progress import NullProgress
from attngan_cli.storage.checkpoints import load_checkpoint

runner = CliRunner()

TINY = ["--minutes", "0.4", "--n-train", "160", "--eval-samples", "64", "--seed", "3"]


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "d"
    res = runner.invoke(app, ["demo", "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_demo_runs_every_phase_and_writes_every_output(demo_out: tuple[Path, str]) -> None:
    out, output = demo_out
    state = json.loads((out / "demo.json").read_text())
    assert list(state["phases"]) == list(PHASES)
    assert (out / "data" / "shapes.h5").is_file()
    for phase in ("pretrain", "train"):
        rec = state["phases"][phase]
        assert Path(rec["checkpoint"]).is_file() and Path(rec["checkpoint"]).name == "final.pt"
        assert (Path(rec["run"]) / "config.json").is_file() and (Path(rec["run"]) / "stats.jsonl").is_file()
    assert (out / "attend.png").is_file() and (out / "attend.json").is_file()
    assert (out / "samples.png").is_file()
    assert len(list((out / "samples").glob("c00000-s*-64.png"))) == 4
    metrics = state["phases"]["eval"]["metrics"]
    assert 0.0 <= metrics["rprecision"]["mean"] <= 1.0
    assert {"bg_color", "color", "shape", "position", "size"} <= set(metrics["attributes"])
    # the summary table and the figure paths
    assert "attngan demo" in output and "rprecision.mean" in output
    # under a time budget the log says so, not "training 125000 steps"
    flat = " ".join(output.split())
    assert "training for" in flat and "minutes (at most" in flat, flat[:2000]
    assert f"attention figure: {out / 'attend.png'}" in output.replace("\n", "")
    assert f"attngan serve -c {state['phases']['train']['run']}" in output.replace("\n", "")


def test_demo_continues_instead_of_redoing(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    before = json.loads((out / "demo.json").read_text())
    runs_before = sorted(p.name for p in (out / "runs").iterdir())
    res = runner.invoke(app, ["demo", "--out", str(out), *TINY])
    assert res.exit_code == 0, res.output
    after = json.loads((out / "demo.json").read_text())
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs_before
    assert after["phases"]["train"] == before["phases"]["train"]
    assert after["phases"]["pretrain"] == before["phases"]["pretrain"]


def test_demo_refuses_a_folder_made_with_other_settings(demo_out: tuple[Path, str]) -> None:
    out, _ = demo_out
    res = runner.invoke(app, ["demo", "--out", str(out), *TINY[:-1], "4"])
    assert res.exit_code == 1
    assert "seed: 3 -> 4" in res.output


@pytest.mark.parametrize("args, message", [(["--minutes", "-1"], "--minutes must be more than 0"),
                                           (["--minutes", "0"], "--minutes must be more than 0"),
                                           (["--n-train", "0"], "--n-train must be at least 1"),
                                           (["--eval-samples", "0"], "--eval-samples must be at least 1")])
def test_demo_rejects_bad_budgets_before_writing_anything(tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), *args])
    assert res.exit_code == 1 and message in res.output
    assert not (tmp_path / "d").exists()


class _CountingProgress(NullProgress):
    """Silent progress that also counts each bar's advances (a resumed loop's bar starts at its step)."""

    def task(self, description, total=None, unit="it"):
        bar = super().task(description, total, unit)
        bar.advances = 0
        advance = bar.advance

        def counted(n=1, **fields):
            bar.advances += n
            advance(n, **fields)

        bar.advance = counted
        return bar


def _bar(progress: _CountingProgress, description: str):
    return next((t for t in progress.tasks if t.description == description), None)


def test_an_interrupted_demo_continues_its_train_run(tmp_path: Path) -> None:
    """Train stopped after step 1 of 3 (the `abort` poll, as Ctrl-C would): the next demo resumes that run
    directory from step 1 (2 more steps, not 3) and finishes it with final.pt. A step budget and a large
    time budget keep the test independent of the machine's speed; 32 training images are one batch."""
    opts = DemoOptions(out=tmp_path / "d", minutes=30, device="cpu", precision="fp32", seed=3, n_train=32,
                       n_test=20, eval_samples=10, max_steps=3)
    first = _CountingProgress()

    def abort() -> bool:
        bar = _bar(first, "train")
        return bar is not None and bar.completed >= 1

    with pytest.raises(TrainingAborted, match="step 1"):
        run_demo(opts, progress=first, abort=abort)
    runs = tmp_path / "d" / "runs"
    (run,) = runs.glob("*-train")
    assert (run / "interrupted.pt").is_file() and not (run / "final.pt").exists()
    assert set(json.loads((tmp_path / "d" / "demo.json").read_text())["phases"]) == {"prep", "pretrain"}
    runs_before = sorted(p.name for p in runs.iterdir())

    second = _CountingProgress()
    result = run_demo(opts, progress=second)
    assert sorted(p.name for p in runs.iterdir()) == runs_before  # no new run directory
    assert result.phases["train"]["run"] == str(run)
    assert Path(result.phases["train"]["checkpoint"]) == run / "final.pt"
    assert load_checkpoint(run / "final.pt", kind="gan").step == 3
    bar = _bar(second, "train")
    assert (bar.advances, bar.completed) == (2, 3)  # resumed at step 1
    assert _bar(second, "pretrain DAMSM") is None  # the finished pretrain phase was reused
    assert list(result.phases) == list(PHASES)


def test_an_unfinished_train_run_of_other_encoders_is_not_continued(tmp_path: Path) -> None:
    """A train run left from an earlier pretraining cannot resume with new encoders (its frozen text
    encoder differs): the demo starts a new run instead of failing."""
    from attngan_cli.apps.demo import _unfinished_run

    runs = tmp_path / "runs"
    for name, enc in (("00001-shapes-train", tmp_path / "old" / "final.pt"),
                      ("00003-shapes-train", tmp_path / "new" / "final.pt")):
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text(json.dumps({"encoders": str(enc)}))
        (runs / name / "interrupted.pt").write_bytes(b"x")
    assert _unfinished_run(runs, "train", tmp_path / "new" / "final.pt") == runs / "00003-shapes-train"
    (runs / "00003-shapes-train" / "interrupted.pt").unlink()
    assert _unfinished_run(runs, "train", tmp_path / "new" / "final.pt") is None
    assert _unfinished_run(runs, "train", tmp_path / "old" / "final.pt") == runs / "00001-shapes-train"
    assert _unfinished_run(runs, "pretrain") is None
