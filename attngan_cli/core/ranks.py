"""Where this process stands in a torchrun job, read from the environment torchrun sets (no torch import).

:mod:`attngan_cli.core.device` and :mod:`attngan_cli.core.distributed` both build on these."""

from __future__ import annotations

import os

RANK_SEED_STRIDE = 100_003  # rank r seeds its noise and crops with seed + r * stride (rank 0: the seed itself)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    """True under torchrun (it sets ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``), also with one process:
    ``torchrun --nproc-per-node 1`` on one GPU runs the NCCL path as a many-GPU run does."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def is_main_process() -> bool:
    """Only the main process writes run directories, stats, checkpoints and shows progress."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """The seed of this rank's random draws (noise, conditioning augmentation, crops)."""
    return seed + rank() * RANK_SEED_STRIDE
