"""The evaluation driver: generate from the test captions in batches and fold each batch into the
requested metrics (:mod:`attngan_cli.evaluation.registry`).

Protocol (the papers'): the test split's images are visited in random order, one random caption of
each, and the split is repeated until ``num_samples`` images (30,000 by default) have been generated.
The whole plan (items, captions, noise vectors z, the mismatched captions for R-precision) is drawn up
front from ``seed``, so it does not depend on the batch size. Generated images are never all kept:
each batch goes through the metrics' accumulators (and optionally to PNG files) and is dropped.

:class:`Evaluator` prepares this once for a generator (from a checkpoint, or training's EMA generator in
memory: :mod:`attngan_cli.training.evaluation`) and runs it any number of times; every result carries the
manifest of :mod:`attngan_cli.evaluation.manifest`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from attngan_cli.archs.registry import get_arch
from attngan_cli.config.fields import bounded, one_of, or_none, seed_field, validate
from attngan_cli.core.device import resolve_device, seed_everything
from attngan_cli.core.distributed import (
    broadcast_object,
    gather_object,
    is_distributed,
    is_main_process,
    rank,
    world_size,
)
from attngan_cli.core.errors import AttnGANError, ConfigMismatchError, FieldError, InputError
from attngan_cli.core.fileio import append_jsonl, atomic_write_text, check_output_folder
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.dataset import TextImageDataset, pad_caption
from attngan_cli.data.h5 import open_h5, read_info
from attngan_cli.data.vocab import vocab_sha256
from attngan_cli.evaluation.features import InceptionFeatures
from attngan_cli.evaluation.fid import GaussianStats, stats_cache_path
from attngan_cli.evaluation.manifest import (
    build_manifest,
    file_entry,
    same_damsm_caveat,
    versions,
)
from attngan_cli.evaluation.protocols import (
    FID_EXTRACTORS,
    FID_PREPROCESS,
    FID_REFERENCES,
    RP_FOLD_STYLES,
    RP_TIES,
    SETTING_FIELDS,
    default_metrics,
    get_protocol,
    resolve_settings,
)
from attngan_cli.evaluation.registry import get_metric, parse_metric_names
from attngan_cli.evaluation.tv_inception import TorchvisionInceptionFeatures
from attngan_cli.inference.pipeline import DAMSMBundle, GeneratorBundle, generate, load_damsm, load_generator
from attngan_cli.networks.noise import check_truncation, truncate_
from attngan_cli.storage.checkpoints import same_state
from attngan_cli.viz.grid import images_to_uint8

log = logging.getLogger(__name__)

FID_PROTOCOL = "fid-real-v1: test split, PIL bilinear resize to the generator size, uint8, TF-Inception pool3"


@dataclass
class EvalOptions:
    """What to evaluate and how; checked by :func:`attngan_cli.config.fields.validate` in :func:`evaluate`."""

    metrics: list[str]  # empty: the protocol's metrics for the dataset
    # None: the protocol's value (protocols.SETTING_FIELDS); any value given overrides the protocol
    num_samples: int | None = or_none(bounded(None, low=1))
    batch_size: int = bounded(50, low=1)
    inception_weights: Path | None = None  # TF-FID Inception (IS, and FID with fid_extractor tf-inception)
    torchvision_inception: Path | None = None  # inception_v3_google-*.pth (FID with torchvision-inception)
    clip_model: Path | None = None  # Hugging Face CLIP folder or OpenAI's ViT-B-32.pt (clipscore, clip-rprecision)
    protocol: str = "attngan"
    fid_extractor: str | None = or_none(one_of(None, (None, *FID_EXTRACTORS)))
    fid_preprocess: str | None = or_none(one_of(None, (None, *FID_PREPROCESS)))
    fid_reference: str | None = or_none(one_of(None, (None, *FID_REFERENCES)))
    reference_passes: int | None = or_none(bounded(None, low=1))
    # None: the protocol's; the protocol's None: the architecture's own sampling noise (Architecture.noise_truncation)
    truncation: float | None = or_none(bounded(None, low=0))  # 0: no truncation
    image_size: int | None = or_none(bounded(None, low=0))  # 0: the generator's size
    is_temperature: float | None = or_none(bounded(None, low=0, low_inclusive=False))  # IS* when != 1
    rp_ties: str | None = or_none(one_of(None, (None, *RP_TIES)))
    rp_fold_style: str | None = or_none(one_of(None, (None, *RP_FOLD_STYLES)))
    clip_rp_wrong: int | None = or_none(bounded(None, low=1))
    clip_rp_folds: int | None = or_none(bounded(None, low=1))
    encoders: Path | None = None  # DAMSM checkpoint or pretrain run dir (default: the one the generator names)
    save_images: Path | None = None
    seed: int = seed_field()
    device: str = "auto"
    is_splits: int | None = or_none(bounded(None, low=1))
    rp_folds: int | None = or_none(bounded(None, low=1))
    rp_wrong: int | None = or_none(bounded(None, low=1))  # mismatched captions per image
    workers: int = bounded(0, low=0)
    ema: bool = True
    log_to_run: bool = True  # append to the generator run's metrics.jsonl
    split: str = "test"  # the split whose captions are generated from (and whose images are FID's reference)


@dataclass
class EvalResult:
    metrics: dict[str, dict[str, float]]
    checkpoint: Path
    data: Path
    num_samples: int
    image_size: int
    seed: int
    seconds: float
    step: int | None = None
    epoch: int | None = None
    metrics_file: Path | None = None
    images_dir: Path | None = None
    fid_cache: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)  # evaluation.manifest.build_manifest
    protocol: str = "attngan"
    settings: dict[str, Any] = field(default_factory=dict)  # every setting that moves a number, resolved
    overridden: list[str] = field(default_factory=list)  # the settings given as options, not by the protocol

    def record(self) -> dict[str, Any]:
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": "eval",
            "checkpoint": str(self.checkpoint),
            "step": self.step,
            "epoch": self.epoch,
            "data": str(self.data),
            "num_samples": self.num_samples,
            "image_size": self.image_size,
            "seed": self.seed,
            "seconds": round(self.seconds, 2),
            "protocol": self.protocol,
            "settings": self.settings,
            "overridden": self.overridden,
            "metrics": self.metrics,
            "manifest": self.manifest,
        }


# -------------------------------------------------------------------------------------------- plan
@dataclass
class SamplePlan:
    items: np.ndarray  # (N,) positions in the test split
    captions: np.ndarray  # (N,) caption index of each
    captions_per_image: int
    wrong_rows: np.ndarray | None = None  # (N, K) rows (item * C + caption) of other classes
    clip_wrong_rows: np.ndarray | None = None  # (N, K) rows of captions of other images (CLIP R-precision)

    @property
    def caption_rows(self) -> np.ndarray:
        return self.items * self.captions_per_image + self.captions


def make_plan(class_ids: np.ndarray, caption_lengths: np.ndarray, num_samples: int, seed: int,
              n_wrong: int = 0) -> SamplePlan:
    """Visit the split in random order, one random (non-empty) caption each, repeated until
    ``num_samples``; with ``n_wrong`` > 0 also draw that many captions of other classes per sample."""
    n, c = caption_lengths.shape
    if n == 0:
        raise InputError("the test split is empty")
    rng = np.random.default_rng([seed, 20180])
    passes = math.ceil(num_samples / n)
    items = np.concatenate([rng.permutation(n) for _ in range(passes)])[:num_samples].astype(np.int64)
    valid = caption_lengths > 0  # (n, C)
    n_valid = valid.sum(1)
    if (n_valid == 0).any():
        bad = int(np.flatnonzero(n_valid == 0)[0])
        raise InputError(f"test item {bad} has no non-empty caption")
    pick = (rng.random(num_samples) * n_valid[items]).astype(np.int64)  # k-th valid caption
    order = np.argsort(~valid, axis=1, kind="stable")  # valid caption indices first
    captions = order[items, pick]
    plan = SamplePlan(items, captions, c)
    if n_wrong > 0:
        rows = np.flatnonzero(valid.reshape(-1))  # candidate caption rows
        row_class = np.asarray(class_ids)[rows // c]
        cls = np.asarray(class_ids)[items]
        others = {k: int((row_class != k).sum()) for k in np.unique(cls)}
        if min(others.values()) == 0:
            raise InputError("R-precision needs captions of at least two classes in the test split")
        if min(others.values()) < n_wrong:
            log.warning("R-precision: fewer than %d captions of other classes for some classes; drawing with "
                        "repetition", n_wrong)
        cand = rng.integers(0, len(rows), size=(num_samples, n_wrong))
        bad = row_class[cand] == cls[:, None]
        while bad.any():
            cand[bad] = rng.integers(0, len(rows), size=int(bad.sum()))
            bad = row_class[cand] == cls[:, None]
        plan.wrong_rows = rows[cand]
    return plan


def draw_other_captions(caption_lengths: np.ndarray, num_samples: int, seed: int, n_wrong: int,
                        items: np.ndarray) -> np.ndarray:
    """(N, K) caption rows ``item * C + caption`` of non-empty captions of images other than ``items[i]``
    (TISE's CLIP R-precision: 1 true + 99 mismatched captions)."""
    n, c = caption_lengths.shape
    rows = np.flatnonzero((caption_lengths > 0).reshape(-1))
    if len(np.unique(rows // c)) < 2:
        raise InputError("CLIP R-precision needs captions of at least two test images")
    rng = np.random.default_rng([seed, 20221])
    cand = rng.integers(0, len(rows), size=(num_samples, n_wrong))
    bad = rows[cand] // c == items[:, None]
    while bad.any():
        cand[bad] = rng.integers(0, len(rows), size=int(bad.sum()))
        bad = rows[cand] // c == items[:, None]
    return rows[cand]


def draw_noise(n: int, z_dim: int, seed: int, truncation: float) -> torch.Tensor:
    """(n, z_dim) generator noise: N(0, 1), or with ``truncation`` t > 0 DF-GAN's ``truncnorm(-2, 2) * t``."""
    if truncation and truncation > 0:
        from scipy.stats import truncnorm

        values = truncnorm.rvs(-2, 2, size=(n, z_dim), random_state=np.random.RandomState(seed))
        return torch.from_numpy(values.astype(np.float32) * np.float32(truncation))
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


_SETTINGS_OF = {  # which settings move which metric
    "fid": ("fid_extractor", "fid_preprocess", "fid_reference", "reference_passes"),
    "is": ("is_splits", "is_temperature"),
    "rprecision": ("rp_wrong", "rp_folds", "rp_ties", "rp_fold_style"),
    "clip-rprecision": ("clip_rp_wrong", "clip_rp_folds"),
}


def result_settings(settings: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The resolved settings that move the numbers of ``names`` (sampling ones always)."""
    keep = {"num_samples", "truncation", "image_size"}
    for n in names:
        keep.update(_SETTINGS_OF.get(n, ()))
    return {k: v for k, v in settings.items() if k in keep}


# -------------------------------------------------------------------------------------------- context
class GeneratedBatch:
    """One batch of generated images with lazily computed, shared features."""

    def __init__(self, ctx: EvalContext, images: torch.Tensor, sl: slice) -> None:
        self.ctx = ctx
        self.images = images  # (B, 3, S, S) in [-1, 1], on the device
        self.items = ctx.plan.items[sl]
        self.captions = ctx.plan.captions[sl]
        self.caption_rows = ctx.plan.caption_rows[sl]
        self.wrong_rows = None if ctx.plan.wrong_rows is None else ctx.plan.wrong_rows[sl]
        self.clip_wrong_rows = None if ctx.plan.clip_wrong_rows is None else ctx.plan.clip_wrong_rows[sl]
        self._memo: dict[str, Any] = {}

    def features(self, pixels: bool) -> dict[str, Any]:
        """The features computed so far, on the CPU (to send to rank 0 under torchrun); ``pixels``: with
        the uint8 images (metrics that look at the pixels need them)."""
        def cpu(x: Any) -> Any:
            return {k: cpu(v) for k, v in x.items()} if isinstance(x, dict) else x.cpu()
        return {k: cpu(v) for k, v in self._memo.items() if pixels or k != "uint8"}

    @classmethod
    def replay(cls, ctx: EvalContext, sl: slice, features: dict[str, Any]) -> GeneratedBatch:
        """A batch generated elsewhere (another rank), with its features already computed."""
        batch = cls(ctx, None, sl)  # type: ignore[arg-type]
        batch._memo = features
        return batch

    def uint8(self) -> torch.Tensor:
        """(B, 3, S, S) uint8, as the images would be saved."""
        if "uint8" not in self._memo:
            self._memo["uint8"] = images_to_uint8(self.images)
        return self._memo["uint8"]

    def inception(self) -> dict[str, torch.Tensor]:
        if "inception" not in self._memo:
            self._memo["inception"] = self.ctx.inception_features()(self.uint8())
        return self._memo["inception"]

    def fid_pool(self) -> torch.Tensor:
        """(B, 2048) FID features by the resolved extractor and preprocessing."""
        if self.ctx.settings.get("fid_extractor", "tf-inception") == "tf-inception":
            return self.inception()["pool"]
        if "tv_pool" not in self._memo:
            self._memo["tv_pool"] = self.ctx.torchvision_features()(self.images, quantize="floor")["pool"]
        return self._memo["tv_pool"]

    def clip_image(self) -> torch.Tensor:
        """(B, D) CLIP image embeddings (not normalised) of the uint8 images."""
        if "clip" not in self._memo:
            self._memo["clip"] = self.ctx.clip_bundle().image_embeddings(self.uint8())
        return self._memo["clip"]

    @torch.no_grad()
    def damsm_global(self) -> torch.Tensor:
        if "damsm" not in self._memo:
            enc = self.ctx.damsm_bundle().image_encoder
            self._memo["damsm"] = enc(self.images.to(self.ctx.device))[1]  # (B, D)
        return self._memo["damsm"]


@dataclass
class EvalContext:
    options: EvalOptions
    device: torch.device
    data: Path
    dataset: TextImageDataset  # the test split (no augmentation, generator-sized images)
    image_size: int
    num_samples: int
    plan: SamplePlan
    progress: Progress
    inception: InceptionFeatures | None = None
    damsm: DAMSMBundle | None = None
    attribute_truth: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_test,) value index
    attribute_values: dict[str, list[str]] = field(default_factory=dict)
    fid_cache: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # resolved protocol settings
    torchvision: TorchvisionInceptionFeatures | None = None
    clip: Any = None  # evaluation.clip.ClipBundle
    _memo: dict[str, Any] = field(default_factory=dict)

    def inception_features(self) -> InceptionFeatures:
        if self.inception is None:
            self.inception = InceptionFeatures(self.options.inception_weights, self.device)
        return self.inception

    def torchvision_features(self) -> TorchvisionInceptionFeatures:
        if self.torchvision is None:
            self.torchvision = TorchvisionInceptionFeatures(self.options.torchvision_inception,
                                                            self.settings["fid_preprocess"], self.device)
        return self.torchvision

    def clip_bundle(self) -> Any:
        if self.clip is None:
            from attngan_cli.evaluation.clip import load_clip

            self.clip = load_clip(self.options.clip_model, self.device)
        return self.clip

    def caption_texts(self) -> list[str]:
        """Every test caption as text, rows ``item * C + caption`` (empty strings where none)."""
        if "texts" not in self._memo:
            words = list(self.dataset.info.vocab.words)
            c = self.plan.captions_per_image
            out = []
            for i in range(len(self.dataset)):
                caps = self.dataset.captions(i)
                for k in range(c):
                    ids = caps[k][0] if k < len(caps) else torch.zeros(0, dtype=torch.long)
                    out.append(" ".join(words[int(t)] for t in ids.tolist()))
            self._memo["texts"] = out
        return self._memo["texts"]

    def clip_caption_embeddings(self) -> torch.Tensor:
        """CLIP text embeddings of every test caption, rows ``item * C + caption`` (M, D), on the CPU."""
        if "clip_captions" not in self._memo:
            texts = self.caption_texts()
            with self.progress.task("CLIP: encoding test captions", total=len(texts), unit="cap") as task:
                out = []
                for s in range(0, len(texts), 256):
                    chunk = [t or "." for t in texts[s : s + 256]]  # empty rows are never sampled
                    out.append(self.clip_bundle().text_embeddings(chunk))
                    task.advance(len(chunk))
            self._memo["clip_captions"] = torch.cat(out)
        return self._memo["clip_captions"]

    def _fid_extract_real(self, images: torch.Tensor) -> torch.Tensor:
        if self.settings.get("fid_extractor", "tf-inception") == "tf-inception":
            return self.inception_features()(images_to_uint8(images))["pool"]
        return self.torchvision_features()(images, quantize="round")["pool"]

    def _fid_extractor_key(self) -> str:
        if self.settings.get("fid_extractor", "tf-inception") == "tf-inception":
            return self.inception_features().key
        return self.torchvision_features().key

    def damsm_bundle(self) -> DAMSMBundle:
        if self.damsm is None:
            raise AttnGANError("internal: the DAMSM encoders were not loaded")
        return self.damsm

    @torch.no_grad()
    def caption_embeddings(self) -> torch.Tensor:
        """DAMSM sentence vectors of every test caption, rows ``item * C + caption`` (M, D), on the CPU."""
        if "captions" in self._memo:
            return self._memo["captions"]
        bundle = self.damsm_bundle()
        words = bundle.config.text.words
        ds = self.dataset
        c = self.plan.captions_per_image
        gen = torch.Generator().manual_seed(self.options.seed)
        rows: list[tuple[torch.Tensor, int]] = []
        for i in range(len(ds)):
            caps = ds.captions(i)
            for k in range(c):
                ids, n = caps[k] if k < len(caps) else (torch.zeros(0, dtype=torch.long), 0)
                if n == 0:  # never sampled; encode a placeholder
                    rows.append((torch.zeros(words, dtype=torch.long), 1))
                else:
                    rows.append(pad_caption(ids.numpy(), words, generator=gen))
        out = []
        bs = 256
        with self.progress.task("encoding test captions", total=len(rows), unit="cap") as task:
            for s in range(0, len(rows), bs):
                chunk = rows[s : s + bs]
                caps_t = torch.stack([r[0] for r in chunk]).to(self.device)
                lens = torch.tensor([r[1] for r in chunk], device=self.device)
                _, sent = bundle.text_encoder(caps_t, lens)  # (b, D)
                out.append(sent.float().cpu())
                task.advance(len(chunk))
        self._memo["captions"] = torch.cat(out)
        return self._memo["captions"]

    def real_fid_stats(self) -> GaussianStats:
        """Statistics of the real test images, from the cache beside the dataset when it is valid."""
        if "fid_real" in self._memo:
            return self._memo["fid_real"]
        key = self._fid_key(self._fid_extractor_key())
        path = stats_cache_path(self.data, hashlib.sha256(key.encode()).hexdigest())
        stats = None
        if path.is_file():
            try:
                stats = GaussianStats.load(path, key=key)
                log.info("FID: real statistics from %s", path)
            except (InputError, OSError, ValueError, KeyError) as e:
                log.warning("FID: ignoring the cache %s (%s)", path, e)
        if stats is None:
            stats = GaussianStats()
            augmented = self.settings.get("fid_reference", "test") == "test-augmented"
            passes = int(self.settings.get("reference_passes", 1)) if augmented else 1
            dataset = self.dataset
            if augmented:  # DF-GAN's transform: resize to 76/64 of the size, random crop, random flip
                dataset = TextImageDataset(self.data, split="test", image_sizes=(self.image_size,),
                                           words=self.dataset.words, augment=True, caption_index=0)
            with torch.random.fork_rng(devices=[]), \
                    self.progress.task("FID: real test images", total=passes * len(dataset), unit="img") as task:
                torch.manual_seed(self.options.seed + 3)  # the crops and flips of the augmented copies
                for _ in range(passes):
                    loader = torch.utils.data.DataLoader(dataset, batch_size=self.options.batch_size, shuffle=False,
                                                         num_workers=0 if augmented else self.options.workers)
                    for batch in loader:
                        imgs = batch["images"][0]  # (B, 3, S, S) in [-1, 1]
                        stats.update(self._fid_extract_real(imgs))
                        task.advance(imgs.shape[0])
            try:
                stats.save(path, key=key)
                log.info("FID: real statistics cached in %s", path)
            except OSError as e:
                log.warning("FID: could not cache the real statistics in %s (%s)", path, e)
        self.fid_cache = path
        self._memo["fid_real"] = stats
        return stats

    def _fid_key(self, extractor_key: str) -> str:
        """A hash of the test images (their bytes, in order) + image size + extractor + protocol."""
        h = hashlib.sha256()
        rows = np.asarray(self.dataset.indices)
        with open_h5(self.data) as f:
            images = f["images"]
            for s in range(0, len(rows), 256):
                h.update(np.ascontiguousarray(images[rows[s : s + 256]]).tobytes())
        key = {"data": h.hexdigest(), "n": int(len(rows)), "size": self.image_size, "extractor": extractor_key,
               "protocol": FID_PROTOCOL}
        if self.settings.get("fid_reference", "test") != "test":
            key.update(reference=self.settings["fid_reference"], passes=int(self.settings["reference_passes"]),
                       seed=self.options.seed)
        return json.dumps(key, sort_keys=True)


# -------------------------------------------------------------------------------------------- models
def _damsm_path(bundle: GeneratorBundle, options: EvalOptions, checkpoint: Path) -> Path:
    if options.encoders is not None:
        return Path(options.encoders)
    named = bundle.extra.get("damsm_path") or bundle.config.encoders or ""
    if not named:
        raise InputError(f"R-precision needs the DAMSM encoders; checkpoint {checkpoint} names none: pass --encoders")
    p = Path(named)
    if not p.exists() and not p.is_absolute():
        beside = Path(bundle.path or checkpoint).parent / p
        if beside.exists():
            p = beside
    if not p.exists():
        raise InputError(f"R-precision needs the DAMSM encoders {named} named in checkpoint {checkpoint}, which does "
                         f"not exist here: pass --encoders PATH")
    return p


def _check_vocab(words: list[str] | None, dataset_words: list[str], what: str, data: Path) -> None:
    if words is None:
        return
    if vocab_sha256(list(words)) != vocab_sha256(list(dataset_words)):
        raise ConfigMismatchError(f"the vocabulary of {what} ({len(words)} words) does not match the dataset {data} "
                                  f"({len(dataset_words)} words): evaluate on the data the model was trained on")


def find_run_dir(checkpoint: Path) -> Path | None:
    """The run directory the checkpoint lives in (the directory itself, or a file's parent with config.json)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        return checkpoint
    if (checkpoint.parent / "config.json").is_file():
        return checkpoint.parent
    return None


# -------------------------------------------------------------------------------------------- driver
def evaluate(checkpoint: str | os.PathLike[str], data: str | os.PathLike[str], options: EvalOptions,
             progress: Progress | None = None, abort: Callable[[], bool] | None = None) -> EvalResult:
    """Generate ``options.num_samples`` images from the test captions of ``data`` with the generator
    ``checkpoint`` (file or train run directory) and compute ``options.metrics``."""
    t0 = time.time()
    checkpoint, data = Path(checkpoint), Path(data)
    resolved = resolve_options(options, data)
    options = resolved.options
    device = resolve_device(options.device)
    seed_everything(options.seed)
    # weights first: a missing file should fail before anything slow happens
    weights = load_weights(options, device)
    bundle = load_generator(checkpoint, device=device, ema=options.ema)
    evaluator = Evaluator(bundle, data, options, device=device, progress=progress, weights=weights,
                          checkpoint=checkpoint, resolved=resolved)
    result = evaluator.run(abort=abort, started=t0)
    if options.log_to_run:
        append_to_run(result, checkpoint)
    return result


@dataclass
class ResolvedOptions:
    """:class:`EvalOptions` with every setting the protocol fixes filled in (:func:`resolve_options`)."""

    options: EvalOptions
    protocol: str
    settings: dict[str, Any]  # protocols.SETTING_FIELDS, resolved
    overridden: list[str]  # the settings given as options, not by the protocol


def resolve_options(options: EvalOptions, data: str | os.PathLike[str]) -> ResolvedOptions:
    """The options with the protocol's value of every setting not given, checked (no weights opened):
    field bounds, metric names, enough samples for IS, an FID preprocessing that fits its extractor, an
    output folder."""
    data = Path(data)
    protocol = get_protocol(options.protocol)
    validate(options)  # the options given, before any file is opened
    if options.metrics and "is" in parse_metric_names(options.metrics) and options.num_samples is not None:
        splits = options.is_splits or protocol.is_splits
        if options.num_samples < splits:
            raise FieldError("num_samples", f"must be >= {splits} for the Inception Score (is_splits {splits}), "
                                            f"got {options.num_samples}")
    info = read_info(data)
    n_split = {"test": info.n_test, "train": info.n_train}.get(options.split, info.n_test)
    given = {k: getattr(options, k) for k in SETTING_FIELDS}
    settings = resolve_settings(protocol, info.source, n_split, given)
    overridden = [k for k in SETTING_FIELDS if given[k] is not None]
    options = dataclasses.replace(options, **{k: v for k, v in settings.items() if hasattr(options, k)},
                                  metrics=list(options.metrics) or default_metrics(protocol, info.source))
    names = parse_metric_names(options.metrics)
    validate(options)
    if "is" in names and options.num_samples < options.is_splits:
        raise FieldError("num_samples", f"must be >= {options.is_splits} for the Inception Score (is_splits "
                                        f"{options.is_splits}), got {options.num_samples}")
    if options.fid_extractor == "tf-inception" and options.fid_preprocess != "tf-bilinear" or \
            options.fid_extractor == "torchvision-inception" and options.fid_preprocess == "tf-bilinear":
        raise FieldError("fid_preprocess", f"{options.fid_preprocess} does not go with the FID extractor "
                                           f"{options.fid_extractor} (tf-inception: tf-bilinear; torchvision-inception: "
                                           "dmgan or dfgan)")
    if options.save_images is not None:
        check_output_folder(options.save_images, "--save-images")
    return ResolvedOptions(options=options, protocol=protocol.name, settings=settings, overridden=overridden)


@dataclass
class Weights:
    """The feature extractors an evaluation needs, loaded once (None: not needed)."""

    inception: InceptionFeatures | None = None  # TF-FID Inception: IS, and FID with tf-inception
    torchvision: TorchvisionInceptionFeatures | None = None  # FID with torchvision-inception
    clip: Any = None  # evaluation.clip.ClipBundle


def load_weights(options: EvalOptions, device: torch.device) -> Weights:
    """Load the extractors ``options`` (resolved) needs; a missing or wrong file fails here, before anything slow."""
    names = parse_metric_names(options.metrics)
    specs = [get_metric(n) for n in names]
    need_fid = "fid" in names
    inception = InceptionFeatures(options.inception_weights, device) if (
        any(s.needs_inception and s.name != "fid" for s in specs)
        or need_fid and options.fid_extractor == "tf-inception") else None
    torchvision = TorchvisionInceptionFeatures(options.torchvision_inception, options.fid_preprocess, device) if (
        need_fid and options.fid_extractor == "torchvision-inception") else None
    clip = None
    if any(s.needs_clip for s in specs):
        from attngan_cli.evaluation.clip import load_clip

        clip = load_clip(options.clip_model, device)
    return Weights(inception=inception, torchvision=torchvision, clip=clip)


def eval_settings(options: EvalOptions, image_size: int, n_split: int, truncation: dict[str, Any]) -> dict[str, Any]:
    """The settings that move the numbers of an evaluation (the manifest's ``settings``), besides the
    protocol's resolved ones (:func:`result_settings`)."""
    names = parse_metric_names(options.metrics)
    out: dict[str, Any] = {
        "split": options.split, "split_images": n_split, "num_samples": options.num_samples,
        "passes": math.ceil(options.num_samples / max(n_split, 1)), "captions_per_image": 1,
        "caption_choice": "random", **truncation, "image_size": image_size, "ema": options.ema,
        "seed": options.seed,
    }
    if "is" in names:
        out["is_splits"] = options.is_splits
    if "rprecision" in names:
        out.update(rp_folds=options.rp_folds, rp_wrong=options.rp_wrong, rp_negatives="other classes")
    if "fid" in names and options.fid_extractor == "tf-inception":
        out["fid_reference_protocol"] = FID_PROTOCOL
    return out


def noise_rule(arch_name: str, options: EvalOptions, overridden: list[str]) -> dict[str, Any]:
    """How the generator noise is drawn: ``truncation`` (0: plain N(0, 1)) and ``truncation_rule``:
    ``"arch"`` (the architecture's own: ``sample``'s rule; a ``--truncation`` given by the user follows it
    too) or ``"dfgan"`` (a protocol's value: DF-GAN's ``truncnorm(-2, 2) * t``)."""
    arch = get_arch(arch_name)
    if options.truncation is None:
        return {"truncation": arch.noise_truncation, "truncation_rule": "arch", "truncation_bound": arch.truncation_bound}
    t = check_truncation(options.truncation)
    if "truncation" in overridden:
        return {"truncation": t, "truncation_rule": "arch", "truncation_bound": arch.truncation_bound}
    return {"truncation": t, "truncation_rule": "dfgan", "truncation_bound": 2.0}


class Evaluator:
    """One generator scored on one fixed plan of captions and noise: prepared once (the split, the DAMSM,
    the test captions' embeddings, the real FID statistics, the file hashes), then :meth:`run` any number
    of times (evaluation during training: the same plan at every step, on the weights of that step).

    ``bundle``: the generator (from a checkpoint, or training's EMA generator in memory). ``damsm``: the
    encoders already loaded (training's), used for R-precision unless ``options.encoders`` names others.
    ``checkpoint``: the file or run the bundle was loaded from (None: in memory). ``resolved``: the options
    already resolved against their protocol (:func:`resolve_options`; None: resolved here). ``weights``:
    the feature extractors already loaded (None: loaded here)."""

    def __init__(self, bundle: GeneratorBundle, data: str | os.PathLike[str], options: EvalOptions, *,
                 device: torch.device, progress: Progress | None = None, weights: Weights | None = None,
                 damsm: DAMSMBundle | None = None, checkpoint: str | os.PathLike[str] | None = None,
                 resolved: ResolvedOptions | None = None) -> None:
        progress = progress or NullProgress()
        data = Path(data)
        resolved = resolved or resolve_options(options, data)
        options = resolved.options
        weights = weights or load_weights(options, device)
        names = parse_metric_names(options.metrics)
        specs = [get_metric(n) for n in names]
        self.bundle, self.options, self.names, self.specs = bundle, options, names, specs
        self.protocol, self.overridden = resolved.protocol, resolved.overridden
        where = Path(checkpoint) if checkpoint is not None else Path("<the generator in training>")
        self.gen_size = bundle.image_sizes[-1]
        image_size = options.image_size or self.gen_size
        dataset = TextImageDataset(data, split=options.split, image_sizes=(image_size,), words=bundle.config.words,
                                   augment=False, caption_index=0)
        info = dataset.info
        _check_vocab(list(bundle.vocab.words) if bundle.vocab is not None else None, list(info.vocab.words),
                     f"generator {where}", data)

        if not any(s.needs_damsm for s in specs):
            damsm = None
        elif damsm is None or options.encoders is not None:
            damsm = load_damsm(_damsm_path(bundle, options, where), device=device)
        if damsm is not None:
            _check_vocab(list(damsm.vocab.words) if damsm.vocab is not None else None, list(info.vocab.words),
                         f"DAMSM {damsm.path}", data)

        attribute_truth: dict[str, np.ndarray] = {}
        if any(s.needs_attributes for s in specs):
            if not info.attributes:
                raise InputError(f"--metric attributes needs a shapes dataset with stored attributes; {data} "
                                 f"(source {info.source!r}) has none")
            with open_h5(data) as f:
                for name in info.attributes:
                    attribute_truth[name] = np.asarray(f["attributes"][name][()])[dataset.indices]

        with open_h5(data) as f:
            lengths = np.asarray(f["caption_lengths"][()])[dataset.indices]  # (n_split, C)
        n_wrong = options.rp_wrong if damsm is not None else 0
        plan = make_plan(dataset.class_ids, lengths, options.num_samples, options.seed, n_wrong)
        clip = weights.clip
        if clip is not None:
            plan.clip_wrong_rows = draw_other_captions(lengths, options.num_samples, options.seed,
                                                       options.clip_rp_wrong, plan.items)

        self.ctx = EvalContext(options=options, device=device, data=data, dataset=dataset, image_size=image_size,
                               num_samples=options.num_samples, plan=plan, progress=progress,
                               inception=weights.inception, damsm=damsm, attribute_truth=attribute_truth,
                               attribute_values=dict(info.attributes), settings=resolved.settings,
                               torchvision=weights.torchvision, clip=clip)
        if "fid" in names:
            self.ctx.real_fid_stats()  # cached or computed now, before the long generation
        if damsm is not None:
            self.ctx.caption_embeddings()
        if clip is not None:
            self.ctx.clip_caption_embeddings()

        self.checkpoint = Path(bundle.path or checkpoint) if (bundle.path or checkpoint) is not None else None
        self.files: dict[str, Path | None] = {  # the manifest's files, hashed when a manifest is made
            "data": data,
            "inception": Path(options.inception_weights) if weights.inception is not None and options.inception_weights else None,
            "torchvision_inception": Path(options.torchvision_inception) if weights.torchvision is not None else None,
            "clip": Path(options.clip_model) if clip is not None and Path(options.clip_model).is_file() else None,
            "damsm": Path(damsm.path) if damsm is not None and damsm.path is not None else None,
        }
        self.damsm = damsm
        self.noise = noise_rule(bundle.config.generator.arch, options, resolved.overridden)
        self.settings = {**result_settings(resolved.settings, names),
                         **eval_settings(options, image_size, len(dataset), self.noise),
                         **(clip.settings() if clip is not None else {}),
                         **({"torchvision_inception_sha256": weights.torchvision.sha256} if weights.torchvision else {}),
                         **({"clipscore_scale": 100.0, "clipscore_clamp": "max(mean, 0)"} if "clipscore" in names else {})}

    def manifest(self, checkpoint: Path | None, step: int | None, epoch: int | None) -> dict[str, Any]:
        """The manifest of a score of this evaluator on the generator saved as ``checkpoint`` (None: in
        memory). Hashes the files (once per process: each file's hash is remembered by path, size and time)."""
        ckpt_file = checkpoint if checkpoint is not None and checkpoint.is_file() else None
        files = {"checkpoint": file_entry(ckpt_file), **{role: file_entry(p) for role, p in self.files.items()}}
        same = self.damsm is not None and _trained_with(self.bundle, self.damsm, files["damsm"])
        return build_manifest(
            metrics=self.names, settings=self.settings, files=files, seed=self.options.seed,
            num_samples=self.options.num_samples, versions=versions(), protocol=self.protocol,
            checkpoint_step=step, checkpoint_epoch=epoch,
            rprecision_same_damsm=same_damsm_caveat(self.names, same, self.bundle.config.lambda_damsm))

    def run(self, abort: Callable[[], bool] | None = None, started: float | None = None) -> EvalResult:
        """Generate the plan's images with the bundle's current weights and score them. Under torchrun every
        rank must call it (each generates a share; rank 0 scores; every rank gets the result)."""
        t0 = time.time() if started is None else started
        ctx, options, bundle, names, specs = self.ctx, self.options, self.bundle, self.names, self.specs
        dataset, plan, progress = ctx.dataset, ctx.plan, ctx.progress
        metrics = {n: s.factory(ctx) for n, s in zip(names, specs, strict=True)}
        gcfg = bundle.config.generator
        zgen = torch.Generator().manual_seed(options.seed)
        if self.noise["truncation_rule"] == "dfgan":
            z_all = draw_noise(options.num_samples, gcfg.z_dim, options.seed, self.noise["truncation"])  # (N, z_dim)
        else:
            z_all = truncate_(torch.randn(options.num_samples, gcfg.z_dim, generator=zgen), zgen,
                              self.noise["truncation"], self.noise["truncation_bound"])  # (N, z_dim)
        # the conditioning-augmentation noise too, so that no image depends on the batch size
        eps_all = torch.randn(options.num_samples, gcfg.condition_dim,
                              generator=torch.Generator().manual_seed(options.seed + 2))
        tgen = torch.Generator().manual_seed(options.seed + 1)
        words = bundle.config.words
        save_dir = Path(options.save_images) if options.save_images else None
        index_lines: list[str] = []
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
        vocab_words = list(dataset.info.vocab.words)
        n = options.num_samples
        # under torchrun rank r generates the batches b with b % W == r (the same batches as one process) and
        # sends their features to rank 0, which folds every batch into the metrics in order: the one-process result
        distributed = is_distributed()
        own_metrics = {k: s.factory(ctx) for k, s in zip(names, specs, strict=True)} if distributed else metrics
        pixels = any(s.needs_attributes for s in specs)
        sent: list[tuple[int, int, dict[str, Any]]] = []
        with torch.no_grad(), progress.task("generating", total=n, unit="img") as task:
            for b, start in enumerate(range(0, n, options.batch_size)):
                if abort is not None and abort():
                    raise AttnGANError(f"evaluation stopped after {start} of {n} images; no metrics were recorded")
                sl = slice(start, min(n, start + options.batch_size))
                items, caps = plan.items[sl], plan.captions[sl]
                toks = [pad_caption(dataset.captions(int(i))[int(c)][0].numpy(), words, generator=tgen)
                        for i, c in zip(items, caps, strict=True)]  # every rank draws every batch's tokens
                task.advance(len(items))
                if b % world_size() != rank():
                    continue
                lens = torch.tensor([t[1] for t in toks])
                tmax = int(lens.max())
                captions = torch.stack([t[0][:tmax] for t in toks])  # (B, T)
                images = generate(bundle, captions, lens, z_all[sl], eps_all[sl]).images[-1]  # (B, 3, S, S) in [-1, 1]
                if ctx.image_size != self.gen_size:
                    images = F.interpolate(images, size=(ctx.image_size, ctx.image_size), mode="bilinear",
                                           align_corners=False, antialias=ctx.image_size < self.gen_size).clamp(-1, 1)
                batch = GeneratedBatch(ctx, images, sl)
                for m in own_metrics.values():
                    m.update(batch)
                if distributed:
                    sent.append((sl.start, sl.stop, batch.features(pixels)))
                if save_dir is not None:
                    _save_images(save_dir, batch, start, dataset, vocab_words, index_lines)
        if distributed:
            received = gather_object(sent)
            index_lines = [line for lines in gather_object(index_lines) or [] for line in lines]
            if is_main_process():
                for a, z, feats in sorted((x for part in received or [] for x in part), key=lambda x: x[0]):
                    batch = GeneratedBatch.replay(ctx, slice(a, z), feats)
                    for m in metrics.values():
                        m.update(batch)
            index_lines.sort()  # one line per image, named by its sample number
        if save_dir is not None and is_main_process():
            atomic_write_text(save_dir / "index.jsonl", "".join(index_lines))

        results = broadcast_object({name: {k: float(v) for k, v in m.compute().items()} for name, m in metrics.items()}
                                   if is_main_process() else None)
        checkpoint = self.checkpoint if self.checkpoint is not None else Path("")
        manifest = self.manifest(self.checkpoint, bundle.step, bundle.epoch) if is_main_process() else {}
        return EvalResult(metrics=results, checkpoint=checkpoint, data=ctx.data, num_samples=n,
                          image_size=ctx.image_size, seed=options.seed, seconds=time.time() - t0, step=bundle.step,
                          epoch=bundle.epoch, images_dir=save_dir, fid_cache=ctx.fid_cache, manifest=manifest,
                          protocol=self.protocol, settings=self.settings, overridden=self.overridden)


def _trained_with(bundle: GeneratorBundle, damsm: DAMSMBundle, damsm_file: dict[str, Any] | None) -> bool:
    """Whether ``damsm`` is the DAMSM the generator was trained with: the DAMSM file hash its checkpoint
    records (``extra.damsm_sha256``) is this one's, or (older checkpoints) the text encoder the generator
    was conditioned on holds the same weights as this DAMSM's."""
    recorded = bundle.extra.get("damsm_sha256")
    if recorded and damsm_file is not None:
        return bool(recorded == damsm_file["sha256"])
    return same_state(bundle.text_encoder.state_dict(), damsm.text_encoder.state_dict())


def append_to_run(result: EvalResult, checkpoint: str | os.PathLike[str]) -> Path | None:
    """Append ``result.record()`` to ``metrics.jsonl`` of the run directory ``checkpoint`` belongs to (none:
    nothing is written); sets and returns ``result.metrics_file``. A file that cannot be written raises
    :class:`AttnGANError` naming it (the results themselves are in ``result``)."""
    run = find_run_dir(Path(checkpoint))
    if run is None:
        return None
    path = run / "metrics.jsonl"
    if is_main_process():
        try:
            append_jsonl(path, result.record())
        except OSError as e:
            raise AttnGANError(f"could not append the results to {path}: {e.strerror or e}") from None
    result.metrics_file = path
    return path


def _save_images(out: Path, batch: GeneratedBatch, start: int, dataset: TextImageDataset, vocab_words: list[str],
                 index_lines: list[str]) -> None:
    arr = batch.uint8().permute(0, 2, 3, 1).cpu().numpy()  # (B, S, S, 3)
    for j, (item, cap) in enumerate(zip(batch.items, batch.captions, strict=True)):
        name = f"{start + j:06d}.png"
        tmp = out / f".{name}.tmp"  # rename: never a half-written PNG (no fsync: 30k files)
        Image.fromarray(arr[j]).save(tmp, format="PNG")
        os.replace(tmp, out / name)
        ids, _ = dataset.captions(int(item))[int(cap)]
        text = " ".join(vocab_words[int(t)] for t in ids.tolist())
        index_lines.append(json.dumps({"file": name, "key": dataset.key(int(item)), "caption": text,
                                       "class_id": int(dataset.class_ids[int(item)])}) + "\n")
