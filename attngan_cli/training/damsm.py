"""DAMSM pretraining (paper section 3.2; official ``pretrain_DAMSM.py``).

Trains the text encoder and the image encoder's projections (plus the whole ``compact`` backbone) with
the four DAMSM terms on real (image, caption) pairs. Per epoch it logs train/test losses, top-1
retrieval in batches of 100 and R-precision (1 true vs up to 99 captions of other classes) to
``stats.jsonl``; every ``snapshot_every`` epochs and at the end it saves a self-describing ``damsm``
checkpoint and an attention-map image into the run directory.

The loop (budgets, Ctrl-C, NaN abort, checkpoints, ``stats.jsonl``) is :mod:`attngan_cli.training.loop`;
this module holds the DAMSM's own step, data order, evaluation and checkpoint. The data order of an
epoch is a function of (seed, epoch), and the checkpoint holds the RNG states and the position in the
epoch, so an interrupted pretraining resumes exactly.

Images reach the encoder as the official pretraining feeds them: the stored image resized to
``image_size * 76 / 64`` (355 for Inception's 299), a random ``image_size`` crop and a random flip, so
Inception sees native 299 px crops, not upsampled ones (prep with ``--image-size 355`` or more for the
official pixels; smaller stored images are upsampled, with one warning). With ``image.frozen_bn =
"train"`` (bird and coco presets) the frozen Inception layers normalise with batch statistics and their
running statistics follow the training images, as the official ``cnn_model.train()``; with
``adam_per_epoch`` a new Adam starts every epoch, as the official loop builds one per epoch.

With the frozen Inception-v3 backbone, ``cache_features`` computes the Inception features of a fixed set
of augmented views once (a float16 memory-mapped file in the run directory, deleted at the end) and trains
the projections and the text encoder on those. It is a faster mode that departs from the official
pretraining: the features come from eval-mode BatchNorm (``image.frozen_bn`` is set to ``"eval"``, and a
log line says so).

``group_by`` (the shapes preset: background and colour) fills half of every batch with images that agree
on those stored attributes, so that the other attributes (shape, size, position) become hard negatives
(:mod:`attngan_cli.data.sampling`); the paper's random batches otherwise.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from attngan_cli.config.schema import PretrainConfig
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.device import autocast, rng_state
from attngan_cli.core.distributed import (
    gather_cat,
    is_main_process,
    no_sync_until_last,
    rank_seed,
    shard,
    wrap_ddp,
)
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.dataset import TextImageDataset
from attngan_cli.data.sampling import GroupedBatchSampler, attribute_keys
from attngan_cli.evaluation.retrieval import r_precision, r_precision_hits, top1_retrieval
from attngan_cli.losses.damsm import DAMSMLoss, DAMSMTerms
from attngan_cli.networks.image_encoder import ImageEncoder, load_inception_weights
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import (
    DAMSM_KIND,
    Checkpoint,
    load_module_state,
    require_state,
)
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.job import Built, JobContext, LoopOptions, Started, run_job
from attngan_cli.training.loop import (
    Callback,
    Loop,
    LoopState,
    StepInfo,
    cpu_state,
    epoch_batches,
    make_loader,
)
from attngan_cli.training.optim import adam, load_optimizer_state
from attngan_cli.training.resolve import PretrainSettings
from attngan_cli.training.tensorboard import ATTENTION_TAG
from attngan_cli.viz.damsm_maps import damsm_attention_image
from attngan_cli.viz.grid import save_png

log = logging.getLogger(__name__)

CACHE_VIEWS = 2  # augmented views per training image kept in the Inception feature cache
RETRIEVAL_BATCH = 100  # top-1 retrieval is measured within batches of this many pairs
RPREC_WRONG = 99  # mismatched captions per image for R-precision
EVAL_MAX_ITEMS = 3000  # cap on test items evaluated per epoch


def load_size(cfg: PretrainConfig) -> int:
    """Image size the data loader produces: the backbone's input size (Inception: 299, the official
    ``cfg/DAMSM/*.yml`` BASE_SIZE), cropped from a ``size * 76 / 64`` resize of the stored image when
    augmenting, so the encoder never resizes the crop."""
    return cfg.image.image_size


def lr_at(cfg: PretrainConfig, epoch: int) -> float:
    """lr * decay**epoch, not below lr * min_lr_fraction (official: x0.98 per epoch down to a tenth)."""
    return cfg.lr * max(cfg.lr_decay ** epoch, cfg.min_lr_fraction)


def open_datasets(cfg: PretrainConfig) -> tuple[TextImageDataset, TextImageDataset | None]:
    size = load_size(cfg)
    train = TextImageDataset(cfg.dataset, split="train", image_sizes=(size,), words=cfg.text.words, augment=True)
    if train.info.source == "shapes":
        # captions name positions (left/right/top...): crops and flips would contradict them
        train = TextImageDataset(cfg.dataset, split="train", image_sizes=(size,), words=cfg.text.words, augment=False)
    test = None
    if train.info.n_test > 0:
        test = TextImageDataset(cfg.dataset, split="test", image_sizes=(size,), words=cfg.text.words,
                                augment=False, caption_index=0)
    else:
        log.warning("%s has no test split: test losses and retrieval accuracy are not measured", cfg.dataset)
    return train, test


# --------------------------------------------------------------------------------------------------
# The task the loop runs
# --------------------------------------------------------------------------------------------------
@dataclass
class Encoders:
    text: TextEncoder
    image: ImageEncoder


class PretrainTask:
    """The DAMSM's part of the loop: batches (random, grouped or from the feature cache), the step with
    the four matching terms, the per-epoch evaluation and the checkpoint."""

    label, unit = "pretrain DAMSM", "batch"

    def __init__(self, cfg: PretrainConfig, encoders: Encoders, opt: torch.optim.Optimizer,
                 train_ds: TextImageDataset, test_ds: TextImageDataset | None, device: torch.device,
                 batch_size: int, cache: FeatureCache | None, group_keys: np.ndarray | None,
                 make_opt: Callable[[int], torch.optim.Optimizer] | None = None, mid_epoch: bool = False) -> None:
        self.cfg, self.models, self.opt, self.device = cfg, encoders, opt, device
        # adam_per_epoch: make_opt(epoch) builds the fresh Adam of each epoch start; ``mid_epoch`` (a resume
        # inside an epoch) keeps the checkpoint's Adam for the rest of that epoch
        self.make_opt = make_opt
        self.keep_opt_once = mid_epoch
        self.train_ds, self.test_ds = train_ds, test_ds
        self.vocab_words = list(train_ds.vocab.words)
        self.batch_size = batch_size
        self.steps_per_epoch = len(train_ds) // batch_size
        self.cache, self.group_keys = cache, group_keys
        self.loss_fn = DAMSMLoss(cfg.damsm)
        # the encoders as the step runs them: in DDP under torchrun (gradients averaged over the ranks)
        self.text_run, self.image_run = wrap_ddp(encoders.text, device), wrap_ddp(encoders.image, device)
        self.last_eval: dict[str, Any] | None = None
        self.epoch_t0 = time.perf_counter()

    def start_epoch(self, epoch: int) -> None:
        if self.cfg.adam_per_epoch and self.make_opt is not None and not self.keep_opt_once:
            self.opt = self.make_opt(epoch)  # official: a new Adam (moments and step count reset) per epoch
        self.keep_opt_once = False
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.cfg, epoch)
        self.models.text.train()
        self.models.image.train()
        self.epoch_t0 = time.perf_counter()

    def batches(self, epoch: int, skip: int) -> Iterable[dict[str, Any]]:
        cfg, ds, batch = self.cfg, self.train_ds, self.batch_size
        if self.cache is not None:
            return itertools.islice(self.cache.batches(batch, epoch, ds, cfg), skip, None)
        if self.group_keys is not None:
            order = list(GroupedBatchSampler(self.group_keys, batch, cfg.group_share, seed=cfg.seed, epoch=epoch))
        else:
            order = epoch_batches(len(ds), batch, cfg.seed, epoch)
        # the global batches are a function of (seed, epoch); each rank reads its slice of each
        return make_loader(ds, [shard(b) for b in order[skip:]], cfg.workers, rank_seed(cfg.seed * 1_000_003 + epoch),
                           self.device)

    def step(self, batch: dict[str, Any], state: LoopState) -> dict[str, float]:
        """The four matching terms and one Adam step; with ``grad_accum`` K > 1 the batch runs as K
        micro-batches whose gradients add up (the negatives are then each micro-batch's, over all ranks)."""
        enc, K = self.models, self.cfg.grad_accum
        n = len(batch["caption"])
        self.opt.zero_grad(set_to_none=True)
        values: dict[str, float] = {}
        for k in range(K):
            part = _rows(batch, slice(k * n // K, (k + 1) * n // K)) if K > 1 else batch
            with no_sync_until_last(k, K, self.text_run, self.image_run):
                terms = damsm_terms(part, self.text_run, self.image_run, self.loss_fn, self.cfg, self.device,
                                    self.cache is not None)
                (terms.total / K).backward()
            for name, v in [*terms.items().items(), ("loss", float(terms.total.detach()))]:
                values[name] = values.get(name, 0.0) + v / K
        if not math.isfinite(values["loss"]):
            self.opt.zero_grad(set_to_none=True)
            return values  # the loop stops on it; the weights stay as they were
        torch.nn.utils.clip_grad_norm_(enc.text.parameters(), self.cfg.grad_clip)
        self.opt.step()
        return values

    def end_epoch(self, state: LoopState, complete: bool) -> dict[str, Any]:
        record: dict[str, Any] = {"lr": lr_at(self.cfg, state.epoch)}
        if not is_main_process():  # only rank 0 evaluates and logs; the others wait at the next collective
            return record
        ev = evaluate(self.models.text, self.models.image, self.test_ds, self.cfg, self.device, self.loss_fn)
        record.update(ev["stats"])
        record["time_s"] = time.perf_counter() - self.epoch_t0
        self.last_eval = ev
        log.info("epoch %d/%d%s  test %s  R-prec %s", state.epoch + 1, self.cfg.epochs, "" if complete else " (part)",
                 _fmt(record.get("test_loss")), _fmt(record.get("rprec")))
        return record

    def checkpoint(self, state: LoopState) -> Checkpoint:
        enc = self.models
        return Checkpoint(kind=DAMSM_KIND, config=to_dict(self.cfg), vocab=self.vocab_words,
                          state={"text_encoder": cpu_state(enc.text), "image_encoder": cpu_state(enc.image)},
                          optim={"adam": self.opt.state_dict()}, epoch=state.epoch, step=state.step, rng=rng_state(),
                          extra={"dataset": str(self.cfg.dataset), "batch_in_epoch": state.batch_in_epoch})


class AttentionImages(Callback):
    """The word-region attention maps of the last evaluation beside each checkpoint:
    ``attention-<epoch>.png`` with a periodic one, ``attention.png`` with ``final.pt``."""

    def __init__(self, task: PretrainTask) -> None:
        self.task = task

    def on_checkpoint(self, loop: Loop, path: Path, kind: str) -> None:
        if self.task.last_eval is None or kind == "interrupted":
            return
        name = "attention.png" if kind == "final" else f"attention-{loop.state.epoch}.png"
        image = attention_image(self.task.last_eval, self.task.train_ds)
        if image is not None:
            save_png(image, loop.run.file(name))
            loop.log_image(ATTENTION_TAG, np.asarray(image))


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def pretrain(settings: PretrainSettings, run: RunDir, progress: Progress | None = None,
             abort: Callable[[], bool] | None = None,
             callbacks: Sequence[Callback | Callable[[StepInfo], None]] = ()) -> Path:
    """Pretrain the DAMSM encoders with the settings :func:`attngan_cli.training.resolve.resolve_pretrain`
    made (the config, the loaded ``damsm`` checkpoint to continue from, the Inception weights file); returns
    the final checkpoint path (``run/final.pt``). Ctrl-C and ``abort`` save ``interrupted.pt``, as in ``train``.
    """
    cfg = settings.config
    progress = progress or NullProgress()

    def build(job: JobContext) -> Built:
        device = job.device
        train_ds, test_ds = open_datasets(cfg)
        enc = Encoders(TextEncoder(cfg.text), ImageEncoder(cfg.image))
        if job.resume is None and enc.image.frozen_backbone:
            load_inception_weights(enc.image, settings.inception_weights)
        enc.text.to(device)
        enc.image.to(device)
        params = list(enc.text.parameters()) + [p for p in enc.image.parameters() if p.requires_grad]

        def make_opt(epoch: int) -> torch.optim.Optimizer:
            return adam(params, lr_at(cfg, epoch), tuple(cfg.betas))

        opt = make_opt(job.state.epoch)

        def load(ckpt: Checkpoint) -> None:
            require_state(ckpt, "text_encoder", "image_encoder")
            load_module_state(enc.text, ckpt.state["text_encoder"], "text encoder", ckpt.path)
            load_module_state(enc.image, ckpt.state["image_encoder"], "image encoder", ckpt.path)
            if "adam" in ckpt.optim:
                load_optimizer_state(opt, ckpt.optim["adam"])

        def start() -> Started:
            cache = None
            if cfg.cache_features:
                if not enc.image.frozen_backbone:
                    log.warning("--cache-features only applies to the frozen inception-v3 backbone; ignored for %s",
                                cfg.image.backbone)
                else:
                    cache = FeatureCache.build(enc.image, train_ds, cfg, device, run.file("feature-cache.npy"),
                                               progress, abort)
            group_keys = None
            if cfg.group_by:
                group_keys = attribute_keys([train_ds.attribute_values(name) for name in cfg.group_by])
            task = PretrainTask(cfg, enc, opt, train_ds, test_ds, device, min(cfg.batch_size, len(train_ds)), cache,
                                group_keys, make_opt=make_opt, mid_epoch=job.state.batch_in_epoch > 0)
            return Started(task, [AttentionImages(task)], close=cache.close if cache is not None else None)

        return Built(load, start)

    options = LoopOptions(nan_hint="a lower --lr", show=lambda v: {"loss": v["loss"]}, epoch_keys=("rprec", "i2t_top1"),
                          stats_prefix="train_")
    return run_job(settings, run, build, options=options, progress=progress, abort=abort, callbacks=callbacks)


def _rows(batch: dict[str, Any], sl: slice) -> dict[str, Any]:
    """Rows ``sl`` of a batch (its tensors and lists; each image size's tensor)."""
    out: dict[str, Any] = {}
    for key, v in batch.items():
        if key == "images":
            out[key] = [x[sl] for x in v]
        elif isinstance(v, (torch.Tensor, list, tuple, np.ndarray)):
            out[key] = v[sl]
        else:
            out[key] = v
    return out


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _eval_loader(ds: torch.utils.data.Dataset, batch: int, cfg: PretrainConfig) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=False, drop_last=False, num_workers=cfg.workers,
                      persistent_workers=False)


def damsm_terms(b: dict[str, Any], text_enc: TextEncoder, img_enc: ImageEncoder, loss_fn: DAMSMLoss,
                cfg: PretrainConfig, device: torch.device, cached: bool) -> DAMSMTerms:
    """The four DAMSM terms of one batch (images, or cached Inception features with ``cached``)."""
    caps = b["caption"].to(device)
    lens = torch.as_tensor(b["length"])
    cls = torch.as_tensor(b["class_id"]).to(device)
    with autocast(device, cfg.precision):
        if cached:
            regions, glob = img_enc.project(b["local"].to(device).float(), b["pooled"].to(device).float())
        else:
            regions, glob = img_enc(b["images"][0].to(device))
        words_emb, sent_emb = text_enc(caps, lens)
    # under torchrun the negatives are the whole batch over the ranks (differentiable for this rank's part)
    regions, glob, words_emb, sent_emb, lens, cls = (gather_cat(x) for x in (regions.float(), glob.float(), words_emb.float(),
                                                                           sent_emb.float(), lens.to(device), cls))
    return loss_fn(regions, glob, words_emb, sent_emb, lens, cls)


# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_split(text_enc: TextEncoder, img_enc: ImageEncoder, ds: TextImageDataset, cfg: PretrainConfig, device: torch.device,
                 loss_fn: DAMSMLoss | None = None, max_items: int = EVAL_MAX_ITEMS) -> dict[str, Any]:
    """Global image and sentence features of (up to ``max_items``) items of ``ds`` in eval mode, the mean
    test loss terms per batch, and the first batch (for the attention figure)."""
    text_enc.eval()
    img_enc.eval()
    n = min(len(ds), max_items)
    sub = torch.utils.data.Subset(ds, range(n)) if n < len(ds) else ds
    batch = max(2, min(cfg.batch_size, n))
    imgs, sents, classes = [], [], []
    sums = {"w1": 0.0, "w2": 0.0, "s1": 0.0, "s2": 0.0}
    nb = 0
    first = None
    for b in _eval_loader(sub, batch, cfg):
        caps, lens = b["caption"].to(device), torch.as_tensor(b["length"])
        cls = torch.as_tensor(b["class_id"])
        with autocast(device, cfg.precision):
            regions, glob = img_enc(b["images"][0].to(device))
            words_emb, sent_emb = text_enc(caps, lens)
        imgs.append(glob.float().cpu())
        sents.append(sent_emb.float().cpu())
        classes.append(cls)
        if loss_fn is not None and caps.shape[0] >= 2:
            terms = loss_fn(regions.float(), glob.float(), words_emb.float(), sent_emb.float(), lens.to(device), cls.to(device))
            for k, v in terms.items().items():
                sums[k] += v
            nb += 1
            if first is None:
                first = {"images": b["images"][0][:8].cpu(), "caption": b["caption"][:8], "length": lens[:8],
                         "maps": [m.float().cpu() for m in terms.attn_maps[:8]]}
    out: dict[str, Any] = {"img": torch.cat(imgs) if imgs else torch.zeros(0, cfg.image.embedding_dim),
                           "txt": torch.cat(sents) if sents else torch.zeros(0, cfg.text.embedding_dim),
                           "class_ids": torch.cat(classes) if classes else torch.zeros(0, dtype=torch.long),
                           "first": first}
    out["losses"] = {k: v / nb for k, v in sums.items()} if nb else None
    return out


def retrieval_stats(img: torch.Tensor, txt: torch.Tensor, class_ids: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Top-1 retrieval in batches of 100 and R-precision with up to 99 captions of other classes."""
    n = img.shape[0]
    stats: dict[str, Any] = {"i2t_top1": None, "t2i_top1": None, "rprec": None, "rprec_std": None, "rprec_k": 0}
    if n < 2:
        return stats
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    chunks = [order[i:i + RETRIEVAL_BATCH] for i in range(0, n, RETRIEVAL_BATCH)]
    full = [c for c in chunks if len(c) == RETRIEVAL_BATCH] or [order]
    accs = [top1_retrieval(img[c], txt[c]) for c in full]
    stats["i2t_top1"] = float(np.mean([a[0] for a in accs]))
    stats["t2i_top1"] = float(np.mean([a[1] for a in accs]))
    others = class_ids[None, :] != class_ids[:, None]  # (n, n) candidates of other classes
    k = int(min(RPREC_WRONG, int(others.sum(1).min())))
    if k < 1:
        return stats
    # choose k distinct other-class captions per image: random scores, masked, top-k
    r = torch.rand(n, n, generator=g).masked_fill(~others, -1.0)
    wrong_idx = r.topk(k, dim=1).indices  # (n, k)
    hits = r_precision_hits(img, txt, txt[wrong_idx])
    mean, std = r_precision(hits, folds=10)
    stats.update(rprec=mean, rprec_std=std, rprec_k=k)
    return stats


def evaluate(text_enc: TextEncoder, img_enc: ImageEncoder, ds: TextImageDataset | None, cfg: PretrainConfig, device: torch.device,
             loss_fn: DAMSMLoss) -> dict[str, Any]:
    """Test losses and retrieval metrics; returns {"stats": {...}, "first": figure batch or None}."""
    stats: dict[str, Any] = {}
    if ds is None or len(ds) == 0:
        return {"stats": stats, "first": None}
    enc = encode_split(text_enc, img_enc, ds, cfg, device, loss_fn)
    if enc["losses"] is not None:
        stats.update({f"test_{k}": v for k, v in enc["losses"].items()})
        stats["test_loss"] = sum(enc["losses"].values())
    stats.update(retrieval_stats(enc["img"], enc["txt"], enc["class_ids"], seed=cfg.seed))
    return {"stats": stats, "first": enc["first"]}


def attention_image(ev: dict[str, Any], ds: TextImageDataset) -> Image.Image | None:
    """The word-region attention maps of an evaluation's first test batch (None without one)."""
    first = ev.get("first")
    if first is None:
        return None
    vocab = list(ds.vocab.words)
    words = []
    for cap, n in zip(first["caption"], first["length"], strict=True):
        words.append([vocab[int(t)] if int(t) < len(vocab) else "?" for t in cap[: int(n)]])
    return damsm_attention_image(first["images"], words, first["maps"])


# --------------------------------------------------------------------------------------------------
def sample_caption(caps: list[tuple[torch.Tensor, int]], words: int, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
    """One random caption of an item, 0-padded to ``words``; longer ones keep a random ordered subset
    of ``words`` tokens (as the official dataset)."""
    ids, n = caps[int(rng.integers(len(caps)))]
    ids = torch.as_tensor(ids)[: int(n)]
    if ids.numel() > words:
        keep = np.sort(rng.choice(ids.numel(), size=words, replace=False))
        ids = ids[torch.from_numpy(keep)]
    out = torch.zeros(words, dtype=torch.long)
    out[: ids.numel()] = ids
    return out, max(1, int(ids.numel()))


class FeatureCache:
    """Frozen Inception features (Mixed_6e (768, 17, 17) and pooled Mixed_7c (2048,) at 299 px) of
    ``CACHE_VIEWS`` fixed augmented views (random crop + flip, as the official augmentation) of every
    training image, in a float16 memory-mapped ``.npy`` file."""

    def __init__(self, path: Path, data: np.ndarray, views: int, local_shape: tuple[int, int, int]) -> None:
        self.path, self.data, self.views, self.local_shape = path, data, views, local_shape
        self.n_local = int(np.prod(local_shape))

    @classmethod
    def build(cls, enc: ImageEncoder, ds: TextImageDataset, cfg: PretrainConfig, device: torch.device, path: Path,
              progress: Progress, abort: Callable[[], bool] | None, views: int = CACHE_VIEWS) -> FeatureCache:
        n = len(ds)
        size = load_size(cfg)
        augment = bool(getattr(ds, "augment", True))
        if not augment:  # the training images are not augmented (shapes): one plain view is all there is
            views = 1
        big = size * 76 // 64 if augment else size
        plain = (TextImageDataset(cfg.dataset, split="train", image_sizes=(big,), words=cfg.text.words,
                                  augment=False, caption_index=0)
                 if isinstance(ds, TextImageDataset) else ds)
        enc.eval()
        batch = max(1, min(cfg.batch_size, n))
        data = None
        local_shape: tuple[int, int, int] = (0, 0, 0)
        with progress.task("caching Inception features", total=views * math.ceil(n / batch), unit="batch") as bar:
            for v in range(views):
                g = torch.Generator().manual_seed(cfg.seed * 1000 + v)
                start = 0
                for b in _eval_loader(plain, batch, cfg):
                    if abort is not None and abort():
                        raise KeyboardInterrupt
                    x = b["images"][0]
                    if x.shape[-1] != big:
                        x = torch.nn.functional.interpolate(x, size=(big, big), mode="bilinear", align_corners=False)
                    crops = []
                    for img in x:
                        i, j = (int(t) for t in torch.randint(0, big - size + 1, (2,), generator=g))
                        c = img[:, i:i + size, j:j + size]
                        if augment and bool(torch.rand((), generator=g) < 0.5):
                            c = c.flip(-1)
                        crops.append(c)
                    with torch.no_grad(), autocast(device, cfg.precision):
                        local, pooled = enc.backbone_features(torch.stack(crops).to(device))
                    if data is None:
                        local_shape = tuple(local.shape[1:])  # type: ignore[assignment]
                        width = int(np.prod(local_shape)) + pooled.shape[1]
                        log.info("caching Inception features of %d views x %d images (%.2f GB in %s)",
                                 views, n, views * n * width * 2 / 1e9, path)
                        data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(views, n, width))
                    feats = torch.cat([local.flatten(1), pooled.flatten(1)], dim=1).to("cpu", torch.float16)
                    data[v, start:start + feats.shape[0]] = feats.numpy()
                    start += feats.shape[0]
                    bar.advance(1)
        assert data is not None
        data.flush()
        return cls(path, data, views, local_shape)

    def batches(self, batch: int, epoch: int, ds: TextImageDataset, cfg: PretrainConfig
                ) -> Iterator[dict[str, torch.Tensor]]:
        """Training batches from the cache: shuffled items, a random view and caption per item."""
        n = self.data.shape[1]
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(n)
        class_ids = np.asarray(ds.class_ids)
        for s in range(0, n - batch + 1, batch):
            idx = np.sort(order[s:s + batch])
            views = rng.integers(self.views, size=len(idx))
            rows = torch.from_numpy(np.stack([self.data[v, i] for v, i in zip(views, idx, strict=True)]))
            caps = [sample_caption(ds.captions(int(i)), cfg.text.words, rng) for i in idx]
            yield {
                "local": rows[:, : self.n_local].reshape(-1, *self.local_shape),
                "pooled": rows[:, self.n_local:],
                "caption": torch.stack([c[0] for c in caps]),
                "length": torch.tensor([c[1] for c in caps]),
                "class_id": torch.from_numpy(class_ids[idx]),
            }

    def close(self) -> None:
        self.data = None  # type: ignore[assignment]
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
