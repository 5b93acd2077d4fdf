"""Checkpoints written by main at 16b39dc (``format_version`` 1, before the package redesign) still load,
sample, evaluate and resume exactly.

``tests/fixtures/format1/`` holds one tiny checkpoint of every kind (DAMSM, STREAM captioner, and GAN runs
of attngan, stackgan++, mirrorgan, StackGAN Stage-I and Stage-II) and ``expected.pt``: what that code
computed from them (the last stage's images for fixed inputs, the losses of one resumed step, the
R-precision of a tiny evaluation). ``make_with_16b39dc.py.txt`` is the script that made them.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.data.shapes import make_shapes
from attngan_cli.evaluation.evaluate import EvalOptions, evaluate
from attngan_cli.inference.pipeline import generate, load_generator
from attngan_cli.storage.checkpoints import load_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "format1"
GANS = ["attngan", "stackganpp", "mirrorgan", "stackgan1", "stackgan2"]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> Path:
    """The fixtures copied beside the shapes data they were trained on (rebuilt: deterministic in its seed)."""
    root = tmp_path_factory.mktemp("format1")
    for f in FIXTURES.glob("*.pt"):
        shutil.copy(f, root / f.name)
    make_shapes(root / "shapes.h5", n_train=24, n_test=8, image_size=76, seed=0)
    return root


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "expected.pt", weights_only=True)


def test_every_kind_loads_with_format_version_1(legacy):
    kinds = {name: load_checkpoint(legacy / f"{name}.pt").kind for name in ["damsm", "captioner", *GANS]}
    assert kinds == {"damsm": "damsm", "captioner": "captioner", **{g: "gan" for g in GANS}}
    assert all(load_checkpoint(legacy / f"{g}.pt").format_version == 1 for g in GANS)


@pytest.mark.parametrize("name", GANS)
def test_samples_equal_what_the_old_code_drew(legacy, expected, name):
    inputs = expected["inputs"]
    bundle = load_generator(legacy / f"{name}.pt")
    out = generate(bundle, inputs["tokens"], inputs["lengths"], inputs["z"], inputs["eps"])
    want = expected[f"{name}/images"][-1]
    torch.testing.assert_close(out.images[-1], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", GANS)
def test_resumes_with_the_old_codes_losses(legacy, expected, name, tmp_path):
    args = ["train", str(legacy / "shapes.h5"), "--resume", str(legacy / f"{name}.pt"), "--encoders",
            str(legacy / "damsm.pt"), "--max-steps", "3", "--runs", str(tmp_path / "runs"), "--device", "cpu"]
    if name == "mirrorgan":
        args += ["--captioner", str(legacy / "captioner.pt")]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    want = expected[f"{name}/resumed_stats"]
    assert len(stats) == len(want)
    for got, ref in zip(stats, want, strict=True):
        losses = {k: v for k, v in ref.items() if k not in ("images_per_s", "end", "time")}
        assert {k: got[k] for k in losses} == pytest.approx(losses, rel=1e-4, abs=1e-6)
    state = torch.load(run / "final.pt", weights_only=True)["state"]["generator"]
    total = float(sum(v.float().abs().sum() for v in state.values()))
    assert math.isclose(total, expected[f"{name}/resumed_g_abs_sum"], rel_tol=1e-5)


def test_evaluates_as_the_old_code(legacy, expected):
    r = evaluate(legacy / "attngan.pt", legacy / "shapes.h5",
                 EvalOptions(metrics=["rprecision"], num_samples=8, batch_size=4, encoders=legacy / "damsm.pt",
                             rp_folds=1, rp_wrong=3, device="cpu", log_to_run=False))
    assert r.record()["metrics"] == expected["attngan/eval"]["metrics"]
