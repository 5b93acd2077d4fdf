"""Bad numbers and paths given to train, pretrain, eval, sample and demo: one line naming the option, exit
code 1, and nothing created (no run directory, no output folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sample_fixtures import make_generator_checkpoint
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config.fields import bounded, validate
from attngan_cli.config.schema import TrainConfig
from attngan_cli.core.errors import CheckpointError, FieldError
from attngan_cli.data.h5 import read_info
from attngan_cli.storage.checkpoints import load_checkpoint

runner = CliRunner()
SEED_MAX = 2**32 - 1  # numpy.random.seed takes seeds below 2**32


def _flat(text: str) -> str:
    return " ".join(text.split())


def _refused(res, message: str) -> None:
    out = _flat(res.output)
    assert res.exit_code == 1, res.output
    assert message in out and "Traceback" not in res.output, res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1, res.output


def _train(shapes_h5: Path, damsm: Path, runs: Path, *args: str):
    return runner.invoke(app, ["train", str(shapes_h5), "--encoders", str(damsm), "--runs", str(runs),
                               "--device", "cpu", "-q", *args])


def _pretrain(shapes_h5: Path, runs: Path, *args: str):
    return runner.invoke(app, ["pretrain", str(shapes_h5), "--runs", str(runs), "--device", "cpu", "-q", *args])


# ------------------------------------------------------------------------------------------ non-finite
def test_validate_refuses_nan_and_inf_in_every_float_field():
    from dataclasses import dataclass, field

    @dataclass
    class Settings:
        free: float = 1.0  # no check of its own
        ranged: float = bounded(1.0, low=0)
        pair: tuple[float, float] = field(default=(0.5, 0.5))

    for name, value, problem in [("free", float("inf"), "must be a finite number, got inf"),
                                 ("free", float("nan"), "must be a finite number, got nan"),
                                 ("ranged", float("inf"), "must be a finite number, got inf"),
                                 ("ranged", float("-inf"), "must be a finite number, got -inf"),
                                 ("pair", (0.5, float("nan")), "must hold finite numbers, got [0.5, nan]")]:
        with pytest.raises(FieldError) as e:
            validate(Settings(**{name: value}))
        assert (e.value.field, e.value.problem) == (name, problem)
    with pytest.raises(FieldError, match="generator.ngf"):
        validate(TrainConfig(generator=type(TrainConfig().generator)(ngf=0)))


@pytest.mark.parametrize("args, message", [
    (["--lr-d", "inf"], "--lr-d (lr_d) must be a finite number, got inf"),
    (["--lr-g", "nan"], "--lr-g (lr_g) must be a finite number, got nan"),
    (["--lambda", "inf"], "--lambda (lambda_damsm) must be a finite number, got inf"),
    (["--max-minutes", "inf"], "--max-minutes (max_minutes) must be a finite number, got inf"),
    (["--seed", str(SEED_MAX + 1)], f"--seed (seed) must be in [0, {SEED_MAX}], got {SEED_MAX + 1}"),
    (["--seed", str(2**70)], f"--seed (seed) must be in [0, {SEED_MAX}], got {2**70}"),
    (["--seed", "-1"], f"--seed (seed) must be in [0, {SEED_MAX}], got -1"),
])
def test_train_refuses_non_finite_numbers_and_huge_seeds(shapes_h5, damsm_path, tmp_path, args, message):
    runs = tmp_path / "runs"
    _refused(_train(shapes_h5, damsm_path, runs, *args), message)
    assert not runs.exists()


@pytest.mark.parametrize("args, message", [
    (["--lr", "inf"], "--lr (lr) must be a finite number, got inf"),
    (["--lr", "nan"], "--lr (lr) must be a finite number, got nan"),
    (["--model", "captioner", "--lr", "inf"], "--lr (lr) must be a finite number, got inf"),
    (["--seed", str(2**64)], f"--seed (seed) must be in [0, {SEED_MAX}], got {2**64}"),
])
def test_pretrain_refuses_non_finite_numbers_and_huge_seeds(shapes_h5, tmp_path, args, message):
    runs = tmp_path / "runs"
    _refused(_pretrain(shapes_h5, runs, *args), message)
    assert not runs.exists()


# ------------------------------------------------------------------------------------------ batch, words
def test_train_words_beyond_the_longest_caption(shapes_h5, damsm_path, tmp_path):
    runs = tmp_path / "runs"
    longest = read_info(shapes_h5).max_len
    _refused(_train(shapes_h5, damsm_path, runs, "--words", "100000"),
             f"--words 100000 is more than the longest caption of {shapes_h5} ({longest} words): give at most {longest}")
    assert not runs.exists()


@pytest.mark.parametrize("model, message", [
    ("damsm", "--batch-size must be at least 2 (the DAMSM losses score each caption against the other images"),
    ("captioner", "--batch-size must be at least 2 (the captioner's image encoder ends in BatchNorm"),
])
def test_pretrain_batch_of_one(shapes_h5, tmp_path, model, message):
    runs = tmp_path / "runs"
    _refused(_pretrain(shapes_h5, runs, "--model", model, "--batch-size", "1"), message)
    assert not runs.exists()


@pytest.mark.parametrize("model", ["damsm", "captioner"])
def test_pretrain_batch_larger_than_the_split(shapes_h5, tmp_path, model):
    runs = tmp_path / "runs"
    n = read_info(shapes_h5).n_train
    _refused(_pretrain(shapes_h5, runs, "--model", model, "--batch-size", str(n + 1)),
             f"--batch-size {n + 1} is larger than the {n} training images of {shapes_h5}")
    assert not runs.exists()


def test_sync_bn_in_one_process_is_refused(shapes_h5, damsm_path, tmp_path):
    runs = tmp_path / "runs"
    _refused(_train(shapes_h5, damsm_path, runs, "--sync-bn"), "--sync-bn needs torchrun on CUDA devices")
    assert not runs.exists()


# ------------------------------------------------------------------------------------------ paths
def test_runs_that_is_a_file(shapes_h5, damsm_path, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    _refused(_train(shapes_h5, damsm_path, plain), f"--runs {plain} is a file, not a directory")
    _refused(_pretrain(shapes_h5, plain / "sub"), f"--runs {plain / 'sub'}: {plain} is a file, not a directory")
    _refused(_pretrain(shapes_h5, plain, "--model", "captioner"), f"--runs {plain} is a file, not a directory")
    assert plain.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return make_generator_checkpoint(tmp_path_factory.mktemp("g") / "G.pt", stages=2)


def _eval(generator: Path, shapes_h5: Path, *args: str):
    return runner.invoke(app, ["eval", "-c", str(generator), "--data", str(shapes_h5), "-m", "rprecision",
                               "--device", "cpu", "-n", "4", "-q", *args])


@pytest.mark.parametrize("args, message", [
    (["--workers", "-1"], "--workers (workers) must be >= 0, got -1"),
    (["--seed", str(SEED_MAX + 1)], f"--seed (seed) must be in [0, {SEED_MAX}], got {SEED_MAX + 1}"),
])
def test_eval_numbers(generator, shapes_h5, tmp_path, args, message):
    before = sorted(generator.parent.iterdir())
    _refused(_eval(generator, shapes_h5, "--save-images", str(tmp_path / "imgs"), *args), message)
    assert sorted(generator.parent.iterdir()) == before and not (tmp_path / "imgs").exists()


def test_eval_save_images_that_is_a_file(generator, shapes_h5, tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    _refused(_eval(generator, shapes_h5, "--save-images", str(plain)), f"--save-images {plain} is a file, not a directory")
    _refused(_eval(generator, shapes_h5, "--save-images", str(plain / "sub")),
             f"--save-images {plain / 'sub'}: {plain} is a file, not a directory")
    assert plain.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


def test_sample_and_demo_seed_is_bounded(generator, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["sample", "a red circle", "-c", str(generator), "-o", str(out), "--device", "cpu",
                              "-q", "--seed", str(2**64)])
    _refused(res, f"--seed (seed) must be in [0, {SEED_MAX}], got {2**64}")
    assert not out.exists()
    res = runner.invoke(app, ["demo", "--out", str(out), "--seed", str(2**64), "-q"])
    _refused(res, f"--seed (seed) must be in [0, {SEED_MAX}], got {2**64}")
    res = runner.invoke(app, ["demo", "--out", str(out), "--minutes", "inf", "-q"])
    _refused(res, "--minutes (minutes) must be a finite number, got inf")
    assert not out.exists()


# ------------------------------------------------------------------------------------------ empty checkpoint
def test_an_empty_checkpoint_is_named(tmp_path, shapes_h5, damsm_path):
    empty = tmp_path / "G.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        load_checkpoint(empty)
    out = tmp_path / "out"
    res = runner.invoke(app, ["sample", "a red circle", "-c", str(empty), "-o", str(out), "--device", "cpu", "-q"])
    _refused(res, f"checkpoint {empty} is empty (0 bytes)")
    runs = tmp_path / "runs"
    _refused(_train(shapes_h5, empty, runs), f"checkpoint {empty} is empty (0 bytes)")
    assert not out.exists() and not runs.exists()
