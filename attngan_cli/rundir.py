"""Run directories ``runs/NNNNN-<dataset>-<command>/`` (stylegan3 style): never overwritten.

Each holds ``config.json`` (the resolved config), ``stats.jsonl`` (one JSON object per line) and the
job's checkpoints and figures. Only the main process writes (see :mod:`attngan_cli.distributed`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .distributed import is_main_process
from .io import append_jsonl, atomic_write_json

_RUN_RE = re.compile(r"^(\d{5})-")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-")
    return s or "run"


class RunDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | os.PathLike[str], dataset: str, command: str) -> RunDir:
        """Make the next free ``root/NNNNN-<dataset>-<command>`` (race-free: mkdir without exist_ok)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            nums = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
            nxt = max(nums, default=-1) + 1
            path = root / f"{nxt:05d}-{_slug(dataset)}-{_slug(command)}"
            try:
                if is_main_process():
                    path.mkdir()
                return cls(path)
            except FileExistsError:
                continue

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict[str, Any]) -> Path:
        p = self.file("config.json")
        if is_main_process():
            atomic_write_json(p, config)
        return p

    def log_stats(self, record: dict[str, Any]) -> None:
        if is_main_process():
            append_jsonl(self.file("stats.jsonl"), record)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def latest_checkpoint(run: str | os.PathLike[str], pattern: str = "*.pt") -> Path | None:
    """The newest checkpoint file in a run directory (by modification time), or None."""
    files = sorted(Path(run).glob(pattern), key=lambda p: (p.stat().st_mtime, p.name))
    return files[-1] if files else None
