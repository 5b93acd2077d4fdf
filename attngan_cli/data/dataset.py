"""The training-side Dataset over a prepared HDF5 file (official augmentation and caption sampling)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image

from attngan_cli.core.errors import InputError
from attngan_cli.data.h5 import SPLIT_NAMES, damaged_file, open_h5, read_info

log = logging.getLogger(__name__)


def pad_caption(ids: np.ndarray | Sequence[int], words: int, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, int]:
    """The official ``get_caption``: ids 0-padded to ``words``; a longer caption keeps a random subset of
    ``words`` of its tokens in their original order. Returns ``(LongTensor (words,), length)``."""
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    out = torch.zeros(words, dtype=torch.long)
    if n <= words:
        out[:n] = torch.from_numpy(ids)
        return out, n
    keep = torch.randperm(n, generator=generator)[:words].sort().values.numpy()
    out[:] = torch.from_numpy(ids[keep])
    return out, words


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float (3, H, W) in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # (H, W, 3)
    return a.permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def _resize(img: Image.Image, size: int) -> Image.Image:
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.BILINEAR)


class TextImageDataset(torch.utils.data.Dataset):
    """Items of one split of a file written by ``attngan prep``.

    ``__getitem__(i)`` returns ``{"images": [(3, s, s) in [-1, 1] per s in image_sizes], "caption":
    LongTensor (words,), "length": int, "class_id": int, "index": int (HDF5 row), "key": str,
    "caption_index": int}``. The HDF5 file is opened lazily in each process (the object pickles without
    its handle, so DataLoader workers each open their own).

    Augmentation (``augment=True``, the official transform): resize to ``int(max_size * 76 / 64)``,
    random crop to ``max_size``, random horizontal flip, then each smaller size is a resize of that
    crop. Without augmentation each size is a plain resize of the stored image. Built-in shapes data is
    never augmented (its captions name positions, which crops and flips would falsify). Randomness comes from
    torch's global generator (seeded per DataLoader worker by PyTorch).
    """

    def __init__(self, path: str | os.PathLike[str], split: str = "train",
                 image_sizes: Sequence[int] = (64, 128, 256), words: int = 18, augment: bool = True,
                 caption_index: int | None = None) -> None:
        self.path = Path(path)
        if split not in ("train", "test", "all"):
            raise InputError(f"split must be train, test or all, got {split!r}")
        self.split = split
        self.image_sizes = [int(s) for s in image_sizes]
        if not self.image_sizes:
            raise InputError("image_sizes is empty")
        self.words = int(words)
        if self.words < 1:
            raise InputError(f"words must be >= 1, got {words}")
        self.info = read_info(self.path)
        # Shapes captions name positions ("at the top left", "on the right"): a crop or a flip would make
        # them false, so that data is never augmented, whatever is asked.
        self.augment = augment and self.info.source != "shapes"
        augment = self.augment
        self.vocab = self.info.vocab
        if caption_index is not None and not 0 <= caption_index < self.info.captions_per_image:
            raise InputError(f"caption_index {caption_index} is out of range: {self.path} has "
                             f"{self.info.captions_per_image} captions per image")
        self.caption_index = caption_index
        with open_h5(self.path) as f, damaged_file(self.path, "its split or class ids"):
            split_arr = f["split"][()]
            all_class_ids = f["class_ids"][()].astype(np.int64)
        if split == "all":
            self.indices = np.arange(len(split_arr), dtype=np.int64)
        else:
            self.indices = np.flatnonzero(split_arr == SPLIT_NAMES[split]).astype(np.int64)
        if len(self.indices) == 0:
            raise InputError(f"{self.path} has no {split} images")
        self.class_ids = all_class_ids[self.indices]
        max_size = max(self.image_sizes)
        self.load_size = int(max_size * 76 / 64) if augment else max_size
        if self.info.image_size < self.load_size:
            log.warning("%s stores %d px images; training at %d px upsamples them (prep with --image-size %d "
                        "for full detail)", self.path, self.info.image_size, max_size, self.load_size)
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._caps: np.ndarray | None = None
        self._lens: np.ndarray | None = None
        self._keys: list[str] | None = None

    # ------------------------------------------------------------------ lazy per-process state
    def _open(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            return
        h5 = open_h5(self.path)
        try:
            with damaged_file(self.path, "its captions or keys"):
                caps = h5["captions"][()]  # (N, C, L), small: kept in memory
                lens = h5["caption_lengths"][()]  # (N, C)
                keys = h5["keys"][()]
        except BaseException:
            h5.close()
            raise
        self._h5, self._pid, self._images = h5, os.getpid(), h5["images"]
        self._caps, self._lens = caps, lens
        self._keys = [k.decode("utf-8") if isinstance(k, bytes) else str(k) for k in keys]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_h5", "_pid", "_images", "_caps", "_lens", "_keys"):
            state[k] = None
        return state

    def close(self) -> None:
        if self._h5 is not None:
            try:
                self._h5.close()
            finally:
                self._h5 = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.indices)

    def row(self, i: int) -> int:
        return int(self.indices[i])

    def key(self, i: int) -> str:
        self._open()
        return self._keys[self.row(i)]  # type: ignore[index]

    def attribute_values(self, name: str) -> np.ndarray:
        """The stored attribute ``name`` (value indices, shapes data) of every item: (len,) int64."""
        self.info.check_attributes([name])
        with open_h5(self.path) as f, damaged_file(self.path, f"its attribute {name!r}"):
            return np.asarray(f["attributes"][name][()], dtype=np.int64)[self.indices]

    def captions(self, i: int) -> list[tuple[torch.Tensor, int]]:
        """All captions of item ``i``, unpadded: ``[(LongTensor (len,), len), ...]``."""
        self._open()
        r = self.row(i)
        out = []
        for c in range(self._caps.shape[1]):  # type: ignore[union-attr]
            n = int(self._lens[r, c])  # type: ignore[index]
            out.append((torch.from_numpy(self._caps[r, c, :n].astype(np.int64)), n))  # type: ignore[index]
        return out

    def raw_image(self, i: int) -> np.ndarray:
        """The stored uint8 image (S, S, 3) of item ``i``."""
        self._open()
        r = self.row(i)
        try:
            return self._images[r]
        except OSError as e:  # a damaged chunk: "Can't read data (filter returned failure ...)"
            raise InputError(f"{self.path} is damaged: the image of item {i} ({self.split} split; row {r}, key "
                             f"{self._keys[r]!r}) cannot be read ({e}); prepare the file again with "  # type: ignore[index]
                             "`attngan prep`") from None

    def images(self, i: int) -> list[torch.Tensor]:
        img = Image.fromarray(self.raw_image(i))
        max_size = max(self.image_sizes)
        if self.augment:
            img = _resize(img, self.load_size)
            x = int(torch.randint(0, self.load_size - max_size + 1, ()).item())
            y = int(torch.randint(0, self.load_size - max_size + 1, ()).item())
            img = img.crop((x, y, x + max_size, y + max_size))
            if torch.rand(()) < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            return [_to_tensor(img if s == max_size else _resize(img, s)) for s in self.image_sizes]
        return [_to_tensor(_resize(img, s)) for s in self.image_sizes]  # each size straight from the stored image

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        self._open()
        r = self.row(i)
        C = self._caps.shape[1]  # type: ignore[union-attr]
        c = self.caption_index if self.caption_index is not None else int(torch.randint(0, C, ()).item())
        n = int(self._lens[r, c])  # type: ignore[index]
        caption, length = pad_caption(self._caps[r, c, :n], self.words)  # type: ignore[index]
        return {
            "images": self.images(i),
            "caption": caption,
            "length": length,
            "class_id": int(self.class_ids[i]),
            "index": r,
            "key": self._keys[r],  # type: ignore[index]
            "caption_index": c,
        }
