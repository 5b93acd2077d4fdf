"""GAN training speed and peak memory: images/s and peak RSS of `train_step` (the real training step:
G forward, every D updated, G updated with DAMSM + KL, EMA) on random data with random encoders.

Settings: the ``bird`` preset (3 stages, batch 20, 256x256, inception-v3 image encoder with random
weights, 5450 words) and the ``shapes`` preset (3 stages of 16/32/64 px, batch 32, compact encoder),
each in fp32 and bf16. Every setting runs in its own subprocess so that the peak RSS is its own.

    python benchmarks/bench_train.py                       # shapes + bird, fp32 + bf16
    python benchmarks/bench_train.py --presets shapes --steps 10
    python benchmarks/bench_train.py --presets bird --steps 2 --threads 2

Prints one line per setting (and a JSON line with --json). Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

VOCAB = {"bird": 5450, "coco": 27297, "shapes": 100}


def one(preset: str, precision: str, steps: int, warmup: int, threads: int, channels_last: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    from attngan_cli.config import (
        ImageEncoderConfig,
        PretrainConfig,
        TextEncoderConfig,
        make_pretrain_config,
        make_train_config,
    )
    from attngan_cli.models.image_encoder import ImageEncoder
    from attngan_cli.models.text_encoder import TextEncoder
    from attngan_cli.train.gan import build_models, train_step
    from attngan_cli.train.gan_loss import DiscriminatorLoss, GeneratorLoss

    torch.manual_seed(0)
    cfg = make_train_config(preset, {"precision": precision, "device": "cpu", "channels_last": channels_last})
    pc: PretrainConfig = make_pretrain_config(preset)
    text = TextEncoder(TextEncoderConfig(vocab_size=VOCAB.get(preset, 1000), words=cfg.words)).eval().requires_grad_(False)
    image = ImageEncoder(ImageEncoderConfig(**{**pc.image.__dict__})).eval().requires_grad_(False)
    device = torch.device("cpu")
    m = build_models(cfg, device, text, image if cfg.lambda_damsm > 0 else None)
    d_loss = DiscriminatorLoss(cfg.mismatch)
    g_loss = GeneratorLoss(cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, image if cfg.lambda_damsm > 0 else None)
    B, T = cfg.batch_size, cfg.words
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    captions = torch.randint(1, text.cfg.vocab_size, (B, T), generator=g)
    captions[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    batch = {"images": [torch.rand(B, 3, s, s, generator=g) * 2 - 1 for s in cfg.generator.image_sizes],
             "caption": captions, "length": lengths, "class_id": torch.arange(B)}
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        logs = train_step(m, batch, cfg, device, d_loss, g_loss, i)
        float(logs["g"])
        times.append(time.perf_counter() - t0)
    timed = times[warmup:]
    step_s = sum(timed) / len(timed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"preset": preset, "precision": precision, "channels_last": channels_last, "stages": cfg.generator.stages,
            "size": cfg.generator.image_sizes[-1], "batch": B, "threads": threads, "steps": steps,
            "step_s": step_s, "images_per_s": B / step_s, "peak_rss_mb": peak_mb,
            "g_params_m": sum(p.numel() for p in m.G.parameters()) / 1e6,
            "d_params_m": sum(p.numel() for p in m.Ds.parameters()) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="shapes,bird")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per setting (default: 10 shapes, 2 bird)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", nargs=2, metavar=("PRESET", "PRECISION"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        preset, precision = a.one
        print(json.dumps(one(preset, precision, a.steps, a.warmup, a.threads, a.channels_last)))
        return
    for preset in a.presets.split(","):
        for precision in a.precisions.split(","):
            steps = a.steps or (2 if preset in ("bird", "coco") else 10)
            cmd = [sys.executable, __file__, "--one", preset, precision, "--steps", str(steps), "--warmup",
                   str(a.warmup), "--threads", str(a.threads)] + (["--channels-last"] if a.channels_last else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{preset} {precision}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['preset']:7s} {r['precision']:5s} {r['stages']} stages {r['size']:4d}px batch {r['batch']:3d} "
                  f"threads {r['threads']}: {r['images_per_s']:7.2f} images/s ({r['step_s']:.3f} s/step), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            if a.json:
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
