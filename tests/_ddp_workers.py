"""Process bodies for the torch.distributed tests (tests/test_distributed.py): each runs in a spawned
process as one rank of a gloo group, and leaves what it saw in ``out/rank<r>.pt``."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(fn: Callable[..., Any], world: int, *args: Any) -> None:
    """Run ``fn(*args)`` in ``world`` spawned processes that form one gloo group (as torchrun would)."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.start_processes(_entry, args=(world, port, fn, args), nprocs=world, start_method="spawn", join=True)


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_WAIT_POLICY": "PASSIVE"})
    torch.set_num_threads(1)
    from attngan_cli.core.distributed import destroy, init_from_env

    init_from_env("cpu")
    try:
        fn(*args)
    finally:
        destroy()


def _save(out: Path, obj: Any) -> None:
    from attngan_cli.core.distributed import rank

    torch.save(obj, Path(out) / f"rank{rank()}.pt")


# ------------------------------------------------------------------------------------- the DAMSM loss
def damsm_batch(B: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed batch for the tiny compact encoders of ``make_damsm`` (32 px images, 20 words, 6 tokens)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 7, (B,), generator=g)
    caption = torch.randint(1, 20, (B, 6), generator=g)
    caption[torch.arange(6)[None] >= lengths[:, None]] = 0
    return {"images": [torch.rand(B, 3, 32, 32, generator=g) * 2 - 1], "caption": caption, "length": lengths,
            "class_id": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3][:B])}


def damsm_gradients(damsm_path: str, batch: dict[str, Any], wrap: bool) -> dict[str, Any]:
    """The pretraining DAMSM loss of ``batch`` (this rank's slice under a group) and the encoders'
    gradients after backward (averaged over the ranks by DDP), plus the generator loss's DAMSM terms."""
    from attngan_cli.archs.attngan.loss import GeneratorLoss
    from attngan_cli.core.distributed import wrap_ddp
    from attngan_cli.inference.pipeline import load_damsm
    from attngan_cli.losses.damsm import DAMSMLoss
    from attngan_cli.training.damsm import damsm_terms

    bundle = load_damsm(damsm_path, "cpu")
    text, image = bundle.text_encoder, bundle.image_encoder
    text.requires_grad_(True)
    image.requires_grad_(True)
    text.eval()  # no dropout, BatchNorm from running statistics: the same function of each sample everywhere
    image.eval()
    cpu = torch.device("cpu")
    text_run, image_run = (wrap_ddp(text, cpu), wrap_ddp(image, cpu)) if wrap else (text, image)
    terms = damsm_terms(batch, text_run, image_run, DAMSMLoss(bundle.config.damsm), bundle.config, cpu, False)
    terms.total.backward()
    grads = {f"text.{k}": p.grad.clone() for k, p in text.named_parameters() if p.grad is not None}
    grads.update({f"image.{k}": p.grad.clone() for k, p in image.named_parameters() if p.grad is not None})
    with torch.no_grad():
        words_emb, sent_emb = text(batch["caption"], batch["length"])
        g = GeneratorLoss(1.0, damsm=bundle.config.damsm, image_encoder=image)
        w, s = g.damsm_terms(batch["images"][0], words_emb, sent_emb, batch["length"], batch["class_id"])
    return {"loss": terms.total.detach(), "terms": terms.items(), "grads": grads, "g_w": w, "g_s": s}


def damsm_worker(damsm_path: str, out: str) -> None:
    from attngan_cli.core.distributed import shard

    full = damsm_batch()
    rows = shard(list(range(len(full["caption"]))))
    mine = {k: ([v[0][rows]] if k == "images" else v[rows]) for k, v in full.items()}
    _save(Path(out), damsm_gradients(damsm_path, mine, wrap=True))


# ------------------------------------------------------------------------------------- GAN training
def _dotted(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys (the resolvers' overrides)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def train_worker(cfg_dict: dict[str, Any], runs: str, out: str, resume: str | None = None) -> None:
    """``train_gan`` as the ``train`` command runs it (a new run of ``cfg_dict``, or ``resume`` with its
    max_steps), recording the sample indices of every step and the trained parameters."""
    import attngan_cli.training.gan as gan
    from attngan_cli.config.schema import TrainConfig
    from attngan_cli.config.serialize import from_dict
    from attngan_cli.storage.rundirs import RunDir
    from attngan_cli.training.resolve import resolve_train

    seen: list[list[int]] = []
    real_step = gan.train_step

    def recording_step(m, batch, *args, **kwargs):
        seen.append([int(i) for i in batch["index"]])
        return real_step(m, batch, *args, **kwargs)

    cfg = from_dict(TrainConfig, cfg_dict)
    if resume is not None:
        settings = resolve_train(None, resume=resume, overrides={"max_steps": cfg.max_steps})
    else:
        settings = resolve_train(cfg.dataset, encoders=cfg.encoders, preset=cfg.preset, overrides={
            key: value for key, value in _dotted(cfg_dict).items() if key not in ("dataset", "encoders", "captioner")})
    run = RunDir.create(runs, "shapes", "train")
    holder: dict[str, Any] = {}

    class Keep(gan.Callback):
        def on_end(self, loop, reason):
            holder["models"] = loop.task.models
            holder["evals"] = [(step, r.metrics) for cb in loop.callbacks for step, r in getattr(cb, "results", [])]

    gan.train_step = recording_step
    try:
        gan.train_gan(settings, run, callbacks=[Keep()])
    finally:
        gan.train_step = real_step
    m = holder["models"]
    params = {f"G.{k}": v.detach().clone() for k, v in m.G.named_parameters()}
    params.update({f"EMA.{k}": v.detach().clone() for k, v in m.ema.module.named_parameters()})
    for i, D in enumerate(m.Ds):
        params.update({f"D{i}.{k}": v.detach().clone() for k, v in D.named_parameters()})
    _save(Path(out), {"seen": seen, "params": params, "run": str(run.path), "evals": holder["evals"]})


# ------------------------------------------------------------------------------------- DAMSM pretraining
def pretrain_worker(data: str, overrides: dict[str, Any], runs: str, out: str) -> None:
    """``pretrain`` as the command runs it, recording the sample indices of every step and the trained
    encoders' parameters."""
    import attngan_cli.training.damsm as pre
    from attngan_cli.storage.rundirs import RunDir
    from attngan_cli.training.resolve import resolve_pretrain

    settings = resolve_pretrain(data, overrides=overrides)
    run = RunDir.create(runs, "shapes", "pretrain")
    seen: list[list[int]] = []
    real_terms = pre.damsm_terms

    def recording_terms(b, *args, **kwargs):
        seen.append([int(i) for i in b["index"]])
        return real_terms(b, *args, **kwargs)

    holder: dict[str, Any] = {}

    class Keep(pre.Callback):
        def on_end(self, loop, reason):
            holder["enc"] = loop.task.models

    pre.damsm_terms = recording_terms
    try:
        pre.pretrain(settings, run, callbacks=[Keep()])
    finally:
        pre.damsm_terms = real_terms
    enc = holder["enc"]
    params = {f"text.{k}": v.detach().clone() for k, v in enc.text.named_parameters()}
    params.update({f"image.{k}": v.detach().clone() for k, v in enc.image.named_parameters()})
    _save(Path(out), {"seen": seen, "params": params, "run": str(run.path)})


def captioner_worker(data: str, overrides: dict[str, Any], runs: str, out: str) -> None:
    """``pretrain --model captioner`` as the command runs it; leaves the trained parameters."""
    from attngan_cli.storage.rundirs import RunDir
    from attngan_cli.training.captioner import CaptionTask, pretrain_captioner
    from attngan_cli.training.resolve import resolve_caption_pretrain

    settings = resolve_caption_pretrain(data, overrides=overrides)
    run = RunDir.create(runs, "shapes", "captioner")
    holder: dict[str, Any] = {}
    real_step = CaptionTask.step

    def step(self, batch, state):
        holder.setdefault("seen", []).append([int(i) for i in batch["index"]])
        holder["model"] = self.models
        return real_step(self, batch, state)

    CaptionTask.step = step
    try:
        pretrain_captioner(settings, run)
    finally:
        CaptionTask.step = real_step
    params = {k: v.detach().clone() for k, v in holder["model"].named_parameters()}
    _save(Path(out), {"seen": holder["seen"], "params": params, "run": str(run.path)})


# ------------------------------------------------------------------------------------- each rank's noise
class _NoiseTask:
    """A toy task whose every step draws from the global RNG (as noise, dropout and crops do) and records
    the draw; 6 steps per epoch, the same batches on every rank."""

    label, unit, batch_size, steps_per_epoch = "toy", "step", 4, 6

    def __init__(self, model: torch.nn.Module, drawn: dict[int, torch.Tensor], die_at: int = 0) -> None:
        self.models, self.drawn, self.die_at = model, drawn, die_at

    def start_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int, skip: int):
        for i in range(skip, self.steps_per_epoch):
            yield torch.arange(4 * i, 4 * i + 4)

    def step(self, batch, state):
        from attngan_cli.core.distributed import rank

        if state.step + 1 == self.die_at and rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
        self.drawn[state.step + 1] = torch.randn(3)
        return {"loss": self.models(self.drawn[state.step + 1]).sum().detach()}

    def end_epoch(self, state, complete):
        return {}

    def checkpoint(self, state):
        from attngan_cli.core.device import rng_state
        from attngan_cli.storage.checkpoints import Checkpoint
        from attngan_cli.training.loop import cpu_state

        return Checkpoint(kind="toy", config={}, state={"model": cpu_state(self.models)}, optim={},
                          step=state.step, epoch=state.epoch, rng=rng_state(),
                          extra={"batch_in_epoch": state.batch_in_epoch})


def noise_worker(runs: str, out: str, max_steps: int, resume: str | None = None, die_at: int = 0) -> None:
    """The job skeleton (``run_job``) on :class:`_NoiseTask`: a new run, or ``resume`` (a checkpoint),
    to ``max_steps`` (2 epochs of 6 steps, a checkpoint after each); leaves each step's draw and the final
    checkpoint's path, or the error the job ended with. ``die_at``: rank 1 is SIGKILLed at that step."""
    from dataclasses import dataclass

    from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint
    from attngan_cli.storage.rundirs import RunDir
    from attngan_cli.training.job import Built, LoopOptions, Started, run_job

    @dataclass
    class Config:
        device: str = "cpu"
        seed: int = 5
        precision: str = "fp32"
        epochs: int = 2
        max_minutes: float = 0.0
        snapshot_every: int = 1
        tensorboard: bool = False

    @dataclass(frozen=True)
    class Settings:
        config: Config
        resume: Checkpoint | None

    drawn: dict[int, torch.Tensor] = {}

    def build(job) -> Built:
        model = torch.nn.Linear(3, 1)
        return Built(lambda ckpt: model.load_state_dict(ckpt.state["model"]),
                     lambda: Started(_NoiseTask(model, drawn, die_at)))

    run = RunDir.create(runs, "noise", "train")
    settings = Settings(Config(), load_checkpoint(resume, kind="toy") if resume else None)
    try:
        final = run_job(settings, run, build, options=LoopOptions(max_steps=max_steps))
    except Exception as e:  # noqa: BLE001 - the test looks at it
        _save(Path(out), {"drawn": drawn, "error": f"{type(e).__name__}: {e}", "run": str(run.path)})
        return
    _save(Path(out), {"drawn": drawn, "final": str(final)})


def launch_survivors(fn: Callable[..., Any], world: int, *args: Any, timeout: float = 300) -> list[int | None]:
    """:func:`launch`, but a process that dies leaves the others running: each process's exit code."""
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_entry, args=(world, free_port(), fn, args), nprocs=world, start_method="spawn",
                             join=False)
    for p in ctx.processes:
        p.join(timeout)
    codes = [p.exitcode for p in ctx.processes]
    for p in ctx.processes:
        if p.is_alive():
            p.kill()
    return codes
