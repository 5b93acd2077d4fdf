"""Training a text-to-image GAN of any architecture (AttnGAN's paper section 3.1 and official
``condGANTrainer.train`` for the schedule).

Per step: the frozen DAMSM text encoder embeds the captions; G draws every stage's image from fresh
noise; every discriminator is updated on the real images and the detached fakes (phase D of the
architecture's objective, :class:`attngan_cli.archs.base.GANLoss`); then G is updated against the (just
updated) discriminators (phase G); then the exponential moving average of G's parameters moves (decay
0.999 as the official ``avg_param_G``, with a warm-up: see :mod:`attngan_cli.training.ema`). The
networks, the objective and what a new run does before its first step come from the architecture
(:mod:`attngan_cli.archs.registry`); nothing here knows one by name.

This module holds only what is particular to the GAN: its models (:func:`build_models`), its step
(:func:`train_step`), its data order and its checkpoint. The loop itself (budgets, Ctrl-C, NaN abort,
checkpoints, stats, callbacks) is :mod:`attngan_cli.training.loop`. Exact resumption: the checkpoint holds
G, its EMA, every D, all optimisers (and fp16 scalers), the RNG states and the position in the epoch; the
data order of an epoch is a function of (seed, epoch) only, so a resumed run repeats the uninterrupted
run's losses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from attngan_cli.archs.base import GANLoss, LossContext, TextBatch
from attngan_cli.archs.registry import build_discriminators, build_generator, get_arch, image_sizes
from attngan_cli.config.schema import TrainConfig
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.device import autocast, rng_state
from attngan_cli.core.distributed import (
    gather_cat,
    is_distributed,
    is_main_process,
    mean_over_ranks,
    no_sync_until_last,
    rank_seed,
    shard,
    wrap_ddp,
)
from attngan_cli.core.errors import AttnGANError, CheckpointError
from attngan_cli.core.fileio import atomic_write_text
from attngan_cli.core.progress import Progress
from attngan_cli.data.dataset import TextImageDataset
from attngan_cli.inference.pipeline import (
    GAN_KIND,
    DAMSMBundle,
    GeneratorBundle,
    embed_captions,
    generate,
    load_damsm,
)
from attngan_cli.losses.adversarial import mismatched
from attngan_cli.storage.checkpoints import (
    Checkpoint,
    load_module_state,
    require_state,
)
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.ema import EMA
from attngan_cli.training.evaluation import TrainEvaluation, damsm_sha256
from attngan_cli.training.job import Built, JobContext, LoopOptions, Started, run_job
from attngan_cli.training.loop import (
    FINISHED,
    TIME_BUDGET,
    Callback,
    Loop,
    LoopState,
    StepInfo,
    cpu_state,
    epoch_batches,
    make_loader,
    preserve_rng,
)
from attngan_cli.training.optim import adam, load_optimizer_state
from attngan_cli.training.resolve import TrainSettings
from attngan_cli.training.tensorboard import SAMPLES_TAG
from attngan_cli.viz.grid import make_grid, save_png, to_uint8, upsample

log = logging.getLogger(__name__)

LOG_EVERY = 10  # steps per stats.jsonl record (means over the window)
N_SAMPLES = 8  # fixed test captions in the sample grid


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------
@dataclass
class Models:
    G: nn.Module
    Ds: nn.ModuleList
    ema: EMA
    text_encoder: nn.Module  # frozen
    image_encoder: nn.Module | None  # frozen; None when lambda == 0
    opt_g: torch.optim.Optimizer
    opt_ds: list[torch.optim.Optimizer]
    scaler_g: torch.amp.GradScaler  # enabled for fp16 only
    scaler_d: torch.amp.GradScaler
    G_run: Callable[..., Any] = None  # type: ignore[assignment]  # G, compiled and/or in DDP under torchrun
    Ds_run: list[Callable[..., Any]] = field(default_factory=list)  # each D or its compiled version
    D_steps: list[Callable[..., Any]] = field(default_factory=list)  # each DStep, in DDP under torchrun
    G_eager: Callable[..., Any] = None  # type: ignore[assignment]  # G (in DDP under torchrun), not compiled
    compiled: bool = False  # G and the Ds run through torch.compile

    def use_compiled(self, on: bool, device: torch.device) -> None:
        """Runs G and the Ds through torch.compile (``on``) or eagerly: the same modules and weights either
        way (eagerly after a failed compilation, or to count FLOPs)."""
        self.G_run = torch.compile(self.G_eager) if on else self.G_eager
        self.Ds_run = [_CompiledD(D) if on else D for D in self.Ds]
        self.D_steps = [wrap_ddp(DStep(D), device) for D in self.Ds_run]
        self.compiled = on


class _CompiledD(nn.Module):
    """A discriminator whose forward (its image encoder) runs compiled; its other methods and attributes
    (the heads) are the discriminator's own."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D
        self.fwd = torch.compile(D)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fwd(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            D = self.__dict__.get("_modules", {}).get("D")
            if D is None:
                raise
            return getattr(D, name)


class DStep(nn.Module):
    """One discriminator's loss (phase D of the objective) as a module's forward, so that
    DistributedDataParallel sees one forward per backward (the loss may call D and its heads several
    times). Returns (total, logs)."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D

    def forward(self, real: torch.Tensor, fake: torch.Tensor, text: TextBatch,
                loss: GANLoss) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = loss.discriminator(self.D, real, fake, text)
        return terms.total, terms.logs


def epoch_lr(lr: float, halve_every: int, epoch: int) -> float:
    """``lr`` halved at every ``halve_every``-th epoch start (0: constant): StackGAN-Pytorch's
    ``if epoch % lr_decay_step == 0 and epoch > 0: lr *= 0.5``, as a function of the epoch (so a resumed
    run gets it back)."""
    return lr * 0.5 ** (epoch // halve_every) if halve_every else lr


def set_epoch_lrs(m: Models, cfg: TrainConfig, epoch: int) -> None:
    """G's and every D's learning rate for epoch ``epoch`` (0-based): :func:`epoch_lr`."""
    for opt, lr in [(m.opt_g, cfg.lr_g), *((opt, cfg.lr_d) for opt in m.opt_ds)]:
        for group in opt.param_groups:
            group["lr"] = epoch_lr(lr, cfg.lr_halve_every, epoch)


def build_models(cfg: TrainConfig, device: torch.device, text_encoder: nn.Module,
                 image_encoder: nn.Module | None) -> Models:
    """G, its EMA, the Ds and their optimisers; under torchrun G and each D's loss run in DDP (the
    parameters are broadcast from rank 0), with SyncBatchNorm when ``cfg.sync_bn``."""
    G = build_generator(cfg.generator).to(device)
    Ds = build_discriminators(cfg.generator, cfg.discriminator).to(device)
    if cfg.sync_bn and is_distributed():
        if device.type != "cuda":
            raise AttnGANError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm); on CPUs leave it off")
        G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
        Ds = nn.SyncBatchNorm.convert_sync_batchnorm(Ds)
    if cfg.channels_last:
        G.to(memory_format=torch.channels_last)
        Ds.to(memory_format=torch.channels_last)
    ema = EMA(G, cfg.ema_decay)
    betas = tuple(cfg.betas)
    opt_g = adam(G.parameters(), cfg.lr_g, betas)
    opt_ds = [adam(D.parameters(), cfg.lr_d, betas) for D in Ds]
    fp16 = cfg.precision == "fp16"
    scaler_g = torch.amp.GradScaler(device.type, enabled=fp16)
    scaler_d = torch.amp.GradScaler(device.type, enabled=fp16)
    m = Models(G, Ds, ema, text_encoder, image_encoder, opt_g, opt_ds, scaler_g, scaler_d)
    m.G_eager = wrap_ddp(G, device)
    m.use_compiled(cfg.compile, device)
    return m


def make_loss(cfg: TrainConfig, device: torch.device, image_encoder: nn.Module | None,
              vocab_words: list[str]) -> GANLoss:
    """The training objective of ``cfg``'s architecture."""
    return get_arch(cfg.generator.arch).make_loss(cfg, LossContext(device, image_encoder, list(vocab_words)))


def prepare_models(cfg: TrainConfig, m: Models) -> None:
    """What a new run of ``cfg``'s architecture does to G (and its EMA) before the first step."""
    hook = get_arch(cfg.generator.arch).prepare_models
    if hook is not None:
        hook(cfg, m.G, m.ema.module)


def load_training_state(m: Models, ckpt: Checkpoint) -> None:
    require_state(ckpt, "generator", "generator_ema", "discriminators")
    require_state(ckpt, "g", "d", section="optim")
    load_module_state(m.G, ckpt.state["generator"], "generator", ckpt.path)
    load_module_state(m.ema.module, ckpt.state["generator_ema"], "generator EMA", ckpt.path)
    d_state = ckpt.state["discriminators"]
    for i, D in enumerate(m.Ds):
        if str(i) not in d_state:
            raise CheckpointError(f"checkpoint {ckpt.path} holds {len(d_state)} discriminators; this generator has "
                                  f"{len(m.Ds)} stages")
        load_module_state(D, d_state[str(i)], f"discriminator {i}", ckpt.path)
    load_optimizer_state(m.opt_g, ckpt.optim["g"])
    for i, opt in enumerate(m.opt_ds):
        load_optimizer_state(opt, ckpt.optim["d"][str(i)])
    if "scaler_g" in ckpt.optim:
        m.scaler_g.load_state_dict(ckpt.optim["scaler_g"])
        m.scaler_d.load_state_dict(ckpt.optim["scaler_d"])


# --------------------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------------------
def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def train_step(m: Models, batch: dict[str, Any], cfg: TrainConfig, device: torch.device, loss: GANLoss,
               step: int | None = None) -> dict[str, torch.Tensor]:
    """One official AttnGAN iteration with the objective ``loss`` (``step``: steps done before it, for
    the EMA warm-up); returns detached loss tensors (not synchronised): ``d<i>`` (each D's total, and
    ``d<i>_<name>`` for what its loss logs), ``d``, ``g`` and what G's loss logs.

    With ``cfg.grad_accum`` K > 1 the batch runs as K micro-batches whose gradients add up before each
    optimiser step (for GPUs too small for the batch): the Ds are updated first on every micro-batch's
    fakes (generated without gradients), then G regenerates each micro-batch from the same noise and
    conditioning-augmentation noise for its own step. BatchNorm and the DAMSM negatives then see a
    micro-batch (over all ranks) instead of the batch."""
    K = cfg.grad_accum
    reals = [_to(x, device, cfg.channels_last) for x in batch["images"]]  # per stage (B, 3, s, s)
    captions = batch["caption"].to(device)
    lengths = torch.as_tensor(batch["length"]).to(device)
    class_ids = torch.as_tensor(batch["class_id"]).to(device)
    words_emb, sent_emb, mask = embed_captions(m.text_encoder, captions, lengths)
    wrong_emb = shard(mismatched(gather_cat(sent_emb)))  # the next sample's sentence in the whole batch
    text = TextBatch(words_emb, sent_emb, mask, wrong_emb, captions, lengths, class_ids)
    B = captions.shape[0]
    noise = torch.randn(B, cfg.generator.z_dim, device=device)
    # K > 1 runs G twice per micro-batch: the same CA noise both times (K = 1: G draws it, as the official code)
    eps = torch.randn(B, cfg.generator.condition_dim, device=device) if K > 1 else None
    parts = [slice(k * B // K, (k + 1) * B // K) for k in range(K)]

    def run_g(sl: slice) -> Any:
        with autocast(device, cfg.precision):
            return m.G_run(noise[sl], sent_emb[sl], words_emb[sl], None if mask is None else mask[sl],
                           ca_noise=True if eps is None else eps[sl])

    logs: dict[str, torch.Tensor] = {}

    def add(name: str, value: torch.Tensor) -> None:
        logs[name] = logs.get(name, 0) + value.detach() / K

    # ---- the discriminators
    for opt in m.opt_ds:
        opt.zero_grad(set_to_none=True)
    out = None
    for k, sl in enumerate(parts):
        if K == 1:
            out = run_g(sl)  # kept, with its graph, for G's step
            g_sl = out
        else:
            with torch.no_grad():
                g_sl = run_g(sl)
        fakes = g_sl.images
        mu = getattr(g_sl, "mu", None)  # (B, c_dim): what a D conditioned on mu sees (StackGAN++)
        d_text = text.part(sl)._replace(cond=None if mu is None else mu.detach())
        first = len(fakes) - len(m.D_steps)  # the Ds judge the last stages (StackGAN's Stage-II: only its own)
        for i, D_step in enumerate(m.D_steps):
            with no_sync_until_last(k, K, D_step), autocast(device, cfg.precision):
                d_total, d_logs = D_step(reals[first + i][sl], fakes[first + i].detach(), d_text, loss)
                m.scaler_d.scale(d_total / K).backward()
            add(f"d{i}", d_total)
            for name, value in d_logs.items():
                add(f"d{i}_{name}", value)
    for opt in m.opt_ds:
        m.scaler_d.step(opt)
    m.scaler_d.update()
    logs["d"] = sum(logs[f"d{i}"] for i in range(len(m.D_steps)))

    # ---- the generator
    m.Ds.requires_grad_(False)  # G's step needs no gradients for the discriminators' weights
    try:
        m.opt_g.zero_grad(set_to_none=True)
        for k, sl in enumerate(parts):
            with no_sync_until_last(k, K, m.G_run):
                g_out = out if K == 1 else run_g(sl)
                with autocast(device, cfg.precision):
                    gterms = loss.generator(m.Ds_run, g_out, text.part(sl))
                m.scaler_g.scale(gterms.total / K).backward()
            add("g", gterms.total)
            for name, value in gterms.logs.items():
                add(name, value)
        m.scaler_g.step(m.opt_g)
        m.scaler_g.update()
    finally:
        m.Ds.requires_grad_(True)
    m.ema.update(m.G, step)
    return mean_over_ranks(logs)  # under torchrun: the means over all ranks (every rank logs the same)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def open_datasets(cfg: TrainConfig) -> tuple[TextImageDataset, TextImageDataset]:
    """The augmented train split and the test split (or, without one, the train split unaugmented) for
    the sample grids."""
    sizes = tuple(image_sizes(cfg.generator))
    train = TextImageDataset(cfg.dataset, split="train", image_sizes=sizes, words=cfg.words, augment=True)
    try:
        test = TextImageDataset(cfg.dataset, split="test", image_sizes=sizes, words=cfg.words, augment=False,
                                caption_index=0)
    except AttnGANError:
        test = None
    if test is None or len(test) == 0:
        test = TextImageDataset(cfg.dataset, split="train", image_sizes=sizes, words=cfg.words, augment=False,
                                caption_index=0)
    return train, test



# --------------------------------------------------------------------------------------------------
# The task the loop runs
# --------------------------------------------------------------------------------------------------
class GANTask:
    """The GAN's part of the loop: its batches, its step and its checkpoint."""

    label, unit = "train", "step"

    def __init__(self, cfg: TrainConfig, models: Models, train_ds: TextImageDataset, device: torch.device,
                 damsm: DAMSMBundle, loss: GANLoss) -> None:
        self.cfg, self.models, self.train_ds, self.device, self.damsm = cfg, models, train_ds, device, damsm
        self.loss = loss
        self.vocab_words = list(train_ds.vocab.words)
        self.batch_size = cfg.batch_size
        self.steps_per_epoch = len(train_ds) // cfg.batch_size
        self.compile_checked = False
        self.eval_best: dict[str, Any] | None = None  # the best evaluation so far (training.evaluation.BestScore)

    def start_epoch(self, epoch: int) -> None:
        self.models.G.train()
        self.models.Ds.train()
        if self.cfg.lr_halve_every:
            set_epoch_lrs(self.models, self.cfg, epoch)

    def batches(self, epoch: int, skip: int) -> torch.utils.data.DataLoader:
        """The epoch's global batches (a function of seed and epoch), this rank's slice of each."""
        order = [shard(b) for b in epoch_batches(len(self.train_ds), self.cfg.batch_size, self.cfg.seed, epoch)[skip:]]
        return make_loader(self.train_ds, order, self.cfg.workers, rank_seed(self.cfg.seed * 1_000_003 + epoch), self.device)

    def step(self, batch: dict[str, Any], state: LoopState) -> dict[str, torch.Tensor]:
        m = self.models
        if not m.compiled or self.compile_checked:
            return train_step(m, batch, self.cfg, self.device, self.loss, state.step)
        try:  # the first compiled step: torch.compile fails here if it fails (no C++ compiler, an op it lacks)
            logs = train_step(m, batch, self.cfg, self.device, self.loss, state.step)
        except Exception as e:  # noqa: BLE001  # any compiler error; an error of the step itself recurs below
            first = (str(e).strip().splitlines() or [""])[0][:200]
            log.warning("torch.compile failed (%s: %s); training continues without it (--no-compile skips it)",
                        type(e).__name__, first)
            m.use_compiled(False, self.device)
            for opt in (m.opt_g, *m.opt_ds):  # (a failure in G's part, after the Ds stepped, steps them twice once)
                opt.zero_grad(set_to_none=True)
            logs = train_step(m, batch, self.cfg, self.device, self.loss, state.step)
        self.compile_checked = True
        return logs

    def end_epoch(self, state: LoopState, complete: bool) -> dict[str, Any]:
        return {}

    def learning_rates(self) -> dict[str, float]:
        """The optimisers' current learning rates (logged to TensorBoard as ``lr/G``, ``lr/D``)."""
        m = self.models
        return {"G": m.opt_g.param_groups[0]["lr"], "D": m.opt_ds[0].param_groups[0]["lr"]}

    def checkpoint(self, state: LoopState) -> Checkpoint:
        m, cfg = self.models, self.cfg
        return Checkpoint(
            kind=GAN_KIND, config=to_dict(cfg), vocab=self.vocab_words,
            state={"generator": cpu_state(m.G), "generator_ema": cpu_state(m.ema.module),
                   "discriminators": {str(i): cpu_state(D) for i, D in enumerate(m.Ds)}},
            optim={"g": m.opt_g.state_dict(), "d": {str(i): o.state_dict() for i, o in enumerate(m.opt_ds)},
                   "scaler_g": m.scaler_g.state_dict(), "scaler_d": m.scaler_d.state_dict()},
            step=state.step, epoch=state.epoch, rng=rng_state(),
            extra={"damsm_text_encoder": cpu_state(m.text_encoder), "damsm_config": to_dict(self.damsm.config.text),
                   "damsm_path": str(self.damsm.path), "damsm_sha256": damsm_sha256(self.damsm),
                   "batch_in_epoch": state.batch_in_epoch, "dataset": str(cfg.dataset), **self.loss.record,
                   **({"eval_best": self.eval_best} if self.eval_best is not None else {})},
        )


# --------------------------------------------------------------------------------------------------
# Sample grids
# --------------------------------------------------------------------------------------------------
@dataclass
class SampleBatch:
    captions: torch.Tensor  # (n, T)
    lengths: torch.Tensor  # (n,)
    noise: torch.Tensor  # (n, z_dim)
    texts: list[str]


def fixed_samples(test_ds: TextImageDataset, cfg: TrainConfig, n: int = N_SAMPLES) -> SampleBatch:
    """The first ``n`` test captions (caption 0 of each) with noise drawn from ``cfg.seed``."""
    n = min(n, len(test_ds))
    with preserve_rng():
        items = [test_ds[i] for i in range(n)]
    captions = torch.stack([torch.as_tensor(it["caption"]) for it in items])
    lengths = torch.tensor([int(it["length"]) for it in items])
    noise = torch.randn(n, cfg.generator.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
    vocab = test_ds.vocab
    texts = [vocab.decode(c[: int(k)].tolist()) for c, k in zip(captions, lengths, strict=True)]
    return SampleBatch(captions, lengths, noise, texts)


def stage_grid(images: list[torch.Tensor]) -> np.ndarray:
    """One row per stage (upsampled to the last stage's size), one column per image: (H, W, 3) uint8."""
    size = images[-1].shape[-1]
    rows = [list(to_uint8(upsample(x, size))) for x in images]
    return make_grid(rows)


class SampleGrids(Callback):
    """``samples-<step>.png``: the EMA generator on fixed test captions (c = mu), at the start, every
    ``every`` steps and at the end of a run that was not interrupted."""

    def __init__(self, bundle: GeneratorBundle, samples: SampleBatch, every: int, precision: str) -> None:
        self.bundle, self.samples, self.every, self.precision = bundle, samples, every, precision
        self.last: int | None = None

    def write(self, loop: Loop) -> Path | None:
        step = loop.state.step
        self.last = step
        if not is_main_process():
            return None
        s = self.samples
        with preserve_rng():
            out = generate(self.bundle, s.captions, s.lengths, s.noise, eps=None, precision=self.precision)
        grid = stage_grid([x.cpu() for x in out.images])
        path = save_png(grid, loop.run.file(f"samples-{step:06d}.png"))
        loop.log_image(SAMPLES_TAG, grid, step)
        return path

    def on_start(self, loop: Loop) -> None:
        if loop.state.step == 0:
            self.write(loop)

    def on_step(self, loop: Loop, info: StepInfo) -> None:
        if self.every > 0 and info.step % self.every == 0:
            self.write(loop)

    def on_end(self, loop: Loop, reason: str) -> None:
        if reason in (FINISHED, TIME_BUDGET) and self.last != loop.state.step:
            self.write(loop)


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def train_gan(settings: TrainSettings, run: RunDir, progress: Progress | None = None,
              abort: Callable[[], bool] | None = None,
              callbacks: Sequence[Callback | Callable[[StepInfo], None]] = ()) -> Path:
    """Train G and the Ds with the settings :func:`attngan_cli.training.resolve.resolve_train` made (the
    config and the loaded ``gan`` checkpoint to continue from exactly); returns the final checkpoint
    (``run/final.pt``). ``abort``: polled between steps; when it returns True ``interrupted.pt`` is saved
    and :class:`TrainingAborted` is raised. A first Ctrl-C does the same, then KeyboardInterrupt propagates.
    """
    cfg = settings.config

    def build(job: JobContext) -> Built:
        device = job.device
        train_ds, test_ds = open_datasets(cfg)
        vocab_words = list(train_ds.vocab.words)
        damsm = load_damsm(cfg.encoders, device, need_image=cfg.lambda_damsm > 0)
        image_encoder = damsm.image_encoder if cfg.lambda_damsm > 0 else None
        m = build_models(cfg, device, damsm.text_encoder, image_encoder)
        loss = make_loss(cfg, device, image_encoder, vocab_words)
        if job.resume is None:
            prepare_models(cfg, m)  # the architecture's own start (StackGAN Stage-II: the frozen Stage-I)

        def start() -> Started:
            samples = fixed_samples(test_ds, cfg)
            if is_main_process():
                atomic_write_text(run.file("samples-captions.txt"), "\n".join(samples.texts) + "\n")
            task = GANTask(cfg, m, train_ds, device, damsm, loss)
            ema_bundle = GeneratorBundle(m.ema.module, m.text_encoder, train_ds.vocab, cfg)
            own: list[Callback] = [SampleGrids(ema_bundle, samples, cfg.sample_every, cfg.precision)]
            if cfg.evaluation.every > 0:
                scored = GeneratorBundle(m.ema.module, m.text_encoder, train_ds.vocab, cfg,
                                         extra={"damsm_path": str(damsm.path), "damsm_sha256": damsm_sha256(damsm)})
                previous = job.resume.extra.get("eval_best") if job.resume is not None else None
                own.append(TrainEvaluation(cfg, scored, damsm, device, previous))
            return Started(task, own)

        return Built(lambda ckpt: load_training_state(m, ckpt), start)

    options = LoopOptions(nan_hint="lower --lr-g/--lr-d or --precision fp32", show=lambda v: {"d": v["d"], "g": v["g"]},
                          stats_every=LOG_EVERY, max_steps=cfg.max_steps, keep_last=cfg.keep_last)
    return run_job(settings, run, build, options=options, progress=progress, abort=abort, callbacks=callbacks)
