"""Sampling speed of a preset's generator (random weights; ``bird`` by default: 3 stages up to 256 px).

Per precision (each in its own process):
- latency: one caption -> its 64/128/256 images (text encoder + generator), median of --repeats, ms;
- throughput at --batch, generation only: s/batch (mean of --repeats, synchronised, after a warm-up)
  and images/s (one image = all stages), GFLOP per image (torch.utils.flop_counter: convolutions and
  matmuls), the share of the machine's peak (an n x n matmul in the same precision and process) and
  peak memory (CUDA max_memory_allocated, or the process's peak RSS on a CPU);
- end to end: images/s of `sample_to_dir` (generation + a PNG file for every stage) at --batch.

    python benchmarks/bench_sample.py                              # CPU or CUDA, fp32 + the default
    python benchmarks/bench_sample.py --device cuda --batch 64 --precisions fp32,bf16,fp16 --json
    python benchmarks/bench_sample.py --preset shapes --batch 8 --repeats 2 --no-files

With ``--official PATH`` (a local checkout of github.com/taoxugit/AttnGAN) each precision is also run with
the official code's sampling (``official.py``), and each row shows its speed as a multiple of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import (
    REPO,
    OfficialRatios,
    Table,
    add_common_args,
    compile_failed,
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
    time_total,
    with_official,
)

CAPTIONS = [line.strip() for line in (REPO / "examples" / "bird_captions.txt").read_text().splitlines() if line.strip()]
CUB_VOCAB_SIZE = 5450  # the official CUB captions.pickle


def build_bundle(preset: str, device):
    from attngan_cli.archs.registry import build_generator
    from attngan_cli.config.presets import make_train_config
    from attngan_cli.config.schema import TextEncoderConfig
    from attngan_cli.data.vocab import Vocabulary
    from attngan_cli.inference.pipeline import GeneratorBundle
    from attngan_cli.networks.text_encoder import TextEncoder

    cfg = make_train_config(preset)
    words = sorted({w for c in CAPTIONS for w in c.lower().split()})
    vocab = Vocabulary(["<end>", *words, *[f"filler{i}" for i in range(CUB_VOCAB_SIZE - 1 - len(words))]])
    gen = build_generator(cfg.generator).to(device).eval().requires_grad_(False)
    enc = TextEncoder(TextEncoderConfig(vocab_size=len(vocab), words=cfg.words)).to(device).eval().requires_grad_(False)
    return GeneratorBundle(gen, enc, vocab, cfg, None)


def one_official(s: dict[str, Any]) -> dict[str, Any]:
    """The official ``sampling`` (text encoder + G under no_grad; official.py) at ``s``'s batch and precision."""
    import official

    B = s["batch"]
    device, peak, peak_n, st = official.setup(s, B, CUB_VOCAB_SIZE)
    gflop = count_gflop(st.sample)
    time_total(lambda: st.sample(1), device, 1)
    time_total(st.sample, device, 1)
    latency = statistics.median(time_total(lambda: st.sample(1), device, 1) for _ in range(s["repeats"]))
    reset_peak_memory(device)
    batch_s = time_total(st.sample, device, s["repeats"]) / s["repeats"]
    mem, mem_kind = peak_memory_gb(device)
    return {"bench": "sample", "impl": "official", "preset": "bird", "precision": s["precision"], "compile": False,
            "stages": 3, "size": 256, "batch": B, "repeats": s["repeats"], "latency_ms": latency * 1000,
            "batch_s": batch_s, "img_per_s": B / batch_s, "gflop_per_img": gflop / B,
            **efficiency(gflop, batch_s, peak), "peak_gflops": peak, "peak_n": peak_n, "peak_mem_gb": mem,
            "mem_kind": mem_kind, "e2e_img_per_s": None, **environment(device), "note": None}


def one(s: dict[str, Any]) -> dict[str, Any]:
    if s.get("impl") == "official":
        return one_official(s)  # the official code as its users run it: glibc's default allocator settings
    from attngan_cli.core.allocator import tune_host_allocator

    tune_host_allocator()  # as every attngan command does (ATTNGAN_MALLOC=default: glibc's defaults)
    import torch

    from attngan_cli.apps.sample import (
        CaptionSource,
        SampleSettings,
        caption_batch,
        encode_caption,
        item_noise,
        sample_to_dir,
    )
    from attngan_cli.inference.pipeline import generate

    device = setup_device(s["device"], s["threads"])
    prec = s["precision"]
    amp = set_precision_flags(device, prec)
    peak, peak_n = matmul_peak_gflops(device, prec, s["peak_n"])
    torch.manual_seed(0)
    bundle = build_bundle(s["preset"], device)
    eager = bundle.generator
    g = bundle.config.generator
    B = s["batch"]
    caps = [encode_caption(bundle.vocab, CAPTIONS[i % len(CAPTIONS)], f"c{i}", i, bundle.config.words, warn=False)
            for i in range(B)]
    noise = [item_noise(0, i, 0, g.z_dim, g.condition_dim) for i in range(B)]
    z, eps = torch.stack([a for a, _ in noise]).to(device), torch.stack([b for _, b in noise]).to(device)
    ids, lengths = caption_batch(caps)
    ids, lengths = ids.to(device), lengths.to(device)

    def one_caption() -> None:
        generate(bundle, ids[:1], lengths[:1], z[:1], eps[:1], amp)

    def full_batch() -> None:
        generate(bundle, ids, lengths, z, eps, amp)

    gflop = count_gflop(full_batch)  # eager (the generator is not compiled yet)
    note = None
    if s["compile"]:
        bundle.generator = torch.compile(eager)
    try:
        time_total(one_caption, device, 1)
        time_total(full_batch, device, 1)
    except Exception as e:  # noqa: BLE001  # a torch.compile failure shows at the first call
        if not s["compile"]:
            raise
        note = compile_failed(e)
        bundle.generator = eager
        time_total(one_caption, device, 1)
        time_total(full_batch, device, 1)
    latency = statistics.median(time_total(one_caption, device, 1) for _ in range(s["repeats"]))
    reset_peak_memory(device)
    batch_s = time_total(full_batch, device, s["repeats"]) / s["repeats"]
    mem, mem_kind = peak_memory_gb(device)
    e2e = None
    if s["files"]:
        with tempfile.TemporaryDirectory() as d:
            settings = SampleSettings(n=1, batch_size=B, precision=amp)
            list(sample_to_dir(bundle, CaptionSource(CAPTIONS[:1]), Path(d) / "warm", settings))
            src = CaptionSource([CAPTIONS[i % len(CAPTIONS)] for i in range(B)])
            t0 = time.perf_counter()
            files = list(sample_to_dir(bundle, src, Path(d) / "out", settings))
            e2e = B / (time.perf_counter() - t0)
            assert len(files) == B * g.stages, files
    return {"bench": "sample", "impl": "attngan", "preset": s["preset"], "precision": prec, "compile": s["compile"] and note is None,
            "stages": g.stages, "size": bundle.image_sizes[-1], "batch": B, "repeats": s["repeats"],
            "latency_ms": latency * 1000, "batch_s": batch_s, "img_per_s": B / batch_s,
            "gflop_per_img": gflop / B, **efficiency(gflop, batch_s, peak), "peak_gflops": peak, "peak_n": peak_n,
            "peak_mem_gb": mem, "mem_kind": mem_kind, "e2e_img_per_s": e2e,
            "g_params_m": sum(p.numel() for p in eager.parameters()) / 1e6, **environment(device), "note": note}


COLUMNS = [("impl", "impl", ">8s"), ("preset", "preset", ">7s"), ("prec", "precision", ">5s"), ("compile", "compile", ">7s"),
           ("px", "size", "4d"), ("batch", "batch", "5d"), ("latency ms", "latency_ms", "10.1f"),
           ("s/batch", "batch_s", "8.4f"), ("img/s", "img_per_s", "9.2f"), ("GFLOP/img", "gflop_per_img", "9.2f"),
           ("GFLOP/s", "achieved_gflops", "9.1f"), ("peak GFLOP/s", "peak_gflops", "12.1f"),
           ("% of peak", "pct_of_peak", "9.2f"), ("peak mem GB", "peak_mem_gb", "11.2f"),
           ("PNG img/s", "e2e_img_per_s", "9.2f"), ("x official", "x_official", "10.2f"),
           ("latency x off.", "latency_x_official", "14.2f"), ("x off. fp32", "x_official_fp32", "11.2f")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="bird")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-files", action="store_true", help="skip the end-to-end run that writes PNGs")
    add_common_args(ap)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(json.loads(a.one))), flush=True)
        return
    device = setup_device(a.device)
    print(f"sampling benchmark on {device}: latency = 1 caption, all stages; throughput at batch {a.batch}, "
          f"generation only; PNG img/s = sample_to_dir end to end", flush=True)
    settings = [{"preset": a.preset, "batch": a.batch, "precision": p, "device": str(device), "threads": a.threads,
                 "compile": a.compile, "repeats": a.repeats, "files": not a.no_files, "peak_n": a.peak_n}
                for p in resolve_precisions(a.precisions, device)]
    settings = with_official(settings, a.official if a.preset == "bird" else None, a.in_process)
    table, ratios = Table(COLUMNS, a.json), OfficialRatios()
    latency = OfficialRatios("latency_ms", out="latency_x_official", lower_is_faster=True)  # > 1: faster
    n = 0
    for r in run_settings(__file__, settings, a.timeout, one, a.in_process):
        table.row(latency.add(ratios.add(r)))
        n += 1
    if n < len(settings):
        sys.exit(f"{len(settings) - n} of {len(settings)} settings failed")


if __name__ == "__main__":
    main()
