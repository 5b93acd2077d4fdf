"""Pretraining MirrorGAN's STREAM captioner (``attngan pretrain DATA --model captioner``).

Teacher forcing with cross-entropy over the dataset's vocabulary on real (image, caption) pairs (a random
caption of each image per epoch), Adam; as the official STREAM (yunjey/pytorch-tutorial's captioner).
The targets are the caption's words and the ``<end>`` after them, each read by the step before it (the
image predicts the first word). yunjey's ``train.py`` scores ``<start>`` (read off the image), the words
and ``<end>``: AttnGAN's vocabulary has no ``<start>``, and MirrorGAN's re-description loss reads the first
word off the image, so the step that would predict ``<start>`` is left out (docs/differences.md).
Each epoch logs to ``stats.jsonl`` the train loss and token accuracy, and on the test split the loss, the
token accuracy (teacher forced) and corpus BLEU-4 of greedy captions against all of each image's
captions. Checkpoints (kind ``captioner``) hold the config, vocabulary, weights, Adam and RNG states and
the position in the epoch; the data order of an epoch is a function of (seed, epoch), so a resumed run
repeats the uninterrupted one. The loop is the shared :mod:`attngan_cli.training.loop`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from attngan_cli.config.captioner import CAPTIONER_KIND, CaptionPretrainConfig
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.device import autocast, rng_state
from attngan_cli.core.distributed import is_main_process, mean_over_ranks, rank_seed, shard, wrap_ddp
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.dataset import TextImageDataset
from attngan_cli.evaluation.bleu import corpus_bleu
from attngan_cli.networks.captioner import UNUSED_LEGACY_KEYS, Captioner, drop_unused_legacy_keys
from attngan_cli.networks.image_encoder import load_inception_weights
from attngan_cli.storage.checkpoints import Checkpoint, load_module_state
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.job import Built, JobContext, LoopOptions, Started, run_job
from attngan_cli.training.loop import Callback, LoopState, StepInfo, cpu_state, epoch_batches, make_loader
from attngan_cli.training.optim import adam, load_optimizer_state
from attngan_cli.training.resolve import CaptionPretrainSettings

log = logging.getLogger(__name__)

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
            loss, acc = model.caption_loss(images, caps, lens, end_target=True, backbone_grad=False)
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
        return self.model.caption_loss(images, captions, lengths, end_target=True, backbone_grad=False)


class CaptionTask:
    """The captioner's part of the loop: shuffled batches, a teacher-forced cross-entropy step, the
    per-epoch test evaluation and the ``captioner`` checkpoint."""

    label, unit = "pretrain captioner", "batch"

    def __init__(self, cfg: CaptionPretrainConfig, model: Captioner, opt: torch.optim.Optimizer,
                 train_ds: TextImageDataset, test_ds: TextImageDataset | None, device: torch.device) -> None:
        self.cfg, self.models, self.opt, self.device = cfg, model, opt, device
        # in DDP under torchrun (gradients averaged); every trainable parameter is in the loss
        self.loss_run = wrap_ddp(CaptionLossStep(model), device)
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


def without_legacy_adam_entry(model: Captioner, state: dict[str, Any]) -> dict[str, Any]:
    """An Adam state saved with a captioner that still had ``encoder.emb_features`` (registered just
    before ``encoder.emb_cnn_code``), without that parameter's entry: the same state for the parameters
    of ``model``. A state of another shape is returned as it is (loading it names the mismatch)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    groups = state.get("param_groups", [])
    if len(groups) != 1 or len(groups[0]["params"]) != len(names) + 1:
        return state
    ids = list(groups[0]["params"])
    del ids[names.index("encoder.emb_cnn_code.weight")]  # the dropped weight's id
    renumber = {old: new for new, old in enumerate(ids)}
    return {**state, "state": {renumber[k]: v for k, v in state["state"].items() if k in renumber},
            "param_groups": [{**groups[0], "params": list(range(len(ids)))}]}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def pretrain_captioner(settings: CaptionPretrainSettings, run: RunDir, progress: Progress | None = None,
                       abort: Callable[[], bool] | None = None,
                       callbacks: Sequence[Callback | Callable[[StepInfo], None]] = ()) -> Path:
    """Pretrain the STREAM captioner with the settings :func:`attngan_cli.training.resolve.resolve_caption_pretrain`
    made (the config, the loaded ``captioner`` checkpoint to continue from, the Inception weights file);
    returns ``run/final.pt``."""
    cfg = settings.config

    def build(job: JobContext) -> Built:
        train_ds, test_ds = open_datasets(cfg)
        model = Captioner(cfg.model)
        if job.resume is None and model.frozen_backbone:
            load_inception_weights(model.encoder, settings.inception_weights)
        model.to(job.device)
        opt = adam([p for p in model.parameters() if p.requires_grad], cfg.lr, tuple(cfg.betas))

        def load(ckpt: Checkpoint) -> None:
            saved = ckpt.state["captioner"]
            legacy = isinstance(saved, dict) and any(k in saved for k in UNUSED_LEGACY_KEYS)
            load_module_state(model, drop_unused_legacy_keys(saved) if legacy else saved, "captioner", ckpt.path)
            if "adam" in ckpt.optim:
                adam_state = ckpt.optim["adam"]
                load_optimizer_state(opt, without_legacy_adam_entry(model, adam_state) if legacy else adam_state)

        def start() -> Started:
            return Started(CaptionTask(cfg, model, opt, train_ds, test_ds, job.device))

        return Built(load, start)

    options = LoopOptions(nan_hint="a lower --lr", show=lambda v: {"loss": v["loss"]}, epoch_keys=("bleu4", "test_acc"),
                          stats_prefix="train_")
    return run_job(settings, run, build, options=options, progress=progress or NullProgress(), abort=abort,
                   callbacks=callbacks)
