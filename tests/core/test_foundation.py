"""Foundation: config round-trip and presets, atomic checkpoints, run directories, devices, progress."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from attngan_cli import __version__
from attngan_cli.archs.registry import base_preset, image_sizes, named_preset_names, new_train_config
from attngan_cli.config.schema import (
    PRESETS,
    GeneratorConfig,
    Preset,
    PretrainConfig,
    TrainConfig,
    apply_overrides,
    build_preset,
    default_image_size,
    diff,
    from_dict,
    get_preset,
    make_pretrain_config,
    make_train_config,
    preset_names,
    preset_value,
    to_dict,
)
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


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("preset", preset_names())
def test_config_round_trip_through_json(preset: str) -> None:
    for make, cls in ((make_train_config, TrainConfig), (make_pretrain_config, PretrainConfig)):
        cfg = make(preset)
        again = from_dict(cls, json.loads(json.dumps(to_dict(cfg))))
        assert again == cfg
        assert diff(to_dict(cfg), to_dict(again)) == []


def test_presets_carry_the_official_values() -> None:
    bird = make_train_config("bird")
    assert (bird.generator.stages, bird.generator.base_size, bird.generator.ngf, bird.discriminator.ndf) == (3, 64, 32, 64)
    assert (bird.generator.r_num, bird.words, bird.lambda_damsm, bird.batch_size, bird.epochs) == (2, 18, 5.0, 20, 600)
    coco = make_train_config("coco")
    assert (coco.generator.ngf, coco.discriminator.ndf, coco.generator.r_num, coco.words) == (48, 96, 3, 12)
    assert (coco.lambda_damsm, coco.batch_size, coco.epochs) == (50.0, 14, 120)
    for cfg in (bird, coco):
        assert (cfg.damsm.gamma1, cfg.damsm.gamma2, cfg.damsm.gamma3) == (4.0, 5.0, 10.0)
        assert (cfg.generator.z_dim, cfg.generator.condition_dim, cfg.generator.embedding_dim) == (100, 100, 256)
        assert cfg.lr_g == cfg.lr_d == 2e-4 and cfg.betas == (0.5, 0.999)
    pre = make_pretrain_config("bird")
    assert (pre.batch_size, pre.lr, pre.grad_clip, pre.image.image_size, pre.text.word_dim) == (48, 0.002, 0.25, 299, 300)
    # the official DAMSM caption lengths (cfg/DAMSM/bird.yml 18, coco.yml 15); the GANs': 18 and 12
    assert pre.text.words == 18 and make_pretrain_config("coco").text.words == 15
    assert make_train_config("bird").words == 18 and make_train_config("coco").words == 12
    # the official pretrain_DAMSM.py: batch-statistics BN in the frozen Inception layers, a new Adam per epoch
    for name in ("bird", "coco"):
        p = make_pretrain_config(name)
        assert (p.image.frozen_bn, p.adam_per_epoch, p.image.resize_align_corners) == ("train", True, False), name
    shapes = make_pretrain_config("shapes")
    assert (shapes.image.frozen_bn, shapes.adam_per_epoch) == ("eval", False)
    with pytest.raises(AttnGANError, match="image.frozen_bn must be one of train, eval"):
        make_pretrain_config("bird", {"image.frozen_bn": "batch"})
    assert pre.group_by == [] and make_pretrain_config("coco").group_by == []  # the paper's random batches


def test_overrides_apply_and_unknown_fields_are_named() -> None:
    cfg = make_train_config("bird", {"generator.ngf": 64, "lambda_damsm": 0, "batch_size": None})
    assert cfg.generator.ngf == 64 and cfg.lambda_damsm == 0.0 and cfg.batch_size == 20
    with pytest.raises(ConfigMismatchError, match="generator.nfg"):
        apply_overrides(cfg, {"generator.nfg": 3})
    with pytest.raises(ConfigMismatchError, match="colour"):
        from_dict(TrainConfig, {"colour": 1})
    with pytest.raises(ConfigMismatchError, match="generator.ngf"):
        from_dict(TrainConfig, {"generator": {"ngf": "wide"}})
    with pytest.raises(AttnGANError, match="stages"):
        make_train_config("bird", {"generator.stages": 5})
    with pytest.raises(AttnGANError, match="unknown preset 'flowers'"):
        make_train_config("flowers")


def test_image_sizes_follow_stages() -> None:
    assert image_sizes(GeneratorConfig(stages=4, base_size=64)) == [64, 128, 256, 512]
    assert image_sizes(make_train_config("shapes").generator)[0] == get_preset("shapes").train.generator.base_size


def test_presets_are_typed_and_share_caption_length_and_damsm() -> None:
    assert [*preset_names(), *named_preset_names()] == ["bird", "coco", "shapes", "mirrorgan-bird", "mirrorgan-coco"]
    for name in preset_names():
        p = get_preset(name)
        assert isinstance(p, Preset) and p.name == name == p.train.preset == p.pretrain.preset
        assert p.train == make_train_config(name) and p.pretrain == make_pretrain_config(name)
        assert p.pretrain.damsm == p.train.damsm
        assert p.pretrain.text.words == (15 if "coco" in name else p.train.words)  # coco: its own DAMSM length
        assert p.pretrain.image.image_size == default_image_size(p.pretrain.image.backbone)
    for name in named_preset_names():  # an architecture's named presets start from a dataset preset
        assert new_train_config(name).preset == name
    every = [base_preset(n) for n in [*preset_names(), *named_preset_names()]]
    assert [preset_value(n, "dataset_kind") for n in every] == ["cub", "coco", "shapes", "cub", "coco"]
    assert [preset_value(n, "captions_per_image") for n in every] == [10, 5, 5, 10, 5]
    shapes = make_pretrain_config("shapes")
    assert (shapes.image.backbone, shapes.image.image_size, shapes.image.width, shapes.group_by) == (
        "compact", 64, 16, ["bg_color", "color"])
    get_preset("bird").train.generator.ngf = 1  # a copy: the preset itself does not change
    assert make_train_config("bird").generator.ngf == 32
    with pytest.raises(AttnGANError, match="no value 'words'"):
        preset_value("bird", "words")


def _definition(**changes) -> dict:
    definition = json.loads(json.dumps(PRESETS["shapes"]))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        section = definition
        for part in parents:
            section = section.setdefault(part, {})
        section[last] = value
    return definition


def test_a_misspelled_preset_key_is_an_error_naming_it() -> None:
    assert build_preset("shapes", _definition()) == get_preset("shapes")
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.lamda_damsm"):
        build_preset("x", _definition(lamda_damsm=1.0))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.generator\.ngff"):
        build_preset("x", _definition(generator__ngff=8))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.pretrain\.image\.widht"):
        build_preset("x", _definition(pretrain__image__widht=8))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.captions_per_image: expected int"):
        build_preset("x", _definition(captions_per_image="five"))
    with pytest.raises(AttnGANError, match=r"--stages \(generator.stages\) must be"):  # range checks too
        build_preset("x", _definition(generator__stages=9))
    # the values both jobs share are set once, at the top level
    with pytest.raises(ConfigMismatchError, match=r"pretrain: damsm is shared with training"):
        build_preset("x", _definition(pretrain__damsm={"gamma1": 1.0}))
    # the caption length is shared unless the pretraining sets its own (coco: 15 for the DAMSM, 12 for the GAN)
    assert build_preset("x", _definition(words=7)).pretrain.text.words == 7
    own = build_preset("x", _definition(words=7, pretrain__text__words=5))
    assert (own.pretrain.text.words, own.train.words) == (5, 7)


def test_image_size_follows_the_backbone() -> None:
    assert (default_image_size("inception-v3"), default_image_size("compact")) == (299, 64)
    with pytest.raises(AttnGANError, match="got 'resnet'"):
        default_image_size("resnet")
    with pytest.raises(AttnGANError, match="got 'resnet'"):
        make_pretrain_config("shapes", {"image.backbone": "resnet"})
    # a definition without an image size gets its backbone's; one with a size keeps it
    assert build_preset("x", _definition(pretrain__image__backbone="inception-v3")).pretrain.image.image_size == 299
    assert build_preset("x", _definition(pretrain__image__image_size=32)).pretrain.image.image_size == 32


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
