"""Bad input to train, pretrain, sample and the checkpoint loader: one clear line, exit code 1, and no file
created or damaged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from _sample_fixtures import make_generator_checkpoint
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config.presets import make_pretrain_config
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.errors import CheckpointError
from attngan_cli.data.h5 import read_info
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint, save_checkpoint

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def damsm_file(shapes_h5: Path, tmp_path_factory) -> Path:
    words = list(read_info(shapes_h5).vocab.words)
    cfg = make_pretrain_config("shapes", {"dataset": str(shapes_h5), "text.vocab_size": len(words)})
    return save_checkpoint(Checkpoint(kind="damsm", config=to_dict(cfg), vocab=words, state={}),
                           tmp_path_factory.mktemp("damsm") / "damsm.pt")


@pytest.fixture(scope="module")
def other_vocab_damsm(shapes_h5: Path, tmp_path_factory) -> Path:
    words = list(read_info(shapes_h5).vocab.words)
    words = words[:1] + sorted(words[1:], reverse=True)
    cfg = make_pretrain_config("shapes", {"dataset": str(shapes_h5), "text.vocab_size": len(words)})
    return save_checkpoint(Checkpoint(kind="damsm", config=to_dict(cfg), vocab=words, state={}),
                           tmp_path_factory.mktemp("other") / "other.pt")


@pytest.mark.parametrize("args, message", [
    (["--lambda", "-1"], "--lambda (lambda_damsm) must be >= 0, got -1"),
    (["--lr-g", "-1"], "--lr-g (lr_g) must be > 0, got -1"),
    (["--lr-d", "0"], "--lr-d (lr_d) must be > 0, got 0"),
    (["--words", "0"], "--words (words) must be >= 1, got 0"),
    (["--max-minutes", "-5"], "--max-minutes (max_minutes) must be >= 0"),
    (["--keep-last", "-1"], "--keep-last (keep_last) must be >= 0"),
    (["--batch-size", "0"], "--batch-size (batch_size) must be >= 1"),
    (["--stages", "5"], "--stages (generator.stages) must be in [1, 4], got 5"),
    (["--color-consistency", "-1"], "--color-consistency (color_consistency) must be >= 0"),
    (["--precision", "fp8"], "--precision (precision) must be one of auto, fp32, bf16, fp16, got 'fp8'"),
])
def test_train_numbers_are_checked_before_any_work(shapes_h5, damsm_file, tmp_path, args, message):
    runs = tmp_path / "runs"
    res = runner.invoke(app, ["train", str(shapes_h5), "--encoders", str(damsm_file), "--runs", str(runs), *args])
    assert res.exit_code == 1, res.output
    assert message in _flat(res.output) and "Traceback" not in res.output
    assert not runs.exists()


@pytest.mark.parametrize("args, message", [
    (["--lr", "-0.1"], "--lr (lr) must be > 0"),
    (["--epochs", "0"], "--epochs (epochs) must be >= 1"),
    (["--max-minutes", "-1"], "--max-minutes (max_minutes) must be >= 0"),
    (["--image-encoder", "resnet"], "--image-encoder (image.backbone) must be one of inception-v3, compact, got 'resnet'"),
    (["--grad-accum", "0"], "--grad-accum (grad_accum) must be >= 1, got 0"),
    (["--model", "captioner", "--lr", "0"], "--lr (lr) must be > 0, got 0.0"),
])
def test_pretrain_numbers_are_checked_before_any_work(shapes_h5, tmp_path, args, message):
    runs = tmp_path / "runs"
    res = runner.invoke(app, ["pretrain", str(shapes_h5), "--runs", str(runs), *args])
    assert res.exit_code == 1, res.output
    assert message in _flat(res.output)
    assert not runs.exists()


def test_encoders_of_another_vocabulary_fail_before_a_run_directory(shapes_h5, other_vocab_damsm, tmp_path):
    runs = tmp_path / "runs"
    res = runner.invoke(app, ["train", str(shapes_h5), "--encoders", str(other_vocab_damsm), "--runs", str(runs)])
    assert res.exit_code == 1
    assert "vocabulary of checkpoint" in _flat(res.output) and "other.pt" in _flat(res.output)
    assert not runs.exists()


# ---------------------------------------------------------------------------------------------- sample
@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    return make_generator_checkpoint(tmp_path_factory.mktemp("g") / "G.pt", stages=2)


def _sample(generator: Path, out: Path, *extra: str):
    return runner.invoke(app, ["sample", "this bird is red", "-c", str(generator), "-o", str(out), "--device", "cpu",
                               "-q", *extra])


def test_sample_refuses_a_folder_with_files_unless_overwrite(generator, tmp_path):
    out = tmp_path / "out"
    assert _sample(generator, out, "--n", "3").exit_code == 0
    (out / "notes.txt").write_text("mine")
    (out / "captions_back.jsonl").write_text("{}\n")  # as an earlier `sample --caption-back` leaves it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = _sample(generator, out)
    assert res.exit_code == 1 and "is not empty" in _flat(res.output) and "--overwrite" in _flat(res.output)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    res = _sample(generator, out, "--overwrite")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["c00000-s00-16.png", "c00000-s00-8.png", "captions.jsonl", "notes.txt"]  # old samples gone
    assert (out / "notes.txt").read_text() == "mine"


def test_sample_out_under_a_file_or_unwritable(generator, tmp_path, monkeypatch):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for out in (plain, plain / "sub"):
        res = _sample(generator, out)
        assert res.exit_code == 1 and "is a file" in _flat(res.output) and "Traceback" not in res.output
        assert plain.read_text() == "x"
    # root ignores permission bits, so the unwritable (existing, empty) folder is simulated
    (tmp_path / "ro").mkdir()
    real_access = os.access  # readable, not writable: a read-only folder as a normal user sees it
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p).name == "ro" and mode & os.W_OK
                        else real_access(p, mode))
    res = _sample(generator, tmp_path / "ro")
    assert res.exit_code == 1 and f"no permission to create files in {tmp_path / 'ro'}" in _flat(res.output)
    assert list((tmp_path / "ro").iterdir()) == []


# ---------------------------------------------------------------------------------------------- checkpoints
def test_a_checkpoint_without_state_is_named(generator, tmp_path):
    ck = load_checkpoint(generator)
    ck.state = {"text_encoder": ck.state["text_encoder"]}  # no "generator"
    bad = save_checkpoint(ck, tmp_path / "nostate.pt")
    res = _sample(bad, tmp_path / "out")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "nostate.pt" in _flat(res.output) and "'generator'" in _flat(res.output)


def test_a_state_dict_mismatch_names_tensors_and_shapes(generator, tmp_path):
    ck = load_checkpoint(generator)
    state = dict(ck.state["generator"])
    key = next(k for k, v in state.items() if v.dim() == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    ck.state = {**ck.state, "generator": state}
    bad = save_checkpoint(ck, tmp_path / "shape.pt")
    res = _sample(bad, tmp_path / "out")
    assert res.exit_code == 1
    assert f"{key}: (1, 1, 1, 1) there" in _flat(res.output)


def test_the_stored_vocabulary_hash_is_checked(generator, tmp_path):
    payload = torch.load(generator, weights_only=True)
    payload["vocab"] = list(payload["vocab"])
    payload["vocab"][3] = "green"  # altered after saving: the stored vocab_sha256 no longer matches
    torch.save(payload, tmp_path / "altered.pt")
    with pytest.raises(CheckpointError, match="vocab_sha256"):
        load_checkpoint(tmp_path / "altered.pt")


def test_a_refused_pickle_gives_no_advice_to_disable_safe_loading(tmp_path):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (str(tmp_path / "pwned"),))

    torch.save({"format": "attngan", "kind": "gan", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(err.value) and "refused" in str(err.value)
    assert not (tmp_path / "pwned").exists()
