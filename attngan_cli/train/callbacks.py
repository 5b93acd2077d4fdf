"""Hooks for training loops: per-step callbacks and a graceful Ctrl-C.

A callback is any ``Callable[[StepInfo], None]`` passed to ``train_gan(..., callbacks=[...])``; it runs
after every completed step (tests record losses with it; later issues may hang metrics on it).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class StepInfo:
    step: int  # generator steps done so far (1 after the first step)
    epoch: int  # epochs completed before this step
    losses: dict[str, float]
    models: Any = None  # the loop's models (train.gan.Models)
    extra: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[StepInfo], None]


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C (SIGINT) into a flag the loop polls between steps, so it can save a
    consistent checkpoint; a second Ctrl-C interrupts at once. Outside the main thread (where signal
    handlers cannot be installed) the flag stays False and Ctrl-C behaves as usual."""
    flag = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: object) -> None:
        if flag["hit"]:
            raise KeyboardInterrupt
        flag["hit"] = True
        log.warning("Ctrl-C: finishing this step and saving a checkpoint (press Ctrl-C again to stop at once)")

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # pragma: no cover - not allowed here
        yield lambda: False
        return
    try:
        yield lambda: flag["hit"]
    finally:
        signal.signal(signal.SIGINT, previous)
