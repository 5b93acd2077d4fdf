"""Configuration as plain dataclasses, presets with the official values, and strict (de)serialisation.

There is no global mutable config: every function receives the config object it needs. A config is
built from a preset plus overrides (the CLI flags), written as ``config.json`` into the run directory
and stored inside every checkpoint, so a model can be rebuilt from its checkpoint alone.

A preset (:class:`Preset`, :func:`get_preset`) is typed: its definition in :data:`PRESETS` is read
strictly at import time, so a misspelled key fails on import instead of being dropped. Choosing the
preset for a dataset and the rest of settings resolution live in :mod:`attngan_cli.training.resolve`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from attngan_cli.core.errors import AttnGANError, ConfigMismatchError

T = TypeVar("T")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 where the hardware computes it (device.py)


# --------------------------------------------------------------------------------------------------
# Model configs
# --------------------------------------------------------------------------------------------------
@dataclass
class TextEncoderConfig:
    vocab_size: int = 0  # filled from the dataset's vocabulary
    word_dim: int = 300  # word embedding size
    embedding_dim: int = 256  # word/sentence feature size (bidirectional: 128 per direction)
    dropout: float = 0.5
    words: int = 18  # caption length used in training (longer captions are subsampled)


@dataclass
class ImageEncoderConfig:
    backbone: str = "inception-v3"  # "inception-v3" (paper) or "compact" (CPU-sized, trained from scratch)
    embedding_dim: int = 256
    image_size: int = 299  # input size of the backbone
    width: int = 64  # channel width of the compact backbone (ignored by inception-v3)
    # compact only: 2 = coordinate channels, conv + max-pool stages, global feature from the flattened
    # last map (knows where things are and what shape they have); 1 = strided convs, mean-pooled global
    # (attngan 0.1.0)
    compact_version: int = 2
    # inception-v3 only. BatchNorm of the frozen Inception layers while pretraining: "train" = the official
    # pretrain_DAMSM.py (cnn_model.train(): batch statistics, running statistics move to the dataset's
    # images and are saved with the encoder; the weights stay frozen); "eval" = keep the loaded (ImageNet)
    # statistics (attngan <= 0.2, and what --cache-features uses). Outside pretraining the encoder is in
    # eval mode and uses the running statistics either way.
    frozen_bn: str = "eval"
    # the bilinear resize of other sizes to image_size: the official nn.Upsample(size=(299, 299),
    # mode='bilinear') was written for PyTorch 0.3, whose bilinear mode aligned corners; imported official
    # encoders set True so that they see what they were trained on
    resize_align_corners: bool = False


FROZEN_BN_MODES = ("train", "eval")


# The input size of each image backbone: Inception-v3's 299 px (the paper), the compact CNN's 64 px.
BACKBONE_IMAGE_SIZES = {"inception-v3": 299, "compact": 64}


def default_image_size(backbone: str) -> int:
    """The image size a backbone is used at unless a config says otherwise (see ImageEncoderConfig)."""
    if backbone not in BACKBONE_IMAGE_SIZES:
        raise AttnGANError(f"image.backbone must be one of {', '.join(BACKBONE_IMAGE_SIZES)}, got {backbone!r}")
    return BACKBONE_IMAGE_SIZES[backbone]


@dataclass
class DAMSMConfig:
    gamma1: float = 4.0  # word-to-region attention sharpness
    gamma2: float = 5.0  # region-context aggregation
    gamma3: float = 10.0  # posterior smoothing over the batch


@dataclass
class GeneratorConfig:
    arch: str = "attngan"  # the architecture (see attngan_cli.archs.registry; --arch)
    stages: int = 3  # 1..4; images of base_size * scale**i for i < stages (scale: the architecture's stage_scale)
    base_size: int = 64
    ngf: int = 32
    r_num: int = 2  # residual blocks per attentional stage
    z_dim: int = 100
    condition_dim: int = 100
    embedding_dim: int = 256

    def sizes(self, scale: int) -> list[int]:
        """The image size of every stage when each is ``scale`` times the one before (the architecture's
        ``stage_scale``: :func:`attngan_cli.archs.registry.image_sizes`)."""
        return [self.base_size * scale**i for i in range(self.stages)]


@dataclass
class DiscriminatorConfig:
    ndf: int = 64
    embedding_dim: int = 256


# --------------------------------------------------------------------------------------------------
# Job configs
# --------------------------------------------------------------------------------------------------
@dataclass
class PretrainConfig:
    preset: str = "bird"
    dataset: str = ""
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    damsm: DAMSMConfig = field(default_factory=DAMSMConfig)
    batch_size: int = 48
    epochs: int = 600
    lr: float = 0.002
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay: float = 0.98  # multiplied in once per epoch ...
    min_lr_fraction: float = 0.1  # ... down to lr * this
    grad_clip: float = 0.25  # gradient-norm clip on the text encoder
    snapshot_every: int = 50  # epochs
    # a new Adam at every epoch start (moments reset), as the official pretrain_DAMSM.py; False = one Adam
    # for the whole run. A resume in the middle of an epoch continues that epoch's saved Adam.
    adam_per_epoch: bool = False
    # cache frozen Inception features of fixed augmented views: a faster mode (17x on a CPU) that departs
    # from the official pretraining: the frozen layers use eval-mode BatchNorm (image.frozen_bn = "eval")
    cache_features: bool = False
    grad_accum: int = 1  # micro-batches per step (gradients add up); the DAMSM negatives are then a micro-batch
    # stored attributes (shapes data) that group_share of every batch agrees on: hard negatives for the
    # attributes not named (see data/sampling.py); empty = random batches, as the paper
    group_by: list[str] = field(default_factory=list)
    group_share: float = 0.5
    max_minutes: float = 0.0  # 0 = no limit; otherwise end (with the final checkpoint) after this long
    precision: str = "auto"
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    tensorboard: bool = True  # TensorBoard events in the run directory (when the package is installed)


@dataclass
class TrainConfig:
    preset: str = "bird"
    dataset: str = ""
    encoders: str = ""  # DAMSM checkpoint (file or pretrain run directory)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    damsm: DAMSMConfig = field(default_factory=DAMSMConfig)
    words: int = 18
    lambda_damsm: float = 5.0
    kl_weight: float = 1.0
    # MirrorGAN's STREAM: a pretrained captioner (file or run directory; "" = none) and the weight of its
    # re-description loss (the paper's lambda, 20); see attngan_cli.archs.mirrorgan.stream
    captioner: str = ""
    stream_weight: float = 20.0
    mismatch: bool = True  # the official extra D term on (real image, wrong sentence)
    color_consistency: float = 0.0  # weight of StackGAN++'s colour-consistency term (0 = off; --color-consistency)
    init: str = ""  # --arch stackgan --stage 2: the finished Stage-I run (its final.pt) Stage-II starts from
    arch_options: dict[str, Any] = field(default_factory=dict)  # the architecture's own options (--arch-option)
    batch_size: int = 20
    epochs: int = 600
    max_steps: int = 0  # 0 = no limit; otherwise stop after this many generator steps
    max_minutes: float = 0.0  # 0 = no limit; otherwise end (with the final checkpoint) after this long
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    precision: str = "auto"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False  # under torchrun on GPUs: SyncBatchNorm in G and the Ds (default: per-process BatchNorm)
    grad_accum: int = 1  # micro-batches per step (gradients add up): the same total batch in less memory
    workers: int = 0
    snapshot_every: int = 50  # epochs
    sample_every: int = 500  # steps
    keep_last: int = 3
    seed: int = 0
    device: str = "auto"
    tensorboard: bool = True  # TensorBoard events in the run directory (when the package is installed)


# --------------------------------------------------------------------------------------------------
# (De)serialisation
# --------------------------------------------------------------------------------------------------
def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return _jsonable(dataclasses.asdict(cfg))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build ``cls`` from a dict strictly: an unknown field is an error naming it; missing fields default."""
    if not isinstance(data, dict):
        raise ConfigMismatchError(f"config {where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigMismatchError(
            f"unknown config field {prefix}{unknown[0]} (known fields of {cls.__name__}: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where=where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        if tp is int and isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigMismatchError(f"config field {where}: expected {tp.__name__}, got {value!r}")
    return value


def apply_overrides(cfg: T, overrides: dict[str, Any]) -> T:
    """A copy of ``cfg`` with dotted keys replaced; ``None`` values are ignored (unset CLI flags)."""
    cfg = copy.deepcopy(cfg)
    hints_cache: dict[type, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        obj: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not hasattr(obj, part) or not dataclasses.is_dataclass(getattr(obj, part)):
                raise ConfigMismatchError(f"unknown config section {part!r} in override {key!r}")
            obj = getattr(obj, part)
        last = parts[-1]
        names = {f.name for f in dataclasses.fields(obj)}
        if last not in names:
            raise ConfigMismatchError(f"unknown config field {key!r}")
        hints = hints_cache.setdefault(type(obj), typing.get_type_hints(type(obj)))
        setattr(obj, last, _coerce(hints[last], value, key))
    validate(cfg)
    return cfg


# Numeric ranges of the job configs: dotted field -> (lowest, highest, lowest allowed?, the CLI flag).
# Checked by :func:`validate` whenever a config is built or overridden, so a bad value fails before any
# work, with a message naming the flag.
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "batch_size": (1, math.inf, True, "--batch-size"),
    "epochs": (1, math.inf, True, "--epochs"),
    "words": (1, math.inf, True, "--words"),
    "text.words": (1, math.inf, True, "text.words"),
    "lambda_damsm": (0, math.inf, True, "--lambda"),
    "stream_weight": (0, math.inf, True, "--stream-weight"),
    "kl_weight": (0, math.inf, True, "kl_weight"),
    "color_consistency": (0, math.inf, True, "--color-consistency"),
    "lr": (0, math.inf, False, "--lr"),
    "lr_g": (0, math.inf, False, "--lr-g"),
    "lr_d": (0, math.inf, False, "--lr-d"),
    "lr_decay": (0, 1, False, "lr_decay"),
    "min_lr_fraction": (0, 1, True, "min_lr_fraction"),
    "grad_clip": (0, math.inf, False, "grad_clip"),
    "ema_decay": (0, 1, True, "ema_decay"),
    "max_steps": (0, math.inf, True, "--max-steps"),
    "max_minutes": (0, math.inf, True, "--max-minutes"),
    "snapshot_every": (0, math.inf, True, "--snapshot-every"),
    "sample_every": (0, math.inf, True, "--sample-every"),
    "keep_last": (0, math.inf, True, "--keep-last"),
    "workers": (0, math.inf, True, "--workers"),
    "grad_accum": (1, math.inf, True, "--grad-accum"),
    "group_share": (0, 1, True, "group_share"),
    "generator.ngf": (1, math.inf, True, "--ngf"),
    "generator.r_num": (0, math.inf, True, "generator.r_num"),
    "generator.z_dim": (1, math.inf, True, "generator.z_dim"),
    "generator.condition_dim": (1, math.inf, True, "generator.condition_dim"),
    "generator.embedding_dim": (1, math.inf, True, "generator.embedding_dim"),
    "discriminator.ndf": (1, math.inf, True, "--ndf"),
    "image.width": (1, math.inf, True, "image.width"),
    "image.image_size": (8, math.inf, True, "image.image_size"),
    "image.embedding_dim": (1, math.inf, True, "image.embedding_dim"),
    "text.word_dim": (1, math.inf, True, "text.word_dim"),
    "text.embedding_dim": (2, math.inf, True, "text.embedding_dim"),
    "text.dropout": (0, 1, True, "text.dropout"),
    "damsm.gamma1": (0, math.inf, False, "damsm.gamma1"),
    "damsm.gamma2": (0, math.inf, False, "damsm.gamma2"),
    "damsm.gamma3": (0, math.inf, False, "damsm.gamma3"),
}


def _dotted(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        if not hasattr(cfg, part):
            return None
        cfg = getattr(cfg, part)
    return cfg


def validate(cfg: Any) -> None:
    """Range checks shared by all job configs; raises an error naming the field (and its CLI flag)."""
    gen = getattr(cfg, "generator", None)
    if gen is not None:
        if not 1 <= gen.stages <= 4:
            raise AttnGANError(f"--stages (generator.stages) must be 1, 2, 3 or 4, got {gen.stages}")
        if gen.base_size < 8 or gen.base_size & (gen.base_size - 1):
            raise AttnGANError(f"generator.base_size must be a power of two >= 8, got {gen.base_size}")
    image = getattr(cfg, "image", None)
    if isinstance(image, ImageEncoderConfig):
        default_image_size(image.backbone)  # a known backbone
        if image.frozen_bn not in FROZEN_BN_MODES:
            raise AttnGANError(f"image.frozen_bn must be one of {', '.join(FROZEN_BN_MODES)}, got {image.frozen_bn!r}")
    prec = getattr(cfg, "precision", None)
    if prec is not None and prec not in PRECISIONS:
        raise AttnGANError(f"--precision must be one of {', '.join(PRECISIONS)}, got {prec!r}")
    for key, (low, high, low_ok, flag) in _RANGES.items():
        v = _dotted(cfg, key)
        if v is None or isinstance(v, bool):
            continue
        if not isinstance(v, (int, float)) or math.isnan(v) or v > high or v < low or (v == low and not low_ok):
            rng = (f">= {low:g}" if low_ok else f"> {low:g}") if high == math.inf else \
                (f"in [{low:g}, {high:g}]" if low_ok else f"in ({low:g}, {high:g}]")
            name = flag if flag == key else f"{flag} ({key})"
            raise AttnGANError(f"{name} must be {rng}, got {v!r}")
    betas = getattr(cfg, "betas", None)
    if betas is not None and (len(betas) != 2 or not all(0 <= b < 1 for b in betas)):
        raise AttnGANError(f"betas must be two numbers in [0, 1), got {list(betas)!r}")


def diff(saved: dict[str, Any], requested: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Fields whose values differ between two config dicts, as (dotted name, saved, requested)."""
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key, "<absent>"), requested.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, name + "."))
        elif a != b:
            out.append((name, a, b))
    return out


def check_matches(saved: dict[str, Any], requested: dict[str, Any], fields: list[str], what: str) -> None:
    """Fail with a message naming the first of ``fields`` (dotted) whose values differ."""
    for f in fields:
        a, b = _get_dotted(saved, f), _get_dotted(requested, f)
        if a != b:
            raise ConfigMismatchError(f"{what}: {f} is {a!r} there but {b!r} was requested")


def _get_dotted(d: dict[str, Any], key: str) -> Any:
    cur: Any = d
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return "<absent>"
        cur = cur[part]
    return cur


# --------------------------------------------------------------------------------------------------
# Presets: the official values (AttnGAN code/cfg/*.yml) plus a CPU-sized one for the built-in data.
# --------------------------------------------------------------------------------------------------
DEFAULT_PRESET = "bird"  # the paper's settings; also the preset for data of no preset's kind (folders)

# The definitions, read once at import time by build_preset into typed Preset objects (get_preset); an
# unknown or misspelled key is an error there. Each definition holds: the preset's own values
# (dataset_kind, captions_per_image), the values both jobs share (SHARED_PRESET_KEYS), the GAN training
# config's fields at the top level, and the DAMSM pretraining config's fields under "pretrain".
PRESETS: dict[str, dict[str, Any]] = {
    "bird": {
        "dataset_kind": "cub",
        "captions_per_image": 10,
        "generator": {"stages": 3, "base_size": 64, "ngf": 32, "r_num": 2},
        "discriminator": {"ndf": 64},
        "words": 18,
        "damsm": {"gamma1": 4.0, "gamma2": 5.0, "gamma3": 10.0},
        "lambda_damsm": 5.0,
        "batch_size": 20,
        "epochs": 600,
        # official pretrain_DAMSM.py: batch-statistics BN in the frozen Inception layers, a new Adam per epoch
        "pretrain": {"batch_size": 48, "epochs": 600, "adam_per_epoch": True,
                     "image": {"backbone": "inception-v3", "frozen_bn": "train"}},
    },
    "coco": {
        "dataset_kind": "coco",
        "captions_per_image": 5,
        "generator": {"stages": 3, "base_size": 64, "ngf": 48, "r_num": 3},
        "discriminator": {"ndf": 96},
        "words": 12,
        "damsm": {"gamma1": 4.0, "gamma2": 5.0, "gamma3": 10.0},
        "lambda_damsm": 50.0,
        "batch_size": 14,
        "epochs": 120,
        # official cfg/DAMSM/coco.yml: WORDS_NUM 15 for the DAMSM (the GAN's cfg/coco_attn2.yml: 12)
        "pretrain": {"batch_size": 48, "epochs": 600, "adam_per_epoch": True, "text": {"words": 15},
                     "image": {"backbone": "inception-v3", "frozen_bn": "train"}},
    },
    "shapes": {
        "dataset_kind": "shapes",
        "captions_per_image": 5,
        "generator": {"stages": 3, "base_size": 16, "ngf": 16, "r_num": 1},
        "discriminator": {"ndf": 16},
        "words": 12,
        "damsm": {"gamma1": 4.0, "gamma2": 5.0, "gamma3": 10.0},
        "lambda_damsm": 5.0,
        "batch_size": 32,
        "epochs": 20,
        # the official 2e-4 leaves this small GAN at noise after 600 steps (a 10-minute CPU demo); measured
        # after 4 minutes: R-precision 36% / position 11% at 2e-4, 88% / 71% at these values
        "lr_g": 4e-3,
        "lr_d": 8e-4,
        "snapshot_every": 5,
        "sample_every": 200,
        "pretrain": {
            "batch_size": 32, "epochs": 6, "snapshot_every": 3,
            "image": {"backbone": "compact", "width": 16},
            "group_by": ["bg_color", "color"],
        },
    },
}


# Values the two jobs of a preset share, set once at the definition's top level: the caption length
# (TrainConfig.words, also PretrainConfig.text.words unless the definition's "pretrain" sets its own
# text.words: the official COCO DAMSM is trained on 15 words, its GAN on 12) and the DAMSM loss's gammas
# (both configs' damsm), so that the GAN's DAMSM loss measures what the encoders were trained on.
SHARED_PRESET_KEYS = ("words", "damsm")


@dataclass(frozen=True)
class Preset:
    """A named starting point: what data it is for, and the GAN training and DAMSM pretraining configs."""

    name: str
    dataset_kind: str  # the dataset source (DatasetInfo.source) this preset is chosen for
    captions_per_image: int  # captions per image of that data
    train: TrainConfig
    pretrain: PretrainConfig
    chosen_by_data: bool = True  # False: only by name (--preset), never chosen for a dataset's kind


def build_preset(name: str, definition: dict[str, Any]) -> Preset:
    """A :class:`Preset` from its definition (the format of :data:`PRESETS`), strictly: an unknown or
    misspelled key is a :class:`ConfigMismatchError` naming it."""
    where = f"presets.{name}"
    values = copy.deepcopy(definition)
    hints = typing.get_type_hints(Preset)
    own: dict[str, Any] = {}
    for key in ("dataset_kind", "captions_per_image"):
        if key not in values:
            raise ConfigMismatchError(f"{where}: {key} is missing")
        own[key] = _coerce(hints[key], values.pop(key), f"{where}.{key}")
    if "chosen_by_data" in values:
        own["chosen_by_data"] = _coerce(bool, values.pop("chosen_by_data"), f"{where}.chosen_by_data")
    pretrain_values = values.pop("pretrain", {})
    if "preset" in values or "preset" in pretrain_values:
        raise ConfigMismatchError(f"{where}: the configs' preset field is the preset's name; do not set it")
    shared_in_pretrain = [k for k in SHARED_PRESET_KEYS if k in pretrain_values]
    own_words = "words" in pretrain_values.get("text", {})  # the DAMSM's own caption length
    if shared_in_pretrain:
        raise ConfigMismatchError(f"{where}.pretrain: {shared_in_pretrain[0]} is shared with training: set "
                                  f"{' and '.join(SHARED_PRESET_KEYS)} once at the preset's top level")
    # the backbone's input size unless the definition gives one
    image = pretrain_values.setdefault("image", {})
    image.setdefault("image_size", default_image_size(image.get("backbone", ImageEncoderConfig.backbone)))

    train = from_dict(TrainConfig, {**values, "preset": name}, where=where)
    pretrain = from_dict(PretrainConfig, {**pretrain_values, "preset": name}, where=f"{where}.pretrain")
    if not own_words:
        pretrain.text.words = train.words
    pretrain.damsm = copy.deepcopy(train.damsm)
    validate(train)
    validate(pretrain)
    return Preset(name=name, dataset_kind=own["dataset_kind"], captions_per_image=own["captions_per_image"],
                  train=train, pretrain=pretrain, chosen_by_data=own.get("chosen_by_data", True))


def _build_presets(definitions: dict[str, dict[str, Any]]) -> dict[str, Preset]:
    presets = {name: build_preset(name, d) for name, d in definitions.items()}
    kinds = [p.dataset_kind for p in presets.values() if p.chosen_by_data]
    for kind in kinds:
        if kinds.count(kind) > 1:
            raise ConfigMismatchError(f"several presets have dataset_kind {kind!r}; the data could not choose one")
    return presets


def preset_names() -> list[str]:
    return list(_PRESETS_BY_NAME)


def get_preset(name: str) -> Preset:
    """The preset ``name`` (a copy: changing it changes nothing else)."""
    return copy.deepcopy(_lookup(name))


def _lookup(name: str) -> Preset:
    if name not in _PRESETS_BY_NAME:
        raise AttnGANError(f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS_BY_NAME)}")
    return _PRESETS_BY_NAME[name]


def make_pretrain_config(preset: str = DEFAULT_PRESET, overrides: dict[str, Any] | None = None) -> PretrainConfig:
    """The DAMSM pretraining config of ``preset`` with dotted-key ``overrides`` (e.g. ``{"text.words": 12}``)."""
    return apply_overrides(_lookup(preset).pretrain, overrides or {})


def make_train_config(preset: str = DEFAULT_PRESET, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The GAN training config of ``preset`` with dotted-key ``overrides`` (e.g. ``{"generator.ngf": 64}``)."""
    return apply_overrides(_lookup(preset).train, overrides or {})


def preset_value(preset: str, key: str) -> Any:
    """A preset value that is not part of a job config (``dataset_kind``, ``captions_per_image``)."""
    keys = [f.name for f in dataclasses.fields(Preset) if f.name not in ("name", "train", "pretrain", "chosen_by_data")]
    if key not in keys:
        raise AttnGANError(f"presets have no value {key!r}; choose one of: {', '.join(keys)}")
    return getattr(_lookup(preset), key)


_PRESETS_BY_NAME: dict[str, Preset] = _build_presets(PRESETS)
