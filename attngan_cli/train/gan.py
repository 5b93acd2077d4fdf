"""Training the attentional generative network (paper section 3.1; official ``condGANTrainer.train``).

Per step: the frozen DAMSM text encoder embeds the captions; G draws every stage's image from fresh
noise; every stage's discriminator is updated on the real images and the detached fakes; then G is
updated against the (just updated) discriminators with the DAMSM and KL terms; then the exponential
moving average of G's parameters moves (decay 0.999 as the official ``avg_param_G``, with a warm-up: see
:mod:`attngan_cli.train.ema`).

The loop is a handful of small functions (:func:`build_models`, :func:`train_step`,
:func:`save_training_checkpoint`, :func:`write_samples`) so that precision, compilation and, later,
distributed training stay settings. Exact resumption: the checkpoint holds G, its EMA, every D, all
optimisers (and fp16 scalers), the RNG states and the position in the epoch; the data order of an epoch
is a function of (seed, epoch) only, so a resumed run repeats the uninterrupted run's losses.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import Checkpoint, check_checkpoint_config, check_vocab, load_checkpoint, save_checkpoint
from ..config import GeneratorConfig, TextEncoderConfig, TrainConfig, from_dict, to_dict
from ..device import autocast, resolve_device, rng_state, seed_everything, set_rng_state
from ..distributed import is_main_process
from ..errors import AttnGANError, CheckpointError, ConfigMismatchError, InputError, TrainingAborted
from ..io import atomic_path, atomic_write_text
from ..progress import NullProgress, Progress
from ..rundir import RunDir
from .callbacks import Callback, StepInfo, graceful_interrupt
from .ema import EMA
from .gan_loss import DiscriminatorLoss, GeneratorLoss

log = logging.getLogger(__name__)

KIND = "gan"
FINAL_NAME = "final.pt"
INTERRUPTED_NAME = "interrupted.pt"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)\.pt$")
LOG_EVERY = 10  # steps per stats.jsonl record (means over the window)
N_SAMPLES = 8  # fixed test captions in the sample grid
# Fields that must agree between a checkpoint and the config that resumes it (the weights' shapes).
RESUME_FIELDS = [
    "generator.stages", "generator.base_size", "generator.ngf", "generator.r_num", "generator.z_dim",
    "generator.condition_dim", "generator.embedding_dim", "discriminator.ndf", "discriminator.embedding_dim",
]


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
    scaler_g: Any  # torch.amp.GradScaler (enabled for fp16 only)
    scaler_d: Any
    G_run: Callable[..., Any] = None  # type: ignore[assignment]  # G or its compiled version
    Ds_run: list[Callable[..., Any]] = field(default_factory=list)


@dataclass
class LoopState:
    step: int = 0  # generator steps done
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of epoch ``epoch`` already consumed


class _CompiledD(nn.Module):
    """A discriminator whose image encoder runs compiled; the heads stay as they are."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D
        self.fwd = torch.compile(D)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fwd(images)

    def uncond_logits(self, code: torch.Tensor) -> torch.Tensor:
        return self.D.uncond_logits(code)

    def cond_logits(self, code: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return self.D.cond_logits(code, sent_emb)


def build_models(cfg: TrainConfig, device: torch.device, text_encoder: nn.Module,
                 image_encoder: nn.Module | None) -> Models:
    from ..models.discriminator import make_discriminators
    from ..models.generator import Generator

    G = Generator(cfg.generator).to(device)
    Ds = make_discriminators(cfg.generator, cfg.discriminator).to(device)
    if cfg.channels_last:
        G.to(memory_format=torch.channels_last)
        Ds.to(memory_format=torch.channels_last)
    ema = EMA(G, cfg.ema_decay)
    betas = tuple(cfg.betas)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas)
    opt_ds = [torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas) for D in Ds]
    fp16 = cfg.precision == "fp16"
    scaler_g = torch.amp.GradScaler(device.type, enabled=fp16)
    scaler_d = torch.amp.GradScaler(device.type, enabled=fp16)
    m = Models(G, Ds, ema, text_encoder, image_encoder, opt_g, opt_ds, scaler_g, scaler_d)
    m.G_run = torch.compile(G) if cfg.compile else G
    m.Ds_run = [_CompiledD(D) if cfg.compile else D for D in Ds]
    return m


def load_training_state(m: Models, ckpt: Checkpoint) -> None:
    m.G.load_state_dict(ckpt.state["generator"])
    m.ema.load_state_dict(ckpt.state["generator_ema"])
    _load_discriminators(m.Ds, ckpt.state["discriminators"], ckpt.path)
    m.opt_g.load_state_dict(ckpt.optim["g"])
    for i, opt in enumerate(m.opt_ds):
        opt.load_state_dict(ckpt.optim["d"][str(i)])
    if "scaler_g" in ckpt.optim:
        m.scaler_g.load_state_dict(ckpt.optim["scaler_g"])
        m.scaler_d.load_state_dict(ckpt.optim["scaler_d"])


def _load_discriminators(Ds: nn.ModuleList, state: dict[str, Any], path: Any) -> None:
    if set(state) == {str(i) for i in range(len(Ds))}:
        for i, D in enumerate(Ds):
            D.load_state_dict(state[str(i)])
    else:
        try:
            Ds.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {path}: discriminator weights do not fit ({str(e).splitlines()[0][:200]})") from e


# --------------------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------------------
def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@torch.no_grad()
def embed_captions(text_encoder: nn.Module, captions: torch.Tensor, lengths: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frozen text features: words (B, D, T), sentence (B, D), padding mask (B, T) True = padding."""
    words_emb, sent_emb = text_encoder(captions, lengths)
    mask = (captions == 0)[:, : words_emb.shape[2]]
    return words_emb.float(), sent_emb.float(), mask


def train_step(m: Models, batch: dict[str, Any], cfg: TrainConfig, device: torch.device,
               d_loss: DiscriminatorLoss, g_loss: GeneratorLoss, step: int | None = None) -> dict[str, torch.Tensor]:
    """One official AttnGAN iteration (``step``: steps done before it, for the EMA warm-up); returns
    detached loss tensors (not synchronised)."""
    reals = [_to(x, device, cfg.channels_last) for x in batch["images"]]  # per stage (B, 3, s, s)
    captions = batch["caption"].to(device)
    lengths = torch.as_tensor(batch["length"]).to(device)
    class_ids = torch.as_tensor(batch["class_id"]).to(device)
    words_emb, sent_emb, mask = embed_captions(m.text_encoder, captions, lengths)
    noise = torch.randn(captions.shape[0], cfg.generator.z_dim, device=device)

    with autocast(device, cfg.precision):
        out = m.G_run(noise, sent_emb, words_emb, mask)
    fakes = out.images

    logs: dict[str, torch.Tensor] = {}
    d_total = torch.zeros((), device=device)
    for i, (D, opt) in enumerate(zip(m.Ds_run, m.opt_ds, strict=True)):
        opt.zero_grad(set_to_none=True)
        with autocast(device, cfg.precision):
            terms = d_loss(D, reals[i], fakes[i].detach(), sent_emb)
        m.scaler_d.scale(terms.total).backward()
        m.scaler_d.step(opt)
        logs[f"d{i}"] = terms.total.detach()
        d_total = d_total + logs[f"d{i}"]
    m.scaler_d.update()
    logs["d"] = d_total

    m.Ds.requires_grad_(False)  # G's step needs no gradients for the discriminators' weights
    try:
        m.opt_g.zero_grad(set_to_none=True)
        with autocast(device, cfg.precision):
            gterms = g_loss(m.Ds_run, fakes, out.mu, out.logvar, words_emb, sent_emb, lengths, class_ids)
        m.scaler_g.scale(gterms.total).backward()
        m.scaler_g.step(m.opt_g)
        m.scaler_g.update()
    finally:
        m.Ds.requires_grad_(True)
    m.ema.update(m.G, step)
    logs["g"] = gterms.total.detach()
    logs.update(gterms.logs())
    return logs


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled full batches of ``epoch`` (drop_last, as the official loader); a function of
    (seed, epoch) only, so a resumed run sees the same order."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def make_loader(dataset: Any, batches: list[list[int]], cfg: TrainConfig, seed: int,
                device: torch.device) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)  # worker seeds; keeps the global RNG untouched
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.workers, generator=g,
                                       pin_memory=device.type == "cuda", persistent_workers=False)


def open_datasets(cfg: TrainConfig) -> tuple[Any, Any]:
    from ..data.dataset import TextImageDataset

    sizes = tuple(cfg.generator.image_sizes)
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
# Checks before training
# --------------------------------------------------------------------------------------------------
def check_encoders(damsm: Any, dataset_words: list[str], cfg: TrainConfig) -> None:
    """The DAMSM encoders must have been trained on this dataset's vocabulary, with G's embedding size."""
    stub = Checkpoint(kind="damsm", config={}, state={}, vocab=list(damsm.vocab.words) if damsm.vocab is not None else None,
                      path=damsm.path)
    check_vocab(stub, dataset_words, f"dataset {cfg.dataset}")
    text_dim = damsm.config.text.embedding_dim
    if damsm.config.text.vocab_size != len(dataset_words):
        raise ConfigMismatchError(
            f"the text encoder of {damsm.path} has {damsm.config.text.vocab_size} words but dataset {cfg.dataset} has "
            f"{len(dataset_words)}")
    for name, value in (("generator.embedding_dim", cfg.generator.embedding_dim),
                        ("discriminator.embedding_dim", cfg.discriminator.embedding_dim)):
        if value != text_dim:
            raise ConfigMismatchError(f"{name} is {value} but the encoders of {damsm.path} embed to {text_dim}")


def check_resume(ckpt: Checkpoint, cfg: TrainConfig, dataset_words: list[str], text_encoder: nn.Module) -> None:
    check_checkpoint_config(ckpt, to_dict(cfg), RESUME_FIELDS)
    check_vocab(ckpt, dataset_words, f"dataset {cfg.dataset}")
    saved = ckpt.extra.get("damsm_text_encoder")
    if saved is not None:
        current = text_encoder.state_dict()
        same = set(saved) == set(current) and all(
            saved[k].shape == current[k].shape and torch.equal(saved[k].cpu(), current[k].cpu()) for k in saved)
        if not same:
            raise ConfigMismatchError(
                f"the text encoder in {cfg.encoders} differs from the one checkpoint {ckpt.path} was trained with "
                f"({ckpt.extra.get('damsm_path')})")
    for name in ("batch_size", "seed"):
        if ckpt.config.get(name) != getattr(cfg, name):
            log.warning("resuming with %s=%r (the checkpoint used %r): the run will not repeat an uninterrupted one",
                        name, getattr(cfg, name), ckpt.config.get(name))


def resolve_checkpoint(path: str | os.PathLike[str], for_resume: bool = False) -> Path:
    """A file as is; a train run directory -> its newest checkpoint (resume) or final.pt, else the newest."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint or run directory {p} does not exist")
    if p.is_file():
        return p
    cands = [f for f in p.glob("*.pt") if f.name in (FINAL_NAME, INTERRUPTED_NAME) or _CKPT_RE.match(f.name)]
    if not cands:
        raise CheckpointError(f"run directory {p} holds no checkpoint ({FINAL_NAME} or checkpoint-<epoch>.pt)")
    if not for_resume and (p / FINAL_NAME).is_file():
        return p / FINAL_NAME
    return max(cands, key=lambda f: (f.stat().st_mtime, f.name))


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------
def _cpu_state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in m.state_dict().items()}


def make_checkpoint(m: Models, cfg: TrainConfig, words: list[str], damsm: Any, st: LoopState) -> Checkpoint:
    text_cfg = damsm.config.text
    return Checkpoint(
        kind=KIND, config=to_dict(cfg), vocab=list(words),
        state={"generator": _cpu_state(m.G), "generator_ema": _cpu_state(m.ema.module),
               "discriminators": {str(i): _cpu_state(D) for i, D in enumerate(m.Ds)}},
        optim={"g": m.opt_g.state_dict(), "d": {str(i): o.state_dict() for i, o in enumerate(m.opt_ds)},
               "scaler_g": m.scaler_g.state_dict(), "scaler_d": m.scaler_d.state_dict()},
        step=st.step, epoch=st.epoch, rng=rng_state(),
        extra={"damsm_text_encoder": _cpu_state(m.text_encoder), "damsm_config": to_dict(text_cfg),
               "damsm_path": str(damsm.path), "batch_in_epoch": st.batch_in_epoch, "dataset": str(cfg.dataset)},
    )


def save_training_checkpoint(path: Path, m: Models, cfg: TrainConfig, words: list[str], damsm: Any,
                             st: LoopState) -> Path:
    if is_main_process():
        save_checkpoint(make_checkpoint(m, cfg, words, damsm, st), path)
    return path


def prune_checkpoints(run: RunDir, keep_last: int) -> None:
    if not is_main_process() or keep_last <= 0:
        return
    numbered = sorted((int(mm.group(1)), f) for f in run.path.glob("checkpoint-*.pt") if (mm := _CKPT_RE.match(f.name)))
    for _, f in numbered[:-keep_last]:
        f.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------------
@dataclass
class SampleBatch:
    captions: torch.Tensor  # (n, T)
    lengths: torch.Tensor  # (n,)
    noise: torch.Tensor  # (n, z_dim)
    texts: list[str]


@contextlib.contextmanager
def preserve_rng() -> Iterator[None]:
    """Leave the python, numpy and torch RNG states as they were (side work must not shift training)."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def fixed_samples(test_ds: Any, cfg: TrainConfig, n: int = N_SAMPLES) -> SampleBatch:
    n = min(n, len(test_ds))
    with preserve_rng():
        items = [test_ds[i] for i in range(n)]
    captions = torch.stack([torch.as_tensor(it["caption"]) for it in items])
    lengths = torch.tensor([int(it["length"]) for it in items])
    noise = torch.randn(n, cfg.generator.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
    vocab = test_ds.vocab
    texts = [vocab.decode(c[: int(k)].tolist()) for c, k in zip(captions, lengths, strict=True)]
    return SampleBatch(captions, lengths, noise, texts)


@torch.no_grad()
def generate(G: nn.Module, text_encoder: nn.Module, s: SampleBatch, device: torch.device,
             precision: str = "fp32") -> list[torch.Tensor]:
    """Every stage's images (n, 3, s_i, s_i) in [-1, 1] for the fixed captions and noise, in eval mode,
    with c = mu (deterministic); the global RNG is left untouched."""
    words_emb, sent_emb, mask = embed_captions(text_encoder, s.captions.to(device), s.lengths.to(device))
    was_training = G.training
    G.eval()
    try:
        with preserve_rng(), autocast(device, precision):
            out = G(s.noise.to(device), sent_emb, words_emb, mask, ca_noise=False)
    finally:
        G.train(was_training)
    return [x.float().cpu() for x in out.images]


def write_grid(images: list[torch.Tensor], path: Path, pad: int = 2) -> Path:
    """One row per stage (upsampled to the last stage's size), one column per caption, as a PNG."""
    from PIL import Image

    n, size = images[0].shape[0], images[-1].shape[-1]
    cell = size + pad
    canvas = torch.zeros(3, pad + len(images) * cell, pad + n * cell)
    for r, x in enumerate(images):
        x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="nearest")  # (n, 3, S, S)
        for c in range(n):
            canvas[:, pad + r * cell: pad + r * cell + size, pad + c * cell: pad + c * cell + size] = x[c]
    arr = canvas.add(1).mul(127.5).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return path


def write_samples(m: Models, s: SampleBatch, run: RunDir, step: int, device: torch.device, cfg: TrainConfig) -> Path | None:
    if not is_main_process():
        return None
    images = generate(m.ema.module, m.text_encoder, s, device, cfg.precision)
    return write_grid(images, run.file(f"samples-{step:06d}.png"))


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def _finite_or_abort(values: dict[str, float], st: LoopState, run: RunDir) -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if not bad:
        return
    last = resolve_checkpoint(run.path, for_resume=True) if any(run.path.glob("*.pt")) else None
    where = (f"the last good checkpoint {last} is intact (resume with --resume {last}, perhaps with lower "
             "--lr-g/--lr-d or --precision fp32)") if last else "no checkpoint had been written yet"
    names = ", ".join(f"{k}={v}" for k, v in bad.items())
    raise TrainingAborted(f"non-finite loss at step {st.step} (epoch {st.epoch + 1}): {names}; training stopped; {where}")


def train_gan(cfg: TrainConfig, run: RunDir, progress: Progress | None = None,
              resume: str | os.PathLike[str] | None = None, abort: Callable[[], bool] | None = None,
              callbacks: Sequence[Callback] = ()) -> Path:
    """Train G and the Ds; returns the final checkpoint (``run/final.pt``).

    ``resume``: a ``gan`` checkpoint or train run directory to continue from exactly. ``abort``: polled
    between steps; when it returns True a checkpoint is saved and :class:`TrainingAborted` is raised.
    A first Ctrl-C does the same (then KeyboardInterrupt propagates).
    """
    from ..models.damsm import load_damsm

    progress = progress or NullProgress()
    device = resolve_device(cfg.device)
    if cfg.precision == "fp16" and device.type != "cuda":
        raise AttnGANError("--precision fp16 needs a CUDA device; on a CPU use bf16")
    if not cfg.encoders:
        raise InputError("no DAMSM encoders given: pass --encoders PRETRAIN_RUN_OR_CHECKPOINT")
    seed_everything(cfg.seed)

    train_ds, test_ds = open_datasets(cfg)
    words = list(train_ds.vocab.words)
    damsm = load_damsm(cfg.encoders, device)
    check_encoders(damsm, words, cfg)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resolve_checkpoint(resume, for_resume=True), kind=KIND)
        check_resume(ckpt, cfg, words, damsm.text_encoder)
    if len(train_ds) < cfg.batch_size:
        raise InputError(f"--batch-size {cfg.batch_size} is larger than the {len(train_ds)} training images of {cfg.dataset}")
    if cfg.batch_size < 2:
        raise InputError("--batch-size must be at least 2 (BatchNorm and the mismatched pairs need a batch)")

    image_encoder = damsm.image_encoder if cfg.lambda_damsm > 0 else None
    m = build_models(cfg, device, damsm.text_encoder, image_encoder)
    st = LoopState()
    if ckpt is not None:
        load_training_state(m, ckpt)
        st = LoopState(ckpt.step, ckpt.epoch, int(ckpt.extra.get("batch_in_epoch", 0)))
        if ckpt.rng is not None:
            set_rng_state(ckpt.rng)
        log.info("resuming from %s (step %d, epoch %d)", ckpt.path, st.step, st.epoch)
    run.write_config(to_dict(cfg))
    d_loss = DiscriminatorLoss(cfg.mismatch)
    g_loss = GeneratorLoss(cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, image_encoder)
    samples = fixed_samples(test_ds, cfg)
    if is_main_process():
        atomic_write_text(run.file("samples-captions.txt"), "\n".join(samples.texts) + "\n")

    steps_per_epoch = len(train_ds) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps > 0:
        total = min(total, cfg.max_steps)
    save = lambda name: save_training_checkpoint(run.file(name), m, cfg, words, damsm, st)  # noqa: E731
    if st.step == 0:
        write_samples(m, samples, run, 0, device, cfg)
    log.info("training %d steps (%d per epoch, batch %d, %s) on %s into %s", total, steps_per_epoch,
             cfg.batch_size, cfg.precision, device, run.path)

    window: dict[str, float] = {}
    n_window, t_window = 0, time.perf_counter()
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes > 0 else math.inf
    done = False
    m.G.train()
    m.Ds.train()
    with graceful_interrupt() as interrupted, progress.task("train", total=total, unit="step") as bar:
        bar.update(completed=st.step)
        try:
            while st.step < total and not done:
                batches = epoch_batches(len(train_ds), cfg.batch_size, cfg.seed, st.epoch)[st.batch_in_epoch:]
                loader = make_loader(train_ds, batches, cfg, cfg.seed * 1_000_003 + st.epoch, device)
                for batch in loader:
                    logs = train_step(m, batch, cfg, device, d_loss, g_loss, st.step)
                    st.step += 1
                    st.batch_in_epoch += 1
                    values = {k: float(v) for k, v in logs.items()}
                    _finite_or_abort(values, st, run)
                    for k, v in values.items():
                        window[k] = window.get(k, 0.0) + v
                    n_window += 1
                    bar.advance(1, epoch=st.epoch + 1, d=values["d"], g=values["g"])
                    for cb in callbacks:
                        cb(StepInfo(st.step, st.epoch, values, m))
                    if st.step % LOG_EVERY == 0 or st.step == total:
                        dt = time.perf_counter() - t_window
                        record = {"step": st.step, "epoch": st.epoch + 1}
                        record.update({k: v / n_window for k, v in window.items()})
                        record["images_per_s"] = n_window * cfg.batch_size / max(dt, 1e-9)
                        run.log_stats(record)
                        window, n_window, t_window = {}, 0, time.perf_counter()
                    if cfg.sample_every > 0 and st.step % cfg.sample_every == 0:
                        write_samples(m, samples, run, st.step, device, cfg)
                    if interrupted():
                        raise KeyboardInterrupt
                    if abort is not None and abort():
                        p = save(INTERRUPTED_NAME)
                        raise TrainingAborted(f"training stopped at step {st.step}; saved {p} (continue with --resume {run.path})")
                    if st.step >= total or time.monotonic() > deadline:
                        done = True
                        break
                else:
                    st.epoch += 1
                    st.batch_in_epoch = 0
                    if cfg.snapshot_every > 0 and st.epoch % cfg.snapshot_every == 0 and st.step < total:
                        save(f"checkpoint-{st.epoch}.pt")
                        prune_checkpoints(run, cfg.keep_last)
                if done and st.batch_in_epoch == steps_per_epoch:
                    st.epoch += 1
                    st.batch_in_epoch = 0
        except KeyboardInterrupt:
            p = save(INTERRUPTED_NAME)
            log.warning("interrupted at step %d; saved %s (continue with --resume %s)", st.step, p, run.path)
            raise
    if st.step < total:
        log.info("stopped after %.1f minutes (max_minutes) at step %d of %d", cfg.max_minutes, st.step, total)
    if st.step % max(1, cfg.sample_every) != 0 or cfg.sample_every <= 0:
        write_samples(m, samples, run, st.step, device, cfg)
    final = save(FINAL_NAME)
    log.info("saved %s", final)
    return final


# --------------------------------------------------------------------------------------------------
# Loading a trained generator
# --------------------------------------------------------------------------------------------------
@dataclass
class GeneratorBundle:
    generator: nn.Module  # eval mode, no gradients
    text_encoder: nn.Module  # eval mode, no gradients
    vocab: Any  # attngan_cli.data.vocab.Vocabulary
    config: TrainConfig
    path: Path | None = None


def _text_config(ckpt: Checkpoint, state: dict[str, torch.Tensor], words: int) -> TextEncoderConfig:
    for key in ("damsm_config", "text_config"):
        if isinstance(ckpt.extra.get(key), dict):
            return from_dict(TextEncoderConfig, ckpt.extra[key], where=f"checkpoint extra.{key}")
    if isinstance(ckpt.config.get("text"), dict):
        return from_dict(TextEncoderConfig, ckpt.config["text"], where="checkpoint config.text")
    try:  # infer from the weights' shapes: encoder.weight (V, word_dim), rnn.weight_hh_l0 (4H, H)
        vocab_size, word_dim = state["encoder.weight"].shape
        hidden = state["rnn.weight_hh_l0"].shape[1]
    except KeyError as e:
        raise CheckpointError(f"checkpoint {ckpt.path}: text encoder weights lack {e}") from e
    return TextEncoderConfig(vocab_size=int(vocab_size), word_dim=int(word_dim), embedding_dim=2 * int(hidden), words=words)


def load_generator(path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "cpu",
                   ema: bool = True) -> GeneratorBundle:
    """A trained generator (the EMA weights unless ``ema=False``) and its text encoder, from a ``gan``
    checkpoint or train run directory, or a ``generator`` checkpoint written by ``attngan import``."""
    from ..models.damsm import make_vocab
    from ..models.generator import Generator
    from ..models.text_encoder import TextEncoder

    path = resolve_checkpoint(path_or_run_dir)
    ckpt = load_checkpoint(path, kind=(KIND, "generator"), map_location="cpu")
    cfg = from_dict(TrainConfig, ckpt.config, where="checkpoint config") if "generator" in ckpt.config else \
        TrainConfig(generator=from_dict(GeneratorConfig, ckpt.config.get("generator_config", {})))
    if ckpt.kind == KIND:
        g_state = ckpt.state["generator_ema" if ema and "generator_ema" in ckpt.state else "generator"]
        t_state = ckpt.extra.get("damsm_text_encoder")
        if t_state is None:
            raise CheckpointError(f"checkpoint {path} holds no text encoder (extra.damsm_text_encoder)")
    else:
        g_state, t_state = ckpt.state.get("generator"), ckpt.state.get("text_encoder")
        if g_state is None or t_state is None:
            raise CheckpointError(f"generator checkpoint {path} needs state 'generator' and 'text_encoder'")
    G = Generator(cfg.generator)
    text = TextEncoder(_text_config(ckpt, t_state, cfg.words))
    for name, module, state in (("generator", G, g_state), ("text encoder", text, t_state)):
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {path}: {name} weights do not fit its config ({str(e).splitlines()[0][:200]})") from e
        module.to(device).eval()
        module.requires_grad_(False)
    vocab = make_vocab(ckpt.vocab) if ckpt.vocab is not None else None
    return GeneratorBundle(G, text, vocab, cfg, path)
