"""Shared preparation pipeline for the image sources (CUB, COCO, folder): records -> one HDF5 file.

A source module turns its layout into :class:`Record` s (key, image path, tokenized captions, class id,
split, optional crop box); :func:`write_records` then checks for missing files, builds or applies the
vocabulary, encodes the captions, loads / crops / resizes every image and writes the file atomically.
Everything dropped or repaired along the way is reported through the ``attngan`` logger, never silently.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.h5 import DEFAULT_COMPRESSION, TEST, TRAIN, check_output, read_vocabulary, write_dataset
from attngan_cli.data.vocab import Vocabulary

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 304  # 256 * 76 / 64: the official random-crop input for 256 px training
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass
class Record:
    key: str
    image_path: Path
    captions: list[list[str]]  # token lists (official tokenization)
    class_id: int
    split: int | None  # TRAIN or TEST; None: drawn by write_records' SplitRule among the images written
    crop: Callable[[int, int], tuple[int, int, int, int]] | None = None  # (width, height) -> box
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitRule:
    """How :func:`write_records` completes and checks the split once it knows which images were written
    (after dropping the missing, the unreadable and those without a usable caption), so the split and
    the counts reported are those of the file.

    Records whose ``split`` is None go to the test split with probability ``test_fraction`` (exactly
    ``round(test_fraction * n)`` of the ``n`` written, at least 1 and at most ``n - 1`` when
    ``test_fraction > 0``; chosen with ``seed``). An empty test split is an error unless
    ``allow_empty_test``; ``hint`` says in that error how to ask for one.
    """

    how: str
    test_fraction: float = 0.0
    seed: int = 0
    allow_empty_test: bool = True
    hint: str = ""

    def n_test(self, n: int) -> int:
        k = int(round(self.test_fraction * n))
        if self.test_fraction > 0 and n > 1:
            k = min(max(1, k), n - 1)
        return k

    def draw(self, n: int) -> np.ndarray:
        """(n,) split ids (TRAIN / TEST) of ``n`` images in their written order."""
        out = np.full(n, TRAIN, dtype=np.uint8)
        out[np.random.default_rng(self.seed).permutation(n)[: self.n_test(n)]] = TEST
        return out


@dataclass
class PrepResult:
    path: Path
    n_images: int
    n_train: int
    n_test: int
    n_missing: int = 0
    n_corrupt: int = 0
    vocab_size: int = 0
    seconds: float = 0.0


def few(items: Sequence[Any], n: int = 5) -> str:
    """``a, b, c`` (+ ``and N more``) for messages."""
    items = [str(i) for i in items]
    s = ", ".join(items[:n])
    return s + (f" and {len(items) - n} more" if len(items) > n else "")


def resize_square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear, as torchvision ``Resize(size)`` on PIL) and crop
    the centre square (torchvision ``CenterCrop``): the aspect ratio is kept, never squashed."""
    w, h = img.size
    if w == h:
        return img if w == size else img.resize((size, size), Image.BILINEAR)
    if w < h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.BILINEAR)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def load_image(path: Path, size: int, crop: Callable[[int, int], tuple[int, int, int, int]] | None = None
               ) -> np.ndarray:
    """Decode ``path`` as RGB, apply ``crop`` (a box from the image size), resize to (size, size, 3) uint8."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    if crop is not None:
        im = im.crop(crop(*im.size))
    return np.asarray(resize_square(im, size), dtype=np.uint8)


def _load_job(job: tuple[Path, int, Any]) -> tuple[np.ndarray | None, str | None]:
    path, size, crop = job
    try:
        return load_image(path, size, crop), None
    except Exception as e:  # noqa: BLE001 - any decoding failure is reported per file
        return None, f"{type(e).__name__}: {e}"


def split_missing(records: list[Record], allow_missing: bool, layout_hint: str) -> tuple[list[Record], int]:
    """Drop records whose image file is absent (``allow_missing``) or fail naming the count and first few."""
    missing = [r for r in records if not r.image_path.is_file()]
    if not missing:
        return records, 0
    present = len(records) - len(missing)
    if not allow_missing:
        paths = [str(r.image_path) for r in missing[:1000]]
        base = os.path.commonpath(paths) if len(paths) > 1 else str(Path(paths[0]).parent)
        shown = ", ".join(os.path.relpath(p, base) for p in paths[:3])
        if len(missing) > 3:
            shown += f" and {len(missing) - 3} more"
        raise InputError(
            f"{len(missing)} of {len(records)} listed images are missing from {base} (e.g. {shown}). "
            f"A partial download? Pass --allow-missing to prepare the {present} present images."
            if present else
            f"none of the {len(records)} listed images is present under {base} (e.g. {shown}). {layout_hint}"
        )
    if present == 0:
        raise InputError(f"none of the {len(records)} listed images is present (e.g. {missing[0].image_path}). "
                         f"{layout_hint}")
    log.warning("--allow-missing: skipping %d of %d images that are absent (e.g. %s); %d present",
                len(missing), len(records), few([r.key for r in missing], 3), present)
    missing_ids = {id(r) for r in missing}
    return [r for r in records if id(r) not in missing_ids], len(missing)


def fit_captions(records: list[Record], captions_per_image: int, what: str = "image") -> list[Record]:
    """Keep the first ``captions_per_image`` captions of each record; pad shorter lists by repeating their
    captions (reported); drop records without any caption (reported)."""
    empty = [r for r in records if not r.captions]
    short = [r for r in records if 0 < len(r.captions) < captions_per_image]
    if empty:
        log.warning("skipping %d %ss without any usable caption: %s", len(empty), what, few([r.key for r in empty]))
    if short:
        log.warning("%d %ss have fewer than %d captions; their captions are repeated to fill (e.g. %s)",
                    len(short), what, captions_per_image, few([f"{r.key} ({len(r.captions)})" for r in short], 3))
    out = []
    for r in records:
        if not r.captions:
            continue
        caps = r.captions[:captions_per_image]
        k = 0
        while len(caps) < captions_per_image:
            caps.append(caps[k % len(r.captions)])
            k += 1
        r.captions = caps
        out.append(r)
    return out


def encode_records(records: list[Record], vocab: Vocabulary) -> tuple[list[list[list[int]]], list[Record]]:
    """Word ids of every caption. Words outside ``vocab`` are dropped (reported); a caption left with no
    word is replaced by another caption of the same image (reported); an image left with none is skipped."""
    unknown: dict[str, int] = {}
    emptied = 0
    out_ids, out_records = [], []
    dropped_images = []
    for r in records:
        caps = []
        for toks in r.captions:
            ids, unk = vocab.encode_tokens(toks)
            for u in unk:
                unknown[u] = unknown.get(u, 0) + 1
            caps.append(ids)
        good = [c for c in caps if c]
        if not good:
            dropped_images.append(r.key)
            continue
        if len(good) < len(caps):
            emptied += len(caps) - len(good)
            caps = [c if c else good[k % len(good)] for k, c in enumerate(caps)]
        out_ids.append(caps)
        out_records.append(r)
    if unknown:
        top = sorted(unknown, key=lambda w: -unknown[w])
        log.warning("%d distinct caption words are not in the vocabulary and were dropped (%d occurrences): %s",
                    len(unknown), sum(unknown.values()), few(top, 10))
    if emptied:
        log.warning("%d captions had no known word left and were replaced by another caption of the same image",
                    emptied)
    if dropped_images:
        log.warning("skipping %d images none of whose captions has a known word: %s", len(dropped_images),
                    few(dropped_images))
    return out_ids, out_records


def vocab_and_options(root: str | os.PathLike[str], vocab: str | os.PathLike[str] | Vocabulary | None,
                      allow_missing: bool, **extra: Any) -> tuple[Vocabulary | None, dict[str, Any]]:
    """The vocabulary a ``prep_*`` function was given (loaded first, so a bad file fails before any scan)
    and the prep options every source records: root, vocabulary file, allow_missing, plus ``extra``."""
    is_path = isinstance(vocab, (str, os.PathLike))
    voc = read_vocabulary(vocab) if is_path else vocab
    options = {"root": str(Path(root).resolve()), "vocab": str(vocab) if is_path else None, **extra,
               "allow_missing": allow_missing}
    return voc, options


def _check_split(rule: SplitRule, splits: Sequence[int | None], n: int, when: str) -> None:
    """Raise :class:`InputError` when ``rule`` would leave the test split empty and that is not allowed
    (``splits``: the given split of each of the ``n`` images, None where ``rule`` draws it)."""
    n_draw = sum(s is None for s in splits)
    n_test = sum(s == TEST for s in splits) + rule.n_test(n_draw)
    if n_test == 0 and not rule.allow_empty_test:
        raise InputError(f"the test split would be empty ({rule.how}; {n} {when}). {rule.hint}".rstrip())


def write_records(records: list[Record], out: str | os.PathLike[str], *, source: str,
                  captions_per_image: int, vocab: Vocabulary | None = None, image_size: int = DEFAULT_IMAGE_SIZE,
                  allow_missing: bool = False, overwrite: bool = False, prep_options: dict[str, Any] | None = None,
                  layout_hint: str = "", progress: Progress | None = None, abort: Callable[[], bool] | None = None,
                  workers: int = 0, compression: str | None = None, split: SplitRule | None = None) -> PrepResult:
    """Write ``records`` (train and test, in order) to ``out``. See the module docstring; ``split`` draws
    the split of records without one and checks the test split (see :class:`SplitRule`)."""
    compression = compression or DEFAULT_COMPRESSION
    if split is None and any(r.split is None for r in records):
        raise ValueError("records without a split need a SplitRule")

    t0 = time.perf_counter()
    check_output(out, overwrite)
    if not 8 <= image_size <= 2048:
        raise InputError(f"--image-size must be between 8 and 2048, got {image_size}")
    if not records:
        raise InputError(f"no images found. {layout_hint}")
    if vocab is None:
        # Built from every caption (train then test), present images or not, as the official code does.
        ordered = ([r for r in records if r.split == TRAIN] + [r for r in records if r.split == TEST]
                   + [r for r in records if r.split is None])
        vocab = Vocabulary.build(t for r in ordered for t in r.captions[:captions_per_image])
        log.info("built a vocabulary of %d words from the captions", len(vocab))
    records, n_missing = split_missing(records, allow_missing, layout_hint)
    records = fit_captions(records, captions_per_image)
    ids, records = encode_records(records, vocab)
    if not records:
        raise InputError("no image has a usable caption; nothing to write")
    if split is not None:
        n = len(records)
        _check_split(split, [r.split for r in records], n, f"usable image{'s' if n != 1 else ''}")
    max_len = max(len(c) for caps in ids for c in caps)
    options = dict(prep_options or {})
    options.update({"image_size": image_size, "captions_per_image": captions_per_image})
    n_corrupt: list[str] = []
    jobs = [(r.image_path, image_size, r.crop) for r in records]
    progress = progress or NullProgress()
    pool = ProcessPoolExecutor(workers) if workers > 0 else None
    try:
        results = pool.map(_load_job, jobs, chunksize=8) if pool else map(_load_job, jobs)
        with write_dataset(out, overwrite=overwrite, source=source, image_size=image_size,
                           captions_per_image=captions_per_image, max_len=max_len, vocab=vocab,
                           prep_options=options, capacity=len(records), compression=compression) as w, \
                progress.task(f"writing {source} images", total=len(records), unit="img") as task:
            to_draw: list[int] = []  # rows whose split is drawn once every image has been read
            written: list[int | None] = []
            for r, caps, (img, err) in zip(records, ids, results, strict=False):
                if abort is not None and abort():
                    raise AttnGANError("prep interrupted; no file was written")
                if img is None:
                    n_corrupt.append(f"{r.image_path} ({err})")
                else:
                    if r.split is None:
                        to_draw.append(len(written))
                    w.add(img, caps, r.class_id, r.key, TRAIN if r.split is None else r.split)
                    written.append(r.split)
                task.advance(1)
            if n_corrupt:
                log.warning("skipped %d unreadable or corrupt images: %s", len(n_corrupt), few(n_corrupt, 3))
            if not written:
                raise InputError(f"none of the {len(records)} images could be read (e.g. {n_corrupt[0]})")
            if split is not None:
                n = len(written)
                _check_split(split, written, n, f"readable image{'s' if n != 1 else ''}"
                             + (f", {len(n_corrupt)} unreadable skipped" if n_corrupt else ""))
                if to_draw:
                    drawn = split.draw(len(to_draw))
                    w.set_splits(to_draw, drawn)
                    for row, s in zip(to_draw, drawn.tolist(), strict=True):
                        written[row] = s
            counts = {TRAIN: written.count(TRAIN), TEST: written.count(TEST)}
            if split is not None:
                if counts[TRAIN] == 0:
                    raise InputError(f"no training images: all {len(written)} images written are in the test "
                                     f"split ({split.how})")
                log.info("split: %s (%d train, %d test)", split.how, counts[TRAIN], counts[TEST])
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return PrepResult(path=Path(out), n_images=counts[TRAIN] + counts[TEST], n_train=counts[TRAIN],
                      n_test=counts[TEST], n_missing=n_missing, n_corrupt=len(n_corrupt), vocab_size=len(vocab),
                      seconds=time.perf_counter() - t0)
