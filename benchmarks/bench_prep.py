"""Prep and DataLoader throughput, and the HDF5 image-compression trade-off (prints numbers).

    python benchmarks/bench_prep.py [--quick]

1. `attngan prep shapes` throughput (images/s) at 76 px.
2. CUB image stage on the real folder's present images (../shared/cub/birds, 9 images) when present.
3. Image storage: file size and random-access read speed for none / lzf / gzip on photo-like 304 px
   images (the real CUB crops, shifted and flipped, when present; else smooth synthetic images) and on
   shapes.
4. DataLoader throughput: batches/s at batch 20 for the 3-stage 64/128/256 pyramid from a 304 px file,
   with 0 and 2 workers.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from attngan_cli.data.dataset import TextImageDataset
from attngan_cli.data.h5 import COMPRESSIONS, write_dataset
from attngan_cli.data.records import load_image
from attngan_cli.data.shapes import make_shapes
from attngan_cli.data.vocab import Vocabulary

SHARED = Path(os.environ.get("ATTNGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def photo_like(n: int, size: int) -> np.ndarray:
    cub = SHARED / "cub" / "birds"
    base = []
    if (cub / "CUB_200_2011" / "images").is_dir():
        for p in sorted((cub / "CUB_200_2011" / "images").rglob("*.jpg")):
            base.append(load_image(p, size + 40))
    rng = np.random.default_rng(0)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        if base:
            b = base[i % len(base)]
            dx, dy = rng.integers(0, 41, 2)
            img = b[dy:dy + size, dx:dx + size]
            out[i] = img[:, ::-1] if i % 2 else img
        else:  # smooth noise: low-resolution noise upsampled, plus a little grain
            low = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(i))
            up = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
            img = (up[0].permute(1, 2, 0).clamp(0, 1) * 255).numpy() + rng.normal(0, 4, (size, size, 3))
            out[i] = img.clip(0, 255).astype(np.uint8)
    return out, bool(base)


def write_images(path: Path, images: np.ndarray, compression: str) -> float:
    vocab = Vocabulary(["<end>", "a", "bird"])
    t = time.perf_counter()
    with write_dataset(path, overwrite=True, source="folder", image_size=images.shape[1], captions_per_image=1,
                       max_len=2, vocab=vocab, prep_options={}, capacity=len(images), compression=compression) as w:
        for i, img in enumerate(images):
            w.add(img, [[1, 2]], i, f"img{i}", 0 if i % 10 else 1)
    return time.perf_counter() - t


def random_read(path: Path, reads: int = 300) -> float:
    with h5py.File(path) as f:
        ds = f["images"]
        idx = np.random.default_rng(0).integers(0, ds.shape[0], reads)
        t = time.perf_counter()
        for i in idx:
            ds[int(i)]
        return (time.perf_counter() - t) / reads * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_prep_"))
    n_shapes = 1000 if args.quick else 3000

    print(f"## prep throughput (CPU, {os.cpu_count()} cores)")
    t = time.perf_counter()
    make_shapes(tmp / "shapes.h5", n_train=n_shapes, n_test=0, image_size=76)
    dt = time.perf_counter() - t
    print(f"shapes 76 px: {n_shapes} images in {dt:.2f} s = {n_shapes / dt:.0f} images/s "
          f"({(tmp / 'shapes.h5').stat().st_size / n_shapes / 1024:.1f} KiB/image with lzf)")

    cub = SHARED / "cub" / "birds"
    if cub.is_dir():
        from attngan_cli.data.cub import cub_records
        from attngan_cli.data.records import write_records

        t = time.perf_counter()
        recs = cub_records(cub)
        t_read = time.perf_counter() - t
        present = [r for r in recs if r.image_path.is_file()]
        vocab = Vocabulary.load(cub / "captions.pickle")
        t = time.perf_counter()
        for _ in range(3):
            write_records([copy.copy(r) for r in present], tmp / "cub.h5", source="cub", captions_per_image=10,
                          vocab=vocab, image_size=304, overwrite=True)
        dt = (time.perf_counter() - t) / 3
        print(f"cub 304 px: reading all 11,788 caption files {t_read:.1f} s; image stage for the "
              f"{len(present)} present images {dt:.2f} s = {len(present) / dt:.0f} images/s (decode, crop, resize, write)")

    print("\n## image storage: size and random-access read (one image per chunk)")
    n_img = 200 if args.quick else 400
    photos, real = photo_like(n_img, 304)
    kind = "CUB crops (shifted / flipped)" if real else "smooth synthetic"
    with h5py.File(tmp / "shapes.h5") as f:
        shapes_imgs = f["images"][: min(n_img, n_shapes)]
    for label, imgs in ((f"304 px {kind}", photos), ("76 px shapes", shapes_imgs)):
        raw = imgs[0].nbytes
        for comp in COMPRESSIONS:
            p = tmp / f"{comp}.h5"
            wt = write_images(p, imgs, comp)
            size = p.stat().st_size / len(imgs)
            ms = random_read(p)
            print(f"{label:40s} {comp:5s}: {size / 1024:7.1f} KiB/image ({size / raw * 100:5.1f}% of raw), "
                  f"write {len(imgs) / wt:6.0f} img/s, random read {ms:.3f} ms/image")

    print("\n## DataLoader: batch 20, 3 stages 64/128/256, from a 304 px file (augment on)")
    write_images(tmp / "photos.h5", photos, "lzf")
    for workers in (0, 2):
        ds = TextImageDataset(tmp / "photos.h5", "all", image_sizes=(64, 128, 256), words=18)
        dl = torch.utils.data.DataLoader(ds, batch_size=20, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
        it = iter(dl)
        next(it)  # warm up (worker start)
        n, t = 0, time.perf_counter()
        for _ in range(10 if args.quick else 19):
            next(it)
            n += 1
        dt = time.perf_counter() - t
        print(f"workers={workers}: {n / dt:.2f} batches/s ({n * 20 / dt:.0f} images/s)")
        del it, dl


if __name__ == "__main__":
    main()
