"""DAMSM pretraining throughput (images/s) per training step: both backbones at their default sizes,
fp32 and bf16, and for the frozen Inception-v3 with and without feature caching.

Synthetic inputs (random images, captions of 12-18 words), random weights (the throughput does not
depend on them); data loading is not included. The caching rows also show the one-time cost of
computing the cached features per image and view.

  python benchmarks/bench_pretrain.py                      # all rows, short
  python benchmarks/bench_pretrain.py --backbone compact --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from attngan_cli.config.presets import make_pretrain_config
from attngan_cli.core.device import autocast
from attngan_cli.losses.damsm import DAMSMLoss
from attngan_cli.networks.image_encoder import ImageEncoder
from attngan_cli.networks.text_encoder import TextEncoder


def bench(backbone: str, precision: str, cached: bool, batch: int, steps: int, vocab: int = 2000) -> dict:
    preset = "shapes" if backbone == "compact" else "bird"
    cfg = make_pretrain_config(preset, {"text.vocab_size": vocab, "precision": precision})
    device = torch.device("cpu")
    torch.manual_seed(0)
    text, img = TextEncoder(cfg.text), ImageEncoder(cfg.image)
    loss_fn = DAMSMLoss(cfg.damsm)
    params = list(text.parameters()) + [p for p in img.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
    load = 256 if backbone == "inception-v3" else cfg.image.image_size
    T = cfg.text.words
    images = torch.rand(batch, 3, load, load) * 2 - 1
    caps = torch.randint(1, vocab, (batch, T))
    lens = torch.randint(max(1, T - 6), T + 1, (batch,))
    cls = torch.arange(batch)
    feats = None
    cache_s_per_img = None
    if cached:
        img.eval()
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(device, precision):
            local, pooled = img.backbone_features(images)
        cache_s_per_img = (time.perf_counter() - t0) / batch
        feats = (local.to(torch.float16), pooled.to(torch.float16))  # stored as in the cache
    text.train()
    img.train()

    def step() -> None:
        with autocast(device, precision):
            if feats is not None:
                regions, glob = img.project(feats[0].float(), feats[1].float())
            else:
                regions, glob = img(images)
            w, s = text(caps, lens)
        terms = loss_fn(regions.float(), glob.float(), w.float(), s.float(), lens, cls)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(text.parameters(), cfg.grad_clip)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    return {"backbone": backbone, "size": cfg.image.image_size, "precision": precision, "cached": cached,
            "batch": batch, "images_per_s": batch * steps / dt, "cache_s_per_img": cache_s_per_img}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", choices=["all", "compact", "inception-v3"], default="all")
    ap.add_argument("--precision", choices=["all", "fp32", "bf16"], default="all")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=0, help="compact batch size (0 = the shapes preset's)")
    ap.add_argument("--inception-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    backbones = ["compact", "inception-v3"] if a.backbone == "all" else [a.backbone]
    precisions = ["fp32", "bf16"] if a.precision == "all" else [a.precision]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'backbone':<13} {'size':>4} {'prec':<5} {'cache':<5} {'batch':>5} {'img/s':>8} {'cache s/img':>11}")
    for bb in backbones:
        for prec in precisions:
            for cached in ([False, True] if bb == "inception-v3" else [False]):
                batch = a.inception_batch if bb == "inception-v3" else (a.batch or make_pretrain_config("shapes").batch_size)
                r = bench(bb, prec, cached, batch, a.steps)
                c = f"{r['cache_s_per_img']:.3f}" if r["cache_s_per_img"] is not None else "-"
                print(f"{r['backbone']:<13} {r['size']:>4} {r['precision']:<5} {str(r['cached']):<5} {r['batch']:>5} "
                      f"{r['images_per_s']:>8.1f} {c:>11}", flush=True)


if __name__ == "__main__":
    main()
