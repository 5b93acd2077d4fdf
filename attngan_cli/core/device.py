"""Device selection, seeding and mixed precision as settings (never hard-coded in models or loops)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attngan_cli.core.errors import AttnGANError, DeviceError
from attngan_cli.core.ranks import is_distributed, local_rank, rank, rank_seed

log = logging.getLogger(__name__)


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; clear error otherwise.
    Under torchrun, ``auto`` and ``cuda`` are this process's GPU, ``cuda:LOCAL_RANK``."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and is_distributed() and torch.cuda.is_available():
        spec = f"cuda:{local_rank()}"
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
        if m.group(1) is not None:
            idx = int(m.group(1))
            n = torch.cuda.device_count()
            if idx >= n:
                raise DeviceError(f"--device {spec}: this machine has {n} CUDA device(s), numbered 0..{n - 1}")
        return torch.device(spec)
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("--device mps: Apple MPS is not available on this machine (use --device cpu or auto)")
        return torch.device("mps")
    raise DeviceError(f"--device {spec!r} is not understood; use auto, cpu, cuda, cuda:N or mps")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX): elsewhere PyTorch emulates bf16
    and a bf16 matrix product is tens of times slower than fp32 (measured: 80x on an AVX2-only CPU)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: ask oneDNN
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cuda_has_bf16(device: torch.device) -> bool:
    """Whether this GPU computes bf16 natively (compute capability 8.0 or later: Ampere on). PyTorch's own
    ``is_bf16_supported()`` also counts emulation, which on a V100 or T4 is far slower than fp32."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a PyTorch without the argument
        major, _minor = torch.cuda.get_device_capability(device)
        return major >= 8


AUTO_PRECISION_ENV = "ATTNGAN_AUTO_PRECISION"  # fp32 | bf16 | fp16: what ``auto`` means on this machine


def resolve_precision(spec: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the hardware computes it (a CPU with AVX-512 BF16 / AMX, a GPU with native
    bf16: compute capability 8.0 or later), else fp32; the environment variable ATTNGAN_AUTO_PRECISION, when
    set, decides instead (e.g. fp32 to keep default runs exact and alike across machines). Any other value
    is returned as given."""
    if spec != "auto":
        return spec
    forced = os.environ.get(AUTO_PRECISION_ENV, "").strip().lower()
    if forced:
        if forced not in ("fp32", "bf16", "fp16"):
            raise AttnGANError(f"{AUTO_PRECISION_ENV}={forced!r}: use fp32, bf16 or fp16 (or unset it)")
        return forced
    if device.type == "cuda":
        return "bf16" if cuda_has_bf16(device) else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def settle_precision(cfg: Any) -> Any:
    """A job config (a dataclass with ``device`` and ``precision``) with ``precision`` ``auto`` replaced by
    :func:`resolve_precision` for its device, after checking that the precision runs there (fp16 needs
    CUDA): the resolved value is what the run directory and checkpoints record."""
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    autocast(device, precision)  # a precision this device cannot run fails here, before any run directory
    if precision == cfg.precision:
        return cfg
    log.info("precision auto: %s on %s", precision, device)
    return dataclasses.replace(cfg, precision=precision)


def autocast(device: torch.device, precision: str):
    """A context manager for ``precision`` in fp32|bf16|fp16|auto on ``device`` (fp32: no autocast)."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise AttnGANError("--precision fp16 needs a CUDA device; on a CPU use bf16")
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    raise AttnGANError(f"precision must be fp32, bf16 or fp16, got {precision!r}")


def rng_state() -> dict:
    """RNG states of python, numpy and torch as plain containers (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    if isinstance(x, tuple):
        return [_to_lists(v) for v in x]
    return x


def _to_tuples(x):
    if isinstance(x, list):
        return tuple(_to_tuples(v) for v in x)
    return x


def restore_rank_rng(ckpt: Any, seed: int) -> None:
    """This rank's RNG state from a checkpoint: its own when the checkpoint holds one for this rank
    (``extra.rank_rng``: every rank's state when it was saved; ``rng`` is rank 0's, which a single process
    resumes with), else (more ranks than when it was saved) a state seeded from the seed, the rank and the
    step, so a resumed run is still reproducible."""
    states = ckpt.extra.get("rank_rng") or ([ckpt.rng] if ckpt.rng is not None else [])
    if rank() < len(states):
        set_rng_state(states[rank()])
    else:
        seed_everything(rank_seed(seed) + 7_919 * ckpt.step)
