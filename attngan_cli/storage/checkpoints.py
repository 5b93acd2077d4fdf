"""Self-describing checkpoints, written atomically and read without executing pickled code.

A checkpoint is one ``torch.save`` dict::

    {"format": "attngan", "format_version": 1, "package_version": "0.1.0",
     "kind": "damsm" | "generator" | "gan" | ...,   # what it holds
     "config": {...},                               # the resolved job config (to_dict)
     "vocab": ["<end>", ...] | None, "vocab_sha256": "...",
     "state": {"text_encoder": state_dict, ...},    # model weights
     "optim": {"g": optimizer state, ...},          # optional
     "step": int, "epoch": int, "rng": {...}, "extra": {...}}

so ``sample`` rebuilds the model from the file alone (nanoGPT style).
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attngan_cli import __version__
from attngan_cli.config.serialize import check_matches, from_dict, to_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError
from attngan_cli.core.fileio import atomic_path, write_failed
from attngan_cli.data.vocab import vocab_sha256
from attngan_cli.storage.rundirs import resolve_checkpoint

FORMAT = "attngan"
FORMAT_VERSION = 1

# What a checkpoint holds (its ``kind``)
GAN_KIND = "gan"  # a training checkpoint: G, its EMA, the Ds, optimisers, RNG (training/gan.py)
GENERATOR_KIND = "generator"  # G + text encoder only (written by `attngan import official`)
DAMSM_KIND = "damsm"  # text + image encoders (training/damsm.py, `attngan import official`)


@dataclass
class Checkpoint:
    kind: str
    config: dict[str, Any]
    state: dict[str, dict[str, Any]]
    vocab: list[str] | None = None
    optim: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    rng: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    package_version: str = __version__
    format_version: int = FORMAT_VERSION
    path: Path | None = None

    @property
    def vocab_sha256(self) -> str | None:
        return vocab_sha256(self.vocab)

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "package_version": self.package_version,
            "kind": self.kind,
            "config": self.config,
            "vocab": self.vocab,
            "vocab_sha256": self.vocab_sha256,
            "state": self.state,
            "optim": self.optim,
            "step": self.step,
            "epoch": self.epoch,
            "rng": self.rng,
            "extra": self.extra,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temporary file, fsync, rename). A write that fails (a full
    disk) raises :class:`OutputError` naming ``path`` and the free space; a file already at ``path`` stays."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:  # a file object: a full disk is an OSError with its errno (given a
                torch.save(ckpt.to_payload(), f)  # file name, torch's own writer raises a bare RuntimeError)
        except RuntimeError as e:
            if "PytorchStreamWriter" in str(e) or "inline_container" in str(e):
                raise write_failed(path, e) from None
            raise
    return path


def load_checkpoint(path: str | os.PathLike[str], *, kind: str | tuple[str, ...] | None = None,
                    map_location: str | torch.device = "cpu", mmap: bool = False) -> Checkpoint:
    """Load a checkpoint of this project; ``kind`` (one or several) is checked with a clear error.
    ``mmap``: map the tensors from the file instead of reading them (cheap when only the metadata, the
    config or the vocabulary is needed)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass a checkpoint file (or a run directory where a command accepts one)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "Unsupported global" in detail:
            raise CheckpointError(_refused(path, detail)) from None
        raise CheckpointError(f"{path} is not a readable attngan checkpoint (UnpicklingError"
                              + (f": {detail[:200]}" if detail else "") + ")") from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable attngan checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = " It looks like a bare state dict (an official AttnGAN file?): convert it with `attngan import official`."
        elif isinstance(payload, dict) and isinstance(payload.get("model"), dict) and "netG" in payload["model"]:
            hint = " It looks like a DF-GAN training state (state_epoch_*.pth): convert it with `attngan import dfgan`."
        raise CheckpointError(f"{path} is not an attngan checkpoint.{hint}")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this attngan ({__version__}) reads up to "
            f"version {FORMAT_VERSION}: upgrade attngan"
        )
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds and payload["kind"] not in kinds:
        raise CheckpointError(
            f"{path} is a {payload['kind']!r} checkpoint, but a {' or '.join(repr(k) for k in kinds)} checkpoint is needed here"
        )
    vocab = payload.get("vocab")
    stored_sha = payload.get("vocab_sha256")
    if vocab is not None and stored_sha is not None and vocab_sha256(list(vocab)) != stored_sha:
        raise CheckpointError(f"{path}: its vocabulary does not match the vocab_sha256 stored with it (the file was "
                              "altered or damaged); use an intact copy of the checkpoint")
    for key in ("config", "state"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{path} has no {key!r} mapping: it is damaged or was not written by attngan")
    return Checkpoint(
        kind=payload["kind"], config=payload["config"], state=payload["state"], vocab=vocab,
        optim=payload.get("optim") or {}, step=payload.get("step", 0), epoch=payload.get("epoch", 0),
        rng=payload.get("rng"), extra=payload.get("extra") or {}, package_version=payload.get("package_version", "?"),
        format_version=version, path=path,
    )


def load_module_state(module: torch.nn.Module, state: Any, what: str, path: Path | None) -> None:
    """``module.load_state_dict(state)`` with an error that names the first differing tensors (missing,
    unexpected, or of another shape) instead of PyTorch's traceback."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: the {what} weights are missing or not a state dict")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = ([f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
                + [f"{k}: {tuple(state[k].shape)} there, {tuple(own[k].shape)} here" for k in shapes[:3]])
    if problems:
        more = len(missing) + len(unexpected) + len(shapes) - len(problems)
        raise CheckpointError(f"checkpoint {path}: the {what} weights do not fit the model its config describes ("
                              + "; ".join(problems) + (f"; and {more} more" if more > 0 else "") + ")")
    module.load_state_dict(state)


def require_state(ckpt: Checkpoint, *keys: str, section: str = "state") -> None:
    """Fail naming the first of ``keys`` missing from ``ckpt.state`` (or ``ckpt.optim``)."""
    held = ckpt.state if section == "state" else ckpt.optim
    for key in keys:
        if key not in held:
            raise CheckpointError(f"checkpoint {ckpt.path} has no {section} {key!r} (it holds: "
                                  f"{', '.join(sorted(held)) or 'nothing'}); it is damaged or of another kind")


def _first_line(e: BaseException) -> str:
    """The first line of ``e``'s message (at most 200 characters), or its type's name when it has none."""
    lines = str(e).splitlines()
    return lines[0][:200] if lines else "no message"


def _unpickler_detail(message: str) -> str:
    """The reason in PyTorch's ``weights_only`` error (its "WeightsUnpickler error: ..." line, without the
    advice that follows), or ""."""
    line = next((x for x in message.splitlines() if "WeightsUnpickler error:" in x), "")
    return line.split("WeightsUnpickler error:", 1)[1].split(". Please use")[0].strip() if line else ""


def _refused(path: Path, detail: str) -> str:
    """The error for a checkpoint whose pickle holds more than tensors and plain data. PyTorch's advice to
    load it with ``weights_only=False`` is left out: attngan never runs code from a checkpoint."""
    return (f"{path} was refused: it holds pickled objects other than tensors and plain data ({detail}); "
            "attngan loads no code from a checkpoint. It is not an attngan checkpoint, or it was tampered with")


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same tensors (names, shapes and values)."""
    return set(a) == set(b) and all(a[k].shape == b[k].shape and torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def load_resume(resume: Checkpoint | str | os.PathLike[str], kind: str, what: str) -> Checkpoint:
    """The checkpoint a job resumes from: ``resume`` itself when already loaded, else the checkpoint file or
    run directory it names (:func:`attngan_cli.storage.rundirs.resolve_checkpoint`, ``what`` for its errors), loaded
    as ``kind``."""
    if isinstance(resume, Checkpoint):
        return resume
    return load_checkpoint(resolve_checkpoint(resume, for_resume=True, what=what), kind=kind)


def check_checkpoint_config(ckpt: Checkpoint, requested: Any, fields: list[str]) -> None:
    """Fail naming the first of the dotted ``fields`` whose value in ``ckpt.config`` differs from the config
    dataclass ``requested``. Fields a checkpoint predates take their defaults (``generator.arch`` of an
    config that has none is ``attngan``)."""
    saved = to_dict(from_dict(type(requested), ckpt.config, where=f"checkpoint {ckpt.path} config"))
    check_matches(saved, to_dict(requested), fields, f"checkpoint {ckpt.path}")


def check_vocab(ckpt: Checkpoint, words: list[str], what: str = "the dataset") -> None:
    if ckpt.vocab is None:
        return
    if vocab_sha256(ckpt.vocab) != vocab_sha256(words):
        detail = f"{len(ckpt.vocab)} words there, {len(words)} in {what}"
        if len(ckpt.vocab) == len(words):
            first = next(i for i, (a, b) in enumerate(zip(ckpt.vocab, words, strict=True)) if a != b)
            detail = f"first difference at index {first}: {ckpt.vocab[first]!r} vs {words[first]!r}"
        raise ConfigMismatchError(f"the vocabulary of checkpoint {ckpt.path} does not match {what} ({detail})")
