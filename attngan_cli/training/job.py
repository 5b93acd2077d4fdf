"""The skeleton every training job shares (GAN training, DAMSM and captioner pretraining).

:func:`run_job` owns the steps that are the same for every job, in one order:

1. join torchrun's processes and resolve the device;
2. seed every rank alike, so that the models the job builds start the same on every rank;
3. the job's ``build`` (its datasets, models and optimisers, :class:`JobContext`);
4. seed each rank its own way (:func:`attngan_cli.core.distributed.rank_seed`: dropout, noise, crops);
5. on resume, put the checkpoint's state into what the job built (:attr:`Built.load`) and take this
   rank's RNG state from it (:func:`attngan_cli.core.device.restore_rank_rng`); the loop continues at the
   checkpoint's position (:meth:`LoopState.of`);
6. write the resolved config into the run directory;
7. the job's ``start`` (its :class:`attngan_cli.training.loop.Task` and its own callbacks, :class:`Started`),
   and how the run runs (:func:`attngan_cli.core.distributed.environment`: the torchrun processes, the
   batch per process, the versions and devices) into ``environment.json`` and every checkpoint's
   ``extra.environment``;
8. the :class:`attngan_cli.training.loop.Loop` with the callbacks every job has (progress bar,
   ``stats.jsonl``, checkpoint pruning, TensorBoard) around the job's own and the caller's, and run it.

A run that dies of an error at any of these steps (its directory exists) still ends ``stats.jsonl`` with
a line saying why (``"end": "error: <one line>"``), as the loop does for the ways it ends.

The settings come from :mod:`attngan_cli.training.resolve`, which checked them before any run directory
existed: the skeleton and the jobs do not check them again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from attngan_cli.config.serialize import to_dict
from attngan_cli.core.device import resolve_device, restore_rank_rng, seed_everything
from attngan_cli.core.distributed import environment, init_from_env, is_peer_failure, rank_seed
from attngan_cli.core.errors import TrainingAborted
from attngan_cli.core.progress import Progress
from attngan_cli.storage.checkpoints import Checkpoint
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.loop import (
    Callback,
    Loop,
    LoopState,
    ProgressBar,
    PruneCheckpoints,
    StatsLog,
    StepInfo,
    Task,
    end_reason,
)
from attngan_cli.training.tensorboard import tensorboard_callbacks

log = logging.getLogger(__name__)


class JobConfig(Protocol):
    """The fields of a resolved job config (TrainConfig, PretrainConfig, CaptionPretrainConfig) the
    skeleton reads."""

    device: str
    seed: int
    precision: str
    epochs: int
    max_minutes: float
    snapshot_every: int
    tensorboard: bool


class JobSettings(Protocol):
    """What a resolver (:mod:`attngan_cli.training.resolve`) hands a job: the checked config and the loaded
    checkpoint to continue from (or None)."""

    @property
    def config(self) -> Any: ...

    @property
    def resume(self) -> Checkpoint | None: ...


@dataclass(frozen=True)
class JobContext:
    """What a job's ``build`` starts from."""

    device: torch.device
    state: LoopState  # where the loop starts (the beginning, or the resumed checkpoint's position); not advanced
    resume: Checkpoint | None  # the checkpoint whose state :attr:`Built.load` receives (None: a new run)


@dataclass
class Started:
    """The job's part of the loop: its task, its own callbacks (run after the progress bar and
    ``stats.jsonl``, before checkpoint pruning and TensorBoard) and what to release after the loop."""

    task: Task
    callbacks: Sequence[Callback] = ()
    close: Callable[[], None] | None = None


@dataclass
class Built:
    """What a job's ``build`` made from the shared seed. ``load`` puts a resumed checkpoint's state
    (weights, optimisers) into it; ``start`` is called once the rank seed, the resume and the config
    are in place."""

    load: Callable[[Checkpoint], None]
    start: Callable[[], Started]


@dataclass(frozen=True)
class LoopOptions:
    """How a job's loop runs and reports, beyond what its config says."""

    nan_hint: str = ""  # the remedy a non-finite loss's error suggests
    show: Callable[[dict[str, float]], dict[str, float]] = field(default=lambda v: {})  # losses beside the bar
    epoch_keys: tuple[str, ...] = ()  # an epoch's results shown beside the bar
    stats_every: int = 0  # steps per stats.jsonl record (0: one per epoch)
    stats_prefix: str = ""  # before each loss name in stats.jsonl
    max_steps: int = 0  # 0: no limit
    keep_last: int = 0  # periodic checkpoints kept (0: all)


def peer_died_message(run: RunDir, step: int) -> str:
    """The one line a surviving torchrun process ends with when another process of its run died."""
    command = "attngan train" if run.path.name.endswith("-train") else "the same command with"
    if any(run.path.glob("*.pt")):
        then = f"resume it from its last checkpoint: {command} --resume {run.path}"
    else:
        then = "no checkpoint was saved yet: start the run again"
    return f"another torchrun process of this run died (after step {step}); this one stops too; {then}"


def run_job(settings: JobSettings, run: RunDir, build: Callable[[JobContext], Built], *,
            options: LoopOptions = LoopOptions(), progress: Progress | None = None,
            abort: Callable[[], bool] | None = None,
            callbacks: Sequence[Callback | Callable[[StepInfo], None]] = ()) -> Path:
    """Run one training job into ``run``; returns its final checkpoint (``run/final.pt``). See the module
    docstring for the order of the steps; ``callbacks`` follow every other callback."""
    cfg, resume = settings.config, settings.resume
    state = LoopState.of(resume) if resume is not None else LoopState()
    loop: Loop | None = None
    started: Started | None = None
    try:
        init_from_env(cfg.device)
        device = resolve_device(cfg.device)
        seed_everything(cfg.seed)  # the same on every rank: the models start the same
        built = build(JobContext(device, dataclasses.replace(state), resume))  # a copy: the loop advances its own
        seed_everything(rank_seed(cfg.seed))  # each rank its own noise, dropout and crops (rank 0: as one process)
        if resume is not None:
            built.load(resume)
            restore_rank_rng(resume, cfg.seed)
            log.info("resuming from %s (epoch %d, step %d)", resume.path, state.epoch, state.step)
        config = to_dict(cfg)
        run.write_config(config)
        started = built.start()
        task = started.task
        env = environment(device, task.batch_size, getattr(cfg, "grad_accum", 1))
        run.write_environment(env)
        loop = Loop(task, run, state, epochs=cfg.epochs, max_steps=options.max_steps, max_minutes=cfg.max_minutes,
                    snapshot_every=cfg.snapshot_every, nan_hint=options.nan_hint, progress=progress, abort=abort,
                    environment=env,
                    callbacks=[ProgressBar(options.show, epoch_keys=options.epoch_keys),
                               StatsLog(every=options.stats_every, prefix=options.stats_prefix),
                               *started.callbacks, PruneCheckpoints(options.keep_last),
                               *tensorboard_callbacks(cfg.tensorboard, run, config), *callbacks])
        budget = (f"for {cfg.max_minutes:.1f} minutes (at most {loop.total} steps)" if cfg.max_minutes > 0
                  else f"{loop.total} steps")
        log.info("training %s (%d per epoch, batch %d, %s) on %s into %s", budget, task.steps_per_epoch,
                 task.batch_size, cfg.precision, device, run.path)
        return loop.run_loop()
    except BaseException as e:
        if loop is None or not loop.ended:  # died before the loop could say why: the end line says it
            _end_line(run, loop.state if loop is not None else state, e)
        if isinstance(e, RuntimeError) and is_peer_failure(e):  # under torchrun: another process died
            raise TrainingAborted(peer_died_message(run, state.step)) from None
        raise
    finally:
        if started is not None and started.close is not None:
            started.close()


def _end_line(run: RunDir, state: LoopState, e: BaseException) -> None:
    """The last ``stats.jsonl`` line of a run that died of ``e`` outside the loop (reading the data,
    building the models, starting the loop): ``"end": "error: <one line>"`` (or ``"interrupted"``)."""
    try:
        run.log_stats({"step": state.step, "epoch": state.epoch, "end": end_reason(e)})
    except OSError as err:  # a full disk: the error that ended the run is the one to report
        log.warning("could not write the end line of %s: %s", run.file("stats.jsonl"), err)
