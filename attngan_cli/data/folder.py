"""A custom dataset: a folder of images with captions (per-image .txt, captions.jsonl or captions.csv)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path, PureWindowsPath

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import read_text
from attngan_cli.core.progress import Progress
from attngan_cli.data.h5 import TEST, TRAIN, check_output
from attngan_cli.data.records import (
    DEFAULT_IMAGE_SIZE,
    IMAGE_EXTENSIONS,
    PrepResult,
    Record,
    SplitRule,
    few,
    vocab_and_options,
    write_records,
)
from attngan_cli.data.tokenizer import read_caption_file, split_caption_lines
from attngan_cli.data.vocab import Vocabulary

log = logging.getLogger(__name__)

MAX_CAPTIONS = 10

LAYOUT = """\
ROOT/ holds images (.jpg .jpeg .png .bmp .webp ..., in subfolders too) and their captions, one of:
  ROOT/captions.jsonl   one JSON object per line: {"file": "birds/001.jpg", "caption": "a red bird"}
                        (or "captions": [...]); a file may appear on several lines
  ROOT/captions.csv     header row with columns file,caption; one row per caption
  <image>.txt           beside each image (same name stem): one caption per line
  file paths are relative to ROOT (and stay inside it). Optional columns / fields: "label" (class name
  or number, used to keep same-class pairs out of the contrastive loss) and "split" (train or test).
  Without "split", --test-fraction of the usable images (chosen with --seed) form the test split; an
  empty test split needs --test-fraction 0. --labels-from-folders takes the class from each image's
  first folder under ROOT."""


def _relative(raw: object, src: Path, line: int, root: Path) -> str:
    """The ``file`` of a table row as a normalised path relative to ROOT; absolute paths and paths that
    leave ROOT (``..``) are refused, naming the file and line."""
    if not isinstance(raw, str):
        raise InputError(f"{src}, line {line}: \"file\" must be a path (a string), got {raw!r}")
    rel = raw.strip()
    if not rel:
        raise InputError(f"{src}, line {line}: empty file name")
    if os.path.isabs(rel) or PureWindowsPath(rel).drive:
        raise InputError(f"{src}, line {line}: file {rel!r} is an absolute path; paths must be relative to {root}")
    norm = os.path.normpath(rel)
    if norm == os.curdir or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise InputError(f"{src}, line {line}: file {rel!r} is outside {root}; paths must be relative to it "
                         "and stay inside it (copy or link the image into the folder)")
    return Path(norm).as_posix()


def _jsonl_rows(path: Path) -> list[dict[str, object]]:
    text = read_text(path, "caption table", "save it as UTF-8 text, one JSON object per line")
    rows = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or "file" not in obj or not ("caption" in obj or "captions" in obj):
            raise InputError(f"{path}, line {n}: expected an object with \"file\" and \"caption\" (or "
                             f"\"captions\"), got {line.strip()[:80]!r}")
        texts = obj["captions"] if obj.get("captions") is not None else obj.get("caption")
        texts = texts if isinstance(texts, list) else [texts]
        for t in texts:
            if not (t is None or isinstance(t, (str, int, float))):
                raise InputError(f"{path}, line {n}: a caption must be a string, got {t!r:.80}")
        rows.append({"file": obj["file"], "captions": texts, "label": obj.get("label"), "split": obj.get("split"),
                     "_line": n})
    return rows


def _csv_rows(path: Path) -> list[dict[str, object]]:
    text = read_text(path, "caption table", "save it as UTF-8 text")
    if text.startswith("\ufeff"):  # a byte-order mark (Excel's "CSV UTF-8")
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[dict[str, object]] = []
    last = 0  # the line the previous row ended on
    try:
        for fields in reader:
            start, last = last + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if any("\n" in f for f in fields):
                raise InputError(f"{path}, line {start}: a quoted field runs on to line {last}: an unterminated "
                                 "quote? Each row must be on one line (close the quote; a line break inside a "
                                 "caption must become a space)")
            if header is None:
                header = [c.strip().lower() for c in fields]
                if "file" not in header or "caption" not in header:
                    raise InputError(f"{path}: the header must name the columns 'file' and 'caption' "
                                     f"(found: {', '.join(fields)})")
                continue
            if len(fields) > len(header):
                raise InputError(f"{path}, line {start}: {len(fields)} fields but the header names {len(header)} "
                                 "columns; quote a caption that holds a comma (\"a red, small bird\")")
            row: dict[str, object] = dict(zip(header, fields, strict=False))
            caption = row.get("caption")
            rows.append({"file": row["file"], "captions": [caption], "label": row.get("label"),
                         "split": row.get("split"), "_line": start})
    except csv.Error as e:
        raise InputError(f"{path}, line {last + 1}: cannot read the row ({e}, at line {reader.line_num}): an "
                         "unterminated or stray quote? Quote a whole field (\"...\") and double a quote inside "
                         "it (\"\")") from None
    if header is None:
        raise InputError(f"{path}: the header must name the columns 'file' and 'caption' (found: nothing)")
    return rows


def _table_rows(root: Path) -> tuple[list[dict[str, object]], Path] | None:
    """Rows ``{"file", "captions" (a list, None or "" for a missing caption), "label", "split", "_line"}``
    of ROOT/captions.jsonl or ROOT/captions.csv, or None when there is neither."""
    jl, cs = root / "captions.jsonl", root / "captions.csv"
    if jl.is_file():
        return _jsonl_rows(jl), jl
    if cs.is_file():
        return _csv_rows(cs), cs
    return None


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def folder_records(root: str | Path, *, test_fraction: float = 0.1, seed: int = 0,
                   labels_from_folders: bool = False, progress: Progress | None = None
                   ) -> tuple[list[Record], SplitRule]:
    """The records of a custom folder and the rule that completes their split: with a 'split' column
    each record has its split; without one the split is drawn by :func:`write_records` among the images
    actually written (``test_fraction`` of them, chosen with ``seed``). An empty test split is refused
    unless ``test_fraction`` is 0."""
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
            line = row["_line"]
            rel = _relative(row["file"], src, line, root)  # type: ignore[arg-type]
            e = entries.setdefault(rel, {"captions": [], "label": None, "split": None, "line": line})
            for t in row["captions"]:  # type: ignore[attr-defined]
                if t is None or (isinstance(t, str) and not t.strip()):
                    log.warning("%s, line %s: the row has no caption; ignored", src, line)
                    continue
                toks, _ = split_caption_lines(str(t).replace("\n", " "), 1)
                if not toks:
                    log.warning("%s, line %s: caption %r has no words; ignored", src, line, t)
                e["captions"].extend(toks)  # type: ignore[union-attr]
            for fld in ("label", "split"):
                v = row.get(fld)
                if v not in (None, ""):
                    if e[fld] not in (None, v):
                        raise InputError(f"{src}, line {line}: {rel} has {fld} {v!r} here but "
                                         f"{e[fld]!r} on an earlier line")
                    e[fld] = v
        if not entries:
            raise InputError(f"{src} lists no image (only a header or empty lines). Expected layout:\n{LAYOUT}")
        unlisted = [r for r in (p.relative_to(root).as_posix() for p in _image_files(root)) if r not in entries]
        if unlisted:
            log.warning("%d images under %s are not listed in %s and are left out: %s", len(unlisted), root,
                        src.name, few(unlisted))
        split_source = f"the 'split' column of {src.name}"
    else:
        images = _image_files(root)
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
            entries[p.relative_to(root).as_posix()] = {"captions": caps, "label": None, "split": None}
        if not entries:
            raise InputError(f"none of the {len(images)} images under {root} has a caption file beside it "
                             f"(e.g. {root / Path(no_text[0]).with_suffix('.txt')}). Expected layout:\n{LAYOUT}")
        if no_text:
            log.warning("skipping %d images without a .txt caption file beside them: %s", len(no_text), few(no_text))
        if empty:
            log.warning("%d caption files hold no caption: %s", len(empty), few(empty))
        split_source = ""
    # split
    splits = {rel: e["split"] for rel, e in entries.items()}
    given = {str(s).strip().lower() for s in splits.values() if s is not None}
    bad = given - {"train", "test", "val"}
    if bad:
        raise InputError(f"unknown split value(s) {', '.join(sorted(bad))}: use train or test")
    rels = sorted(entries)
    split_of: dict[str, int | None]
    if given:
        missing = [r for r in rels if splits[r] is None]
        if missing:
            raise InputError(f"{len(missing)} images have no split while others do: {few(missing, 3)}")
        split_of = {r: TRAIN if str(splits[r]).strip().lower() == "train" else TEST for r in rels}
        if all(s == TEST for s in split_of.values()):
            raise InputError(f"no training images: {split_source} puts every image in the test split")
        rule = SplitRule(split_source, allow_empty_test=test_fraction == 0,
                         hint="Mark some images 'test', or pass --test-fraction 0 to prepare without a test split.")
    else:
        split_of = dict.fromkeys(rels)  # drawn among the images actually written
        rule = SplitRule(f"random, test fraction {test_fraction:g}, seed {seed}", test_fraction=test_fraction,
                         seed=seed, allow_empty_test=test_fraction == 0,
                         hint="Add images, or pass --test-fraction 0 to prepare without a test split.")
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
    return records, rule


def prep_folder(root: str | Path, out: str | Path, *, vocab: str | Path | Vocabulary | None = None,
                image_size: int = DEFAULT_IMAGE_SIZE, captions_per_image: int | None = None,
                test_fraction: float = 0.1, seed: int = 0, labels_from_folders: bool = False,
                allow_missing: bool = False, overwrite: bool = False, progress: Progress | None = None,
                abort: Callable[[], bool] | None = None, workers: int = 0, compression: str | None = None
                ) -> PrepResult:
    check_output(out, overwrite)
    voc, options = vocab_and_options(root, vocab, allow_missing, test_fraction=test_fraction, seed=seed,
                                     labels_from_folders=labels_from_folders)
    records, rule = folder_records(root, test_fraction=test_fraction, seed=seed,
                                   labels_from_folders=labels_from_folders, progress=progress)
    if captions_per_image is None:
        captions_per_image = max(1, min(MAX_CAPTIONS, max(len(r.captions) for r in records)))
        log.info("%d captions per image (the most any image has, at most %d)", captions_per_image, MAX_CAPTIONS)
    elif captions_per_image < 1:
        raise InputError(f"--captions-per-image must be >= 1, got {captions_per_image}")
    return write_records(
        records, out, source="folder", captions_per_image=captions_per_image, vocab=voc, image_size=image_size,
        allow_missing=allow_missing, overwrite=overwrite, progress=progress, abort=abort, workers=workers,
        prep_options=options, layout_hint=f"Expected layout:\n{LAYOUT}", compression=compression, split=rule)
