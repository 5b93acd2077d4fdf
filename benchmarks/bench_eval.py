"""Evaluation speed: images/s of `attngan eval -m rprecision` and of the IS/FID feature extraction.

Everything is random and made here, in a temporary folder: a shapes dataset (its test split gives the
captions), a generator checkpoint and DAMSM encoders of the preset (``bird``: 3 stages up to 256 px,
inception-v3 image encoder; ``shapes``: 64 px, compact encoder), and TF-Inception weights with random
values (``metrics.features.write_random_inception_weights``: the speed does not depend on the values).

Per setting (each in its own process):
- ``rprecision``: `metrics.evaluate.evaluate` as `attngan eval -m rprecision --num-samples N
  --batch-size B` runs it (generator + DAMSM image encoder per batch, caption table, 99 mismatched
  captions per image; it runs in fp32: eval has no --precision). img/s of its generation loop (after
  a warm-up run) and end to end (loading, caption table and all);
- ``features``: the TF-Inception feature extractor of IS and FID (`metrics.features.InceptionFeatures`,
  resize to 299 px inside) on uint8 images of the generator's size; bf16 / fp16 are autocast what-ifs.
Both with GFLOP per image (torch.utils.flop_counter), the share of the matmul peak in the same
precision, and peak memory (CUDA max_memory_allocated, or the process's peak RSS on a CPU).

    python benchmarks/bench_eval.py --preset shapes --num-samples 64 --batch 16
    python benchmarks/bench_eval.py --device cuda --preset bird --num-samples 1000 --batch 50 --precisions fp32,tf32,bf16 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import (
    Table,
    add_common_args,
    count_gflop,
    efficiency,
    environment,
    matmul_peak_gflops,
    peak_memory_gb,
    reset_peak_memory,
    resolve_precisions,
    run_settings,
    set_precision_flags,
    setup_device,
    sync,
    time_total,
)

from attngan_cli.core.device import autocast  # noqa: E402  (_bench put the repository on sys.path)


def make_fixture(root: Path, preset: str, n_test: int) -> dict[str, str]:
    """A shapes dataset, DAMSM + generator checkpoints of ``preset`` and random Inception weights."""
    import torch

    from attngan_cli.archs.registry import build_generator
    from attngan_cli.config.presets import make_pretrain_config, make_train_config
    from attngan_cli.config.serialize import to_dict
    from attngan_cli.data.h5 import read_info
    from attngan_cli.data.shapes import make_shapes
    from attngan_cli.evaluation.features import INCEPTION_FILE, write_random_inception_weights
    from attngan_cli.inference.pipeline import build_encoders
    from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

    torch.manual_seed(0)
    data = make_shapes(root / "shapes.h5", n_train=2, n_test=n_test, image_size=76, seed=0)
    words = list(read_info(data).vocab.words)
    pc = make_pretrain_config(preset, {"text.vocab_size": len(words)})
    text, image = build_encoders(pc)
    damsm = save_checkpoint(Checkpoint(kind="damsm", config=to_dict(pc), vocab=words,
                                       state={"text_encoder": text.state_dict(), "image_encoder": image.state_dict()}),
                            root / "damsm.pt")
    cfg = make_train_config(preset, {"dataset": str(data), "encoders": str(damsm), "words": pc.text.words})
    gen = build_generator(cfg.generator)
    generator = save_checkpoint(Checkpoint(kind="generator", config=to_dict(cfg), vocab=words,
                                           state={"generator": gen.state_dict(), "text_encoder": text.state_dict()},
                                           extra={"damsm_config": to_dict(pc.text), "damsm_path": str(damsm)}),
                                root / "generator.pt")
    inception = write_random_inception_weights(root / INCEPTION_FILE)
    return {"data": str(data), "damsm": str(damsm), "generator": str(generator), "inception": str(inception)}


class LoopTimer:
    """A `Progress` for `evaluate` that records how long its "generating" task (the loop over batches) took."""

    def __init__(self, device) -> None:
        self.device, self.seconds = device, None

    def task(self, description: str, total: float | None = None, unit: str = "it"):
        from attngan_cli.core.progress import NullTask

        timer = self

        class Timed(NullTask):
            def __enter__(self):
                sync(timer.device)
                self.t0 = time.perf_counter()
                return self

            def __exit__(self, *exc: object) -> None:
                sync(timer.device)
                if description == "generating":
                    timer.seconds = time.perf_counter() - self.t0

        return Timed(description, total)


def rprecision(s: dict[str, Any], device, amp: str) -> dict[str, Any]:
    import torch

    from attngan_cli.evaluation.evaluate import EvalOptions, evaluate
    from attngan_cli.inference.pipeline import generate, load_damsm, load_generator

    f, B, N = s["fixture"], s["batch"], s["num_samples"]

    def options(n: int) -> EvalOptions:
        return EvalOptions(metrics=["rprecision"], num_samples=n, batch_size=B, device=str(device),
                           encoders=Path(f["damsm"]), log_to_run=False)

    evaluate(f["generator"], f["data"], options(B))  # warm-up (cuDNN autotuning, file cache)
    reset_peak_memory(device)
    timer = LoopTimer(device)
    t0 = time.perf_counter()
    result = evaluate(f["generator"], f["data"], options(N), progress=timer)
    e2e = time.perf_counter() - t0
    mem, mem_kind = peak_memory_gb(device)
    # the work of one batch of the loop: the generator, then the DAMSM image encoder on its last stage
    bundle, damsm = load_generator(f["generator"], device), load_damsm(f["damsm"], device)
    g = bundle.config.generator
    ids = torch.randint(1, len(bundle.vocab), (B, bundle.config.words), device=device)
    lengths = torch.full((B,), bundle.config.words, device=device)
    z, eps = torch.randn(B, g.z_dim, device=device), torch.randn(B, g.condition_dim, device=device)

    def batch() -> None:
        with torch.no_grad():
            damsm.image_encoder(generate(bundle, ids, lengths, z, eps).images[-1])

    gflop = count_gflop(batch)
    return {"size": bundle.image_sizes[-1], "img_per_s": N / timer.seconds, "e2e_img_per_s": N / e2e,
            "loop_s": timer.seconds, "e2e_s": e2e, "gflop_per_img": gflop / B,
            **efficiency(gflop * N / B, timer.seconds, s["peak_gflops"]), "peak_mem_gb": mem, "mem_kind": mem_kind,
            "rprecision": result.metrics["rprecision"]["mean"]}


def features(s: dict[str, Any], device, amp: str) -> dict[str, Any]:
    import torch

    from attngan_cli.archs.registry import image_sizes
    from attngan_cli.config.presets import make_train_config
    from attngan_cli.evaluation.features import InceptionFeatures

    size = image_sizes(make_train_config(s["preset"]).generator)[-1]
    ext = InceptionFeatures(s["fixture"]["inception"], device)
    B, repeats = s["batch"], max(1, s["num_samples"] // s["batch"])
    images = torch.randint(0, 256, (B, 3, size, size), dtype=torch.uint8, device=device)

    def call() -> None:
        with autocast(device, amp):
            out = ext(images)
        assert out["pool"].shape == (B, 2048)

    gflop = count_gflop(call)
    time_total(call, device, 1)  # warm-up
    reset_peak_memory(device)
    seconds = time_total(call, device, repeats)
    mem, mem_kind = peak_memory_gb(device)
    return {"size": size, "img_per_s": B * repeats / seconds, "loop_s": seconds, "gflop_per_img": gflop / B,
            **efficiency(gflop * repeats, seconds, s["peak_gflops"]), "peak_mem_gb": mem, "mem_kind": mem_kind}


def one(s: dict[str, Any]) -> dict[str, Any]:
    device = setup_device(s["device"], s["threads"])
    amp = set_precision_flags(device, s["precision"])
    s["peak_gflops"], peak_n = matmul_peak_gflops(device, s["precision"], s["peak_n"])
    r = (rprecision if s["what"] == "rprecision" else features)(s, device, amp)
    return {"bench": "eval", "what": s["what"], "preset": s["preset"], "precision": s["precision"],
            "batch": s["batch"], "num_samples": s["num_samples"], **r, "peak_gflops": s["peak_gflops"],
            "peak_n": peak_n, **environment(device)}


COLUMNS = [("what", "what", ">10s"), ("preset", "preset", ">7s"), ("prec", "precision", ">5s"), ("px", "size", "4d"),
           ("batch", "batch", "5d"), ("images", "num_samples", "6d"), ("img/s", "img_per_s", "9.2f"),
           ("e2e img/s", "e2e_img_per_s", "9.2f"), ("GFLOP/img", "gflop_per_img", "9.2f"),
           ("GFLOP/s", "achieved_gflops", "9.1f"), ("peak GFLOP/s", "peak_gflops", "12.1f"),
           ("% of peak", "pct_of_peak", "9.2f"), ("peak mem GB", "peak_mem_gb", "11.2f")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="bird")
    ap.add_argument("--what", default="rprecision,features", help="rprecision, features or both")
    ap.add_argument("--num-samples", type=int, default=200, help="images per measurement")
    ap.add_argument("--batch", type=int, default=50, help="eval's --batch-size (default 50, as attngan eval)")
    ap.add_argument("--n-test", type=int, default=100, help="test images of the made dataset (their captions)")
    add_common_args(ap, precisions="fp32")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(json.loads(a.one))), flush=True)
        return
    if a.compile:
        print("note: --compile does not apply to eval (attngan eval runs eagerly); ignored", file=sys.stderr)
    device = setup_device(a.device)
    precisions = resolve_precisions(a.precisions, device)
    print(f"eval benchmark on {device}: img/s of eval's generation loop (rprecision) or of the Inception "
          f"features (IS/FID); e2e = the whole evaluate() call", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as d:
        t0 = time.perf_counter()
        fixture = make_fixture(Path(d), a.preset, a.n_test)
        print(f"(random dataset, checkpoints and Inception weights made in {time.perf_counter() - t0:.1f} s)", flush=True)
        settings = []
        for what in a.what.split(","):
            for p in precisions:
                if what == "rprecision" and p in ("bf16", "fp16"):
                    print(f"note: rprecision runs as attngan eval does, in fp32: {p} skipped", file=sys.stderr)
                    continue
                settings.append({"what": what, "preset": a.preset, "precision": p, "device": str(device),
                                 "threads": a.threads, "batch": a.batch, "num_samples": a.num_samples,
                                 "peak_n": a.peak_n, "fixture": fixture})
        table = Table(COLUMNS, a.json)
        n = 0
        for r in run_settings(__file__, settings, a.timeout, one, a.in_process):
            table.row(r)
            n += 1
    if n < len(settings):
        sys.exit(f"{len(settings) - n} of {len(settings)} settings failed")


if __name__ == "__main__":
    main()
