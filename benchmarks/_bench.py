"""What the benchmarks share: device and precision setup, synchronised timing, the FLOP count of a
step, the machine's matmul peak in a precision, peak memory, settings run in subprocesses, and output
(a readable table, plus one JSON object per setting with --json).

Precisions: ``fp32`` (strict: TF32 off on CUDA), ``tf32`` (fp32 with TF32 matmuls and convolutions,
CUDA only), ``bf16`` and ``fp16`` (autocast; fp16 on CUDA only), and ``auto`` (what the CLI's
``--precision auto`` picks on this device: ``attngan_cli.core.device.resolve_precision``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before torch loads: on a busy CPU, spinning OpenMP threads slow torch down many times.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from attngan_cli.core.device import resolve_device, resolve_precision  # noqa: E402

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
CUDA_ONLY = ("tf32", "fp16")


# ------------------------------------------------------------------------------------------ arguments
def add_common_args(ap: argparse.ArgumentParser, precisions: str = "fp32,auto") -> None:
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--precisions", default=precisions,
                    help="comma-separated: fp32, tf32, bf16, fp16, auto (the CLI's default on this device)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the networks (eager if it fails)")
    ap.add_argument("--peak-n", type=int, default=0,
                    help="size n of the n x n matmul that measures the peak GFLOP/s (0: by device and precision)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per setting (its subprocess)")
    ap.add_argument("--in-process", action="store_true",
                    help="run every setting in this process, one after the other (saves a start of Python, torch "
                         "and CUDA per setting; CUDA peak memory stays per setting, a CPU's peak RSS does not)")
    ap.add_argument("--json", action="store_true", help="also print one JSON object per setting")
    ap.add_argument("--official", metavar="PATH",
                    help="a local checkout of github.com/taoxugit/AttnGAN: also time the official code (bird "
                         "preset) in the same precisions, and print each result's ratio to it (official.py)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one setting (JSON) and print its result


def resolve_precisions(spec: str, device: torch.device) -> list[str]:
    """The precisions asked for, ``auto`` resolved for ``device``, without repeats; CUDA-only ones are
    dropped with a note on a CPU."""
    out: list[str] = []
    for p in (s.strip() for s in spec.split(",") if s.strip()):
        p = resolve_precision(p, device) if p == "auto" else p
        if p not in PRECISIONS:
            raise SystemExit(f"unknown precision {p!r}: choose from {', '.join(PRECISIONS)}, auto")
        if p in CUDA_ONLY and device.type != "cuda":
            print(f"note: {p} needs CUDA; skipped on {device}", file=sys.stderr)
            continue
        if p not in out:
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------ device
def setup_device(spec: str, threads: int = 0) -> torch.device:
    """The device, with cuDNN autotuning on CUDA and ``threads`` torch threads (0: default)."""
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(spec)
    if device.type == "cuda":
        if device.index is not None:  # set_device refuses a plain "cuda"
            torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    return device


def set_precision_flags(device: torch.device, precision: str) -> str:
    """Sets the TF32 switches for ``precision`` (on for tf32, off otherwise) and returns the precision
    the project's configs and ``autocast`` take (tf32 runs as fp32)."""
    if device.type == "cuda":
        on = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on
    return "fp32" if precision == "tf32" else precision


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory() -> None:
    """Frees what the last setting left (its models, cached CUDA blocks and compiled graphs)."""
    import gc

    gc.collect()
    if "torch._dynamo" in sys.modules:  # loaded by torch.compile
        torch._dynamo.reset()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device) -> tuple[float, str]:
    """(GB, what was measured): CUDA ``max_memory_allocated`` since the last reset, or on a CPU the
    process's peak resident set size (Linux: ru_maxrss in KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, "cpu_peak_rss"


# ------------------------------------------------------------------------------------------ measuring
def time_total(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Seconds for ``repeats`` calls of ``fn`` (synchronised before and after; warm up beforehand)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return time.perf_counter() - t0


def count_gflop(fn: Callable[[], Any]) -> float:
    """GFLOP of one call of ``fn`` (forward and backward), as torch.utils.flop_counter counts them:
    matmuls, convolutions and attention; element-wise work is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def matmul_peak_gflops(device: torch.device, precision: str, n: int = 0, min_seconds: float = 0.3) -> tuple[float, int]:
    """(best GFLOP/s of an n x n @ n x n product in ``precision``, n): the machine's measured peak, in
    this process, with its threads and TF32 switches. ``n`` 0: 8192 on CUDA, 1536 on a CPU (512 for bf16
    on a CPU without bf16 hardware, where it is emulated and ~80x slower)."""
    from attngan_cli.core.device import cpu_has_bf16

    if not n:
        n = 8192 if device.type == "cuda" else (1536 if precision != "bf16" or cpu_has_bf16() else 512)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    torch.mm(a, b)  # warm-up
    best = math.inf
    spent, reps = 0.0, 0
    while reps < 3 or (spent < min_seconds and reps < 200):
        dt = time_total(lambda: torch.mm(a, b), device, 1)
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return 2 * n**3 / best / 1e9, n


def efficiency(gflop: float, seconds: float, peak_gflops: float) -> dict[str, float]:
    achieved = gflop / seconds
    return {"achieved_gflops": achieved, "pct_of_peak": 100 * achieved / peak_gflops}


def environment(device: torch.device) -> dict[str, Any]:
    return {"device": str(device), "device_name": device_name(device), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def compile_failed(e: BaseException) -> str:
    """The note printed (and recorded) when torch.compile fails and the setting runs eagerly."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    note = f"torch.compile failed ({type(e).__name__}: {first}); measured eagerly instead"
    print(f"note: {note}", file=sys.stderr, flush=True)
    return note


# ------------------------------------------------------------------------------------------ settings
def run_settings(script: str, settings: list[dict[str, Any]], timeout: float,
                 one: Callable[[dict[str, Any]], dict[str, Any]], in_process: bool = False) -> Iterator[dict[str, Any]]:
    """Runs each setting as ``python script --one JSON`` in its own process (so that peak memory, caches
    and compiled code are its own) and yields the JSON object it prints last; a failed setting is
    reported on stderr and skipped. A single setting, or every setting with ``in_process``, runs in this
    process instead (``one(setting)``), which saves a start of Python, torch and CUDA per setting."""
    if len(settings) == 1 and not in_process:
        yield one(settings[0])
        return
    if in_process:
        for s in settings:
            try:
                yield one(s)
            except Exception:  # noqa: BLE001  # report it and go on with the next setting
                print(f"setting {s}: failed\n{traceback.format_exc()[-3000:]}", file=sys.stderr, flush=True)
            finally:
                release_memory()
        return
    for s in settings:
        cmd = [sys.executable, script, "--one", json.dumps(s)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"setting {s}: no result within {timeout:.0f} s (--timeout)", file=sys.stderr, flush=True)
            continue
        for line in out.stderr.splitlines():
            if line.startswith("note:"):
                print(line, file=sys.stderr, flush=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode != 0 or not lines:
            print(f"setting {s}: failed (exit {out.returncode})\n{out.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        yield json.loads(lines[-1])


class OfficialRatios:
    """Each result's speed as a multiple of the official code's in the same run: ``x_official`` against the
    official code at the same preset, batch and precision, ``x_official_fp32`` against its fp32 (the
    issue's yardstick for the default path). ``key`` is the measure compared (higher is faster, or lower
    for a time: ``lower_is_faster``) and ``out`` the name of the ratio. Official results must come before
    the results they rate."""

    def __init__(self, key: str = "img_per_s", out: str = "x_official", lower_is_faster: bool = False) -> None:
        self.key, self.out, self.lower_is_faster = key, out, lower_is_faster
        self.seen: dict[tuple, float] = {}

    def _ratio(self, ours: float, official: float | None) -> float | None:
        if not official:
            return None
        return official / ours if self.lower_is_faster else ours / official

    def add(self, r: dict[str, Any]) -> dict[str, Any]:
        where = (r.get("preset"), r.get("batch"))
        if r.get("impl") == "official":
            self.seen[(*where, r["precision"])] = r[self.key]
            return r
        r[self.out] = self._ratio(r[self.key], self.seen.get((*where, r["precision"])))
        r[f"{self.out}_fp32"] = self._ratio(r[self.key], self.seen.get((*where, "fp32")))
        return r


def with_official(settings: list[dict[str, Any]], path: str | None, in_process: bool = False) -> list[dict[str, Any]]:
    """``settings`` with, when ``path`` is given, an official-code twin before each bird setting (once per
    batch and precision; the official code has no compile or channels-last switch)."""
    if not path:
        return settings
    if in_process:
        raise SystemExit("--official runs each setting in its own process (the official code keeps glibc's default "
                         "allocator, which attngan's own settings change for the process): leave out --in-process")
    out, twins = [], set()
    for s in settings:
        key = (s["batch"], s["precision"])
        if s["preset"] == "bird" and key not in twins:
            twins.add(key)
            out.append({**s, "impl": "official", "official": str(Path(path).resolve()), "compile": False,
                        "channels_last": False})
        out.append(s)
    return out


class Table:
    """Prints a header (with units) once, then one line per result; with ``as_json`` also the result
    as one JSON object on its own line."""

    def __init__(self, columns: list[tuple[str, str, str]], as_json: bool) -> None:
        self.columns = columns  # (header, key, format spec incl. width)
        self.as_json = as_json
        self.started = False

    def _width(self, fmt: str) -> int:
        digits = "".join(c for c in fmt.split(".")[0] if c.isdigit())
        return int(digits) if digits else 8

    def row(self, r: dict[str, Any]) -> None:
        if not self.started:
            print(" ".join(f"{h:>{self._width(f)}}" for h, _, f in self.columns), flush=True)
            self.started = True
        cells = []
        for _, key, fmt in self.columns:
            v = r.get(key)
            if isinstance(v, bool):
                v = "yes" if v else "no"
            cells.append(f"{'-':>{self._width(fmt)}}" if v is None else format(v, fmt))
        print(" ".join(cells), flush=True)
        if self.as_json:
            print(json.dumps(r), flush=True)
