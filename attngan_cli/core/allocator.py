"""The host memory allocator, set up for tensors (Linux with glibc; elsewhere nothing changes).

glibc serves every allocation above its mmap threshold (32 MB at most) with a fresh ``mmap`` and gives it
back with ``munmap`` when it is freed. A training step allocates and frees its activations, tens to
hundreds of MB each, on every step, so the kernel maps and zero-fills the same memory again and again:
on a 2-core CPU the bird preset's step (batch 4, fp32) spent 14 s of its 90 s of CPU time in the kernel.
With ``mmap`` off for the heap (``M_MMAP_MAX`` 0) and no trimming (``M_TRIM_THRESHOLD`` at its maximum),
freed blocks stay in the process and are reused: 10.3 -> 8.0 s/step, peak RSS 4.14 -> 4.49 GB
(``benchmarks/bench_train.py``; the numbers of the README's Benchmarks section).

Every ``attngan`` command calls :func:`tune_host_allocator` first; ``ATTNGAN_MALLOC=default`` leaves
glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ENV = "ATTNGAN_MALLOC"  # "default": leave glibc's settings alone
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
_done = False


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  # glibc only (musl has no mallopt parameters to set)
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


def tune_host_allocator() -> bool:
    """Keeps freed memory for reuse instead of returning it to the kernel (see the module text); once per
    process. Returns whether the setting is in force."""
    global _done
    if _done:
        return True
    if os.environ.get(ENV, "").strip().lower() == "default":
        return False
    libc = _libc()
    if libc is None:
        return False
    _done = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _done
