"""allocator.py: every attngan command keeps freed tensor memory for reuse (glibc: no mmap per large
block), unless ATTNGAN_MALLOC=default. Checked in fresh processes through glibc's own statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from attngan_cli.core.allocator import _libc

PROBE = r"""
import ctypes, json, sys
import torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "cli":  # the way every command starts: the Typer callback
    from typer.testing import CliRunner
    from attngan_cli.cli import app
    assert CliRunner().invoke(app, ["runs", "/nonexistent-runs-dir", "--json"]).exit_code in (0, 1)
before = libc.mallinfo2().hblkhd
x = torch.empty(64 * 2**20, dtype=torch.uint8)  # 64 MB: above glibc's largest mmap threshold
x.fill_(1)
print(json.dumps({"mmapped": libc.mallinfo2().hblkhd - before}))
"""


def _mmapped_bytes(how: str, **env: str) -> int:
    """The bytes glibc mapped for a 64 MB tensor, in a fresh process (``how``: plain, or after a command)."""
    base = {k: v for k, v in os.environ.items() if k != "ATTNGAN_MALLOC"}
    out = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, timeout=120,
                         env={**base, **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["mmapped"]


@pytest.mark.skipif(_libc() is None or not hasattr(_libc(), "mallinfo2"), reason="needs Linux with glibc >= 2.33")
def test_commands_keep_large_blocks_in_the_heap() -> None:
    assert _mmapped_bytes("plain") >= 64 * 2**20  # glibc's default: the block is a mapping of its own
    assert _mmapped_bytes("cli") == 0  # after a command's start-up: from the heap, and reused once freed
    assert _mmapped_bytes("cli", ATTNGAN_MALLOC="default") >= 64 * 2**20  # the opt-out
