"""Settings resolution: from what a user asks for (a dataset, a preset, overrides, a run to resume) to
the config a training job runs with, checked before anything is written.

The ``pretrain`` and ``train`` commands and the demo resolve their settings here and nowhere else, so
they cannot disagree: the preset is chosen from the dataset (:func:`preset_for_source`), the image size
follows the backbone (:func:`attngan_cli.config.schema.default_image_size`), a checkpoint to resume is loaded
once and checked against the config that continues it, and every check that needs no training (files
exist, device and precision, attribute names, weight shapes, vocabulary, batch sizes over the torchrun
processes, training images) fails here, before a run directory is created. The jobs
(:func:`attngan_cli.training.gan.train_gan`, :func:`attngan_cli.training.damsm.pretrain`,
:func:`attngan_cli.training.captioner.pretrain_captioner`) take the settings made here
(:class:`TrainSettings`, :class:`PretrainSettings`, :class:`CaptionPretrainSettings`) and check nothing again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attngan_cli.archs.base import SettingsContext, resolve_options
from attngan_cli.archs.registry import DEFAULT_ARCH, base_preset, get_arch, named_preset, new_train_config
from attngan_cli.config.captioner import CAPTIONER_KIND, CaptionPretrainConfig
from attngan_cli.config.presets import (
    DEFAULT_PRESET,
    get_preset,
    make_caption_pretrain_config,
    make_pretrain_config,
    preset_names,
    preset_value,
)
from attngan_cli.config.schema import PretrainConfig, TrainConfig, TrainEvalConfig, default_image_size
from attngan_cli.config.serialize import apply_overrides, from_dict, to_dict
from attngan_cli.core.device import resolve_device, settle_precision
from attngan_cli.core.distributed import check_batch, is_distributed
from attngan_cli.core.errors import ConfigMismatchError, FieldError, InputError
from attngan_cli.data.h5 import SPLIT_NAMES, open_h5, read_info
from attngan_cli.evaluation.features import check_inception_weights
from attngan_cli.evaluation.manifest import DEFAULT_PROTOCOL
from attngan_cli.evaluation.protocols import get_protocol
from attngan_cli.evaluation.registry import get_metric, parse_metric_names
from attngan_cli.inference.pipeline import damsm_config
from attngan_cli.networks.image_encoder import inception_weights_file
from attngan_cli.storage.checkpoints import (
    DAMSM_KIND,
    GAN_KIND,
    Checkpoint,
    check_checkpoint_config,
    check_vocab,
    load_checkpoint,
    load_resume,
    require_state,
    same_state,
)
from attngan_cli.storage.rundirs import resolve_checkpoint

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# Fields that must agree between a checkpoint and the config that resumes it: they set the weights' shapes.
GAN_RESUME_FIELDS = [
    "generator.arch", "generator.stages", "generator.base_size", "generator.ngf", "generator.r_num", "generator.z_dim",
    "generator.condition_dim", "generator.embedding_dim", "generator.variant", "discriminator.ndf",
    "discriminator.embedding_dim", "discriminator.spectral_norm",
]
DAMSM_RESUME_FIELDS = [
    "text.vocab_size", "text.word_dim", "text.embedding_dim", "image.backbone", "image.image_size",
    "image.width", "image.compact_version", "image.embedding_dim",
]
CAPTIONER_RESUME_FIELDS = ["model.vocab_size", "model.backbone", "model.image_size", "model.width",
                           "model.embed_dim", "model.hidden_dim", "model.layers"]

# Fields a resumed DAMSM or captioner run may change: how long, where and how it runs, not what it
# computes. Any other field given with a value other than the checkpoint's is refused (the weight shapes by
# :func:`check_checkpoint_config`, the rest, which set the data order and the updates, by :func:`resumed_config`).
PRETRAIN_RESUME_MAY_CHANGE = ("dataset", "epochs", "max_minutes", "snapshot_every", "workers", "device", "precision",
                              "tensorboard")
# Of those, the ones whose change makes the run differ from an uninterrupted one (a warning).
RESUME_CHANGES_NUMBERS = ("device", "precision")

MISSING_ENCODERS = "give the pretrained DAMSM encoders with --encoders PRETRAIN_RUN_OR_CHECKPOINT"


@dataclass(frozen=True)
class TrainSettings:
    config: TrainConfig
    resume: Checkpoint | None = None  # the loaded ``gan`` checkpoint to continue from


@dataclass(frozen=True)
class PretrainSettings:
    config: PretrainConfig
    resume: Checkpoint | None = None  # the loaded ``damsm`` checkpoint to continue from
    inception_weights: Path | None = None  # the checked ImageNet weights file a new inception-v3 run starts from


@dataclass(frozen=True)
class CaptionPretrainSettings:
    config: CaptionPretrainConfig
    resume: Checkpoint | None = None  # the loaded ``captioner`` checkpoint to continue from
    inception_weights: Path | None = None  # the checked ImageNet weights file a new inception-v3 run starts from


def preset_for_source(source: str) -> str:
    """The preset for data from ``source`` (:attr:`DatasetInfo.source`): the one whose ``dataset_kind``
    it is (cub -> bird, coco -> coco, shapes -> shapes); data of any other source (a folder of images,
    ...) gets :data:`attngan_cli.config.presets.DEFAULT_PRESET`."""
    for name in preset_names():
        if get_preset(name).chosen_by_data and preset_value(name, "dataset_kind") == source:
            return name
    return DEFAULT_PRESET


def saved_train_config(config: dict[str, Any]) -> dict[str, Any]:
    """A GAN checkpoint's stored config, with the meaning of the fields it predates: a run saved before
    ``stream_end_target`` existed scored the ``<end>`` target in its re-description loss."""
    if isinstance(config, dict) and "stream_end_target" not in config:
        return {**config, "stream_end_target": True}
    return config


def resolve_train(data: PathLike | None, *, encoders: PathLike | None = None, preset: str | None = None,
                  overrides: dict[str, Any] | None = None, resume: PathLike | None = None,
                  captioner: PathLike | None = None, arch_options: dict[str, Any] | None = None) -> TrainSettings:
    """The GAN training settings for ``data`` (a prepared HDF5 file) and the DAMSM ``encoders``.

    A new run starts from ``preset`` (default: :func:`preset_for_source` of the data) with the overrides
    its architecture applies to it, or from an architecture's named preset
    (:func:`attngan_cli.archs.registry.new_train_config`). With ``resume`` (a ``gan`` checkpoint or train
    run directory) the run starts from the checkpoint's config instead; ``data`` and ``encoders`` are then
    optional and replace the checkpoint's when given, and an override of a field that sets a weight shape
    (``GAN_RESUME_FIELDS``) is an error naming it. ``overrides`` are dotted config keys (``None`` values
    are ignored); the dataset and encoder paths are stored absolute. ``arch_options`` (``--arch-option``)
    are checked by the architecture's options. ``captioner`` (MirrorGAN's STREAM,
    :mod:`attngan_cli.archs.stream`) is given as a path. Last, the architecture checks the
    settings (its ``check_settings``: e.g. StackGAN's stage schedule, the captioner against the data).
    """
    overrides = _own_overrides(overrides, ("dataset", "encoders", "captioner", "arch_options"))
    if captioner is not None:
        overrides["captioner"] = str(Path(captioner).resolve())
    if data is not None:
        overrides["dataset"] = str(Path(data).resolve())
    if encoders is not None:
        overrides["encoders"] = str(Path(encoders).resolve())
    ckpt = None
    if resume is not None:
        ckpt = load_resume(resume, GAN_KIND, "GAN checkpoint")
        saved = from_dict(TrainConfig, saved_train_config(ckpt.config), where=f"checkpoint {ckpt.path}")
        if preset and preset != saved.preset:
            raise InputError(f"--preset {preset}: checkpoint {ckpt.path} continues a run of preset {saved.preset}; "
                             "a resumed run keeps its settings (leave out --preset)")
        arch = get_arch(saved.generator.arch)
        stored, option_overrides = resolve_options(arch, arch_options or {}, saved.arch_options)
        cfg = apply_overrides(saved, {**_option_overrides(option_overrides, overrides), **overrides,
                                      "arch_options": stored})
        check_checkpoint_config(ckpt, cfg, GAN_RESUME_FIELDS)
        check_not_finished(ckpt, cfg.epochs, cfg.max_steps)
    else:
        if data is None:
            raise InputError("give the prepared dataset (DATA.h5) to train on, or --resume a run")
        preset = preset or preset_for_source(read_info(data).source)
        found = named_preset(preset) if preset not in preset_names() and not overrides.get("generator.arch") else None
        arch = found[0] if found is not None else get_arch(overrides.get("generator.arch") or DEFAULT_ARCH)
        stored, option_overrides = resolve_options(arch, arch_options or {})
        cfg = new_train_config(preset, {**_option_overrides(option_overrides, overrides), **overrides,
                                        "arch_options": stored})
        if not cfg.encoders and arch.default_encoders is not None:
            default = arch.default_encoders(cfg)
            if default:
                cfg = apply_overrides(cfg, {"encoders": str(Path(default).resolve())})
    arch = get_arch(cfg.generator.arch)
    if cfg.batch_size < 2:
        raise InputError("--batch-size must be at least 2 (BatchNorm and the mismatched pairs need a batch)")
    check_batch(cfg.batch_size, cfg.grad_accum)  # over the torchrun processes and --grad-accum micro-batches
    if not Path(cfg.dataset).is_file():
        raise InputError(f"dataset {cfg.dataset} does not exist (prepare one with `attngan prep`)")
    if not cfg.encoders:
        raise InputError(MISSING_ENCODERS)
    cfg = settle_precision(cfg)  # fp16 needs CUDA
    check_sync_bn(cfg, overrides)
    if ckpt is None:
        cfg = device_defaults(cfg, overrides, ("compile", "workers"))
    info = read_info(cfg.dataset)
    check_batch_fits(cfg.batch_size, info.n_train, cfg.dataset)
    if overrides.get("words") is not None and cfg.words > info.max_len:
        raise InputError(f"--words {cfg.words} is more than the longest caption of {cfg.dataset} ({info.max_len} "
                         f"words): give at most {info.max_len}")
    dataset_words = list(info.vocab.words)
    encoders_path = resolve_checkpoint(cfg.encoders, what="DAMSM checkpoint")  # a file, or a run directory with one
    encoders_ckpt = load_checkpoint(encoders_path, kind=DAMSM_KIND, mmap=True)
    check_encoders(encoders_ckpt, dataset_words, cfg)
    if ckpt is not None:
        check_resume(ckpt, cfg, dataset_words, encoders_ckpt.state.get("text_encoder"))
    arch.option_values(cfg.arch_options)  # the stored options are ones the architecture knows
    if arch.check_settings is not None:
        cfg = arch.check_settings(cfg, SettingsContext(ckpt is not None, list(dataset_words), encoders_ckpt))
    cfg = resolve_train_eval(cfg, overrides, info)
    return TrainSettings(cfg, ckpt)


# the flag of each evaluation-during-training field (their errors name them)
EVAL_FLAGS = {"every": "--eval-every", "metrics": "--eval-metrics", "samples": "--eval-samples",
              "best_metric": "--best-metric", "split": "--eval-split",
              "inception_weights": "--eval-inception-weights", "encoders": "--eval-encoders"}


def resolve_train_eval(cfg: TrainConfig, overrides: dict[str, Any], info: Any) -> TrainConfig:
    """Evaluation during training (``cfg.evaluation``), checked before training starts: known metric
    names, a ``--best-metric`` among them, the held-out split present (with two classes for R-precision),
    the Inception weights file IS and FID need, the DAMSM R-precision uses (trained on this vocabulary),
    stored attributes for the attributes metric. Returns the config with the metric names normalised, the
    best metric named and the files absolute. Evaluation options given other values than their defaults
    without ``--eval-every`` are an error."""
    ev = cfg.evaluation
    defaults = to_dict(TrainEvalConfig())
    given = sorted(k.removeprefix("evaluation.") for k, v in overrides.items()
                   if k.startswith("evaluation.") and k != "evaluation.every" and v is not None
                   and v != defaults.get(k.removeprefix("evaluation.")))
    if ev.every == 0:
        if given:
            raise InputError(f"{EVAL_FLAGS.get(given[0], given[0])} sets evaluation during training: give "
                             "--eval-every N (steps between evaluations) too")
        return cfg
    flag = EVAL_FLAGS
    try:
        names = parse_metric_names(ev.metrics)
    except InputError as e:
        raise InputError(f"{flag['metrics']}: {e}") from None
    best = ev.best_metric.strip().lower() or names[0]
    if best not in names:
        raise InputError(f"{flag['best_metric']} {best}: best.pt is kept by one of the metrics evaluated; "
                         f"{flag['metrics']} is {','.join(names)}")
    specs = [get_metric(n) for n in names]
    n_split = {"test": info.n_test, "train": info.n_train}.get(ev.split)
    if n_split is None:
        raise InputError(f"{flag['split']} {ev.split}: give test or train")
    if n_split == 0:
        raise InputError(f"{flag['every']}: dataset {cfg.dataset} has no {ev.split} images to evaluate on "
                         f"(choose another split with {flag['split']})")
    is_splits = get_protocol(DEFAULT_PROTOCOL).is_splits
    if "is" in names and ev.samples < is_splits:
        raise InputError(f"{flag['samples']} {ev.samples}: the Inception Score needs at least "
                         f"{is_splits} samples (its splits)")
    fixed: dict[str, Any] = {"evaluation.metrics": names, "evaluation.best_metric": best}
    if any(s.needs_inception for s in specs):
        if not ev.inception_weights:
            needing = ", ".join(s.name for s in specs if s.needs_inception)
            raise InputError(f"{flag['metrics']} {needing} needs the TF-Inception weights file: give "
                             f"{flag['inception_weights']} PATH (the file attngan eval --inception-weights takes)")
        fixed["evaluation.inception_weights"] = str(check_inception_weights(ev.inception_weights).resolve())
    if any(s.needs_damsm for s in specs):
        named = ev.encoders or cfg.encoders
        path = resolve_checkpoint(named, what=f"DAMSM checkpoint ({flag['encoders']})")
        check_vocab(load_checkpoint(path, kind=DAMSM_KIND, mmap=True), list(info.vocab.words),
                    f"dataset {cfg.dataset}")
        if ev.encoders:
            fixed["evaluation.encoders"] = str(Path(ev.encoders).resolve())
        with open_h5(cfg.dataset) as f:
            split_of = np.asarray(f["split"][()])
            classes = np.asarray(f["class_ids"][()])[split_of == SPLIT_NAMES[ev.split]]
        if len(np.unique(classes)) < 2:
            raise InputError(f"{flag['metrics']} rprecision needs captions of at least two classes in the "
                             f"{ev.split} split of {cfg.dataset}; it has {len(np.unique(classes))}")
    if any(s.needs_attributes for s in specs) and not info.attributes:
        raise InputError(f"{flag['metrics']} attributes needs a dataset with stored attributes (shapes); "
                         f"{cfg.dataset} has none")
    return apply_overrides(cfg, fixed)


# why a pretraining needs batches of at least 2
DAMSM_BATCH_WHY = "the DAMSM losses score each caption against the other images of its batch"
CAPTIONER_BATCH_WHY = "the captioner's image encoder ends in BatchNorm, which needs a batch"


def check_pretrain_batch(cfg: Any, n_train: int, model: str, why: str) -> None:
    """A pretraining's split and batch: at least 2 training images, batches of at least 2 (``why``), and a
    batch that fits the split."""
    if n_train < 2:
        raise InputError(f"{cfg.dataset}: the train split has {n_train} images; {model} needs at least 2")
    if cfg.batch_size < 2:
        raise InputError(f"--batch-size must be at least 2 ({why})")
    check_batch_fits(cfg.batch_size, n_train, cfg.dataset)


def check_batch_fits(batch_size: int, n_train: int, dataset: str) -> None:
    """A batch must fit in the training split (a larger one would be cut while config.json keeps the asked size)."""
    if batch_size > n_train:
        raise InputError(f"--batch-size {batch_size} is larger than the {n_train} training images of {dataset}")


def check_sync_bn(cfg: TrainConfig, overrides: dict[str, Any]) -> None:
    """``--sync-bn`` does something only under torchrun on CUDA devices: asked for elsewhere, it is refused."""
    if overrides.get("sync_bn") and not (is_distributed() and resolve_device(cfg.device).type == "cuda"):
        raise InputError("--sync-bn needs torchrun on CUDA devices (SyncBatchNorm syncs the processes' batch "
                         "statistics); leave it off in one process or on CPUs")


def _option_overrides(option_overrides: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The config fields that architecture options set; the same field given as an override too is an error."""
    for key in option_overrides:
        if overrides.get(key) is not None:
            raise InputError(f"an --arch-option sets {key}, which is given too: give one of them")
    return option_overrides


def resolve_preset(preset: str) -> tuple[str, dict[str, Any]]:
    """A dataset preset as it is, or an architecture's named preset (``mirrorgan-bird``) as its dataset
    preset and the override that keeps its name: (dataset preset, overrides)."""
    base = base_preset(preset)
    return base, ({} if base == preset else {"preset": preset})


def check_encoders(encoders: Checkpoint, dataset_words: list[str], cfg: TrainConfig) -> None:
    """The DAMSM encoders (a loaded ``damsm`` checkpoint) must have been trained on this dataset's
    vocabulary and embed to G's and the Ds' embedding size."""
    check_vocab(encoders, dataset_words, f"dataset {cfg.dataset}")
    text = damsm_config(encoders.config).text
    if text.vocab_size != len(dataset_words):
        raise ConfigMismatchError(
            f"the text encoder of {encoders.path} has {text.vocab_size} words but dataset {cfg.dataset} has "
            f"{len(dataset_words)}")
    for name, value in (("generator.embedding_dim", cfg.generator.embedding_dim),
                        ("discriminator.embedding_dim", cfg.discriminator.embedding_dim)):
        if value != text.embedding_dim:
            raise ConfigMismatchError(f"{name} is {value} but the encoders of {encoders.path} embed to "
                                      f"{text.embedding_dim}")


def check_resume(ckpt: Checkpoint, cfg: TrainConfig, dataset_words: list[str],
                 text_state: dict[str, Any] | None) -> None:
    """The ``gan`` checkpoint continues this run (its weight shapes were checked against the config that
    continues it): same vocabulary and frozen text encoder (``text_state``: the weights of the encoders'
    text encoder, None where they hold none); a changed batch size or seed is allowed with a warning."""
    check_vocab(ckpt, dataset_words, f"dataset {cfg.dataset}")
    saved = ckpt.extra.get("damsm_text_encoder")
    if saved is not None and text_state is not None and not same_state(saved, text_state):
        raise ConfigMismatchError(
            f"the text encoder in {cfg.encoders} differs from the one checkpoint {ckpt.path} was trained with "
            f"({ckpt.extra.get('damsm_path')})")
    for name in ("batch_size", "seed"):
        if ckpt.config.get(name) != getattr(cfg, name):
            log.warning("resuming with %s=%r (the checkpoint used %r): the run will not repeat an uninterrupted one",
                        name, getattr(cfg, name), ckpt.config.get(name))


def resolve_pretrain(data: PathLike, *, preset: str | None = None, overrides: dict[str, Any] | None = None,
                     resume: PathLike | None = None, inception_weights: PathLike | None = None) -> PretrainSettings:
    """The DAMSM pretraining settings for ``data`` (a prepared HDF5 file).

    The config starts from ``preset`` (default: :func:`preset_for_source` of the data) with dotted-key
    ``overrides`` (``None`` values are ignored); the text encoder's vocabulary size comes from the data.
    An ``image.backbone`` override other than the preset's brings its :func:`default_image_size` unless
    ``image.image_size`` is overridden too. ``cache_features`` without a ``group_by`` override means
    random batches (cached features come in fixed batches). With ``resume`` (a ``damsm`` checkpoint or
    pretrain run directory) the checkpoint must agree on the weight shapes (``DAMSM_RESUME_FIELDS``) and
    the vocabulary; without it, the inception-v3 backbone needs an existing ``inception_weights`` file.
    """
    overrides = _own_overrides(overrides, ("dataset", "text.vocab_size"))
    info = read_info(data)
    if resume is not None:
        return _resumed_pretrain(data, info, preset, overrides, resume)
    preset, named = resolve_preset(preset or preset_for_source(info.source))
    overrides = {**named, **overrides}
    backbone = overrides.get("image.backbone")
    if backbone is not None and backbone != get_preset(preset).pretrain.image.backbone \
            and overrides.get("image.image_size") is None:
        overrides["image.image_size"] = default_image_size(backbone)
    overrides["dataset"] = str(Path(data).resolve())
    overrides["text.vocab_size"] = len(info.vocab)
    group_by_given = overrides.get("group_by") is not None
    if overrides.get("cache_features") and not group_by_given:
        overrides["group_by"] = []
    cfg = make_pretrain_config(preset, overrides)

    if group_by_given:
        info.check_attributes(cfg.group_by, what="--group-by:")
    else:
        info.check_attributes(cfg.group_by, what=f"the {preset} preset groups batches by {', '.join(cfg.group_by)} "
                                                 "(choose others with --group-by, or none), but")
    cached = cfg.cache_features and cfg.image.backbone == "inception-v3"
    if cached and cfg.group_by:
        raise InputError("--group-by and --cache-features cannot be combined (cached features come in fixed "
                         "random batches); pass --group-by none")
    if cached and is_distributed():
        raise InputError("--cache-features runs in one process: under torchrun leave it out (each process then "
                         "runs the frozen Inception layers on its share of every batch)")
    if cached and cfg.image.frozen_bn != "eval":
        log.info("--cache-features: the frozen Inception layers use their stored BatchNorm statistics (eval "
                 "mode), not the official batch statistics; image.frozen_bn is set to eval for this run")
        cfg = apply_overrides(cfg, {"image.frozen_bn": "eval"})
    check_pretrain_batch(cfg, info.n_train, "DAMSM", DAMSM_BATCH_WHY)
    cfg = settle_precision(cfg)
    cfg = device_defaults(cfg, overrides, ("workers",))
    check_batch(cfg.batch_size, cfg.grad_accum)
    weights = inception_weights_file(inception_weights) if cfg.image.backbone == "inception-v3" else None
    return PretrainSettings(cfg, None, weights)


def _resumed_pretrain(data: PathLike, info: Any, preset: str | None, overrides: dict[str, Any],
                      resume: PathLike) -> PretrainSettings:
    """:func:`resolve_pretrain` with ``resume``: the checkpoint's config with the overrides a resumed run
    may take (:func:`resumed_config`), on the same vocabulary, not yet finished."""
    ckpt = load_resume(resume, DAMSM_KIND, "DAMSM checkpoint")
    saved = from_dict(PretrainConfig, ckpt.config, where=f"checkpoint {ckpt.path}")
    overrides = {**overrides, "dataset": str(Path(data).resolve()), "text.vocab_size": len(info.vocab)}
    cfg = resumed_config(ckpt, saved, preset, overrides, DAMSM_RESUME_FIELDS)
    check_vocab(ckpt, info.vocab.words, f"dataset {data}")
    info.check_attributes(cfg.group_by, what=f"checkpoint {ckpt.path} groups batches by {', '.join(cfg.group_by)}, but")
    check_pretrain_batch(cfg, info.n_train, "DAMSM", DAMSM_BATCH_WHY)
    if cfg.cache_features and cfg.image.backbone == "inception-v3" and is_distributed():
        raise InputError(f"--cache-features runs in one process: checkpoint {ckpt.path} continues a run that cached "
                         "features, which cannot go on under torchrun")
    cfg = settle_precision(cfg)
    check_batch(cfg.batch_size, cfg.grad_accum)
    return PretrainSettings(cfg, ckpt, None)


def resolve_caption_pretrain(data: PathLike, *, preset: str | None = None, overrides: dict[str, Any] | None = None,
                             resume: PathLike | None = None, inception_weights: PathLike | None = None
                             ) -> CaptionPretrainSettings:
    """The captioner pretraining settings for ``data`` (a prepared HDF5 file), checked before any run
    directory exists: the preset (default: the data's, as for the DAMSM), the vocabulary size from the
    data, at least 2 training images, the device and precision, the batch over the torchrun processes, a
    resumed checkpoint's shapes (``CAPTIONER_RESUME_FIELDS``) and vocabulary, and the Inception weights
    file for a new run of the inception-v3 backbone."""
    overrides = _own_overrides(overrides, ("dataset", "model.vocab_size"))
    info = read_info(data)
    overrides["dataset"] = str(Path(data).resolve())
    overrides["model.vocab_size"] = len(info.vocab)
    ckpt, weights = None, None
    if resume is not None:
        ckpt = load_resume(resume, CAPTIONER_KIND, "captioner checkpoint")
        saved = from_dict(CaptionPretrainConfig, ckpt.config, where=f"checkpoint {ckpt.path}")
        cfg = resumed_config(ckpt, saved, preset, overrides, CAPTIONER_RESUME_FIELDS)
        check_captioner_resume(ckpt, cfg, list(info.vocab.words))
    else:
        preset, named = resolve_preset(preset or preset_for_source(info.source))
        cfg = make_caption_pretrain_config(preset, {**named, **overrides})
    check_pretrain_batch(cfg, info.n_train, "the captioner", CAPTIONER_BATCH_WHY)
    cfg = settle_precision(cfg)
    if resume is None:
        cfg = device_defaults(cfg, overrides, ("workers",))
    check_batch(cfg.batch_size)
    if resume is None and cfg.model.backbone == "inception-v3":
        weights = inception_weights_file(inception_weights)
    return CaptionPretrainSettings(cfg, ckpt, weights)


def check_captioner_resume(ckpt: Checkpoint, cfg: CaptionPretrainConfig, vocab_words: list[str]) -> None:
    """The ``captioner`` checkpoint continues this run: same weight shapes, vocabulary, and the weights there."""
    check_checkpoint_config(ckpt, cfg, CAPTIONER_RESUME_FIELDS)
    check_vocab(ckpt, vocab_words, f"dataset {cfg.dataset}")
    require_state(ckpt, "captioner")


def resumed_config(ckpt: Checkpoint, saved: Any, preset: str | None, overrides: dict[str, Any],
                   shape_fields: list[str]) -> Any:
    """The config a resumed DAMSM or captioner run continues with: ``saved`` (the checkpoint's) with the
    ``overrides`` (``None`` values: not given) that a resumed run may change
    (:data:`PRETRAIN_RESUME_MAY_CHANGE`, logged). A ``preset`` other than the run's, a weight shape
    (``shape_fields``) or any other field given another value than the checkpoint's is an error naming it:
    they decide the weights, the data order or the updates, so the run would not continue as configured.
    The run must not be finished already (:func:`check_not_finished`)."""
    if preset and preset != saved.preset:
        raise InputError(f"--preset {preset}: checkpoint {ckpt.path} continues a run of preset {saved.preset}; "
                         "a resumed run keeps its settings (leave out --preset)")
    given = {k: v for k, v in overrides.items() if v is not None}
    cfg = apply_overrides(saved, given)
    check_checkpoint_config(ckpt, cfg, shape_fields)
    before, after = to_dict(saved), to_dict(cfg)
    changed = {key: (_dotted(before, key), _dotted(after, key)) for key in given}
    changed = {key: values for key, values in changed.items() if values[0] != values[1]}
    for key, (old, new) in changed.items():
        if key not in PRETRAIN_RESUME_MAY_CHANGE:
            raise FieldError(key, f"is {old!r} in the run checkpoint {ckpt.path} continues, not {new!r}: a resumed "
                                  "run keeps the settings of its weights and data order (leave the option out)")
    check_not_finished(ckpt, cfg.epochs)
    for key, (old, new) in changed.items():
        if key in RESUME_CHANGES_NUMBERS:
            log.warning("resuming with %s=%r (the run had %r): it will not repeat an uninterrupted run exactly",
                        key, new, old)
        else:
            log.info("resuming with %s=%r (the run had %r)", key, new, old)
    return cfg


def check_not_finished(ckpt: Checkpoint, epochs: int, max_steps: int = 0) -> None:
    """A resumed run must have steps left: a checkpoint at (or past) the ``epochs`` or ``max_steps``
    (0: no limit) asked for would train nothing and still write a new run directory."""
    if ckpt.epoch >= epochs:
        raise InputError(f"checkpoint {ckpt.path} is of a finished run ({ckpt.epoch} epochs of {epochs}): to continue "
                         f"it give --epochs N larger than {ckpt.epoch}")
    if max_steps > 0 and ckpt.step >= max_steps:
        raise InputError(f"checkpoint {ckpt.path} is of a finished run (step {ckpt.step}, --max-steps {max_steps}): "
                         f"to continue it give --max-steps N larger than {ckpt.step}, or 0 (no limit)")


def _dotted(config: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in a config dict (None where there is none)."""
    value: Any = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def device_defaults(cfg: Any, overrides: dict[str, Any], fields: tuple[str, ...]) -> Any:
    """A new run's ``fields`` that the command line left unset, chosen for its device: on CUDA,
    torch.compile on (``compile``) and min(4, this process's share of the cores - 1) DataLoader worker
    processes (``workers``; torchrun's LOCAL_WORLD_SIZE processes share the machine's cores), so that
    decoding and augmenting never leave the GPU waiting; on CPUs compile off (measured slower there: see
    README) and no workers (they would take cores from the step)."""
    cuda = resolve_device(cfg.device).type == "cuda"
    cores = (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    chosen = {"compile": cuda, "workers": max(0, min(4, cores - 1)) if cuda else 0}
    return apply_overrides(cfg, {k: chosen[k] for k in fields if overrides.get(k) is None})


def _own_overrides(overrides: dict[str, Any] | None, resolved_here: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``overrides`` to add to; the keys the resolver sets itself must not be in it."""
    own = dict(overrides or {})
    for key in resolved_here:
        if own.get(key) is not None:
            raise ValueError(f"override {key!r} is set from the arguments of the resolver, not as an override")
    return own
