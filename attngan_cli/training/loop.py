"""The training loop shared by ``pretrain`` and ``train`` (in the style of stylegan3's ``training_loop``).

The loop owns what every training job needs: the position (:class:`LoopState`), epochs and step budgets,
the time budget, a graceful Ctrl-C (the first SIGINT finishes the step, saves ``interrupted.pt`` and
stops), the ``abort`` poll, the non-finite-loss abort that keeps the last good checkpoint, periodic
checkpoints, ``final.pt``, and events to callbacks. A job contributes only its own step through a
:class:`Task`: its batches for an epoch, one optimisation step, its end-of-epoch work and its checkpoint.

Events go to :class:`Callback` objects (progress bar, ``stats.jsonl``, sample grids, checkpoint pruning,
TensorBoard, tests' recorders); a plain function ``f(StepInfo)`` is an ``on_step`` callback. What the run
logs reaches them too: each ``stats.jsonl`` record (``on_stats``) and each image it writes (``on_image``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from attngan_cli.core.device import rng_state, set_rng_state
from attngan_cli.core.distributed import agree, all_gather_object, barrier, is_main_process
from attngan_cli.core.errors import AttnGANError, OutputError, Terminated, TrainingAborted
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint
from attngan_cli.storage.rundirs import (  # the end reasons: Callback.on_end's ``reason`` and the last stats line's "end"
    ABORTED,
    ERROR_PREFIX,
    FINAL_NAME,
    FINISHED,
    INTERRUPTED,
    INTERRUPTED_NAME,
    NON_FINITE,
    SAVE_FAILED,
    TIME_BUDGET,
    RunDir,
    checkpoint_files,
    periodic_name,
)

log = logging.getLogger(__name__)



def end_reason(e: BaseException) -> str:
    """The ``"end"`` of the last ``stats.jsonl`` line of a run that died of ``e``: ``interrupted`` for a
    Ctrl-C or SIGTERM, else ``error: <one line>`` (an error of this tool: its message; else its type too)."""
    if isinstance(e, KeyboardInterrupt):
        return INTERRUPTED
    text = str(e).strip()
    line = text.splitlines()[0] if text else ""
    if not isinstance(e, AttnGANError):
        line = f"{type(e).__name__}: {line}" if line else type(e).__name__
    return ERROR_PREFIX + (line if len(line) <= 300 else line[:297] + "...")


@dataclass
class LoopState:
    step: int = 0  # optimisation steps done
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of epoch ``epoch`` already consumed

    @classmethod
    def of(cls, ckpt: Checkpoint) -> LoopState:
        """Where the run that wrote ``ckpt`` stood (its ``extra.batch_in_epoch`` is the position in the epoch)."""
        return cls(ckpt.step, ckpt.epoch, int(ckpt.extra.get("batch_in_epoch", 0)))


@dataclass
class StepInfo:
    step: int  # steps done so far (1 after the first step)
    epoch: int  # epochs completed before this step
    losses: dict[str, float]
    models: Any = None  # the task's models (train.gan.Models, train.pretrain.Encoders)
    extra: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """One kind of training, as the loop sees it."""

    label: str  # progress bar description
    unit: str  # progress bar unit ("step", "batch")
    batch_size: int
    steps_per_epoch: int
    models: Any  # handed to callbacks in StepInfo

    def start_epoch(self, epoch: int) -> None:
        """Called when epoch ``epoch`` (0-based) starts or is re-entered on resume."""

    def batches(self, epoch: int, skip: int) -> Iterable[Any]:
        """The batches of ``epoch`` from the ``skip``-th on; a function of (seed, epoch) only."""

    def step(self, batch: Any, state: LoopState) -> dict[str, torch.Tensor | float]:
        """One optimisation step; its losses (any scalars)."""

    def end_epoch(self, state: LoopState, complete: bool) -> dict[str, Any]:
        """Work after an epoch (``complete``) or a part of one (the time budget ran out): evaluation.
        Returns values for the epoch's ``stats.jsonl`` record."""

    def checkpoint(self, state: LoopState) -> Checkpoint:
        """Everything needed to continue exactly from ``state``."""


class Callback:
    """Loop events; override the ones you need."""

    def on_start(self, loop: Loop) -> None:
        pass

    def on_step(self, loop: Loop, info: StepInfo) -> None:
        pass

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        pass

    def on_checkpoint(self, loop: Loop, path: Path, kind: str) -> None:
        """``kind``: "periodic", "interrupted", "final" or "best" (evaluation during training)."""

    def on_end(self, loop: Loop, reason: str) -> None:
        pass

    def on_stats(self, loop: Loop, record: dict[str, Any]) -> None:
        """A record just written to ``stats.jsonl`` (:meth:`Loop.log_stats`)."""

    def on_image(self, loop: Loop, tag: str, image: np.ndarray, step: int) -> None:
        """An image the run just wrote (:meth:`Loop.log_image`): (H, W, 3) uint8, e.g. a sample grid."""


class _StepFunction(Callback):
    def __init__(self, fn: Callable[[StepInfo], None]) -> None:
        self.fn = fn

    def on_step(self, loop: Loop, info: StepInfo) -> None:
        self.fn(info)


_SIGNAL_CODES = {"SIGINT": 1, "SIGTERM": 2}  # graceful_interrupt's flag as a number the ranks can agree on


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[Callable[[], str | None]]:
    """Turn the first Ctrl-C (SIGINT), or a SIGTERM (a scheduler ending the job), into a flag the loop
    polls between steps, so it can save a consistent checkpoint; a second signal interrupts at once.
    Yields a function returning the signal's name once one came (else None). SIGTERM is taken over only
    where it still has its default action. Outside the main thread (where signal handlers cannot be
    installed) nothing is taken over and the signals behave as usual."""
    hit: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    signals = [signal.SIGINT] + ([signal.SIGTERM] if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else [])
    previous = {s: signal.getsignal(s) for s in signals}

    def handler(signum: int, frame: object) -> None:
        if hit:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        hit.append(signal.Signals(signum).name)
        log.warning("%s: finishing this step and saving a checkpoint (send it again to stop at once)",
                    "Ctrl-C" if signum == signal.SIGINT else "SIGTERM")

    for s in signals:
        signal.signal(s, handler)
    try:
        yield lambda: hit[0] if hit else None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def preserve_rng() -> Iterator[None]:
    """Leave the python, numpy and torch RNG states as they were (side work must not shift training)."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled full batches of ``epoch`` (drop_last, as the official loader); a function of
    (seed, epoch) only, so a resumed run sees the same order."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def make_loader(dataset: torch.utils.data.Dataset, batches: list[list[int]], workers: int, seed: int,
                device: torch.device) -> torch.utils.data.DataLoader:
    """A DataLoader over fixed ``batches`` whose worker seeds come from ``seed``: making it leaves the
    global RNG untouched (a default DataLoader draws its base seed from it), which an exact resume needs."""
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, generator=g,
                                       pin_memory=device.type == "cuda", persistent_workers=False)


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


class Loop:
    """One run of a :class:`Task` into a run directory."""

    def __init__(self, task: Task, run: RunDir, state: LoopState, *, epochs: int, max_steps: int = 0,
                 max_minutes: float = 0.0, snapshot_every: int = 0, nan_hint: str = "",
                 progress: Progress | None = None, callbacks: Sequence[Callback | Callable[[StepInfo], None]] = (),
                 abort: Callable[[], bool] | None = None, environment: dict[str, Any] | None = None) -> None:
        self.task, self.run, self.state = task, run, state
        self.environment = environment  # how the run runs: every checkpoint's ``extra.environment``
        self.snapshot_every, self.max_minutes = snapshot_every, max_minutes
        self.total = epochs * task.steps_per_epoch
        if max_steps > 0:
            self.total = min(self.total, max_steps)
        self.nan_hint = nan_hint
        self.progress = progress or NullProgress()
        self.callbacks = [cb if isinstance(cb, Callback) else _StepFunction(cb) for cb in callbacks]
        self.abort = abort
        self.save_failed = False  # a checkpoint could not be written: the run ends with "save failed"
        self.ended = False  # on_end was emitted: the last stats.jsonl line says how the run ended

    # ---------------------------------------------------------------------------------------- events
    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    def log_stats(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``stats.jsonl`` and tell the callbacks (``on_stats``)."""
        self.run.log_stats(record)
        self._emit("on_stats", record)

    def log_image(self, tag: str, image: np.ndarray, step: int | None = None) -> None:
        """Tell the callbacks (``on_image``) about an image the run wrote: (H, W, 3) uint8."""
        self._emit("on_image", tag, image, self.state.step if step is None else step)

    def save(self, name: str, kind: str) -> Path:
        """Write the task's checkpoint as ``run/name`` (main process only) and tell the callbacks. Under
        torchrun every rank takes part in making it and waits for the file: ``extra.rank_rng`` holds every
        rank's RNG state (``rng``, the task's, is rank 0's), for :func:`attngan_cli.core.device.restore_rank_rng`."""
        path = self.run.file(name)
        ckpt = self.task.checkpoint(self.state)
        ckpt.extra["rank_rng"] = all_gather_object(rng_state())
        if self.environment is not None:
            ckpt.extra["environment"] = self.environment
        if is_main_process():
            try:
                save_checkpoint(ckpt, path)
            except OutputError as e:
                self.save_failed = True
                raise OutputError(f"{e}; {self._last_good()}") from None
        barrier()
        self._emit("on_checkpoint", path, kind)
        return path

    def _last_good(self, hint: str = "") -> str:
        files = checkpoint_files(self.run.path)
        last = files[-1] if files else None
        return (f"the last good checkpoint {last} is intact (resume with --resume {last}{hint})" if last
                else "no checkpoint had been written yet")

    def _non_finite(self, bad: dict[str, float]) -> TrainingAborted:
        """The error for non-finite losses ``bad``, naming the last good checkpoint."""
        where = self._last_good(f", perhaps with {self.nan_hint}" if self.nan_hint else "")
        names = ", ".join(f"{k}={v}" for k, v in bad.items())
        st = self.state
        return TrainingAborted(f"non-finite loss at step {st.step} (epoch {st.epoch + 1}): {names}; training "
                               f"stopped; {where}")

    # ---------------------------------------------------------------------------------------- run
    def run_loop(self) -> Path:
        st, task = self.state, self.task
        deadline = time.monotonic() + 60 * self.max_minutes if self.max_minutes > 0 else math.inf
        reason: str | None = None
        between_steps = True  # the models and ``st`` agree: a checkpoint now is exact
        self._emit("on_start")
        try:
            with graceful_interrupt() as interrupted:
                while st.step < self.total and reason is None:
                    task.start_epoch(st.epoch)
                    for batch in task.batches(st.epoch, st.batch_in_epoch):
                        between_steps = False
                        losses = task.step(batch, st)
                        st.step += 1
                        st.batch_in_epoch += 1
                        between_steps = True
                        values = {k: float(v) for k, v in losses.items()}
                        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                        if bad:
                            reason = NON_FINITE
                            raise self._non_finite(bad)
                        self._emit("on_step", StepInfo(st.step, st.epoch, values, task.models))
                        # one decision for all ranks under torchrun (a rank alone would leave the others waiting)
                        signal_code, abort, late = agree(_SIGNAL_CODES.get(interrupted(), 0),
                                                         int(self.abort is not None and bool(self.abort())),
                                                         int(time.monotonic() > deadline))
                        if signal_code:
                            raise Terminated if signal_code == _SIGNAL_CODES["SIGTERM"] else KeyboardInterrupt
                        if abort:
                            reason = ABORTED
                            path = self.save(INTERRUPTED_NAME, "interrupted")
                            raise TrainingAborted(f"training stopped at step {st.step}; saved {path} (continue "
                                                  f"with --resume {self.run.path})")
                        if st.step >= self.total:
                            reason = FINISHED
                            break
                        if late:
                            reason = TIME_BUDGET
                            break
                    complete = st.batch_in_epoch >= task.steps_per_epoch
                    if not complete and reason != TIME_BUDGET:
                        if reason is None:  # the epoch had fewer batches than expected: nothing to train on
                            reason = FINISHED
                        break
                    record = task.end_epoch(st, complete)
                    if complete:
                        st.epoch += 1
                        st.batch_in_epoch = 0
                    self._emit("on_epoch_end", record)
                    if complete and reason is None and self.snapshot_every > 0 and st.epoch % self.snapshot_every == 0:
                        self.save(periodic_name(st.epoch), "periodic")
                if reason is None:
                    reason = FINISHED
            if reason == TIME_BUDGET:
                log.info("stopped after %.1f minutes (time budget) at step %d of %d", self.max_minutes, st.step,
                         self.total)
            final = self.save(FINAL_NAME, "final")
        except KeyboardInterrupt:
            reason = INTERRUPTED
            if between_steps:
                path = self.save(INTERRUPTED_NAME, "interrupted")
                log.warning("interrupted at step %d; saved %s (continue with --resume %s)", st.step, path, self.run.path)
            else:
                log.warning("interrupted during step %d; the last checkpoint in %s is kept", st.step + 1, self.run.path)
            raise
        except Exception as e:
            if not isinstance(e, TrainingAborted):  # a non-finite loss or an abort keeps its own reason
                reason = end_reason(e)
            raise
        finally:
            self.ended = True
            self._emit("on_end", SAVE_FAILED if self.save_failed else reason or ABORTED)
        log.info("saved %s", final)
        return final


# --------------------------------------------------------------------------------------------------
# Callbacks every loop uses
# --------------------------------------------------------------------------------------------------
class ProgressBar(Callback):
    """The loop's progress bar; ``show`` maps a step's losses to the fields shown beside it, and the
    ``epoch_keys`` of each epoch's record (an evaluation's results) are shown once measured."""

    def __init__(self, show: Callable[[dict[str, float]], dict[str, float]] = lambda v: {},
                 epoch_keys: Sequence[str] = ()) -> None:
        self.show, self.epoch_keys = show, tuple(epoch_keys)
        self._stack = contextlib.ExitStack()
        self._bar: Any = None

    def on_start(self, loop: Loop) -> None:
        self._bar = self._stack.enter_context(loop.progress.task(loop.task.label, total=loop.total, unit=loop.task.unit))
        self._bar.update(completed=loop.state.step)

    def on_step(self, loop: Loop, info: StepInfo) -> None:
        self._bar.advance(1, epoch=info.epoch + 1, **self.show(info.losses))

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        shown = {k: record[k] for k in self.epoch_keys if record.get(k) is not None}
        if shown:
            self._bar.update(**shown)

    def on_end(self, loop: Loop, reason: str) -> None:
        self._stack.close()


class StatsLog(Callback):
    """``stats.jsonl``: the mean of each loss over ``every`` steps (0: over each epoch, merged with the
    epoch's record), and a last line with ``"end": <reason>`` when the loop ends with steps not yet
    logged, before anything was logged, or for a reason other than a normal end (interrupted, aborted,
    non-finite loss), so every run leaves its stats and a stopped run says why."""

    def __init__(self, every: int = 0, prefix: str = "") -> None:
        self.every, self.prefix = every, prefix
        self.sums: dict[str, float] = {}
        self.n = 0
        self.written = 0
        self.t0 = time.perf_counter()

    def _flush(self, loop: Loop, epoch: int, extra: dict[str, Any]) -> None:
        dt = time.perf_counter() - self.t0
        record: dict[str, Any] = {"step": loop.state.step, "epoch": epoch}
        record.update({f"{self.prefix}{k}": v / self.n for k, v in self.sums.items()} if self.n else {})
        if self.n:
            record[f"{self.prefix}images_per_s"] = self.n * loop.task.batch_size / max(dt, 1e-9)
        record.update(extra)
        loop.log_stats(record)
        self.written += 1
        self.sums, self.n, self.t0 = {}, 0, time.perf_counter()

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` spent outside the steps (an evaluation during training) out of ``images_per_s``."""
        self.t0 += seconds

    def on_step(self, loop: Loop, info: StepInfo) -> None:
        for k, v in info.losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1
        if self.every > 0 and info.step % self.every == 0:
            self._flush(loop, info.epoch + 1, {})

    def on_epoch_end(self, loop: Loop, record: dict[str, Any]) -> None:
        if self.every == 0:  # the epoch just ended is 1-based ``state.epoch`` (or the partial one after it)
            st = loop.state
            self._flush(loop, st.epoch + (1 if st.batch_in_epoch else 0), record)

    def on_end(self, loop: Loop, reason: str) -> None:
        if self.n or not self.written or reason not in (FINISHED, TIME_BUDGET):
            st = loop.state  # the epoch under way, or the one just completed
            try:
                self._flush(loop, st.epoch + (1 if st.batch_in_epoch else 0), {"end": reason})
            except OSError as e:  # a full disk: the error that ended the run is the one to report
                if reason in (FINISHED, TIME_BUDGET):
                    raise
                log.warning("could not write the end line of %s: %s", loop.run.file("stats.jsonl"), e)


class PruneCheckpoints(Callback):
    """Keep the newest ``keep_last`` periodic checkpoints (``final.pt`` and ``interrupted.pt`` stay)."""

    def __init__(self, keep_last: int) -> None:
        self.keep_last = keep_last

    def on_checkpoint(self, loop: Loop, path: Path, kind: str) -> None:
        if kind == "periodic":
            loop.run.prune_checkpoints(self.keep_last)
