"""CUB-200-2011 birds in the official AttnGAN layout."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import read_text, safe_unpickle
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.h5 import TEST, TRAIN, check_output
from attngan_cli.data.records import (
    DEFAULT_IMAGE_SIZE,
    PrepResult,
    Record,
    few,
    vocab_and_options,
    write_records,
)
from attngan_cli.data.tokenizer import read_caption_file
from attngan_cli.data.vocab import Vocabulary

log = logging.getLogger(__name__)

CAPTIONS_PER_IMAGE = 10

LAYOUT = """\
ROOT/                               (the official AttnGAN birds folder, e.g. data/birds)
  CUB_200_2011/images.txt           <id> <class>/<image>.jpg
  CUB_200_2011/bounding_boxes.txt   <id> <x> <y> <width> <height>
  CUB_200_2011/image_class_labels.txt  <id> <class 1..200>   (when class_info.pickle is absent)
  CUB_200_2011/images/<class>/<image>.jpg
  text/<class>/<image>.txt          10 captions per image, one per line
  train/filenames.pickle, test/filenames.pickle   the official split (+ class_info.pickle);
                                    without them CUB_200_2011/train_test_split.txt is used"""


@dataclass(frozen=True)
class OfficialBBoxCrop:
    """The official ``get_imgs`` crop: a square of half-side ``r = int(0.75 * max(w, h))`` around the box
    centre, clipped to the image. The box is ``[x, y, w, h]`` truncated to ints (the official code reads
    ``bounding_boxes.txt`` with ``.astype(int)``)."""

    x: int
    y: int
    w: int
    h: int

    def __call__(self, width: int, height: int) -> tuple[int, int, int, int]:
        r = int(max(self.w, self.h) * 0.75)
        cx = int((2 * self.x + self.w) / 2)
        cy = int((2 * self.y + self.h) / 2)
        return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def _is_int(v: object) -> bool:
    """An int, or a numpy integer scalar (the birds' train/class_info.pickle holds numpy int64)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _read_table(path: Path, ncols: int) -> dict[int, list[str]]:
    """``<id> col...`` lines -> {id: [cols]}; errors name the file and line."""
    if not path.is_file():
        raise InputError(f"{path} is missing. Expected layout:\n{LAYOUT}")
    out: dict[int, list[str]] = {}
    for n, line in enumerate(read_text(path, "CUB table").split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != ncols + 1:
            raise InputError(f"{path}, line {n}: expected '<id>' and {ncols} value(s), got {line.strip()!r}")
        try:
            out[int(parts[0])] = parts[1:]
        except ValueError:
            raise InputError(f"{path}, line {n}: the id {parts[0]!r} is not an integer") from None
    return out


def _split(root: Path, cub: Path, names: dict[int, str]) -> tuple[list[str], list[str], dict[str, int] | None, str]:
    """(train keys, test keys, class id per key or None, description of the split used)."""
    tr, te = root / "train" / "filenames.pickle", root / "test" / "filenames.pickle"
    if tr.is_file() and te.is_file():
        keys = {}
        classes: dict[str, int] | None = {}
        for split, p in (("train", tr), ("test", te)):
            ks = safe_unpickle(p, "the official split file (a list of '<class>/<image>' keys)")
            if not isinstance(ks, (list, tuple)) or not all(isinstance(k, str) for k in ks):
                raise InputError(f"{p}: expected a list of '<class>/<image>' keys")
            keys[split] = list(ks)
            ci = root / split / "class_info.pickle"
            if ci.is_file() and classes is not None:
                ids = safe_unpickle(ci, "the official class_info.pickle (a list of class ids)")
                if not isinstance(ids, (list, tuple)) or not all(_is_int(c) for c in ids):
                    raise InputError(f"{ci}: expected a list of class ids (integers), one per key of {p}")
                if len(ids) != len(ks):
                    raise InputError(f"{ci} has {len(ids)} class ids but {p} lists {len(ks)} images")
                classes.update({k: int(c) for k, c in zip(ks, ids, strict=True)})
            else:
                classes = None
        return keys["train"], keys["test"], classes, (
            f"the official AttnGAN split ({tr.relative_to(root)}, {te.relative_to(root)}: "
            f"{len(keys['train'])} train, {len(keys['test'])} test)")
    if tr.is_file() != te.is_file():
        raise InputError(f"found only one of {tr} and {te}; both are needed for the official split")
    sp = cub / "train_test_split.txt"
    if not sp.is_file():
        raise InputError(f"no split: neither {tr} + {te} nor {sp} exists. Expected layout:\n{LAYOUT}")
    table = _read_table(sp, 1)
    train, test = [], []
    for i, key in names.items():
        if i not in table:
            raise InputError(f"{sp} has no line for image id {i} ({key})")
        (train if table[i][0] == "1" else test).append(key)
    return train, test, None, f"CUB's own split ({sp.relative_to(root)}: {len(train)} train, {len(test)} test)"


def cub_records(root: str | Path, progress: Progress | None = None) -> list[Record]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"CUB folder {root} does not exist. Expected layout:\n{LAYOUT}")
    cub = root / "CUB_200_2011"
    if not cub.is_dir():
        raise InputError(f"{cub} is missing: is {root} the AttnGAN birds folder? Expected layout:\n{LAYOUT}")
    text = root / "text"
    if not text.is_dir():
        raise InputError(f"caption folder {text} is missing. Expected layout:\n{LAYOUT}")
    images = _read_table(cub / "images.txt", 1)
    names = {i: v[0][:-4] if v[0].lower().endswith(".jpg") else v[0] for i, v in images.items()}
    bbox_rows = _read_table(cub / "bounding_boxes.txt", 4)
    bboxes: dict[str, OfficialBBoxCrop] = {}
    for i, key in names.items():
        if i not in bbox_rows:
            raise InputError(f"{cub / 'bounding_boxes.txt'} has no line for image id {i} ({key})")
        try:
            x, y, w, h = (int(float(v)) for v in bbox_rows[i])
        except ValueError:
            raise InputError(f"{cub / 'bounding_boxes.txt'}: bad numbers for image id {i}: {bbox_rows[i]}") from None
        bboxes[key] = OfficialBBoxCrop(x, y, w, h)
    train, test, classes, how = _split(root, cub, names)
    log.info("split: %s", how)
    if classes is None:
        labels = _read_table(cub / "image_class_labels.txt", 1)
        by_key = {key: int(labels[i][0]) for i, key in names.items() if i in labels}
        classes = by_key
    unknown = [k for k in train + test if k not in bboxes]
    if unknown:
        raise InputError(f"{len(unknown)} images of the split are not in {cub / 'images.txt'}: {few(unknown, 3)}")
    records: list[Record] = []
    missing_text: list[str] = []
    skipped_lines = 0
    all_keys = [(k, TRAIN) for k in train] + [(k, TEST) for k in test]
    with (progress or NullProgress()).task("reading captions", total=len(all_keys), unit="file") as task:
        for key, split in all_keys:
            cap_path = text / f"{key}.txt"
            if not cap_path.is_file():
                missing_text.append(str(cap_path))
                task.advance(1)
                continue
            caps, skipped = read_caption_file(cap_path, CAPTIONS_PER_IMAGE)
            skipped_lines += len(skipped)
            if key not in classes:
                raise InputError(f"no class id for {key} (in class_info.pickle or image_class_labels.txt)")
            records.append(Record(key=key, image_path=cub / "images" / f"{key}.jpg", captions=caps,
                                  class_id=classes[key], split=split, crop=bboxes[key]))
            task.advance(1)
    if missing_text:
        raise InputError(f"{len(missing_text)} caption files are missing, e.g. {few(missing_text, 3)}. "
                         f"Expected layout:\n{LAYOUT}")
    if skipped_lines:
        log.warning("skipped %d caption lines without any word (as the official code does)", skipped_lines)
    return records


def prep_cub(root: str | Path, out: str | Path, *, vocab: str | Path | Vocabulary | None = None,
             image_size: int = DEFAULT_IMAGE_SIZE, allow_missing: bool = False, overwrite: bool = False,
             progress: Progress | None = None, abort: Callable[[], bool] | None = None, workers: int = 0,
             compression: str | None = None) -> PrepResult:
    """Prepare CUB at ``root`` (official layout) into ``out``."""
    check_output(out, overwrite)  # before the scan: a bad --out fails at once
    voc, options = vocab_and_options(root, vocab, allow_missing)
    records = cub_records(root, progress)
    return write_records(
        records, out, source="cub", captions_per_image=CAPTIONS_PER_IMAGE, vocab=voc, image_size=image_size,
        allow_missing=allow_missing, overwrite=overwrite, progress=progress, abort=abort, workers=workers,
        prep_options=options,
        layout_hint=f"Expected layout:\n{LAYOUT}", compression=compression)
