"""A custom dataset: a folder of images with captions (per-image .txt, captions.jsonl or captions.csv)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import Progress
from .h5 import TEST, TRAIN
from .records import (
    DEFAULT_IMAGE_SIZE,
    IMAGE_EXTENSIONS,
    PrepResult,
    Record,
    few,
    vocab_and_options,
    write_records,
)
from .tokenizer import read_caption_file, split_caption_lines
from .vocab import Vocabulary

log = logging.getLogger(__name__)

MAX_CAPTIONS = 10

LAYOUT = """\
ROOT/ holds images (.jpg .jpeg .png .bmp .webp ..., in subfolders too) and their captions, one of:
  ROOT/captions.jsonl   one JSON object per line: {"file": "birds/001.jpg", "caption": "a red bird"}
                        (or "captions": [...]); a file may appear on several lines
  ROOT/captions.csv     header row with columns file,caption; one row per caption
  <image>.txt           beside each image (same name stem): one caption per line
  file paths are relative to ROOT. Optional columns / fields: "label" (class name or number, used to
  keep same-class pairs out of the contrastive loss) and "split" (train or test). Without "split",
  --test-fraction of the images (chosen with --seed) form the test split; --labels-from-folders takes
  the class from each image's first folder under ROOT."""


def _table_rows(root: Path) -> tuple[list[dict[str, object]], Path] | None:
    jl, cs = root / "captions.jsonl", root / "captions.csv"
    if jl.is_file():
        rows = []
        with open(jl, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"{jl}, line {n}: not valid JSON ({e.msg})") from None
                if not isinstance(obj, dict) or "file" not in obj or not ("caption" in obj or "captions" in obj):
                    raise InputError(f"{jl}, line {n}: expected an object with \"file\" and \"caption\" (or "
                                     f"\"captions\"), got {line.strip()[:80]!r}")
                obj["_line"] = n
                rows.append(obj)
        return rows, jl
    if cs.is_file():
        with open(cs, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            cols = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "file" not in cols or "caption" not in cols:
                raise InputError(f"{cs}: the header must name the columns 'file' and 'caption' "
                                 f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
            rows = []
            for n, row in enumerate(reader, 2):
                row = {(k or "").strip().lower(): v for k, v in row.items()}
                row["_line"] = n
                rows.append(row)
        return rows, cs
    return None


def folder_records(root: str | Path, *, test_fraction: float = 0.1, seed: int = 0,
                   labels_from_folders: bool = False, progress: Progress | None = None) -> list[Record]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"folder {root} does not exist. Expected layout:\n{LAYOUT}")
    if not 0 <= test_fraction < 1:
        raise InputError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    entries: dict[str, dict[str, object]] = {}  # rel file -> {"captions": [...], "label": ..., "split": ...}
    table = _table_rows(root)
    if table is not None:
        rows, src = table
        log.info("captions from %s (%d rows)", src, len(rows))
        for row in rows:
            rel = str(row["file"]).strip()
            if not rel:
                raise InputError(f"{src}, line {row['_line']}: empty file name")
            e = entries.setdefault(rel, {"captions": [], "label": None, "split": None, "line": row["_line"]})
            texts = row["captions"] if "captions" in row and row.get("captions") is not None else [row.get("caption")]
            if isinstance(texts, str):
                texts = [texts]
            for t in texts:
                toks, _ = split_caption_lines(str(t or "").replace("\n", " "), 1)
                if not toks:
                    log.warning("%s, line %s: caption %r has no words; ignored", src, row["_line"], t)
                e["captions"].extend(toks)  # type: ignore[union-attr]
            for fld in ("label", "split"):
                v = row.get(fld)
                if v not in (None, ""):
                    if e[fld] not in (None, v):
                        raise InputError(f"{src}, line {row['_line']}: {rel} has {fld} {v!r} here but "
                                         f"{e[fld]!r} on an earlier line")
                    e[fld] = v
    else:
        images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not images:
            raise InputError(f"{root} holds no images and no captions.jsonl / captions.csv. Expected layout:\n{LAYOUT}")
        no_text, empty = [], []
        for p in images:
            txt = p.with_suffix(".txt")
            if not txt.is_file():
                no_text.append(str(p.relative_to(root)))
                continue
            caps, _ = read_caption_file(txt, None)
            if not caps:
                empty.append(str(txt))
            entries[str(p.relative_to(root))] = {"captions": caps, "label": None, "split": None}
        if not entries:
            raise InputError(f"none of the {len(images)} images under {root} has a caption file beside it "
                             f"(e.g. {root / Path(no_text[0]).with_suffix('.txt')}). Expected layout:\n{LAYOUT}")
        if no_text:
            log.warning("skipping %d images without a .txt caption file beside them: %s", len(no_text), few(no_text))
        if empty:
            log.warning("%d caption files hold no caption: %s", len(empty), few(empty))
    # split
    splits = {rel: e["split"] for rel, e in entries.items()}
    given = {str(s).strip().lower() for s in splits.values() if s is not None}
    bad = given - {"train", "test", "val"}
    if bad:
        raise InputError(f"unknown split value(s) {', '.join(sorted(bad))}: use train or test")
    rels = sorted(entries)
    if given:
        missing = [r for r in rels if splits[r] is None]
        if missing:
            raise InputError(f"{len(missing)} images have no split while others do: {few(missing, 3)}")
        split_of = {r: TRAIN if str(splits[r]).strip().lower() == "train" else TEST for r in rels}
        how = "the 'split' column"
    else:
        rng = np.random.default_rng(seed)
        n_test = int(round(test_fraction * len(rels)))
        if test_fraction > 0 and len(rels) > 1:
            n_test = min(max(1, n_test), len(rels) - 1)
        test = set(rng.permutation(len(rels))[:n_test].tolist())
        split_of = {r: TEST if i in test else TRAIN for i, r in enumerate(rels)}
        how = f"random, test fraction {test_fraction} (seed {seed})"
    # labels
    labels = {r: entries[r]["label"] for r in rels}
    if labels_from_folders:
        labels = {r: (Path(r).parts[0] if len(Path(r).parts) > 1 else None) for r in rels}
        top = [r for r in rels if labels[r] is None]
        if top:
            raise InputError(f"--labels-from-folders: {len(top)} images are not in a subfolder of {root}: {few(top, 3)}")
    if any(v is not None for v in labels.values()):
        names = sorted({str(v) for v in labels.values() if v is not None},
                       key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, s))
        unlabeled = [r for r in rels if labels[r] is None]
        if unlabeled:
            raise InputError(f"{len(unlabeled)} images have no label while others do: {few(unlabeled, 3)}")
        class_of = {r: names.index(str(labels[r])) for r in rels}
        log.info("%d classes from the labels", len(names))
    else:
        class_of = {r: i for i, r in enumerate(rels)}  # no labels: each image is its own class
    records = [Record(key=r, image_path=root / r, captions=list(entries[r]["captions"]),  # type: ignore[arg-type]
                      class_id=class_of[r], split=split_of[r]) for r in rels]
    n_tr = sum(r.split == TRAIN for r in records)
    log.info("split: %s (%d train, %d test)", how, n_tr, len(records) - n_tr)
    if n_tr == 0:
        raise InputError("no training images (every image is in the test split)")
    return records


def prep_folder(root: str | Path, out: str | Path, *, vocab: str | Path | Vocabulary | None = None,
                image_size: int = DEFAULT_IMAGE_SIZE, captions_per_image: int | None = None,
                test_fraction: float = 0.1, seed: int = 0, labels_from_folders: bool = False,
                allow_missing: bool = False, overwrite: bool = False, progress: Progress | None = None,
                abort: Callable[[], bool] | None = None, workers: int = 0, compression: str | None = None
                ) -> PrepResult:
    voc, options = vocab_and_options(root, vocab, allow_missing, test_fraction=test_fraction, seed=seed, labels_from_folders=labels_from_folders)
    records = folder_records(root, test_fraction=test_fraction, seed=seed, labels_from_folders=labels_from_folders,
                             progress=progress)
    if captions_per_image is None:
        captions_per_image = max(1, min(MAX_CAPTIONS, max(len(r.captions) for r in records)))
        log.info("%d captions per image (the most any image has, at most %d)", captions_per_image, MAX_CAPTIONS)
    elif captions_per_image < 1:
        raise InputError(f"--captions-per-image must be >= 1, got {captions_per_image}")
    return write_records(
        records, out, source="folder", captions_per_image=captions_per_image, vocab=voc, image_size=image_size,
        allow_missing=allow_missing, overwrite=overwrite, progress=progress, abort=abort, workers=workers,
        prep_options=options,
        layout_hint=f"Expected layout:\n{LAYOUT}", compression=compression)
