"""Foundation: atomic checkpoints, run directories, devices, progress (configs: tests/config/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from attngan_cli import __version__
from attngan_cli.config.presets import make_train_config
from attngan_cli.config.schema import TrainConfig
from attngan_cli.config.serialize import from_dict, to_dict
from attngan_cli.core.device import autocast, resolve_device, rng_state, seed_everything, set_rng_state
from attngan_cli.core.errors import AttnGANError, CheckpointError, ConfigMismatchError, DeviceError
from attngan_cli.core.fileio import atomic_path, atomic_write_json, read_jsonl
from attngan_cli.core.progress import NullProgress, track
from attngan_cli.storage.checkpoints import (
    Checkpoint,
    check_checkpoint_config,
    check_vocab,
    load_checkpoint,
    save_checkpoint,
)
from attngan_cli.storage.rundirs import RunDir


# ---------------------------------------------------------------- checkpoints
def _ckpt() -> Checkpoint:
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(lin.parameters())
    lin(torch.randn(4, 3)).sum().backward()
    opt.step()
    return Checkpoint(kind="gan", config=to_dict(make_train_config("shapes")), state={"generator": lin.state_dict()},
                      vocab=["<end>", "red", "circle"], optim={"g": opt.state_dict()}, step=7, epoch=2, rng=rng_state())


def test_checkpoint_round_trip_is_self_describing(tmp_path: Path) -> None:
    ck = _ckpt()
    path = save_checkpoint(ck, tmp_path / "a.pt")
    back = load_checkpoint(path, kind="gan")
    assert back.kind == "gan" and back.step == 7 and back.epoch == 2 and back.vocab == ck.vocab
    assert back.package_version == __version__ and back.format_version == 1
    assert back.vocab_sha256 == ck.vocab_sha256
    assert from_dict(TrainConfig, back.config) == make_train_config("shapes")
    for k, v in ck.state["generator"].items():
        assert torch.equal(back.state["generator"][k], v)
    assert back.optim["g"]["state"][0]["exp_avg"].shape == (2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temp files left behind


def test_checkpoint_errors_name_the_problem(tmp_path: Path) -> None:
    path = save_checkpoint(_ckpt(), tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="'gan' checkpoint, but a 'damsm' checkpoint is needed"):
        load_checkpoint(path, kind="damsm")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable attngan checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="attngan import official"):
        load_checkpoint(tmp_path / "bare.pth")
    payload = _ckpt().to_payload()
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_checkpoint_config_and_vocab_mismatch_name_the_field(tmp_path: Path) -> None:
    ck = load_checkpoint(save_checkpoint(_ckpt(), tmp_path / "a.pt"))
    requested = make_train_config("shapes", {"generator.ngf": 8})  # the config dataclass, as the callers pass
    check_checkpoint_config(ck, make_train_config("shapes"), ["generator.ngf", "generator.stages"])
    with pytest.raises(ConfigMismatchError, match=r"generator\.ngf is 16 there but 8 was requested"):
        check_checkpoint_config(ck, requested, ["generator.stages", "generator.ngf"])
    check_vocab(ck, ["<end>", "red", "circle"])
    with pytest.raises(ConfigMismatchError, match="index 2: 'circle' vs 'square'"):
        check_vocab(ck, ["<end>", "red", "square"])
    with pytest.raises(ConfigMismatchError, match="3 words there, 2 in the dataset"):
        check_vocab(ck, ["<end>", "red"])


def test_rng_state_round_trip() -> None:
    seed_everything(3)
    state = rng_state()
    a = (torch.rand(3), __import__("numpy").random.rand(2).tolist(), __import__("random").random())
    set_rng_state(state)
    b = (torch.rand(3), __import__("numpy").random.rand(2).tolist(), __import__("random").random())
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]


# ---------------------------------------------------------------- run dirs, io
def test_run_dirs_are_numbered_and_never_reused(tmp_path: Path) -> None:
    a = RunDir.create(tmp_path, "shapes", "train")
    b = RunDir.create(tmp_path, "cub", "pretrain")
    (tmp_path / "notes").mkdir()
    c = RunDir.create(tmp_path, "my data/set", "train")
    assert [a.path.name, b.path.name, c.path.name] == ["00000-shapes-train", "00001-cub-pretrain", "00002-my-data-set-train"]
    a.write_config({"x": 1})
    a.log_stats({"step": 1, "loss": 0.5})
    a.log_stats({"step": 2, "loss": torch.tensor(0.25)})
    assert json.loads(a.file("config.json").read_text()) == {"x": 1}
    assert read_jsonl(a.file("stats.jsonl")) == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]


def test_atomic_path_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"ok": True})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"ok": True}
    assert os.listdir(tmp_path) == ["out.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600


# ---------------------------------------------------------------- device, precision, progress
def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="not understood"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with autocast(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(AttnGANError, match="fp16 needs a CUDA device"):
        autocast(torch.device("cpu"), "fp16")


def test_track_reports_progress() -> None:
    prog = NullProgress()
    assert list(track(prog, range(5), "counting")) == [0, 1, 2, 3, 4]
    assert prog.tasks[0].description == "counting" and prog.tasks[0].completed == 5 and prog.tasks[0].total == 5


def test_auto_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU without AVX-512 BF16 / AMX, bf16 is emulated (80x slower matmuls measured on an AVX2 CPU):
    the demo's `auto` must then choose fp32."""
    from attngan_cli.core import device as dev

    monkeypatch.delenv(dev.AUTO_PRECISION_ENV, raising=False)  # the suite pins auto to fp32 (conftest)
    cpu = torch.device("cpu")
    for flags, expected in (("flags : fpu avx2 avx512f", "fp32"), ("flags : fpu avx2 avx512f avx512_bf16", "bf16"),
                            ("flags : fpu amx_bf16 amx_tile", "bf16")):
        monkeypatch.setattr(dev.Path, "read_text", lambda self, flags=flags: flags)
        assert dev.resolve_precision("auto", cpu) == expected, flags
    assert dev.resolve_precision("fp32", cpu) == "fp32" and dev.resolve_precision("bf16", cpu) == "bf16"
    # ATTNGAN_AUTO_PRECISION decides what auto means, whatever the hardware; a bad value is named
    monkeypatch.setenv(dev.AUTO_PRECISION_ENV, "FP32")
    assert dev.resolve_precision("auto", cpu) == "fp32" and dev.resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setenv(dev.AUTO_PRECISION_ENV, "half")
    with pytest.raises(AttnGANError, match="ATTNGAN_AUTO_PRECISION='half'"):
        dev.resolve_precision("auto", cpu)


def test_auto_precision_on_cuda_is_bf16_only_where_the_gpu_computes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A V100 / T4 (compute capability 7.x) emulates bf16, far slower than fp32: `auto` chooses fp32 there
    and bf16 from Ampere (8.0) on, with PyTorch's own query and with a PyTorch that lacks its argument."""
    import types

    from attngan_cli.core import device as dev

    monkeypatch.delenv(dev.AUTO_PRECISION_ENV, raising=False)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)  # emulation works
    gpu = torch.device("cuda:0")
    for capability, expected in (((7, 0), "fp32"), ((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda d, c=capability: types.SimpleNamespace(major=c[0], minor=c[1]))
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None, c=capability: c)
        assert torch.cuda.is_bf16_supported(), "the mocked GPU emulates bf16"
        assert dev.resolve_precision("auto", gpu) == expected, capability
        with monkeypatch.context() as old_torch:
            old_torch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # no including_emulation
            assert dev.resolve_precision("auto", gpu) == expected, ("without including_emulation", capability)
    assert dev.resolve_precision("bf16", gpu) == "bf16" and dev.resolve_precision("fp32", gpu) == "fp32"


def test_read_jsonl_strict_and_lenient(tmp_path: Path) -> None:
    """Run logs are read leniently (a run killed mid-write leaves a torn last line); other files strictly."""
    from attngan_cli.core.fileio import read_jsonl

    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 10}\n\n[1, 2]\n{"step": 20}\n{"step": 3', encoding="utf-8")
    assert read_jsonl(path, lenient=True) == [{"step": 10}, {"step": 20}]
    assert read_jsonl(tmp_path / "missing.jsonl", lenient=True) == []
    with pytest.raises(ValueError):
        read_jsonl(path)
    with pytest.raises(FileNotFoundError):
        read_jsonl(tmp_path / "missing.jsonl")
