"""Presets: named starting points with the official values (AttnGAN code/cfg/*.yml) plus a CPU-sized one
for the built-in shapes data.

A preset (:class:`Preset`, :func:`get_preset`) is typed: its definition in :data:`PRESETS` is read
strictly at import time, so a misspelled key fails on import instead of being dropped. Choosing the
preset for a dataset and the rest of settings resolution live in :mod:`attngan_cli.training.resolve`.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from attngan_cli.config.captioner import CaptionPretrainConfig
from attngan_cli.config.fields import validate
from attngan_cli.config.schema import ImageEncoderConfig, PretrainConfig, TrainConfig, default_image_size
from attngan_cli.config.serialize import apply_overrides, coerce, from_dict
from attngan_cli.core.errors import AttnGANError, ConfigMismatchError

DEFAULT_PRESET = "bird"  # the paper's settings; also the preset for data of no preset's kind (folders)

# The definitions, read once at import time by build_preset into typed Preset objects (get_preset); an
# unknown or misspelled key is an error there. Each definition holds: the preset's own values
# (dataset_kind, captions_per_image), the values both jobs share (SHARED_PRESET_KEYS), the GAN training
# config's fields at the top level, the DAMSM pretraining config's fields under "pretrain" and MirrorGAN's
# STREAM captioner pretraining config's fields under "captioner" (see attngan_cli.config.captioner).
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
        "captioner": {"words": 18},
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
        "captioner": {"words": 15},
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
        "captioner": {
            "words": 12, "batch_size": 32, "epochs": 6, "lr": 2e-3, "eval_items": 500,
            "model": {"backbone": "compact", "image_size": 64, "width": 16, "embed_dim": 128, "hidden_dim": 128},
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
    """A named starting point: what data it is for, and the GAN training, DAMSM pretraining and captioner
    pretraining configs."""

    name: str
    dataset_kind: str  # the dataset source (DatasetInfo.source) this preset is chosen for
    captions_per_image: int  # captions per image of that data
    train: TrainConfig
    pretrain: PretrainConfig
    captioner: CaptionPretrainConfig
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
        own[key] = coerce(hints[key], values.pop(key), f"{where}.{key}")
    if "chosen_by_data" in values:
        own["chosen_by_data"] = coerce(bool, values.pop("chosen_by_data"), f"{where}.chosen_by_data")
    pretrain_values = values.pop("pretrain", {})
    captioner_values = values.pop("captioner", {})
    if "preset" in values or "preset" in pretrain_values or "preset" in captioner_values:
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
    captioner = from_dict(CaptionPretrainConfig, {**captioner_values, "preset": name}, where=f"{where}.captioner")
    for cfg in (train, pretrain, captioner):
        validate(cfg)
    return Preset(name=name, dataset_kind=own["dataset_kind"], captions_per_image=own["captions_per_image"],
                  train=train, pretrain=pretrain, captioner=captioner,
                  chosen_by_data=own.get("chosen_by_data", True))


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


def make_caption_pretrain_config(preset: str = DEFAULT_PRESET,
                                 overrides: dict[str, Any] | None = None) -> CaptionPretrainConfig:
    """The captioner pretraining config of ``preset`` with dotted-key ``overrides``. A ``model.backbone``
    override brings that backbone's input size unless ``model.image_size`` is overridden too."""
    base = _lookup(preset).captioner
    overrides = dict(overrides or {})
    backbone = overrides.get("model.backbone")
    if backbone is not None and backbone != base.model.backbone and overrides.get("model.image_size") is None:
        overrides["model.image_size"] = default_image_size(backbone, "model.backbone")
    return apply_overrides(base, overrides)


def preset_value(preset: str, key: str) -> Any:
    """A preset value that is not part of a job config (``dataset_kind``, ``captions_per_image``)."""
    jobs = ("name", "train", "pretrain", "captioner", "chosen_by_data")
    keys = [f.name for f in dataclasses.fields(Preset) if f.name not in jobs]
    if key not in keys:
        raise AttnGANError(f"presets have no value {key!r}; choose one of: {', '.join(keys)}")
    return getattr(_lookup(preset), key)


_PRESETS_BY_NAME: dict[str, Preset] = _build_presets(PRESETS)
