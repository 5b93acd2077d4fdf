"""Truncated sampling noise (the "truncation trick"), shared by ``sample``, ``attend`` and ``eval``.

Two rules, chosen by the architecture (:attr:`attngan_cli.archs.base.Architecture.noise_truncation` and
``truncation_bound``):

* bound 0: z from N(0, 1) truncated to [-t, t];
* bound b > 0: z = t * (N(0, 1) truncated to [-b, b]): DF-GAN samples 0.88 * N(0, 1) truncated to [-2, 2].

Values outside the interval are redrawn from the same generator, so the noise of an image stays a
function of its seed.
"""

from __future__ import annotations

import math

import torch

from attngan_cli.core.errors import InputError


def check_truncation(t: float, flag: str = "--truncation") -> float:
    """``t`` if it is a finite number >= 0, else an :class:`InputError` naming ``flag``."""
    if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
        raise InputError(f"{flag} must be a number >= 0 (0: no truncation), got {t}")
    return float(t)


def truncate_(z: torch.Tensor, generator: torch.Generator, truncation: float, bound: float = 0.0) -> torch.Tensor:
    """``z`` (drawn from N(0, 1) with ``generator``) truncated by the rule of ``truncation`` and ``bound``:
    its entries outside [-limit, limit] are redrawn in place (limit: ``bound`` if > 0, else ``truncation``);
    with ``bound`` > 0 the result is then scaled by ``truncation``. ``truncation`` 0 returns ``z``."""
    if truncation <= 0:
        return z
    limit = bound if bound > 0 else truncation
    while bool((outside := z.abs() > limit).any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator, dtype=z.dtype)
    return z * truncation if bound > 0 else z
