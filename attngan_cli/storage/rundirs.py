"""Run directories ``runs/NNNNN-<dataset>-<command>/`` (stylegan3 style): never overwritten.

Each holds ``config.json`` (the resolved config), ``stats.jsonl`` (one JSON object per line) and the
job's checkpoints and figures. Only the main process writes (see :mod:`attngan_cli.core.distributed`).

This module is also the one home of the checkpoint file names inside a run directory and of the rule
that turns "a checkpoint file or a run directory" into one file (:func:`resolve_checkpoint`):

- ``final.pt``: written when a run ends normally;
- ``interrupted.pt``: written on Ctrl-C or an abort, mid-epoch;
- ``checkpoint-<epoch>.pt``: periodic snapshots (the newest ``keep_last`` are kept).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from attngan_cli.core.distributed import broadcast_object, is_main_process
from attngan_cli.core.errors import CheckpointError
from attngan_cli.core.fileio import append_jsonl, atomic_write_json

_RUN_RE = re.compile(r"^(\d{5})-")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-")
    return s or "run"


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | os.PathLike[str], dataset: str, command: str) -> RunDir:
        """Make the next free ``root/NNNNN-<dataset>-<command>`` (race-free: mkdir without exist_ok). Under
        torchrun rank 0 makes it and every rank gets its path (call ``distributed.init_from_env`` first)."""
        path = None
        if is_main_process():
            root = Path(root)
            root.mkdir(parents=True, exist_ok=True)
            while path is None:
                nums = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
                candidate = root / f"{max(nums, default=-1) + 1:05d}-{_slug(dataset)}-{_slug(command)}"
                try:
                    candidate.mkdir()
                    path = candidate
                except FileExistsError:
                    continue
        return cls(broadcast_object(path))

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict[str, Any]) -> Path:
        p = self.file("config.json")
        if is_main_process():
            atomic_write_json(p, config)
        return p

    def write_environment(self, environment: dict[str, Any]) -> Path:
        """``environment.json``: how the run ran (:func:`attngan_cli.core.distributed.environment`)."""
        p = self.file(ENVIRONMENT_NAME)
        if is_main_process():
            atomic_write_json(p, environment)
        return p

    def log_stats(self, record: dict[str, Any]) -> None:
        if is_main_process():
            append_jsonl(self.file("stats.jsonl"), record)

    def prune_checkpoints(self, keep_last: int) -> None:
        """Delete all but the newest ``keep_last`` periodic checkpoints (``keep_last <= 0``: keep all)."""
        if not is_main_process() or keep_last <= 0:
            return
        for _, f in periodic_checkpoints(self.path)[:-keep_last]:
            f.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


# Why a training loop ended: the "end" of a run's last stats.jsonl line (attngan_cli.training.loop writes it,
# attngan_cli.apps.runs_summary reads it; here so that listing runs does not import torch).
FINISHED, TIME_BUDGET, INTERRUPTED, ABORTED, NON_FINITE = "finished", "time budget", "interrupted", "aborted", "non-finite loss"
SAVE_FAILED = "save failed"  # a checkpoint could not be written (a full disk); the last good one is kept
ERROR_PREFIX = "error: "  # "error: <one line>": the run died of an error after its directory existed

FINAL_NAME = "final.pt"
ENVIRONMENT_NAME = "environment.json"  # how the run ran: processes, batch, versions, devices
INTERRUPTED_NAME = "interrupted.pt"
_PERIODIC_RE = re.compile(r"^checkpoint-(\d+)\.pt$")


def periodic_name(epoch: int) -> str:
    """The file name of the periodic checkpoint written after ``epoch`` epochs."""
    return f"checkpoint-{epoch}.pt"


def checkpoint_files(run: str | os.PathLike[str]) -> list[Path]:
    """The checkpoints a run directory holds (final, interrupted and periodic), oldest first (by
    modification time, then name)."""
    root = Path(run)
    files = [f for f in root.glob("*.pt")
             if f.is_file() and (f.name in (FINAL_NAME, INTERRUPTED_NAME) or _PERIODIC_RE.match(f.name))]
    return sorted(files, key=lambda f: (f.stat().st_mtime, f.name))


def periodic_checkpoints(run: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(epoch, path) of the periodic checkpoints of a run directory, by epoch."""
    return sorted((int(m.group(1)), f) for f in Path(run).glob("checkpoint-*.pt") if (m := _PERIODIC_RE.match(f.name)))


def resolve_checkpoint(path: str | os.PathLike[str], *, for_resume: bool = False, what: str = "checkpoint") -> Path:
    """A checkpoint file as given; a run directory -> one of its checkpoints.

    To use a model (``for_resume=False``): ``final.pt`` when the run finished, else its newest
    checkpoint. To continue training (``for_resume=True``): the newest checkpoint, whichever it is.
    ``what`` names the checkpoint in messages (``"DAMSM checkpoint"``, ...).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{what} or run directory {p} does not exist")
    if p.is_file():
        return p
    files = checkpoint_files(p)
    if not files:
        raise CheckpointError(f"run directory {p} holds no {what} ({FINAL_NAME}, {INTERRUPTED_NAME} or "
                              "checkpoint-<epoch>.pt)")
    if not for_resume and (p / FINAL_NAME).is_file():
        return p / FINAL_NAME
    return files[-1]
