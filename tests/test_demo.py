"""`attngan demo` end to end at a tiny budget: every phase, every output, the summary, and continuation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.demo import PHASES

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
    assert f"attention figure: {out / 'attend.png'}" in output.replace("\n", "")


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
