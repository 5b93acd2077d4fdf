"""Pretraining MirrorGAN's STREAM captioner (``attngan pretrain DATA --model captioner``).

Teacher forcing with cross-entropy over the dataset's vocabulary on real (image, caption) pairs (a random
caption of each image per epoch), Adam; as the official STREAM (yunjey/pytorch-tutorial's captioner).
Each epoch logs to ``stats.jsonl`` the train loss and token accuracy, and on the test split the loss, the
token accuracy (teacher forced) and corpus BLEU-4 of greedy captions against all of each image's
captions. Checkpoints (kind ``captioner``) hold the config, vocabulary, weights, Adam and RNG states and
the position in the epoch; the data order of an epoch is a function of (seed, epoch), so a resumed run
repeats the uninterrupted one. The loop is the shared :mod:`attngan_cli.training.loop`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from attngan_cli.config.captioner import CAPTIONER_KIND, CaptionPretrainConfig
from attngan_cli.config.presets import make_caption_pretrain_config
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.device import (
    autocast,
    resolve_device,
    restore_rank_rng,
    rng_state,
    seed_everything,
    settle_precision,
)
from attngan_cli.core.distributed import (
    check_batch,
    init_from_env,
    is_main_process,
    mean_over_ranks,
    rank_seed,
    shard,
    wrap_ddp,
)
from attngan_cli.core.errors import AttnGANError
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.dataset import TextImageDataset
from attngan_cli.evaluation.bleu import corpus_bleu
from attngan_cli.networks.captioner import Captioner
from attngan_cli.networks.image_encoder import load_inception_weights
from attngan_cli.storage.checkpoints import (
    Checkpoint,
    check_checkpoint_config,
    check_vocab,
    load_module_state,
    load_resume,
    require_state,
)
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.loop import (
    Callback,
    Loop,
    LoopState,
    ProgressBar,
    StatsLog,
    StepInfo,
    cpu_state,
    epoch_batches,
    make_loader,
)
from attngan_cli.training.optim import adam, load_optimizer_state
from attngan_cli.training.tensorboard import tensorboard_callbacks

log = logging.getLogger(__name__)

# fields that set the weights' shapes: a resume must agree on them
CAPTIONER_RESUME_FIELDS = ["model.vocab_size", "model.backbone", "model.image_size", "model.width",
                           "model.embed_dim", "model.hidden_dim", "model.layers"]


def open_datasets(cfg: CaptionPretrainConfig) -> tuple[TextImageDataset, TextImageDataset | None]:
    size = cfg.model.image_size
    train = TextImageDataset(cfg.dataset, split="train", image_sizes=(size,), words=cfg.words, augment=True)
    test = None
    if train.info.n_test > 0:
        test = TextImageDataset(cfg.dataset, split="test", image_sizes=(size,), words=cfg.words, augment=False,
                                caption_index=0)
    else:
        log.warning("%s has no test split: test loss, accuracy and BLEU-4 are not measured", cfg.dataset)
    return train, test


@torch.no_grad()
def evaluate_captioner(model: Captioner, ds: TextImageDataset | None, cfg: CaptionPretrainConfig,
                       device: torch.device) -> dict[str, Any]:
    """Test loss and token accuracy (teacher forced, caption 0 of each image) and corpus BLEU-4 of greedy
    captions against every caption of the image, on up to ``cfg.eval_items`` test images."""
    if ds is None or len(ds) == 0:
        return {}
    was_training = model.training
    model.eval()
    n = min(len(ds), cfg.eval_items)
    sub = torch.utils.data.Subset(ds, range(n))
    loader = torch.utils.data.DataLoader(sub, batch_size=max(1, min(cfg.batch_size, n)), shuffle=False,
                                         num_workers=cfg.workers)
    loss_sum = acc_sum = 0.0
    tokens = 0
    hyps: list[list[str]] = []
    refs: list[list[list[str]]] = []
    words = ds.vocab.words
    start = 0
    for b in loader:
        images = b["images"][0].to(device)
        caps, lens = b["caption"].to(device), torch.as_tensor(b["length"]).to(device)
        with autocast(device, cfg.precision):
            loss, acc = model.caption_loss(images, caps, lens, backbone_grad=False)
        k = int((lens.clamp(max=caps.shape[1]) + 1).sum())
        loss_sum += float(loss) * k
        acc_sum += float(acc) * k
        tokens += k
        for row in model.greedy(images, cfg.decode_words):
            hyps.append([words[i] for i in row])
        for i in range(start, start + images.shape[0]):
            refs.append([[words[int(t)] for t in ids[:length]] for ids, length in ds.captions(i)])
        start += images.shape[0]
    model.train(was_training)
    return {"test_loss": loss_sum / max(tokens, 1), "test_acc": acc_sum / max(tokens, 1),
            "bleu4": corpus_bleu(refs, hyps, 4), "bleu_items": n,
            "example": " ".join(hyps[0]) if hyps else ""}


class CaptionLossStep(torch.nn.Module):
    """The teacher-forced loss (frozen backbone) as a module's forward, so that DistributedDataParallel sees
    the forward of each backward."""

    def __init__(self, model: Captioner) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.caption_loss(images, captions, lengths, backbone_grad=False)


class CaptionTask:
    """The captioner's part of the loop: shuffled batches, a teacher-forced cross-entropy step, the
    per-epoch test evaluation and the ``captioner`` checkpoint."""

    label, unit = "pretrain captioner", "batch"

    def __init__(self, cfg: CaptionPretrainConfig, model: Captioner, opt: torch.optim.Optimizer,
                 train_ds: TextImageDataset, test_ds: TextImageDataset | None, device: torch.device) -> None:
        self.cfg, self.models, self.opt, self.device = cfg, model, opt, device
        # in DDP under torchrun (gradients averaged); the caption loss leaves the encoder's region layers out
        self.loss_run = wrap_ddp(CaptionLossStep(model), device, find_unused_parameters=True)
        self.train_ds, self.test_ds = train_ds, test_ds
        self.vocab_words = list(train_ds.vocab.words)
        self.batch_size = min(cfg.batch_size, len(train_ds))
        self.steps_per_epoch = len(train_ds) // self.batch_size
        self.epoch_t0 = time.perf_counter()

    def start_epoch(self, epoch: int) -> None:
        self.models.train()
        self.epoch_t0 = time.perf_counter()

    def batches(self, epoch: int, skip: int) -> Iterable[dict[str, Any]]:
        # the global batches are a function of (seed, epoch); each rank reads its slice of each
        order = [shard(b) for b in epoch_batches(len(self.train_ds), self.batch_size, self.cfg.seed, epoch)[skip:]]
        return make_loader(self.train_ds, order, self.cfg.workers, rank_seed(self.cfg.seed * 1_000_003 + epoch),
                           self.device)

    def step(self, batch: dict[str, Any], state: LoopState) -> dict[str, float]:
        images = batch["images"][0].to(self.device)
        caps, lens = batch["caption"].to(self.device), torch.as_tensor(batch["length"]).to(self.device)
        with autocast(self.device, self.cfg.precision):
            loss, acc = self.loss_run(images, caps, lens)
        values = {k: float(v) for k, v in mean_over_ranks({"loss": loss.detach(), "acc": acc.detach()}).items()}
        if not math.isfinite(values["loss"]):
            return values  # the loop stops on it
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return values

    def end_epoch(self, state: LoopState, complete: bool) -> dict[str, Any]:
        if not is_main_process():  # only rank 0 evaluates and logs; the others wait at the next collective
            return {}
        record = evaluate_captioner(self.models, self.test_ds, self.cfg, self.device)
        record["time_s"] = time.perf_counter() - self.epoch_t0
        log.info("epoch %d/%d%s  test loss %s  acc %s  BLEU-4 %s  e.g. %r", state.epoch + 1, self.cfg.epochs,
                 "" if complete else " (part)", _fmt(record.get("test_loss")), _fmt(record.get("test_acc")),
                 _fmt(record.get("bleu4")), record.get("example", ""))
        return record

    def checkpoint(self, state: LoopState) -> Checkpoint:
        return Checkpoint(kind=CAPTIONER_KIND, config=to_dict(self.cfg), vocab=self.vocab_words,
                          state={"captioner": cpu_state(self.models)}, optim={"adam": self.opt.state_dict()},
                          epoch=state.epoch, step=state.step, rng=rng_state(),
                          extra={"dataset": str(self.cfg.dataset), "batch_in_epoch": state.batch_in_epoch})


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def check_captioner_resume(ckpt: Checkpoint, cfg: CaptionPretrainConfig, vocab_words: list[str]) -> None:
    check_checkpoint_config(ckpt, cfg, CAPTIONER_RESUME_FIELDS)
    check_vocab(ckpt, vocab_words, f"dataset {cfg.dataset}")
    require_state(ckpt, "captioner")


def pretrain_captioner(cfg: CaptionPretrainConfig, run: RunDir, progress: Progress | None = None,
                       resume: Checkpoint | str | os.PathLike[str] | None = None,
                       abort: Callable[[], bool] | None = None,
                       inception_weights: str | os.PathLike[str] | None = None,
                       datasets: tuple[TextImageDataset, TextImageDataset | None] | None = None,
                       callbacks: Sequence[Callback | Callable[[StepInfo], None]] = ()) -> Path:
    """Pretrain the STREAM captioner; returns ``run/final.pt``. ``resume``: a loaded ``captioner``
    checkpoint, or a checkpoint file or run directory; ``datasets`` replaces the HDF5 datasets (tests)."""
    progress = progress or NullProgress()
    init_from_env(cfg.device)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)  # the same on every rank: the model starts the same
    train_ds, test_ds = datasets if datasets is not None else open_datasets(cfg)
    vocab_words = list(train_ds.vocab.words)
    if cfg.model.vocab_size in (0, len(vocab_words)):
        cfg.model.vocab_size = len(vocab_words)
    else:
        raise AttnGANError(f"model.vocab_size is {cfg.model.vocab_size} but the dataset's vocabulary has "
                           f"{len(vocab_words)} words")
    if len(train_ds) < 2:
        raise AttnGANError(f"{cfg.dataset}: the train split has {len(train_ds)} images; the captioner needs at least 2")
    check_batch(min(cfg.batch_size, len(train_ds)))
    ckpt = resume
    if ckpt is not None:
        ckpt = load_resume(ckpt, CAPTIONER_KIND, "captioner checkpoint")
    model = Captioner(cfg.model)
    state = LoopState()
    if ckpt is not None:
        check_captioner_resume(ckpt, cfg, vocab_words)
        load_module_state(model, ckpt.state["captioner"], "captioner", ckpt.path)
        state = LoopState.of(ckpt)
        log.info("resuming from %s (epoch %d, step %d)", ckpt.path, state.epoch, state.step)
    elif model.frozen_backbone:
        load_inception_weights(model.encoder, inception_weights)
    model.to(device)
    opt = adam([p for p in model.parameters() if p.requires_grad], cfg.lr, tuple(cfg.betas))
    seed_everything(rank_seed(cfg.seed))  # each rank its own dropout and crops (rank 0: as one process)
    if ckpt is not None:
        if "adam" in ckpt.optim:
            load_optimizer_state(opt, ckpt.optim["adam"])
        restore_rank_rng(ckpt, cfg.seed)
    run.write_config(to_dict(cfg))
    task = CaptionTask(cfg, model, opt, train_ds, test_ds, device)
    loop = Loop(task, run, state, epochs=cfg.epochs, max_minutes=cfg.max_minutes, snapshot_every=cfg.snapshot_every,
                nan_hint="a lower --lr", progress=progress, abort=abort,
                callbacks=[ProgressBar(lambda v: {"loss": v["loss"]}, epoch_keys=("bleu4", "test_acc")),
                           StatsLog(every=0, prefix="train_"),
                           *tensorboard_callbacks(cfg.tensorboard, run, to_dict(cfg)), *callbacks])
    return loop.run_loop()


def resolve_caption_pretrain(data: str | os.PathLike[str], *, preset: str | None = None,
                             overrides: dict[str, Any] | None = None, resume: str | os.PathLike[str] | None = None,
                             inception_weights: str | os.PathLike[str] | None = None
                             ) -> tuple[CaptionPretrainConfig, Checkpoint | None]:
    """The captioner pretraining config for ``data`` and the checkpoint to resume (or None), checked
    before any run directory exists: the preset (default: the data's, as for the DAMSM), the vocabulary
    size from the data, the device and precision, a resumed checkpoint's shapes and vocabulary, and the
    Inception weights file for the inception-v3 backbone."""
    from attngan_cli.data.h5 import read_info
    from attngan_cli.networks.image_encoder import inception_weights_file
    from attngan_cli.training.resolve import device_defaults, preset_for_source

    info = read_info(data)
    overrides = dict(overrides or {})
    overrides["dataset"] = str(Path(data).resolve())
    overrides["model.vocab_size"] = len(info.vocab)
    cfg = make_caption_pretrain_config(preset or preset_for_source(info.source), overrides)
    cfg = settle_precision(cfg)
    if resume is None:
        cfg = device_defaults(cfg, overrides, ("workers",))
    check_batch(min(cfg.batch_size, info.n_train))
    ckpt = None
    if resume is not None:
        ckpt = load_resume(resume, CAPTIONER_KIND, "captioner checkpoint")
        check_captioner_resume(ckpt, cfg, list(info.vocab.words))
    elif cfg.model.backbone == "inception-v3":
        inception_weights_file(inception_weights)
    return cfg, ckpt
