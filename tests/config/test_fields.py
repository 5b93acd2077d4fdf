"""Checked fields: bounds and choices declared beside each field, one validate for every config and options
dataclass, errors naming the dotted field in Python and the flag on the command line."""

from __future__ import annotations

import dataclasses
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attngan_cli.apps.sample import SampleSettings
from attngan_cli.cli import app
from attngan_cli.cli.flags import field_message
from attngan_cli.config.captioner import CaptionPretrainConfig
from attngan_cli.config.fields import (
    CHECK,
    Bound,
    Choices,
    bounded,
    field_check,
    one_of,
    satisfying,
    validate,
)
from attngan_cli.config.presets import (
    build_preset,
    make_caption_pretrain_config,
    make_pretrain_config,
    make_train_config,
)
from attngan_cli.config.schema import (
    PRECISIONS,
    GeneratorConfig,
    ImageEncoderConfig,
    PretrainConfig,
    RunOptions,
    TextEncoderConfig,
    TrainConfig,
)
from attngan_cli.config.serialize import from_dict, to_dict
from attngan_cli.core.errors import AttnGANError, FieldError
from attngan_cli.evaluation.evaluate import EvalOptions, evaluate

INF = math.inf

# The ranges of the job configs: dotted field -> (lowest, highest, lowest allowed?). Every config that has
# the field declares this bound on it.
RANGES: dict[str, tuple[float, float, bool]] = {
    "batch_size": (1, INF, True), "epochs": (1, INF, True), "words": (1, INF, True), "text.words": (1, INF, True),
    "lambda_damsm": (0, INF, True), "stream_weight": (0, INF, True), "kl_weight": (0, INF, True),
    "color_consistency": (0, INF, True), "lr": (0, INF, False), "lr_g": (0, INF, False), "lr_d": (0, INF, False),
    "lr_decay": (0, 1, False), "min_lr_fraction": (0, 1, True), "grad_clip": (0, INF, False),
    "ema_decay": (0, 1, True), "max_steps": (0, INF, True), "max_minutes": (0, INF, True),
    "snapshot_every": (0, INF, True), "sample_every": (0, INF, True), "keep_last": (0, INF, True),
    "workers": (0, INF, True), "grad_accum": (1, INF, True), "group_share": (0, 1, True),
    "generator.stages": (1, 4, True), "generator.ngf": (1, INF, True), "generator.r_num": (0, INF, True),
    "generator.z_dim": (1, INF, True), "generator.condition_dim": (1, INF, True),
    "generator.embedding_dim": (1, INF, True), "discriminator.ndf": (1, INF, True),
    "image.width": (1, INF, True), "image.image_size": (8, INF, True), "image.embedding_dim": (1, INF, True),
    "text.word_dim": (1, INF, True), "text.embedding_dim": (2, INF, True), "text.dropout": (0, 1, True),
    "damsm.gamma1": (0, INF, False), "damsm.gamma2": (0, INF, False), "damsm.gamma3": (0, INF, False),
    # the captioner's own fields
    "model.image_size": (16, INF, True), "model.width": (1, INF, True), "model.embed_dim": (1, INF, True),
    "model.hidden_dim": (1, INF, True), "model.layers": (1, INF, True), "eval_items": (1, INF, True),
    "max_decode": (0, INF, True),
}
JOB_CONFIGS = (TrainConfig, PretrainConfig, CaptionPretrainConfig)


def _declared(cls: type, dotted: str) -> tuple[bool, object]:
    """(whether ``cls`` has the dotted field, the check declared on it)."""
    *parents, last = dotted.split(".")
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for part in parents:
        if part not in hints:
            return False, None
        owner = hints[part].default_factory  # nested configs are default_factory fields
        hints = {f.name: f for f in dataclasses.fields(owner)}
    if last not in hints:
        return False, None
    return True, hints[last].metadata.get(CHECK)


def _set(obj: object, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


@pytest.mark.parametrize("dotted", sorted(RANGES))
def test_every_range_is_declared_on_its_field(dotted: str) -> None:
    low, high, low_ok = RANGES[dotted]
    holders = [cls for cls in JOB_CONFIGS if _declared(cls, dotted)[0]]
    assert holders, f"no job config has {dotted}"
    for cls in holders:
        assert _declared(cls, dotted)[1] == Bound(low, high, low_inclusive=low_ok), (cls.__name__, dotted)


@pytest.mark.parametrize("cls, dotted", [pytest.param(cls, d, id=f"{cls.__name__}.{d}") for d in sorted(RANGES)
                                         for cls in JOB_CONFIGS if _declared(cls, d)[0]])
def test_a_value_outside_the_range_names_the_dotted_field(cls: type, dotted: str) -> None:
    low, high, low_ok = RANGES[dotted]
    cfg = cls()
    validate(cfg)  # the defaults are allowed
    bad = (low if not low_ok else low - 1) if low != -INF else high + 1
    _set(cfg, dotted, bad)
    with pytest.raises(FieldError) as e:
        validate(cfg)
    assert e.value.field == dotted
    assert str(e.value) == f"{dotted} {e.value.problem}" and str(e.value).startswith(f"{dotted} must be ")
    assert f"got {bad!r}" in str(e.value) and "--" not in str(e.value)
    if high != INF:
        _set(cfg, dotted, high + 1)
        with pytest.raises(FieldError, match=rf"^{dotted} must be in"):
            validate(cfg)


def test_range_messages() -> None:
    cases = [(TrainConfig(batch_size=0), "batch_size must be >= 1, got 0"),
             (TrainConfig(lr_g=0.0), "lr_g must be > 0, got 0.0"),
             (TrainConfig(ema_decay=1.5), "ema_decay must be in [0, 1], got 1.5"),
             (PretrainConfig(lr_decay=0.0), "lr_decay must be in (0, 1], got 0.0"),
             (TrainConfig(lambda_damsm=float("nan")), "lambda_damsm must be a finite number, got nan"),
             (TrainConfig(batch_size=True), "batch_size must be >= 1, got True"),  # a bool is no number
             (TrainConfig(betas=(0.5, 1.0)), "betas must be two numbers in [0, 1), got [0.5, 1.0]"),
             (TrainConfig(betas=(0.5,)), "betas must be two numbers in [0, 1), got [0.5]"),
             (TrainConfig(generator=GeneratorConfig(base_size=12)),
              "generator.base_size must be a power of two >= 8, got 12"),
             (TrainConfig(generator=GeneratorConfig(base_size=4)),
              "generator.base_size must be a power of two >= 8, got 4")]
    for cfg, message in cases:
        with pytest.raises(FieldError) as e:
            validate(cfg)
        assert str(e.value) == message
    assert Bound(high=3).describe() == "<= 3" and Bound(0, 1, high_inclusive=False).describe() == "in [0, 1)"


def test_choices_are_field_metadata() -> None:
    assert field_check(RunOptions, "precision") == Choices(PRECISIONS)
    assert field_check(ImageEncoderConfig, "backbone") == Choices(("inception-v3", "compact"))
    assert field_check(ImageEncoderConfig, "frozen_bn") == Choices(("train", "eval"))
    assert field_check(ImageEncoderConfig, "compact_version") == Choices((1, 2))
    assert field_check(SampleSettings, "which") == Choices(("all", "last"))
    cases = [(TrainConfig(precision="fp8"), "precision must be one of auto, fp32, bf16, fp16, got 'fp8'"),
             (PretrainConfig(image=ImageEncoderConfig(frozen_bn="batch")),
              "image.frozen_bn must be one of train, eval, got 'batch'"),
             (PretrainConfig(image=ImageEncoderConfig(compact_version=3)),
              "image.compact_version must be one of 1, 2, got 3"),
             (PretrainConfig(image=ImageEncoderConfig(backbone="resnet")),
              "image.backbone must be one of inception-v3, compact, got 'resnet'"),
             (SampleSettings(which="first"), "which must be one of all, last, got 'first'"),
             (SampleSettings(precision="fp8"), "precision must be one of auto, fp32, bf16, fp16, got 'fp8'")]
    for cfg, message in cases:
        with pytest.raises(FieldError) as e:
            validate(cfg)
        assert str(e.value) == message
    with pytest.raises(FieldError, match=r"^model\.backbone must be one of inception-v3, compact, got 'resnet'"):
        make_caption_pretrain_config("shapes", {"model.backbone": "resnet"})
    with pytest.raises(ValueError, match="not one of"):
        one_of("x", ("a", "b"))  # a default outside its own choices is a bug in the dataclass


def test_validate_walks_nested_dataclasses_of_any_depth() -> None:
    @dataclass
    class Inner:
        k: int = bounded(1, low=1)

    @dataclass
    class Middle:
        inner: Inner = field(default_factory=Inner)
        name: str = one_of("a", ("a", "b"))

    @dataclass
    class Outer:
        middle: Middle = field(default_factory=Middle)
        even: int = satisfying(2, lambda n: n % 2 == 0, "even")
        free: int = -5  # no check: anything goes

    validate(Outer())
    bad = Outer()
    bad.middle.inner.k = 0
    with pytest.raises(FieldError, match=r"^middle\.inner\.k must be >= 1, got 0$") as e:
        validate(bad)
    assert (e.value.field, e.value.problem) == ("middle.inner.k", "must be >= 1, got 0")
    with pytest.raises(FieldError, match=r"^even must be even, got 3$"):
        validate(Outer(even=3))
    with pytest.raises(FieldError, match=r"^even must be even, got 'x'$"):  # a failing test is a failed check
        validate(Outer(even="x"))  # type: ignore[arg-type]


def test_the_python_api_names_fields_not_flags() -> None:
    for call, message in [
        (lambda: make_train_config("bird", {"batch_size": 0}), "batch_size must be >= 1, got 0"),
        (lambda: make_train_config("bird", {"lambda_damsm": -1}), "lambda_damsm must be >= 0, got -1.0"),
        (lambda: make_train_config("bird", {"generator.stages": 5}), "generator.stages must be in [1, 4], got 5"),
        (lambda: make_train_config("bird", {"generator.ngf": 0}), "generator.ngf must be >= 1, got 0"),
        (lambda: make_pretrain_config("bird", {"text.words": 0}), "text.words must be >= 1, got 0"),
        (lambda: make_pretrain_config("bird", {"image.backbone": "resnet"}),
         "image.backbone must be one of inception-v3, compact, got 'resnet'"),
        (lambda: make_caption_pretrain_config("shapes", {"model.hidden_dim": 0}), "model.hidden_dim must be >= 1, got 0"),
        (lambda: make_caption_pretrain_config("shapes", {"lr": 0.0}), "lr must be > 0, got 0.0"),
        (lambda: build_preset("x", {"dataset_kind": "x", "captions_per_image": 1, "generator": {"ngf": 0}}),
         "generator.ngf must be >= 1, got 0"),
    ]:
        with pytest.raises(FieldError) as e:
            call()
        assert str(e.value) == message
        assert isinstance(e.value, AttnGANError)


def test_eval_options_are_checked_by_the_same_validate(tmp_path: Path) -> None:
    validate(EvalOptions(metrics=["rprecision"]))
    for name, value, message in [("num_samples", 0, "num_samples must be >= 1, got 0"),
                                 ("batch_size", 0, "batch_size must be >= 1, got 0"),
                                 ("is_splits", 0, "is_splits must be >= 1, got 0"),
                                 ("rp_folds", 0, "rp_folds must be >= 1, got 0"),
                                 ("rp_wrong", 0, "rp_wrong must be >= 1, got 0"),
                                 ("workers", -1, "workers must be >= 0, got -1")]:
        with pytest.raises(FieldError) as e:
            validate(EvalOptions(metrics=["rprecision"], **{name: value}))
        assert str(e.value) == message
    # evaluate checks them before it opens any file
    missing = tmp_path / "missing"
    with pytest.raises(FieldError, match=r"^num_samples must be >= 1, got 0"):
        evaluate(missing / "G.pt", missing / "d.h5", EvalOptions(metrics=["rprecision"], num_samples=0))
    with pytest.raises(FieldError, match=r"^num_samples must be >= 10 for the Inception Score") as e:
        evaluate(missing / "G.pt", missing / "d.h5", EvalOptions(metrics=["is"], num_samples=4))
    assert e.value.field == "num_samples"


def test_sample_settings_are_checked_by_the_same_validate() -> None:
    validate(SampleSettings())
    for settings, message in [(SampleSettings(n=0), "n must be >= 1, got 0"),
                              (SampleSettings(batch_size=0), "batch_size must be >= 1, got 0")]:
        with pytest.raises(FieldError) as e:
            validate(settings)
        assert str(e.value) == message


def test_run_options_are_shared_and_stored_flat() -> None:
    run_fields = [f.name for f in dataclasses.fields(RunOptions)]
    assert run_fields == ["max_minutes", "precision", "workers", "seed", "device", "tensorboard"]
    for cls in JOB_CONFIGS:
        assert issubclass(cls, RunOptions)
        flat = to_dict(cls())
        assert all(name in flat for name in run_fields)  # top-level keys, as configs of format_version 1
        # a config of format_version 1 (run options at the top level) loads
        cfg = from_dict(cls, {"device": "cpu", "precision": "fp32", "workers": 2, "seed": 7, "max_minutes": 1,
                              "tensorboard": False})
        assert (cfg.device, cfg.precision, cfg.workers, cfg.seed, cfg.max_minutes, cfg.tensorboard) == (
            "cpu", "fp32", 2, 7, 1.0, False)
    assert (CaptionPretrainConfig().snapshot_every, TrainConfig().snapshot_every) == (1, 50)


def test_field_errors_pickle_and_name_the_flag_where_the_cli_has_one() -> None:
    err = FieldError("generator.ngf", "must be >= 1, got 0")
    again = pickle.loads(pickle.dumps(err))
    assert (again.field, again.problem, str(again)) == (err.field, err.problem, str(err))
    assert field_message(err, {"generator.ngf": "--ngf"}) == "--ngf (generator.ngf) must be >= 1, got 0"
    assert field_message(err, {}) == "generator.ngf must be >= 1, got 0"
    assert TextEncoderConfig().words == 18  # the text encoder's own fields are checked on their own too
    with pytest.raises(FieldError, match=r"^dropout must be in \[0, 1\], got 2"):
        validate(TextEncoderConfig(dropout=2))


runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("args, message", [
    (["sample", "red", "-c", "missing.pt", "--n", "0"], "--n (n) must be >= 1, got 0"),
    (["sample", "red", "-c", "missing.pt", "--batch-size", "0"], "--batch-size (batch_size) must be >= 1, got 0"),
    (["sample", "red", "-c", "missing.pt", "--precision", "fp8"],
     "--precision (precision) must be one of auto, fp32, bf16, fp16, got 'fp8'"),
    (["eval", "-c", "missing.pt", "--data", "missing.h5", "-m", "rprecision", "--num-samples", "0"],
     "--num-samples (num_samples) must be >= 1, got 0"),
    (["eval", "-c", "missing.pt", "--data", "missing.h5", "-m", "is", "--num-samples", "4"],
     "--num-samples (num_samples) must be >= 10 for the Inception Score"),
    (["eval", "-c", "missing.pt", "--data", "missing.h5", "-m", "rprecision", "--workers", "-1"],
     "--workers (workers) must be >= 0, got -1"),
])
def test_the_cli_names_the_flag_of_the_field(args: list[str], message: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert f"error: {message}" in _flat(res.output) and "Traceback" not in res.output
