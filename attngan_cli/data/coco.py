"""MS-COCO captions: the official AttnGAN layout or the standard annotation JSON files."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import safe_unpickle
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
from attngan_cli.data.tokenizer import read_caption_file, split_caption_lines
from attngan_cli.data.vocab import Vocabulary

log = logging.getLogger(__name__)

CAPTIONS_PER_IMAGE = 5

LAYOUT = """\
either the official AttnGAN COCO folder:
  ROOT/train/filenames.pickle, ROOT/test/filenames.pickle   lists of image keys (Python 2 pickles)
  ROOT/text/<key>.txt                                       5 captions per image, one per line
  ROOT/images/<key>.jpg
or the standard COCO download:
  ROOT/annotations/captions_train2014.json, captions_val2014.json   (train -> train, val -> test;
                                            2017 names work too)
  ROOT/train2014/<file_name>, ROOT/val2014/<file_name>"""


def _official_records(root: Path, progress: Progress | None) -> list[Record]:
    records: list[Record] = []
    keys = {}
    for split in ("train", "test"):
        p = root / split / "filenames.pickle"
        ks = safe_unpickle(p, "the official split file (a list of image keys)")
        if not isinstance(ks, (list, tuple)) or not all(isinstance(k, str) for k in ks):
            raise InputError(f"{p}: expected a list of image keys (strings)")
        keys[split] = ks
    log.info("split: the official AttnGAN split (%d train, %d test)", len(keys["train"]), len(keys["test"]))
    missing_text = []
    n = len(keys["train"]) + len(keys["test"])
    index = 0
    with (progress or NullProgress()).task("reading captions", total=n, unit="file") as task:
        for split, sid in (("train", TRAIN), ("test", TEST)):
            for key in keys[split]:
                cap_path = root / "text" / f"{key}.txt"
                task.advance(1)
                if not cap_path.is_file():
                    missing_text.append(str(cap_path))
                    continue
                caps, _ = read_caption_file(cap_path, CAPTIONS_PER_IMAGE)
                # The official code has no COCO class labels: each image is its own class.
                records.append(Record(key=key, image_path=root / "images" / f"{key}.jpg", captions=caps,
                                      class_id=index, split=sid))
                index += 1
    if missing_text:
        raise InputError(f"{len(missing_text)} caption files are missing, e.g. {few(missing_text, 3)}. "
                         f"Expected layout:\n{LAYOUT}")
    return records


def _json_records(root: Path, files: list[Path], progress: Progress | None) -> list[Record]:
    records: list[Record] = []
    index = 0
    for path in files:
        m = re.fullmatch(r"captions_(.+)\.json", path.name)
        part = m.group(1) if m else path.stem
        if part.startswith("train"):
            split = TRAIN
        elif part.startswith(("val", "test")):
            split = TEST
        else:
            log.warning("ignoring %s: neither a train nor a val/test caption file", path)
            continue
        image_dir = root / part
        if not image_dir.is_dir():
            raise InputError(f"{path} needs the image folder {image_dir}, which does not exist. "
                             f"Expected layout:\n{LAYOUT}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            images = {int(im["id"]): im["file_name"] for im in data["images"]}
            anns = sorted(data["annotations"], key=lambda a: (int(a["image_id"]), int(a.get("id", 0))))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read {path} as COCO caption annotations: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{path}: not COCO caption annotations (need 'images' with id / file_name and "
                             f"'annotations' with image_id / caption; problem: {e!r})") from None
        caps: dict[int, list[list[str]]] = {i: [] for i in images}
        orphans = 0
        with (progress or NullProgress()).task(f"tokenizing {path.name}", total=len(anns), unit="cap") as task:
            for a in anns:
                task.advance(1)
                iid = int(a["image_id"])
                if iid not in caps:
                    orphans += 1
                    continue
                toks, _ = split_caption_lines(str(a.get("caption", "")).replace("\n", " "), 1)
                caps[iid].extend(toks)
        if orphans:
            log.warning("%s: %d captions refer to image ids not listed under 'images'; ignored", path, orphans)
        for iid in sorted(images):
            fname = images[iid]
            records.append(Record(key=Path(fname).stem, image_path=image_dir / fname, captions=caps[iid],
                                  class_id=index, split=split))
            index += 1
        log.info("%s: %d images, %d captions -> %s", path.name, len(images), len(anns),
                 "train" if split == TRAIN else "test")
    return records


def coco_records(root: str | Path, progress: Progress | None = None) -> list[Record]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"COCO folder {root} does not exist. Expected layout:\n{LAYOUT}")
    if (root / "train" / "filenames.pickle").is_file() or (root / "test" / "filenames.pickle").is_file():
        for need in (root / "train" / "filenames.pickle", root / "test" / "filenames.pickle", root / "text"):
            if not need.exists():
                raise InputError(f"{need} is missing (official AttnGAN COCO layout). Expected layout:\n{LAYOUT}")
        return _official_records(root, progress)
    files = sorted((root / "annotations").glob("captions_*.json"))
    if not files:
        raise InputError(f"{root} has neither train/filenames.pickle (official AttnGAN layout) nor "
                         f"annotations/captions_*.json (standard COCO). Expected layout:\n{LAYOUT}")
    records = _json_records(root, files, progress)
    if not any(r.split == TRAIN for r in records):
        raise InputError(f"no training images: {root / 'annotations'} has no captions_train*.json")
    return records


def prep_coco(root: str | Path, out: str | Path, *, vocab: str | Path | Vocabulary | None = None,
              image_size: int = DEFAULT_IMAGE_SIZE, captions_per_image: int = CAPTIONS_PER_IMAGE,
              allow_missing: bool = False, overwrite: bool = False, progress: Progress | None = None,
              abort: Callable[[], bool] | None = None, workers: int = 0, compression: str | None = None
              ) -> PrepResult:
    check_output(out, overwrite)  # before the scan: a bad --out fails at once
    voc, options = vocab_and_options(root, vocab, allow_missing)
    records = coco_records(root, progress)
    return write_records(
        records, out, source="coco", captions_per_image=captions_per_image, vocab=voc, image_size=image_size,
        allow_missing=allow_missing, overwrite=overwrite, progress=progress, abort=abort, workers=workers,
        prep_options=options,
        layout_hint=f"Expected layout:\n{LAYOUT}", compression=compression)
