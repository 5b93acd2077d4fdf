"""An overview of run directories (``attngan runs``): what each is, how far it got and how it ended.

Everything is read from the files a run leaves (no checkpoint is opened, so it is fast on any number of
runs): ``config.json`` (kind, dataset, preset), ``stats.jsonl`` (position, last losses, how it ended),
``metrics.jsonl`` (``attngan eval`` results), ``best.json`` (the best evaluation during training) and the
checkpoint file names. The status of a run:

- ``finished``: ``final.pt`` exists (the run ended normally or at its time budget);
- ``NaN``: its last stats line says ``"end": "non-finite loss"`` (the last good checkpoint is intact);
- ``interrupted``: Ctrl-C or an abort (``interrupted.pt``, or a last stats line ``"end": "interrupted"``
  or ``"aborted"``); continue it with ``--resume``;
- ``save failed``: its last stats line says ``"end": "save failed"`` (a checkpoint could not be written,
  e.g. a full disk; the last good checkpoint is intact);
- ``failed``: its last stats line says ``"end": "error: <one line>"`` (the run died of an error);
- ``running``: none of these and a file changed in the last ``RUNNING_WINDOW_S`` seconds;
- ``stopped``: none of these and nothing changed for longer (the process was killed or crashed).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.storage.rundirs import (
    ABORTED,
    ENVIRONMENT_NAME,
    ERROR_PREFIX,
    FINAL_NAME,
    INTERRUPTED,
    INTERRUPTED_NAME,
    NON_FINITE,
    SAVE_FAILED,
)

EVAL_PREFIX = "eval/"  # stats.jsonl keys of evaluation during training (attngan_cli.training.evaluation)
EVAL_BOOKKEEPING = ("seconds", "samples", "best")
BEST_JSON = "best.json"
RUNNING_WINDOW_S = 30 * 60  # a run whose files changed this recently, and that did not end, is running
FINISHED_STATUS, NAN_STATUS, INTERRUPTED_STATUS, RUNNING_STATUS, STOPPED_STATUS = (
    "finished", "NaN", "interrupted", "running", "stopped")
SAVE_FAILED_STATUS, FAILED_STATUS = "save failed", "failed"

# the losses shown for each kind of run (all of the last record's numbers are in ``last``)
SHOWN_LOSSES = {"train": ("d", "g"), "pretrain": ("train_loss", "test_loss")}
LOSS_NAMES = {"d": "D", "g": "G", "train_loss": "train", "test_loss": "test"}


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "stats.jsonl").is_file())


@dataclass
class RunInfo:
    name: str
    path: str
    kind: str  # "train", "pretrain" or the command of the directory name
    dataset: str
    preset: str
    status: str
    step: int | None = None  # optimisation steps done (last stats line)
    epoch: int | None = None  # epochs (the last stats line's; a partial epoch counts)
    epochs: int | None = None  # epochs asked for (config)
    max_steps: int | None = None  # steps asked for (config; train only, None: no limit)
    end: str | None = None  # the last stats line's "end" (why the loop ended), when it has one
    last: dict[str, float] = field(default_factory=dict)  # the numbers of the last stats line with losses
    best_rprec: float | None = None  # best R-precision: stats "rprec" (pretrain) or metrics.jsonl (eval)
    evals: int = 0  # lines in metrics.jsonl
    eval_last: dict[str, float] = field(default_factory=dict)  # the last evaluation during training: metric -> number
    eval_step: int | None = None  # its step
    best: dict[str, Any] | None = None  # best.json's metric, value and step (train --eval-every)
    world_size: int | None = None  # processes (torchrun) the run ran on (environment.json; None: not recorded)
    device: str | None = None  # the devices they ran on (environment.json's device names, distinct ones)
    size_bytes: int = 0
    modified: float = 0.0  # newest modification time of a file in the run (seconds since the epoch)
    arch: str | None = None  # a GAN run's architecture (config generator.arch; None: not a GAN run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kind(name: str, config: dict[str, Any]) -> str:
    if "generator" in config:
        return "train"
    if "image" in config and "text" in config:
        return "pretrain"
    for kind in ("pretrain", "train"):
        if name.endswith(f"-{kind}"):
            return kind
    return name.rsplit("-", 1)[-1] if "-" in name else "?"


def _dataset(name: str, config: dict[str, Any]) -> str:
    if config.get("dataset"):
        return Path(str(config["dataset"])).stem
    parts = name.split("-")  # NNNNN-<dataset>-<command>
    return "-".join(parts[1:-1]) if len(parts) > 2 else "?"


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def _files(path: Path) -> list[os.stat_result]:
    stats = []
    for root, _, files in os.walk(path):
        for f in files:
            try:
                stats.append(os.stat(os.path.join(root, f)))
            except OSError:  # removed meanwhile (a checkpoint being pruned)
                continue
    return stats


def _eval_values(record: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of an evaluation-during-training ``stats.jsonl`` record (``eval/<metric>``)."""
    out = {}
    for key, value in record.items():
        name = key.removeprefix(EVAL_PREFIX)
        if name != key and "_" not in name and name not in EVAL_BOOKKEEPING and _number(value) is not None:
            out[name] = float(value)
    return out


def _best(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / BEST_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or _number(data.get("value")) is None:
        return None
    return {"metric": str(data.get("metric", "?")), "value": float(data["value"]), "step": data.get("step")}


def _eval_rprec(record: dict[str, Any]) -> float | None:
    rp = (record.get("metrics") or {}).get("rprecision")
    return _number(rp.get("mean")) if isinstance(rp, dict) else _number(rp)


def run_status(path: Path, stats: list[dict[str, Any]], modified: float, now: float,
               window_s: float = RUNNING_WINDOW_S) -> str:
    """The status of the run in ``path`` (see the module's docstring)."""
    end = stats[-1].get("end") if stats else None
    if (path / FINAL_NAME).is_file():
        return FINISHED_STATUS
    if end == NON_FINITE:
        return NAN_STATUS
    if end in (INTERRUPTED, ABORTED):
        return INTERRUPTED_STATUS
    if end == SAVE_FAILED:
        return SAVE_FAILED_STATUS
    if isinstance(end, str) and end.startswith(ERROR_PREFIX):
        return FAILED_STATUS
    recent = now - modified < window_s
    interrupted = path / INTERRUPTED_NAME
    if interrupted.is_file():
        # the demo continues an interrupted run in its own directory: running again if stats moved on since
        stats_file = path / "stats.jsonl"
        moved_on = stats_file.is_file() and stats_file.stat().st_mtime > interrupted.stat().st_mtime
        return RUNNING_STATUS if recent and moved_on else INTERRUPTED_STATUS
    return RUNNING_STATUS if recent else STOPPED_STATUS


def run_info(path: str | os.PathLike[str], now: float | None = None, window_s: float = RUNNING_WINDOW_S) -> RunInfo:
    """What the run directory ``path`` holds and how it ended."""
    path = Path(path)
    now = time.time() if now is None else now
    try:
        config = json.loads((path / "config.json").read_text())
        config = config if isinstance(config, dict) else {}
    except (OSError, ValueError):
        config = {}
    stats = read_jsonl(path / "stats.jsonl", lenient=True)
    metrics = read_jsonl(path / "metrics.jsonl", lenient=True)
    files = _files(path)
    modified = max((s.st_mtime for s in files), default=path.stat().st_mtime)
    kind = _kind(path.name, config)
    info = RunInfo(name=path.name, path=str(path), kind=kind, dataset=_dataset(path.name, config),
                   preset=str(config.get("preset", "?")), status=run_status(path, stats, modified, now, window_s),
                   size_bytes=sum(s.st_size for s in files), modified=modified, evals=len(metrics))
    if isinstance(config.get("epochs"), int):
        info.epochs = config["epochs"]
    if kind == "train" and isinstance(config.get("generator"), dict):
        info.arch = str(config["generator"].get("arch", "attngan"))
    if kind == "train" and isinstance(config.get("max_steps"), int) and config["max_steps"] > 0:
        info.max_steps = config["max_steps"]
    info.world_size, info.device = _environment(path)
    if stats:
        info.step, info.epoch = stats[-1].get("step"), stats[-1].get("epoch")
        info.end = stats[-1].get("end")
    evals = [r for r in stats if any(str(k).startswith(EVAL_PREFIX) for k in r)]
    if evals:
        info.eval_last, info.eval_step = _eval_values(evals[-1]), evals[-1].get("step")
    info.best = _best(path)
    for rec in reversed(stats):  # the end line of a run may carry no losses
        if rec in evals:
            continue
        numbers = {k: float(v) for k, v in rec.items() if k not in ("step", "epoch") and _number(v) is not None}
        if numbers:
            info.last = numbers
            break
    rprecs = ([_number(r.get("rprec")) for r in stats] + [_eval_rprec(r) for r in metrics]
              + [_eval_values(r).get("rprecision") for r in evals])
    finite = [v for v in rprecs if v is not None and math.isfinite(v)]
    info.best_rprec = max(finite) if finite else None
    return info


def _environment(path: Path) -> tuple[int | None, str | None]:
    """The world size and the distinct device names that ``environment.json`` records (None: not recorded)."""
    try:
        env = json.loads((path / ENVIRONMENT_NAME).read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(env, dict):
        return None, None
    world = env.get("world_size") if isinstance(env.get("world_size"), int) else None
    names = env.get("device_names") if isinstance(env.get("device_names"), list) else [env.get("device")]
    distinct = list(dict.fromkeys(str(n) for n in names if n))
    return world, ", ".join(distinct) or None


def list_runs(root: str | os.PathLike[str] = "runs", now: float | None = None,
              window_s: float = RUNNING_WINDOW_S) -> list[RunInfo]:
    """The run directories directly under ``root`` (or ``root`` itself when it is one), by name."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory (give the folder your runs are in, default: runs)")
    if is_run_dir(root):
        return [run_info(root, now, window_s)]
    return [run_info(p, now, window_s) for p in sorted(root.iterdir()) if is_run_dir(p)]


def progress_text(info: RunInfo) -> str:
    """``epoch 2/20`` for a pretraining; ``step 600/1000`` (or ``step 600`` without a step limit) for a
    GAN training."""
    if info.step is None:
        return "-"
    if info.kind == "pretrain":
        return f"epoch {info.epoch}/{info.epochs}" if info.epochs else f"epoch {info.epoch}"
    return f"step {info.step}/{info.max_steps}" if info.max_steps else f"step {info.step}"


def where_text(info: RunInfo) -> str:
    """``2 x NVIDIA H200`` (processes x device), or ``-`` for a run that recorded neither."""
    if info.world_size is None and info.device is None:
        return "-"
    return f"{info.world_size or '?'} x {info.device or '?'}"


def losses_text(info: RunInfo) -> str:
    keys = [k for k in SHOWN_LOSSES.get(info.kind, ()) if k in info.last] or sorted(info.last)[:2]
    return " ".join(f"{LOSS_NAMES.get(k, k)} {info.last[k]:.3g}" for k in keys) or "-"


def eval_text(info: RunInfo) -> str:
    """The last evaluation during training and the best one: ``rprecision 0.412 @600, best 0.455 @300``."""
    if not info.eval_last and info.best is None:
        return "-"
    parts = []
    if info.eval_last:
        parts.append(" ".join(f"{k} {v:.4g}" for k, v in info.eval_last.items()) + f" @{info.eval_step}")
    if info.best is not None:
        parts.append(f"best {info.best['value']:.4g} @{info.best['step']}")
    return ", ".join(parts)


def size_text(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover
