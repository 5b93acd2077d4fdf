"""The serving engine, free of any web framework: the models loaded once, the checks of a request, and the
batcher that runs the requests of many clients through one forward of the model.

Batching: each model has one worker thread and a short queue of requests. The worker takes the oldest
request, waits up to ``batch_wait_ms`` for more, and runs every waiting request that fits in
``max_batch`` images through one forward of the generator (captions padded to the longest; the attention
ignores the padding). A request's images never depend on the others it shares a batch with: each image's
noise is :func:`attngan_cli.apps.sample.item_noise` of (seed, caption 0, sample index), exactly what
``attngan sample CAPTION --seed SEED --n N`` draws, so the server and the CLI give the same images. A full
queue refuses new requests at once (:class:`Busy`), and a request that has not started by its deadline is
dropped from the queue (the caller answers a timeout).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attngan_cli.apps.sample import Caption, caption_batch, encode_caption, item_noise
from attngan_cli.archs.registry import get_arch
from attngan_cli.config.fields import bounded, one_of, seed_field, validate
from attngan_cli.config.schema import PRECISIONS
from attngan_cli.core.device import autocast, resolve_precision
from attngan_cli.core.errors import AttnGANError, FieldError, InputError
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.data.tokenizer import tokenize
from attngan_cli.evaluation.evaluate import find_run_dir
from attngan_cli.inference.pipeline import Generated, GeneratorBundle, generate, module_device
from attngan_cli.viz.grid import to_uint8

log = logging.getLogger(__name__)


@dataclass
class ServeSettings:
    """How the server batches and what it accepts (checked by :func:`check_settings`)."""

    max_n: int = bounded(8, low=1, high=64)  # images one request may ask for
    max_batch: int = bounded(16, low=1)  # images in one forward of the model (>= max_n)
    queue: int = bounded(32, low=1)  # requests waiting per model; more are refused (503)
    timeout_s: float = bounded(60.0, low=0, low_inclusive=False)  # a request not answered by then gets 504
    batch_wait_ms: float = bounded(5.0, low=0, high=1000)  # after the first request, wait this long for others
    max_chars: int = bounded(1000, low=1)  # longest caption accepted, in characters
    top: int = bounded(5, low=1, high=50)  # words shown per attention model (the paper's figure: 5)
    precision: str = one_of("auto", PRECISIONS)


def check_settings(settings: ServeSettings) -> ServeSettings:
    validate(settings)
    if settings.max_batch < settings.max_n:
        raise FieldError("max_batch", f"must be >= max_n ({settings.max_n}): one request's images go in one "
                         f"batch, got {settings.max_batch}")
    return settings


class Busy(AttnGANError):
    """The model's queue is full: try again shortly (HTTP 503)."""


class TimedOut(AttnGANError):
    """A request waited longer than ``timeout_s`` (HTTP 504)."""


# --------------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------------
@dataclass
class ServedModel:
    """One checkpoint loaded for serving, with what the page shows about it."""

    name: str
    bundle: GeneratorBundle
    precision: str  # resolved: fp32, bf16 or fp16
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.bundle.vocab) if self.bundle.vocab is not None else 0


def model_name(path: Path, taken: set[str]) -> str:
    """A short unique name for a checkpoint: its run directory's name (``00003-shapes-train``) or its
    file's stem, with ``-2``, ``-3`` ... when two are alike."""
    path = Path(path)
    base = path.name if path.is_dir() else (path.parent.name if path.stem in ("final", "interrupted") or
                                            path.stem.startswith("checkpoint") else path.stem)
    name, k = base or "model", 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def recorded_metrics(checkpoint: Path | None) -> list[dict[str, Any]]:
    """The ``attngan eval`` results in the run directory of ``checkpoint`` (``metrics.jsonl``), newest first;
    empty when there are none."""
    if checkpoint is None:
        return []
    run = find_run_dir(Path(checkpoint))
    if run is None:
        return []
    records = read_jsonl(run / "metrics.jsonl", lenient=True)
    out = []
    for r in reversed(records[-5:]):
        metrics = _flat_numbers(r.get("metrics") or {})
        if metrics:
            out.append({"step": r.get("step"), "num_samples": r.get("num_samples"), "time": r.get("time"),
                        "metrics": metrics})
    return out


def _flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"rprecision": {"mean": 0.8}}`` -> ``{"rprecision.mean": 0.8}``: finite numbers only, without the
    sample counts (``*_n``)."""
    out: dict[str, float] = {}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_numbers(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and not k.endswith("_n"):
            out[key] = v
    return out


def serve_model(name: str, bundle: GeneratorBundle, precision: str = "auto") -> ServedModel:
    """``bundle`` ready to serve: its precision resolved for its device and its facts gathered."""
    if bundle.vocab is None:
        raise InputError(f"checkpoint {bundle.path} holds no vocabulary; captions cannot be encoded")
    device = module_device(bundle.generator)
    resolved = resolve_precision(precision, device)
    autocast(device, resolved)  # a precision this device cannot run (fp16 on a CPU) fails now, not per request
    cfg = bundle.config
    arch = get_arch(cfg.generator.arch)
    facts = {
        "name": name,
        "checkpoint": str(bundle.path or ""),
        "arch": arch.name,
        "paper": arch.paper,
        "dataset": Path(cfg.dataset).name if cfg.dataset else "",
        "step": bundle.step,
        "epoch": bundle.epoch,
        "vocab_size": len(bundle.vocab),
        "words": cfg.words,
        "image_sizes": bundle.image_sizes,
        "word_attention": arch.word_attention and cfg.generator.stages >= 2,
        "sentence_attention": arch.sentence_attention,
        "memory": arch.memory,
        "device": str(device),
        "precision": resolved,
        "metrics": recorded_metrics(bundle.path),
    }
    return ServedModel(name, bundle, resolved, facts)


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One checked request: ``n`` images of ``caption`` from ``seed``."""

    caption: Caption
    seed: int
    n: int
    future: Future = field(default_factory=Future)  # -> Output
    deadline: float = math.inf  # time.monotonic() after which it is not started


@dataclass
class Output:
    """What the model produced for one request, on the CPU: every stage's images (n, 3, s, s) in [-1, 1]
    and each of the generator's other outputs (attention maps ...) cut to this request's rows and words."""

    images: list[torch.Tensor]
    extras: dict[str, list[torch.Tensor]]  # Generated field -> per module (n, ...)
    seconds: float = 0.0  # the forward this request was part of
    batch_images: int = 0  # images in that forward
    pixels: list[np.ndarray] = field(default_factory=list)  # per stage (n, s, s, 3) uint8: the PNGs' pixels


def check_request(model: ServedModel, caption: Any, seed: Any, n: Any, settings: ServeSettings) -> Job:
    """A request's values checked as ``attngan sample`` checks them; :class:`InputError` / :class:`FieldError`
    with the CLI's message otherwise."""
    if not isinstance(caption, str):
        raise InputError(f"caption must be a string, got {type(caption).__name__}")
    if len(caption) > settings.max_chars:
        raise InputError(f"caption: {len(caption)} characters, more than the {settings.max_chars} this server "
                         "accepts (attngan serve --max-chars)")
    for name, value in (("seed", seed), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(name, f"must be an integer, got {value!r}")
    probe = _Limits(n=n, seed=seed)
    validate(probe)
    if n > settings.max_n:
        raise FieldError("n", f"must be <= {settings.max_n} (attngan serve --max-n), got {n}")
    cap = encode_caption(model.bundle.vocab, caption, "caption", 0, model.bundle.config.words, warn=False)
    return Job(cap, seed, n)


@dataclass
class _Limits:
    n: int = bounded(1, low=1)
    seed: int = seed_field()


def tokens(model: ServedModel, caption: str) -> list[dict[str, Any]]:
    """The caption's words as the model reads them (the CLI's tokenization): each with ``known`` False
    when it is not in the vocabulary (dropped, as ``attngan sample`` drops it)."""
    vocab = model.bundle.vocab
    out = []
    for t in tokenize(caption):
        i = vocab.word_to_index.get(t)
        out.append({"word": t, "known": i is not None and i != 0})
    return out


# --------------------------------------------------------------------------------------------------
# The batcher
# --------------------------------------------------------------------------------------------------
def run_batch(model: ServedModel, jobs: list[Job]) -> list[Output]:
    """One forward of the generator for all images of ``jobs``, split back per job."""
    cfg = model.bundle.config
    truncation = get_arch(cfg.generator.arch).noise_truncation
    z_dim, c_dim = cfg.generator.z_dim, cfg.generator.condition_dim
    items = [(job, s) for job in jobs for s in range(job.n)]
    noise = [item_noise(job.seed, 0, s, z_dim, c_dim, truncation) for job, s in items]
    z = torch.stack([a for a, _ in noise])  # (B, z_dim)
    eps = torch.stack([b for _, b in noise])  # (B, c_dim)
    ids, lengths = caption_batch([job.caption for job, _ in items])  # (B, T), (B,)
    t0 = time.perf_counter()
    gen = generate(model.bundle, ids, lengths, z, eps, model.precision)
    images = [im.cpu() for im in gen.images]
    pixels = [to_uint8(im) for im in images]  # once per batch, in this thread (as attngan sample converts)
    extras = {f.name: [t.cpu() for t in getattr(gen, f.name)] for f in dataclasses.fields(Generated)
              if f.name != "images" and getattr(gen, f.name, None)}
    seconds = time.perf_counter() - t0
    padded = ids.shape[1]
    outputs, start = [], 0
    for job in jobs:
        rows = slice(start, start + job.n)
        start += job.n
        words = len(job.caption.ids)
        own = {name: [_cut(t[rows], padded, words) for t in ts] for name, ts in extras.items()}
        outputs.append(Output([im[rows] for im in images], own, seconds, len(items), [p[rows] for p in pixels]))
    return outputs


def _cut(t: torch.Tensor, padded: int, words: int) -> torch.Tensor:
    """A per-word output (n, T_padded, ...) cut to the caption's words; others unchanged."""
    if t.dim() >= 2 and t.shape[1] == padded and padded > 1:
        return t[:, :words]
    return t


class Batcher:
    """The queue and worker thread of one model (see the module docstring)."""

    def __init__(self, model: ServedModel, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # forwards run
        self.images = 0  # images generated
        self.running = 0  # images in the forward running now
        self._thread = threading.Thread(target=self._loop, name=f"attngan-serve-{model.name}", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue ``job``; its ``future`` gets an :class:`Output` (or the error of its batch). :class:`Busy`
        when the queue is full."""
        job.deadline = time.monotonic() + self.settings.timeout_s
        with self._cond:
            if self._closed:
                raise Busy("the server is shutting down")
            if len(self._queue) >= self.settings.queue:
                raise Busy(f"model {self.model.name!r} has {len(self._queue)} requests waiting, its most "
                           "(attngan serve --queue); try again shortly")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        """Stop the worker after the batch it is running; requests still queued are cancelled."""
        with self._cond:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in left:
            job.future.cancel()
        self._thread.join(timeout=30)

    def _take(self) -> list[Job]:
        """The next batch: the oldest requests that fit in ``max_batch`` images, after waiting up to
        ``batch_wait_ms`` for the batch to fill. Empty when closed."""
        s = self.settings
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return []
            end = time.monotonic() + s.batch_wait_ms / 1000
            while sum(j.n for j in self._queue) < s.max_batch and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[Job] = []
            size = 0
            now = time.monotonic()
            while self._queue and size + self._queue[0].n <= s.max_batch:
                job = self._queue.popleft()
                if now > job.deadline:  # its caller has given up
                    job.future.cancel()
                    continue
                if not job.future.set_running_or_notify_cancel():  # cancelled by its caller
                    continue
                batch.append(job)
                size += job.n
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                if self._closed:
                    return
                continue
            self.running = sum(j.n for j in batch)
            try:
                outputs = run_batch(self.model, batch)
            except Exception as e:  # noqa: BLE001 - handed to every request of the batch
                self.running = 0
                if not isinstance(e, AttnGANError):
                    log.exception("generation failed for a batch of %d requests", len(batch))
                for job in batch:
                    job.future.set_exception(e)
                continue
            self.running = 0
            self.batches += 1
            self.images += sum(j.n for j in batch)
            for job, out in zip(batch, outputs, strict=True):
                job.future.set_result(out)
