"""Images from any text with a trained generator, and the paper's attention figure.

The model, vocabulary and settings all come from one checkpoint (a ``gan`` training checkpoint, whose
EMA generator is used, or an imported ``generator`` checkpoint), loaded by
:func:`attngan_cli.inference.pipeline.load_generator` and run by :func:`attngan_cli.inference.pipeline.generate`.

Sampling streams: captions are read lazily (a first pass only validates them, so a bad line is reported
before anything is generated), generated ``batch_size`` images at a time, and written while the next
batch is computed. Every image's noise (z and the conditioning-augmentation epsilon) comes from its own
random generator seeded by (seed, caption index, sample index), so an image does not depend on the
batch size, on the device's random state or on the other captions: the same seed gives the same images.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attngan_cli.archs.registry import get_arch
from attngan_cli.config.fields import bounded, one_of, seed_field, validate
from attngan_cli.config.schema import PRECISIONS
from attngan_cli.core.distributed import barrier, gather_object, is_main_process, rank, world_size
from attngan_cli.core.errors import AttnGANError, InputError, OutputError
from attngan_cli.core.fileio import (
    append_jsonl,
    atomic_path,
    atomic_write_json,
    check_output_location,
    write_failed,
)
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.vocab import Vocabulary
from attngan_cli.inference.pipeline import GeneratorBundle, generate
from attngan_cli.networks.noise import check_truncation, truncate_
from attngan_cli.viz.attention import all_word_maps, attention_figure
from attngan_cli.viz.grid import make_grid, save_png, to_uint8, upsample, wrap

log = logging.getLogger(__name__)

WHICH_CHOICES = ("all", "last")  # which stages' images sample writes
CAPTIONS_INDEX = "captions.jsonl"  # written beside the images: one JSON line per caption
CAPTIONS_BACK = "captions_back.jsonl"  # with --caption-back: the captioner's reading of each last-stage image


# --------------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------------
@dataclass
class Caption:
    """One caption, encoded with the checkpoint's vocabulary."""

    index: int  # position among all captions given (arguments first, then the file's non-blank lines)
    text: str
    where: str  # "caption 2" (command-line argument) or "captions.txt:17"
    ids: list[int]
    words: list[str]  # the vocabulary words of ``ids``
    unknown: list[str] = field(default_factory=list)  # dropped words

    def to_record(self) -> dict[str, Any]:
        return {"index": self.index, "where": self.where, "text": self.text, "words": self.words,
                "unknown": self.unknown}


class CaptionSource:
    """Captions from arguments and/or a text file (one per line, blank lines skipped), re-readable:
    each iteration reads the file again, so thousands of captions are never held in memory."""

    def __init__(self, captions: Sequence[str] = (), captions_file: str | os.PathLike[str] | None = None) -> None:
        self.captions = list(captions or [])
        self.captions_file = Path(captions_file) if captions_file is not None else None
        if self.captions_file is not None and not self.captions_file.is_file():
            raise InputError(f"--captions-file {self.captions_file} does not exist or is not a file")
        if not self.captions and self.captions_file is None:
            raise InputError("no caption given: pass one or more captions, or --captions-file FILE")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(where, text) pairs."""
        for i, text in enumerate(self.captions):
            yield f"caption {i + 1}", text
        if self.captions_file is not None:
            try:
                with open(self.captions_file, encoding="utf-8") as f:
                    for n, line in enumerate(f, start=1):
                        text = line.strip()
                        if text:
                            yield f"{self.captions_file}:{n}", text
            except UnicodeDecodeError as e:
                raise InputError(f"{self.captions_file} is not UTF-8 text ({e})") from None


def encode_caption(vocab: Vocabulary, text: str, where: str, index: int = 0, max_words: int | None = None,
                   warn: bool = True) -> Caption:
    """Encode one caption; :class:`InputError` naming ``where`` for an empty / punctuation-only caption
    or one whose words are all unknown. Unknown words are dropped (a warning lists them when ``warn``);
    a caption longer than ``max_words`` is used whole (a warning says so)."""
    ids, unknown = vocab.encode(text)
    if not ids:
        if not unknown:
            raise InputError(f"{where}: {text!r} has no words (it is empty or only punctuation)")
        raise InputError(
            f"{where}: none of the words of {text!r} is in the model's vocabulary "
            f"(unknown: {', '.join(unknown)}); the vocabulary has {len(vocab)} words"
        )
    if warn and unknown:
        log.warning("%s: dropped words not in the model's vocabulary: %s", where, ", ".join(unknown))
    if warn and max_words and len(ids) > max_words:
        log.warning(
            "%s: %d words, more than the %d the model was trained with; all %d are used "
            "(the attention handles any length, as the official sampler)", where, len(ids), max_words, len(ids),
        )
    return Caption(index, text, where, ids, [vocab.words[i] for i in ids], unknown)


def iter_encoded(source: Iterable[tuple[str, str]], vocab: Vocabulary, max_words: int | None = None,
                 warn: bool = False) -> Iterator[Caption]:
    for index, (where, text) in enumerate(source):
        yield encode_caption(vocab, text, where, index, max_words, warn)


def check_captions(source: Iterable[tuple[str, str]], vocab: Vocabulary, max_words: int | None = None,
                   max_errors: int = 10) -> int:
    """Validate every caption (warnings for dropped / extra words); raise one :class:`InputError` listing
    up to ``max_errors`` bad captions. Returns the number of captions."""
    errors: list[str] = []
    n = dropped = longer = 0
    for where, text in source:
        try:
            cap = encode_caption(vocab, text, where, n, max_words, warn=dropped < max_errors and longer < max_errors)
        except InputError as e:
            errors.append(str(e))
        else:
            dropped += bool(cap.unknown)
            longer += bool(max_words and len(cap.ids) > max_words)
        n += 1
    if dropped > max_errors or longer > max_errors:  # the first ones were warned about one by one
        parts = []
        if dropped:
            parts.append(f"{dropped} had words outside the vocabulary (dropped; listed under 'unknown' in "
                         f"{CAPTIONS_INDEX})")
        if longer:
            parts.append(f"{longer} are longer than the model's {max_words} words (all words used)")
        log.warning("in all, of %d captions: %s", n, "; ".join(parts))
    if errors:
        more = f"\n  ... and {len(errors) - max_errors} more" if len(errors) > max_errors else ""
        head = "bad caption" if len(errors) == 1 else f"{len(errors)} bad captions"
        raise InputError(f"{head}:\n  " + "\n  ".join(errors[:max_errors]) + more)
    if n == 0:
        raise InputError("no caption given (the captions file has no non-blank line)")
    return n


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------
def item_noise(seed: int, caption_index: int, sample_index: int, z_dim: int, c_dim: int,
               truncation: float = 0.0, bound: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise of one image: z (z_dim,) and the conditioning-augmentation epsilon (c_dim,), drawn on the
    CPU from a generator seeded by (seed, caption index, sample index). ``truncation`` > 0 (the
    architecture's ``noise_truncation``, or --truncation) and ``bound`` (its ``truncation_bound``):
    z truncated by :func:`attngan_cli.networks.noise.truncate_` (values outside redrawn)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, caption_index, sample_index])
    g = torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] >> 1))
    z = truncate_(torch.randn(z_dim, generator=g), g, truncation, bound)
    eps = torch.randn(c_dim, generator=g)
    return z, eps


def caption_batch(captions: Sequence[Caption]) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded captions as token ids (B, T) 0-padded to the longest, and their lengths (B,)."""
    T = max(len(c.ids) for c in captions)
    ids = torch.zeros(len(captions), T, dtype=torch.long)  # (B, T)
    for b, c in enumerate(captions):
        ids[b, : len(c.ids)] = torch.tensor(c.ids, dtype=torch.long)
    lengths = torch.tensor([len(c.ids) for c in captions], dtype=torch.long)  # (B,)
    return ids, lengths


@dataclass
class SampleSettings:
    """How to sample; checked by :func:`attngan_cli.config.fields.validate` (as :func:`sample_to_dir` does)."""

    n: int = bounded(1, low=1)  # images per caption
    seed: int = seed_field()
    which: str = one_of("all", WHICH_CHOICES)  # all: every stage's image; last: only the final one
    grid: bool = False  # also one grid PNG per caption
    batch_size: int = bounded(16, low=1)
    # bf16 where the hardware computes it, else fp32 (device.resolve_precision)
    precision: str = one_of("auto", PRECISIONS)
    overwrite: bool = False  # replace the samples of an earlier run in the output folder
    truncation: float | None = None  # the noise's truncation (None: the architecture's noise_truncation)


def image_name(caption_index: int, sample_index: int, size: int) -> str:
    """``c00012-s03-256.png``: caption 12, sample 3, the 256 px stage."""
    return f"c{caption_index:05d}-s{sample_index:02d}-{size}.png"


def grid_name(caption_index: int) -> str:
    return f"c{caption_index:05d}-grid.png"


_SAMPLE_FILE = re.compile(r"^c\d{5}-(s\d{2}-\d+|grid)\.png$")


def _written(future: Future[Path]) -> Path:
    """The path a PNG writer returned, or a clear error when the disk refused it (full, read-only)."""
    try:
        return future.result()
    except OutputError:  # already names the file and the fix
        raise
    except OSError as e:
        raise InputError(f"cannot write {e.filename or 'a sample image'}: {e.strerror or e}; the images written "
                         "before it are complete (free some space or choose another --out)") from None


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Create ``out`` for a sampling run (a file in the way or a folder that cannot be written is an
    :class:`OutputError`, as for every output: :func:`attngan_cli.core.fileio.check_output_location`). A folder
    that already holds files is refused (old images would mix with new ones and ``captions.jsonl`` would
    describe only the new); with ``overwrite`` the samples of the earlier run (``c*-s*-*.png``, ``c*-grid.png``, ``captions.jsonl``,
    ``captions_back.jsonl``) are deleted first and any other file is left alone."""
    check_output_location(out / CAPTIONS_INDEX)  # a file standing in the way, or a folder not writable
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create --out {out}: {e.strerror or e}") from None
    existing = sorted(p.name for p in out.iterdir())
    if not existing:
        return
    if not overwrite:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise InputError(f"--out {out} is not empty ({shown}); choose an empty or new folder, or pass --overwrite "
                         "to replace the samples written there before")
    old = [out / n for n in existing if _SAMPLE_FILE.match(n) or n in (CAPTIONS_INDEX, CAPTIONS_BACK)]
    for p in old:
        p.unlink()
    if old:
        log.info("--overwrite: removed %d files of an earlier sampling run from %s", len(old), out)



def sample_to_dir(bundle: GeneratorBundle, source: Iterable[tuple[str, str]], out_dir: str | os.PathLike[str],
                  settings: SampleSettings, progress: Progress | None = None,
                  abort: Callable[[], bool] | None = None, overview: str | os.PathLike[str] | None = None
                  ) -> Iterator[Path]:
    """Generate ``settings.n`` images per caption of ``source`` into ``out_dir``, yielding each written
    path (in order) as soon as it is on disk. Also writes ``captions.jsonl`` (index, source line, text,
    words used, words dropped), a caption's line once all its files are on disk (a full disk leaves an
    index of what exists). All captions are validated before the first image is generated.
    ``overview``: also one PNG there with a row per caption and its samples of the last stage side by
    side (kept in memory until the end: meant for a handful of captions).

    Under torchrun rank r generates the captions whose index i has i % W == r (all samples of a caption,
    so its grid too) and yields the files it wrote; rank 0 writes the index and the overview. The images
    are those of one process: each is a function of (seed, caption index, sample index) only."""
    validate(settings)
    out = Path(out_dir)
    cfg = bundle.config
    max_words = cfg.words
    total = check_captions(source, bundle.vocab, max_words)
    sizes = bundle.image_sizes
    keep = list(range(len(sizes))) if settings.which == "all" else [len(sizes) - 1]
    z_dim, c_dim = cfg.generator.z_dim, cfg.generator.condition_dim
    arch = get_arch(cfg.generator.arch)
    truncation = arch.noise_truncation if settings.truncation is None else check_truncation(settings.truncation)
    index_path = out / CAPTIONS_INDEX
    main = is_main_process()
    if main:
        prepare_out_dir(out, settings.overwrite)
        index_path.write_text("", encoding="utf-8")  # this run's index (streamed: one line per caption)
    barrier()

    # under torchrun: this rank's captions whose files are all on disk, listed by rank 0 at the end in
    # caption order (one process streams them as they are written, in that order already)
    listed: list[dict[str, Any]] = []

    def list_caption(cap: Caption) -> None:
        """Add ``cap`` to ``captions.jsonl`` once all its files are written: the index lists only what exists."""
        if world_size() > 1:
            listed.append(cap.to_record())
            return
        try:
            append_jsonl(index_path, cap.to_record())
        except OSError as e:
            raise write_failed(index_path, e) from None

    def jobs() -> Iterator[tuple[Caption, int]]:
        for cap in iter_encoded(source, bundle.vocab, max_words):
            if cap.index % world_size() != rank():
                continue
            for s in range(settings.n):
                yield cap, s

    def batches() -> Iterator[list[tuple[Caption, int]]]:
        buf: list[tuple[Caption, int]] = []
        for job in jobs():
            buf.append(job)
            if len(buf) == settings.batch_size:
                yield buf
                buf = []
        if buf:
            yield buf

    grid_tiles: dict[int, list[list[np.ndarray]]] = {}
    overview_rows: dict[int, list[np.ndarray]] = {}  # caption index -> its last-stage samples
    own = len(range(rank(), total, world_size()))  # this rank's captions
    with (progress or NullProgress()).task("sampling", total=own * settings.n, unit="img") as task, \
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="attngan-png") as pool:
        pending: list[Future[Path]] = []
        completes: dict[Future[Path], Caption] = {}  # the last file of a caption -> the caption
        for batch in batches():
            if abort is not None and abort():
                log.warning("sampling stopped early; the images written so far are complete")
                break
            noise = [item_noise(settings.seed, c.index, s, z_dim, c_dim, truncation, arch.truncation_bound)
                     for c, s in batch]
            z = torch.stack([a for a, _ in noise])  # (B, z_dim)
            eps = torch.stack([b for _, b in noise])  # (B, c_dim)
            ids, lengths = caption_batch([c for c, _ in batch])
            images = generate(bundle, ids, lengths, z, eps, settings.precision).images
            arrays = {i: to_uint8(images[i]) for i in keep}  # stage -> (B, s, s, 3) uint8 on the CPU
            if overview is not None:
                last_stage = arrays[len(sizes) - 1] if len(sizes) - 1 in arrays else to_uint8(images[-1])
                for b, (cap, _s) in enumerate(batch):
                    overview_rows.setdefault(cap.index, []).append(last_stage[b])
            last = images[-1].shape[-1]
            grid_arrays = ({i: to_uint8(upsample(images[i], last)) for i in keep} if settings.grid else {})
            current: list[Future[Path]] = []
            for b, (cap, s) in enumerate(batch):
                for i in keep:
                    path = out / image_name(cap.index, s, sizes[i])
                    current.append(pool.submit(save_png, arrays[i][b], path))
                if settings.grid:
                    grid_tiles.setdefault(cap.index, []).append([grid_arrays[i][b] for i in keep])
                    if len(grid_tiles[cap.index]) == settings.n:
                        rows = grid_tiles.pop(cap.index)
                        if len(keep) == 1:  # only the last stage: the samples in a near-square grid
                            rows = wrap([r[0] for r in rows])
                        current.append(pool.submit(save_png, make_grid(rows), out / grid_name(cap.index)))
                if s == settings.n - 1:
                    completes[current[-1]] = cap
            for f in pending:  # the previous batch's files, written while this batch was generated
                yield _written(f)
                if f in completes:
                    list_caption(completes.pop(f))
            pending = current
            task.advance(len(batch))
        for f in pending:
            yield _written(f)
            if f in completes:
                list_caption(completes.pop(f))
    if world_size() > 1:  # rank 0 lists every rank's captions, in caption order as one process does
        parts = gather_object(listed) or []
        if main:
            for record in sorted((r for part in parts for r in part), key=lambda r: r["index"]):
                try:
                    append_jsonl(index_path, record)
                except OSError as e:
                    raise write_failed(index_path, e) from None
    if overview is not None:
        parts = gather_object(overview_rows) or []  # every rank's captions, on rank 0
        rows = {k: v for part in parts for k, v in part.items()}
        if rows:
            yield save_png(make_grid([rows[k] for k in sorted(rows)]), overview)


# --------------------------------------------------------------------------------------------------
# The attention figure
# --------------------------------------------------------------------------------------------------
@dataclass
class AttendResult:
    figure: Path
    json: Path
    word_maps: list[Path]
    caption: Caption
    rankings: list[list[dict[str, Any]]]  # per attention model, every word ranked


def attend(bundle: GeneratorBundle, text: str, out: str | os.PathLike[str], top: int = 5, seed: int = 0,
           precision: str = "auto", word_maps: bool = False, sample_index: int = 0) -> AttendResult:
    """Generate one image for ``text`` and draw the paper's Figure 1 into ``out`` (PNG), with
    ``<out>.json`` (ranked words and scores per attention model) and, with ``word_maps``, every word's
    map under ``<out stem>_maps/`` (grey PNGs at the image size, and the raw maps in ``maps.npz``)."""
    if top < 1:
        raise AttnGANError(f"--top must be >= 1, got {top}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out {out}: the figure is a PNG; give a path ending in .png")
    cfg = bundle.config
    arch = get_arch(cfg.generator.arch)
    if not arch.word_attention:
        raise InputError(
            f"checkpoint {bundle.path}: --arch {arch.name} ({arch.paper}) has no word attention, so there are no "
            "attention maps to draw; use `attngan sample` for its images"
        )
    if cfg.generator.stages < 2:
        raise InputError(
            f"checkpoint {bundle.path}: a {cfg.generator.stages}-stage generator has no word "
            "attention (attention models sit at stages 2 and above); use `attngan sample` for its images"
        )
    cap = encode_caption(bundle.vocab, text, "caption", 0, cfg.words)
    z, eps = item_noise(seed, 0, sample_index, cfg.generator.z_dim, cfg.generator.condition_dim,
                        arch.noise_truncation, arch.truncation_bound)
    ids, lengths = caption_batch([cap])
    generated = generate(bundle, ids, lengths, z[None], eps[None], precision)
    images, attn = generated.images, generated.attn
    stage_images = [im[0].cpu() for im in images]  # per stage (3, s, s)
    maps = [a[0, : len(cap.ids)].cpu() for a in attn]  # per attention model (T, h, w)
    sent_maps = [s[0, 0].cpu() for s in generated.sent_attn]  # per sentence attention (h, w): mirrorgan
    fig = attention_figure(stage_images, maps, cap.words, top=top, caption=" ".join(cap.words),
                           sentence_maps=sent_maps, kind="memory" if arch.memory else "attention")
    save_png(fig.image, out)
    rankings = [[w.to_dict() for w in r] for r in fig.rankings]
    record = {
        "caption": text,
        "words": cap.words,
        "unknown": cap.unknown,
        "seed": seed,
        "checkpoint": str(bundle.path or ""),
        "threshold": f"weights below 1/T set to 0 (equation 15), T = {len(cap.ids)} words",
        # DM-GAN: each memory stage's key-addressing weights over the words, per pixel (drawn as word attention)
        "maps": "memory addressing" if arch.memory else "word attention",
        "attention": [
            {"model": k + 1, "stage": k + 2, "regions": [int(maps[k].shape[-2]), int(maps[k].shape[-1])],
             "top": [w.to_dict() for w in fig.top[k]], "ranked": rankings[k]}
            for k in range(len(maps))
        ],
        "figure": out.name,
    }
    if sent_maps:  # MirrorGAN's GLAM: where each stage puts the sentence context
        record["sentence_attention"] = [
            {"model": k + 1, "stage": k + 2, "regions": [int(m.shape[-2]), int(m.shape[-1])],
             "peak_share": float(m.max()), "uniform_share": 1.0 / m.numel()} for k, m in enumerate(sent_maps)]
    json_path = out.with_suffix(".json")
    atomic_write_json(json_path, record)
    written: list[Path] = []
    if word_maps:
        mdir = out.with_name(out.stem + "_maps")
        size = int(stage_images[-1].shape[-1])
        for k, m in enumerate(maps):
            for i, gray in enumerate(all_word_maps(m, cap.words, size)):
                name = f"attn{k + 1}-w{i:02d}-{_safe(cap.words[i])}.png"
                written.append(save_png((gray * 255).round().astype(np.uint8), mdir / name))
        npz = mdir / "maps.npz"
        with atomic_path(npz, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, words=np.array(cap.words), **{f"attn{k + 1}": m.numpy() for k, m in enumerate(maps)},
                                    **{f"sentence{k + 1}": m.numpy() for k, m in enumerate(sent_maps)})
        written.append(npz)
    return AttendResult(out, json_path, written, cap, rankings)


def _safe(word: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in word)[:40] or "word"
