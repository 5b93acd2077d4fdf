"""The manifest of a score: everything needed to trace a number to what made it and to repeat it.

Every result of ``attngan eval`` (its ``--json``, its ``metrics.jsonl`` line) and every evaluation during
training that keeps a ``best.pt`` carries one. :func:`build_manifest` is a pure function of what the
caller measured (the file hashes come from :func:`file_sha256`):

- ``protocol`` (default ``attngan``) and ``settings``: every setting that moves a number (metrics and
  their options, sample count, captions per image, truncation, seed, image size, split...);
- ``files``: each file used, by role (``checkpoint``, ``data``, ``inception``, ``damsm``, ``clip``...), as
  ``{"path", "sha256", "bytes"}``;
- ``checkpoint``: its path, sha256, step and epoch (None for a generator evaluated in memory during
  training);
- ``seed``, ``num_samples``, ``versions`` (this package, torch);
- ``rprecision_same_damsm``: True when R-precision was computed with the DAMSM that trained the generator
  (TISE, Dinh et al. 2022: such a score rewards overfitting to the evaluator), with
  ``warnings`` holding the sentence to print.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attngan_cli.evaluation.features import file_sha256 as read_sha256

MANIFEST_VERSION = 1
DEFAULT_PROTOCOL = "attngan"
SAME_DAMSM_WARNING = (
    "R-precision was computed with the DAMSM that trained this generator (its DAMSM loss): TISE (Dinh et al., "
    "ECCV 2022) shows such a score rewards overfitting to the evaluator; compare it only with generators "
    "scored the same way, or score with another DAMSM (--encoders) or CLIP")

_cache: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256: a file is hashed once
_cache_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, remembered for this process by (path, size, modification time), so
    that a large file (the HDF5 data, a checkpoint) is read once however often it is evaluated."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    digest = read_sha256(p)
    with _cache_lock:
        _cache[key] = digest
    return digest


def file_entry(path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """``{"path", "sha256", "bytes"}`` of a file (None for None)."""
    if path is None:
        return None
    p = Path(path)
    return {"path": str(p.resolve()), "sha256": file_sha256(p), "bytes": p.stat().st_size}


def versions() -> dict[str, str]:
    """This package's and torch's versions."""
    import torch

    from attngan_cli import __version__

    return {"attngan": __version__, "torch": str(torch.__version__)}


def same_damsm_caveat(metrics: list[str], same_damsm: bool, lambda_damsm: float) -> bool:
    """TISE's caveat applies: R-precision is among ``metrics``, its DAMSM is the one the generator was
    trained with (``same_damsm``) and that DAMSM was in the generator's loss (``lambda_damsm`` > 0)."""
    return "rprecision" in metrics and same_damsm and lambda_damsm > 0


def build_manifest(*, metrics: list[str], settings: Mapping[str, Any], files: Mapping[str, dict[str, Any] | None],
                   seed: int, num_samples: int, versions: Mapping[str, str], protocol: str = DEFAULT_PROTOCOL,
                   checkpoint_step: int | None = None, checkpoint_epoch: int | None = None,
                   rprecision_same_damsm: bool = False) -> dict[str, Any]:
    """The manifest of one evaluation (see the module docstring); a pure function of its arguments.

    ``files``: role -> :func:`file_entry` (None: not used). The checkpoint's entry (role ``checkpoint``)
    is repeated under ``checkpoint`` with its step and epoch."""
    used = {role: dict(entry) for role, entry in files.items() if entry is not None}
    ckpt = used.get("checkpoint")
    warnings = [SAME_DAMSM_WARNING] if rprecision_same_damsm else []
    return {
        "manifest_version": MANIFEST_VERSION,
        "protocol": protocol,
        "metrics": list(metrics),
        "settings": dict(settings),
        "seed": seed,
        "num_samples": num_samples,
        "checkpoint": {"path": ckpt["path"] if ckpt else None, "sha256": ckpt["sha256"] if ckpt else None,
                       "step": checkpoint_step, "epoch": checkpoint_epoch},
        "files": used,
        "versions": dict(versions),
        "rprecision_same_damsm": bool(rprecision_same_damsm),
        "warnings": warnings,
    }
