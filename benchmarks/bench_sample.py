"""Sampling speed of the `bird` preset generator (random weights): latency for one caption and
throughput at batch 64, in fp32 and bf16.

    python benchmarks/bench_sample.py                       # CPU (or CUDA when present), fp32 + bf16
    python benchmarks/bench_sample.py --device cuda --batch 64 --repeats 5

Reports, per precision:
- latency: one caption -> its 64/128/256 images (text encoder + generator), median of --repeats;
- throughput: images per second (one image = all three stages) at --batch, generation only;
- end to end: images per second of `sample_to_dir` (generation + PNG files for every stage) at --batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attngan_cli.config import TextEncoderConfig, make_train_config  # noqa: E402
from attngan_cli.data.vocab import Vocabulary  # noqa: E402
from attngan_cli.device import resolve_device  # noqa: E402
from attngan_cli.inference import GeneratorBundle, generate  # noqa: E402
from attngan_cli.models.generator import Generator  # noqa: E402
from attngan_cli.models.text_encoder import TextEncoder  # noqa: E402
from attngan_cli.sample import (  # noqa: E402
    CaptionSource,
    SampleSettings,
    caption_batch,
    encode_caption,
    item_noise,
    sample_to_dir,
)

CAPTIONS = [line.strip() for line in (REPO / "examples" / "bird_captions.txt").read_text().splitlines() if line.strip()]
CUB_VOCAB_SIZE = 5450  # the official CUB captions.pickle


def build_bundle(device: torch.device) -> GeneratorBundle:
    cfg = make_train_config("bird")
    words = sorted({w for c in CAPTIONS for w in c.lower().split()})
    vocab = Vocabulary(["<end>", *words, *[f"filler{i}" for i in range(CUB_VOCAB_SIZE - 1 - len(words))]])
    gen = Generator(cfg.generator).to(device).eval().requires_grad_(False)
    enc = TextEncoder(TextEncoderConfig(vocab_size=len(vocab), words=cfg.words)).to(device).eval().requires_grad_(False)
    return GeneratorBundle(gen, enc, vocab, cfg, None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--no-files", action="store_true", help="skip the end-to-end run that writes PNGs")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bundle = build_bundle(device)
    g = bundle.config.generator
    n_params = sum(p.numel() for p in bundle.generator.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"bird preset generator: {g.stages} stages {g.image_sizes}, ngf {g.ngf}, r_num {g.r_num}, "
          f"{n_params / 1e6:.2f} M parameters; device {device} ({name}); torch {torch.__version__}")
    caps = [encode_caption(bundle.vocab, CAPTIONS[i % len(CAPTIONS)], f"c{i}", i, warn=False) for i in range(args.batch)]
    noise = [item_noise(0, i, 0, g.z_dim, g.condition_dim) for i in range(args.batch)]
    z, eps = torch.stack([a for a, _ in noise]), torch.stack([b for _, b in noise])
    ids, lengths = caption_batch(caps)
    for prec in args.precision:
        lat = timed(lambda prec=prec: generate(bundle, ids[:1], lengths[:1], z[:1], eps[:1], prec), device, args.repeats)
        bt = timed(lambda prec=prec: generate(bundle, ids, lengths, z, eps, prec), device, args.repeats)
        line = (f"{prec}: latency (1 caption, 3 stages) {lat * 1000:.1f} ms | batch {args.batch}: "
                f"{bt:.3f} s/batch = {args.batch / bt:.1f} images/s (generation only)")
        if not args.no_files:
            with tempfile.TemporaryDirectory() as d:
                src = CaptionSource([c.text for c in caps])
                settings = SampleSettings(n=1, batch_size=args.batch, precision=prec)
                list(sample_to_dir(bundle, CaptionSource(CAPTIONS[:1]), Path(d) / "w", settings))  # warm-up
                t0 = time.perf_counter()
                files = list(sample_to_dir(bundle, src, Path(d) / "o", settings))
                dt = time.perf_counter() - t0
            line += f" | end to end with PNGs: {args.batch / dt:.1f} images/s ({len(files)} files)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
