"""Settings resolution (attngan_cli.training.resolve): the preset from the data, overrides, resuming from a
checkpoint loaded once, and every check failing before a run directory exists.

Checkpoints here hold configs and vocabularies but no weights: resolution never reads weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config.presets import make_pretrain_config, make_train_config
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.errors import AttnGANError, CheckpointError, ConfigMismatchError, InputError
from attngan_cli.data.h5 import read_info
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint
from attngan_cli.training import resolve as settings_module
from attngan_cli.training.resolve import preset_for_source, resolve_pretrain, resolve_train


@pytest.fixture(scope="module")
def vocab_words(shapes_h5: Path) -> list[str]:
    return list(read_info(shapes_h5).vocab.words)


@pytest.fixture(scope="module")
def damsm_file(shapes_h5: Path, vocab_words: list[str], tmp_path_factory) -> Path:
    """A ``damsm`` checkpoint of the shapes preset for the shapes fixture's vocabulary."""
    cfg = make_pretrain_config("shapes", {"dataset": str(shapes_h5), "text.vocab_size": len(vocab_words)})
    ckpt = Checkpoint(kind="damsm", config=to_dict(cfg), vocab=vocab_words, state={}, epoch=2)
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("damsm") / "00000-shapes-pretrain" / "final.pt")


@pytest.fixture(scope="module")
def gan_run(shapes_h5: Path, damsm_file: Path, vocab_words: list[str], tmp_path_factory) -> Path:
    """A train run directory whose newest checkpoint was trained with 1 stage, ngf 8 and lr_g 0.123."""
    run = tmp_path_factory.mktemp("runs") / "00000-shapes-train"
    cfg = make_train_config("shapes", {"dataset": str(shapes_h5), "encoders": str(damsm_file), "lr_g": 0.123,
                                       "generator.stages": 1, "generator.ngf": 8, "max_steps": 6})
    save_checkpoint(Checkpoint(kind="gan", config=to_dict(cfg), vocab=vocab_words, state={}, step=3, epoch=1),
                    run / "interrupted.pt")
    return run


class LoadCounter:
    """Counts ``torch.load`` calls per file that read the weights (memory-mapped reads of a checkpoint's
    metadata, such as the encoders' vocabulary check, are not counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Path] = []
        real = torch.load

        def counting(f, *args, **kwargs):
            if isinstance(f, (str, os.PathLike)) and not kwargs.get("mmap"):  # mmap: metadata only
                self.calls.append(Path(f).resolve())
            return real(f, *args, **kwargs)

        monkeypatch.setattr(torch, "load", counting)

    def count(self, path: Path) -> int:
        return self.calls.count(path.resolve())


# ---------------------------------------------------------------- the preset from the data
@pytest.mark.parametrize(("source", "preset"), [("cub", "bird"), ("coco", "coco"), ("shapes", "shapes"),
                                                ("folder", "bird"), ("", "bird")])
def test_preset_for_source(source: str, preset: str) -> None:
    assert preset_for_source(source) == preset


def test_new_gan_run_takes_the_preset_of_its_data_and_the_overrides(shapes_h5, damsm_file, monkeypatch) -> None:
    monkeypatch.chdir(shapes_h5.parent)
    settings = resolve_train(Path(shapes_h5.name), encoders=damsm_file, overrides={
        "generator.ngf": 8, "lambda_damsm": 0, "max_steps": None})
    cfg = settings.config
    assert settings.resume is None
    assert cfg.preset == "shapes" and cfg.generator.base_size == 16  # from the shapes data
    assert cfg.generator.ngf == 8 and cfg.lambda_damsm == 0.0 and cfg.max_steps == 0
    assert cfg.dataset == str(shapes_h5.resolve()) and cfg.encoders == str(damsm_file.resolve())  # absolute
    assert resolve_train(shapes_h5, encoders=damsm_file, preset="coco").config.generator.ngf == 48


def test_new_pretrain_run_takes_the_preset_of_its_data(shapes_h5, vocab_words, tmp_path) -> None:
    settings = resolve_pretrain(shapes_h5, overrides={"epochs": 2, "image.width": 8})
    cfg = settings.config
    assert settings.resume is None and cfg.preset == "shapes" and cfg.group_by == ["bg_color", "color"]
    assert (cfg.epochs, cfg.image.width, cfg.text.vocab_size) == (2, 8, len(vocab_words))
    assert cfg.dataset == str(shapes_h5.resolve())
    # cached features come in fixed random batches, unless groups are asked for
    assert resolve_pretrain(shapes_h5, overrides={"cache_features": True}).config.group_by == []
    assert resolve_pretrain(shapes_h5, overrides={"group_by": ["color"]}).config.group_by == ["color"]
    with pytest.raises(InputError, match="--group-by: .* no attribute 'weight'"):
        resolve_pretrain(shapes_h5, overrides={"group_by": ["color", "weight"]})


def test_the_image_size_follows_a_changed_backbone(shapes_h5, tmp_path) -> None:
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"")  # only its existence is checked here; the loop loads it
    inception = resolve_pretrain(shapes_h5, overrides={"image.backbone": "inception-v3", "group_by": []},
                                 inception_weights=weights).config.image
    assert (inception.backbone, inception.image_size) == ("inception-v3", 299)
    compact = resolve_pretrain(shapes_h5, preset="bird", overrides={"image.backbone": "compact"}).config.image
    assert (compact.backbone, compact.image_size) == ("compact", 64)
    explicit = resolve_pretrain(shapes_h5, preset="bird", overrides={"image.backbone": "compact",
                                                                     "image.image_size": 32}).config.image
    assert explicit.image_size == 32
    assert resolve_pretrain(shapes_h5, overrides={"image.backbone": "compact"}).config.image.image_size == 64
    with pytest.raises(AttnGANError, match="got 'resnet'"):
        resolve_pretrain(shapes_h5, overrides={"image.backbone": "resnet"})


# ---------------------------------------------------------------- resuming
def test_resume_starts_from_the_checkpoint_config(gan_run, shapes_h5) -> None:
    settings = resolve_train(None, resume=gan_run, overrides={"max_steps": 5})
    cfg = settings.config
    assert (cfg.lr_g, cfg.generator.stages, cfg.generator.ngf, cfg.max_steps) == (0.123, 1, 8, 5)
    assert cfg.dataset == str(shapes_h5) and settings.resume is not None
    assert settings.resume.kind == "gan" and settings.resume.step == 3
    assert settings.resume.path == gan_run / "interrupted.pt"
    # the same preset may be named; another is an error, not silently ignored
    assert resolve_train(None, resume=gan_run, preset="shapes").config.lr_g == 0.123
    with pytest.raises(InputError, match="preset shapes"):
        resolve_train(None, resume=gan_run, preset="bird")


@pytest.mark.parametrize(("override", "value"), [("generator.stages", 2), ("generator.ngf", 16), ("generator.arch", "x"),
                                                 ("discriminator.ndf", 8)])
def test_resume_rejects_a_weight_shape_override_naming_the_field(gan_run, override, value) -> None:
    with pytest.raises(ConfigMismatchError, match=rf"{override} is \S+ there but {value!r} was requested"):
        resolve_train(None, resume=gan_run, overrides={override: value})


def test_resuming_a_finished_train_run_is_refused_before_a_run_directory(gan_run, shapes_h5, damsm_file,
                                                                         vocab_words, tmp_path) -> None:
    # gan_run's checkpoint is at step 3 of max_steps 6 and epoch 1 of the preset's epochs
    with pytest.raises(InputError, match=r"finished run \(step 3, --max-steps 3\): to continue it give --max-steps N "
                                         r"larger than 3, or 0 \(no limit\)"):
        resolve_train(None, resume=gan_run, overrides={"max_steps": 3})
    cfg = make_train_config("shapes", {"dataset": str(shapes_h5), "encoders": str(damsm_file), "epochs": 2})
    finished = tmp_path / "00000-shapes-train"
    save_checkpoint(Checkpoint(kind="gan", config=to_dict(cfg), vocab=vocab_words, state={}, step=8, epoch=2),
                    finished / "final.pt")
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["train", "--resume", str(finished), "--runs", str(runs)])
    assert res.exit_code == 1 and not runs.exists(), res.output
    assert res.output.startswith(f"error: checkpoint {finished / 'final.pt'} is of a finished run (2 epochs of 2): "
                                 "to continue it give --epochs N larger than 2"), res.output
    assert resolve_train(None, resume=finished, overrides={"epochs": 3}).config.epochs == 3


def test_the_resume_checkpoint_is_loaded_once(gan_run, damsm_file, shapes_h5, monkeypatch) -> None:
    loads = LoadCounter(monkeypatch)
    assert resolve_train(None, resume=gan_run).resume is not None
    assert loads.count(gan_run / "interrupted.pt") == 1
    assert resolve_pretrain(shapes_h5, resume=damsm_file.parent).resume is not None
    assert loads.count(damsm_file) == 1


def test_pretrain_resume_checks_kind_shapes_and_vocabulary(shapes_h5, damsm_file, gan_run, tmp_path) -> None:
    settings = resolve_pretrain(shapes_h5, resume=damsm_file, overrides={"epochs": 9})
    assert settings.resume is not None and settings.resume.epoch == 2 and settings.config.epochs == 9
    with pytest.raises(ConfigMismatchError, match=r"image\.width is 16 there but 8 was requested"):
        resolve_pretrain(shapes_h5, resume=damsm_file, overrides={"image.width": 8})
    with pytest.raises(CheckpointError, match="'gan' checkpoint"):
        resolve_pretrain(shapes_h5, resume=gan_run)
    other = Checkpoint(kind="damsm", config=to_dict(make_pretrain_config("shapes", {
        "text.vocab_size": len(read_info(shapes_h5).vocab)})), vocab=["<end>", "a"], state={})
    with pytest.raises(ConfigMismatchError, match="vocabulary"):
        resolve_pretrain(shapes_h5, resume=save_checkpoint(other, tmp_path / "other.pt"))


def test_precision_auto_is_the_default_and_is_resolved_before_the_run(shapes_h5, damsm_file, vocab_words, tmp_path,
                                                                      monkeypatch) -> None:
    """train, pretrain and captioner pretraining default to --precision auto, and the settings hold what it
    resolved to on this device (what config.json and the checkpoints record); a resumed run keeps its own."""
    from attngan_cli.core import device as dev
    from attngan_cli.training.resolve import resolve_caption_pretrain

    monkeypatch.setenv(dev.AUTO_PRECISION_ENV, "bf16")  # as on a CPU with AVX-512 BF16
    assert resolve_train(shapes_h5, encoders=damsm_file).config.precision == "bf16"
    assert resolve_pretrain(shapes_h5).config.precision == "bf16"
    assert resolve_caption_pretrain(shapes_h5).config.precision == "bf16"
    assert resolve_train(shapes_h5, encoders=damsm_file, overrides={"precision": "fp32"}).config.precision == "fp32"
    cfg = make_train_config("shapes", {"dataset": str(shapes_h5), "encoders": str(damsm_file), "precision": "fp32"})
    fp32_run = save_checkpoint(Checkpoint(kind="gan", config=to_dict(cfg), vocab=vocab_words, state={}, step=3, epoch=1),
                               tmp_path / "00000-shapes-train" / "interrupted.pt")
    assert resolve_train(None, resume=fp32_run).config.precision == "fp32"  # the saved run's
    monkeypatch.delenv(dev.AUTO_PRECISION_ENV)
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)  # an AVX2-only CPU: bf16 would be emulated
    cpu_run = resolve_train(shapes_h5, encoders=damsm_file, overrides={"device": "cpu"}).config
    assert cpu_run.precision == "fp32"
    # torch.compile: off on CPUs (measured slower), on with CUDA, unless --compile/--no-compile says otherwise
    # DataLoader workers: none on CPUs, min(4, cores - 1) with CUDA, unless --workers says otherwise
    assert cpu_run.compile is False and cpu_run.workers == 0 and resolve_pretrain(shapes_h5).config.workers == 0
    assert resolve_train(shapes_h5, encoders=damsm_file, overrides={"compile": True}).config.compile is True
    monkeypatch.setattr(settings_module, "resolve_device", lambda spec: torch.device("cuda"))
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 16)
    cuda_run = resolve_train(shapes_h5, encoders=damsm_file).config
    assert cuda_run.compile is True and cuda_run.workers == 4 and resolve_pretrain(shapes_h5).config.workers == 4
    assert resolve_caption_pretrain(shapes_h5).config.workers == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun's 8 processes on this node share its 16 cores
    assert resolve_train(shapes_h5, encoders=damsm_file).config.workers == 1
    explicit = resolve_train(shapes_h5, encoders=damsm_file, overrides={"compile": False, "workers": 0}).config
    assert explicit.compile is False and explicit.workers == 0


# ---------------------------------------------------------------- the commands check before they create a run
def _cases(data: Path, damsm: Path, gan_run: Path, missing: Path) -> list[tuple[list[str], str]]:
    d, e = str(data), str(damsm)
    return [
        (["train", d], "--encoders"),
        (["train", d, "--encoders", str(missing)], str(missing)),
        (["train", d, "--encoders", e, "--preset", "flowers"], "unknown preset 'flowers'"),
        (["train", str(missing), "--encoders", e], str(missing)),
        (["train", d, "--encoders", e, "--precision", "fp16", "--device", "cpu"], "fp16"),
        (["train", "--resume", str(gan_run), "--stages", "2"], "generator.stages"),
        (["train", d, "--encoders", e, "--arch", "attngan2"], "unknown architecture 'attngan2' (--arch): choose one of attngan"),
        (["train", "--resume", str(missing)], str(missing)),
        (["train", d, "--encoders", e, "--grad-accum", "3", "--batch-size", "8"], "--grad-accum 3 micro-batches"),
        (["pretrain", d, "--preset", "flowers"], "unknown preset 'flowers'"),
        (["pretrain", d, "--grad-accum", "5", "--batch-size", "8"], "--grad-accum 5 micro-batches"),
        (["pretrain", d, "--group-by", "color,weight"], "weight"),
        (["pretrain", d, "--image-encoder", "resnet"], "resnet"),
        (["pretrain", d, "--resume", str(gan_run)], "'gan' checkpoint"),
        (["pretrain", d, "--resume", e, "--image-encoder", "inception-v3"], "image.backbone"),
        (["pretrain", d, "--image-encoder", "inception-v3", "--inception-weights", str(missing)], str(missing)),
    ]


def test_errors_come_before_a_run_directory(shapes_h5, damsm_file, gan_run, tmp_path) -> None:
    runner = CliRunner()
    for args, message in _cases(shapes_h5, damsm_file, gan_run, tmp_path / "missing.pt"):
        runs = tmp_path / "runs"
        res = runner.invoke(app, [*args, "--runs", str(runs)])
        assert res.exit_code == 1, (args, res.output, res.exception)
        assert message in " ".join(res.output.split()), (args, res.output)
        assert not runs.exists(), args


def test_the_commands_hand_the_loaded_checkpoint_to_the_loops(gan_run, damsm_file, shapes_h5, tmp_path,
                                                              monkeypatch) -> None:
    """The commands resolve, then create the run directory, then call the loop with the checkpoint loaded
    once (the loops themselves are replaced here)."""
    import attngan_cli.training.damsm as pretrain_module
    import attngan_cli.training.gan as gan_module

    calls = []

    def fake_loop(settings, run, progress=None, **kwargs):
        calls.append((settings.config, run, settings.resume))
        return run.file("final.pt")

    monkeypatch.setattr(gan_module, "train_gan", fake_loop)
    monkeypatch.setattr(pretrain_module, "pretrain", fake_loop)
    loads = LoadCounter(monkeypatch)
    runner = CliRunner()
    runs = tmp_path / "runs"
    res = runner.invoke(app, ["train", "--resume", str(gan_run), "--max-steps", "5", "--runs", str(runs), "-q"])
    assert res.exit_code == 0, (res.output, res.exception)
    cfg, run, resume = calls[-1]
    assert isinstance(resume, Checkpoint) and resume.path == gan_run / "interrupted.pt"
    assert (cfg.max_steps, cfg.lr_g, run.path) == (5, 0.123, runs / "00000-shapes-train")
    assert loads.count(gan_run / "interrupted.pt") == 1
    res = runner.invoke(app, ["pretrain", str(shapes_h5), "--resume", str(damsm_file), "--runs", str(runs), "-q"])
    assert res.exit_code == 0, (res.output, res.exception)
    cfg, run, resume = calls[-1]
    assert isinstance(resume, Checkpoint) and resume.kind == "damsm" and cfg.preset == "shapes"
    assert run.path == runs / "00001-shapes-pretrain" and loads.count(damsm_file) == 1


def test_a_checkpoint_from_before_architectures_resumes_as_attngan(shapes_h5, damsm_file, vocab_words, tmp_path) -> None:
    cfg = to_dict(make_train_config("shapes", {"dataset": str(shapes_h5), "encoders": str(damsm_file)}))
    del cfg["generator"]["arch"]  # a config without the field (format_version 1)
    save_checkpoint(Checkpoint(kind="gan", config=cfg, vocab=vocab_words, state={}, step=1, epoch=1),
                    tmp_path / "interrupted.pt")
    assert resolve_train(None, resume=tmp_path).config.generator.arch == "attngan"
    with pytest.raises(ConfigMismatchError, match="generator.arch is 'attngan' there but 'other' was requested"):
        resolve_train(None, resume=tmp_path, overrides={"generator.arch": "other"})
