"""Rank awareness. Single-process today; DDP/torchrun later only has to fill these in."""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only the main process writes run directories, stats, checkpoints and shows progress."""
    return rank() == 0
