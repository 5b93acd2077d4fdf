"""The prepared-dataset HDF5 format (one file per dataset) and its reader / writer.

Layout (``N`` images, ``S`` stored size, ``C`` captions per image, ``L`` longest caption, ``V`` words)::

    /images            uint8 (N, S, S, 3)   attr image_size = S; one chunk per image
    /captions          int32 (N, C, L)      word ids, 0-padded
    /caption_lengths   int32 (N, C)
    /class_ids         int32 (N,)
    /keys              str   (N,)           e.g. "001.Black_footed_Albatross/Black_Footed_Albatross_0088_796133"
    /split             uint8 (N,)           0 = train, 1 = test
    /vocab             str   (V,)           index 0 = "<end>"
    /attributes/<name> int   (N,)           optional (shapes); attr values = JSON list of value names
    file attrs: format="attngan-data", format_version=1, source, prep_options (JSON),
                captions_per_image, image_size
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from attngan_cli.core.errors import InputError, OutputError
from attngan_cli.core.fileio import atomic_path, check_output_location, sigterm_as_interrupt
from attngan_cli.data.vocab import Vocabulary

FORMAT = "attngan-data"
FORMAT_VERSION = 1
TRAIN, TEST = 0, 1
SPLIT_NAMES = {"train": TRAIN, "test": TEST}
SOURCES = ("cub", "coco", "folder", "shapes")

# Image storage: one chunk per image (a random access reads exactly one chunk). Measured with
# benchmarks/bench_prep.py on this 2-core CPU: 76 px shapes: none 17.1 KiB/image, lzf 0.8 KiB (4.9%),
# gzip-1 0.7 KiB, reads 0.03-0.06 ms/image for all; 304 px CUB photos: none 271 KiB, 0.09 ms/read;
# lzf 229 KiB (84%), 1.2 ms/read; gzip-1 191 KiB (71%), 1.9 ms/read (a full 64/128/256 augmented item
# costs ~5.6 ms). lzf: 20x smaller synthetic files, 16% smaller photo files, cheap to decode.
DEFAULT_COMPRESSION = "lzf"
COMPRESSIONS = ("none", "lzf", "gzip")


@dataclass
class DatasetInfo:
    path: Path
    source: str
    n_images: int
    n_train: int
    n_test: int
    image_size: int
    captions_per_image: int
    max_len: int
    vocab: Vocabulary
    attributes: dict[str, list[str]] = field(default_factory=dict)
    prep_options: dict[str, Any] = field(default_factory=dict)

    def check_attributes(self, names: Sequence[str], what: str = "") -> None:
        """Raise :class:`InputError` naming the first of ``names`` that this file does not store."""
        for name in names:
            if name not in self.attributes:
                known = ", ".join(self.attributes) or "none"
                raise InputError(f"{what + ' ' if what else ''}{self.path} stores no attribute {name!r} "
                                 f"(its attributes: {known})")

    def summary(self) -> str:
        return (f"{self.path}: {self.source}, {self.n_images} images ({self.n_train} train, {self.n_test} test) "
                f"at {self.image_size} px, {self.captions_per_image} captions each (longest {self.max_len} words), "
                f"{len(self.vocab)} words")


def open_h5(path: str | os.PathLike[str]) -> h5py.File:
    """Open a prepared file read-only, checking that it is one. Raises :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"dataset file {path} does not exist (make one with `attngan prep`)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path} is not a readable HDF5 file ({e}); make one with `attngan prep`") from None
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        f.close()
        raise InputError(f"{path} is not a dataset written by `attngan prep` (format attribute {fmt!r})")
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        f.close()
        raise InputError(f"{path} has dataset format version {version}; this attngan reads version {FORMAT_VERSION}")
    missing = [k for k in ("images", "captions", "caption_lengths", "class_ids", "keys", "split", "vocab") if k not in f]
    if missing:
        f.close()
        raise InputError(f"{path} lacks {', '.join('/' + m for m in missing)}: an incomplete or foreign file")
    return f


@contextlib.contextmanager
def damaged_file(path: str | os.PathLike[str], what: str = "") -> Iterator[None]:
    """Turn the ``OSError`` h5py raises on a damaged chunk ("Can't read data (filter returned failure)")
    into an :class:`InputError` naming the file and ``what`` was being read."""
    try:
        yield
    except OSError as e:
        raise InputError(f"{path} is damaged: {what or 'its data'} cannot be read ({e}); prepare it again "
                         "with `attngan prep`") from None


def _strs(ds: h5py.Dataset) -> list[str]:
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in ds[()]]


def read_vocab(path: str | os.PathLike[str]) -> Vocabulary:
    with open_h5(path) as f, damaged_file(path, "its vocabulary"):
        return Vocabulary(_strs(f["vocab"]))


def read_vocabulary(path: str | os.PathLike[str]) -> Vocabulary:
    """A vocabulary from a prepared HDF5 file (its ``/vocab``), the official ``captions.pickle`` or a JSON
    vocabulary (:meth:`Vocabulary.load`)."""
    with open(path, "rb") if Path(path).is_file() else contextlib.nullcontext(None) as f:
        head = f.read(8) if f is not None else b""
    return read_vocab(path) if head.startswith(b"\x89HDF") else Vocabulary.load(path)


def read_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """Describe a prepared dataset file. Missing or invalid file -> :class:`InputError` naming it."""
    path = Path(path)
    with open_h5(path) as f, damaged_file(path):
        split = f["split"][()]
        attributes = {}
        if "attributes" in f:
            for name, ds in f["attributes"].items():
                attributes[name] = json.loads(ds.attrs.get("values", "[]"))
        try:
            prep_options = json.loads(f.attrs.get("prep_options", "{}"))
        except json.JSONDecodeError:
            prep_options = {}
        source = f.attrs.get("source", "")
        return DatasetInfo(
            path=path,
            source=source.decode() if isinstance(source, bytes) else str(source),
            n_images=int(f["images"].shape[0]),
            n_train=int((split == TRAIN).sum()),
            n_test=int((split == TEST).sum()),
            image_size=int(f["images"].shape[1]),
            captions_per_image=int(f["captions"].shape[1]),
            max_len=int(f["captions"].shape[2]),
            vocab=Vocabulary(_strs(f["vocab"])),
            attributes=attributes,
            prep_options=prep_options,
        )


class H5Writer:
    """Append images with their captions, then :meth:`finish`. Rows are buffered and written in blocks.

    ``captions`` given to :meth:`add` must hold exactly ``captions_per_image`` id lists, each at most
    ``max_len`` long and at least 1 long.
    """

    def __init__(self, path: Path, *, source: str, image_size: int, captions_per_image: int, max_len: int,
                 vocab: Vocabulary, prep_options: dict[str, Any], capacity: int,
                 attributes: dict[str, Sequence[str]] | None = None, compression: str = DEFAULT_COMPRESSION,
                 block: int = 256) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        if compression not in COMPRESSIONS:
            raise InputError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        self.path = Path(path)
        self.S, self.C, self.L = int(image_size), int(captions_per_image), max(1, int(max_len))
        self.capacity = max(1, int(capacity))
        self.block = block
        self.attr_names = list(attributes or {})
        self.f = h5py.File(self.path, "w")
        self._fd: int | None = self.f.id.get_vfd_handle()  # the file's descriptor while it is open (see abort)
        f = self.f
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["source"] = source
        f.attrs["prep_options"] = json.dumps(prep_options, default=str)
        f.attrs["captions_per_image"] = self.C
        f.attrs["image_size"] = self.S
        S, C, L, n = self.S, self.C, self.L, self.capacity
        comp: dict[str, Any] = {}
        if compression == "lzf":
            comp = {"compression": "lzf"}
        elif compression == "gzip":
            comp = {"compression": "gzip", "compression_opts": 1}
        self.images = f.create_dataset("images", (n, S, S, 3), dtype="uint8", maxshape=(None, S, S, 3),
                                       chunks=(1, S, S, 3), **comp)
        self.images.attrs["image_size"] = S
        rows = min(n, 4096)
        self.captions = f.create_dataset("captions", (n, C, L), dtype="int32", maxshape=(None, C, L),
                                         chunks=(rows, C, L), compression="gzip", compression_opts=4)
        self.lengths = f.create_dataset("caption_lengths", (n, C), dtype="int32", maxshape=(None, C),
                                        chunks=(rows, C))
        self.class_ids = f.create_dataset("class_ids", (n,), dtype="int32", maxshape=(None,), chunks=(rows,))
        self.split = f.create_dataset("split", (n,), dtype="uint8", maxshape=(None,), chunks=(rows,))
        str_dt = h5py.string_dtype("utf-8")
        self.keys = f.create_dataset("keys", (n,), dtype=str_dt, maxshape=(None,), chunks=(rows,))
        f.create_dataset("vocab", data=np.array(vocab.words, dtype=object), dtype=str_dt)
        self.attrs_ds = {}
        for name, values in (attributes or {}).items():
            ds = f.create_dataset(f"attributes/{name}", (n,), dtype="int16", maxshape=(None,), chunks=(rows,))
            ds.attrs["values"] = json.dumps(list(values))
            self.attrs_ds[name] = ds
        self.n = 0
        self._buf: list[tuple] = []

    def add(self, image: np.ndarray, captions: Sequence[Sequence[int]], class_id: int, key: str, split: int,
            attributes: dict[str, int] | None = None) -> None:
        if image.shape != (self.S, self.S, 3) or image.dtype != np.uint8:
            raise ValueError(f"image for {key} is {image.shape} {image.dtype}, expected ({self.S}, {self.S}, 3) uint8")
        if len(captions) != self.C:
            raise ValueError(f"{key}: {len(captions)} captions, expected {self.C}")
        caps = np.zeros((self.C, self.L), dtype=np.int32)
        lens = np.zeros((self.C,), dtype=np.int32)
        for c, ids in enumerate(captions):
            if not 1 <= len(ids) <= self.L:
                raise ValueError(f"{key}: caption {c} has {len(ids)} words (1..{self.L} expected)")
            caps[c, : len(ids)] = ids
            lens[c] = len(ids)
        attrs = [int((attributes or {})[a]) for a in self.attr_names]
        self._buf.append((image, caps, lens, int(class_id), key, int(split), attrs))
        if len(self._buf) >= self.block:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        k = len(self._buf)
        a, b = self.n, self.n + k
        if b > self.capacity:
            self.capacity = max(b, self.capacity * 2)
            for ds in self._all():
                ds.resize(self.capacity, axis=0)
        self.images[a:b] = np.stack([r[0] for r in self._buf])
        self.captions[a:b] = np.stack([r[1] for r in self._buf])
        self.lengths[a:b] = np.stack([r[2] for r in self._buf])
        self.class_ids[a:b] = np.array([r[3] for r in self._buf], dtype=np.int32)
        self.keys[a:b] = np.array([r[4] for r in self._buf], dtype=object)
        self.split[a:b] = np.array([r[5] for r in self._buf], dtype=np.uint8)
        for j, name in enumerate(self.attr_names):
            self.attrs_ds[name][a:b] = np.array([r[6][j] for r in self._buf], dtype=np.int16)
        self.n = b
        self._buf.clear()

    def set_splits(self, rows: Sequence[int], splits: Sequence[int] | np.ndarray) -> None:
        """Set the split of rows already added (a split drawn once every image has been read)."""
        self._flush()
        if len(rows) == 0:
            return
        current = self.split[: self.n]
        current[np.asarray(rows, dtype=np.int64)] = np.asarray(splits, dtype=np.uint8)
        self.split[: self.n] = current

    def _all(self) -> list[h5py.Dataset]:
        return [self.images, self.captions, self.lengths, self.class_ids, self.keys, self.split,
                *self.attrs_ds.values()]

    def finish(self) -> int:
        """Flush, trim to the rows written and close. Returns the number of images."""
        self._flush()
        if self.n == 0:
            self.abort()
            raise InputError("no usable images: nothing to write")
        for ds in self._all():
            ds.resize(self.n, axis=0)
        self.f.flush()  # a full disk fails here, with the file still open for abort (a failed close leaves it half-closed)
        self.f.close()
        self._fd = None
        return self.n

    def abort(self) -> None:
        """Close the file after a failed or interrupted write (it is then deleted). HDF5's closing writes
        go to the null device: on a full disk they would fail and leave the file open, and HDF5 would
        flush it again at exit and crash the interpreter (a segfault)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, self._fd)
                finally:
                    os.close(null)
        with contextlib.suppress(Exception):
            self.f.close()
        self._fd = None


def check_output(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse to replace an existing output unless ``overwrite``, and an output that cannot be created (a
    file where a folder of its path should be, a read-only folder: :class:`~attngan_cli.core.fileio.OutputError`)."""
    out = Path(out)
    try:
        is_dir, exists = out.is_dir(), out.exists()
    except PermissionError:
        raise OutputError(f"cannot write {out}: no permission to look into {out.parent}; choose another output "
                          "path") from None
    if is_dir:
        raise InputError(f"output {out} is a directory; give a file name such as {out / 'data.h5'}")
    if exists and not overwrite:
        raise InputError(f"{out} already exists; pass --overwrite to replace it")
    check_output_location(out)
    return out


@contextlib.contextmanager
def write_dataset(out: str | os.PathLike[str], *, overwrite: bool = False, **kwargs: Any) -> Iterator[H5Writer]:
    """Context manager: an :class:`H5Writer` on a temporary file renamed to ``out`` when the block ends
    without error (an interrupted prep, by Ctrl-C or SIGTERM, leaves no file behind; ``out`` is replaced
    only with ``overwrite``)."""
    out = check_output(out, overwrite)
    with sigterm_as_interrupt(), atomic_path(out, suffix=".h5") as tmp:
        writer = H5Writer(tmp, **kwargs)
        try:
            yield writer
            writer.finish()
        except BaseException:
            writer.abort()
            raise
