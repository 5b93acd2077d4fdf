"""GAN training speed: the real `train_step` (G forward, every D updated, G updated with DAMSM + KL, EMA)
on random data (already on the device: data loading is not included) with random frozen encoders.

Per setting (preset x batch x precision, each in its own process): images/s and s/step (mean over the
timed steps, warm-up excluded, synchronised), peak memory (CUDA max_memory_allocated during the timed
steps, or the process's peak RSS on a CPU), the step's GFLOP (torch.utils.flop_counter: convolutions and
matmuls, forward + backward; element-wise work is not counted) and the share of the machine's peak: an
n x n matmul timed in the same process and precision.

Presets: ``bird`` (3 stages, 256 px, batch 20, inception-v3 image encoder with random weights, 5450
words), ``shapes`` (3 stages of 16/32/64 px, batch 32, compact encoder), ``coco``.

    python benchmarks/bench_train.py --presets shapes --steps 5           # CPU or CUDA, fp32 + default
    python benchmarks/bench_train.py --device cuda --presets bird --batches 20,64 --precisions fp32,bf16,fp16
    python benchmarks/bench_train.py --device cuda --presets bird --precisions bf16 --compile --json

With ``--official PATH`` (a local checkout of github.com/taoxugit/AttnGAN) every bird setting is also run
with the official code (``official.py``: its modules on today's PyTorch, its step written out), and each
row shows its speed as a multiple of the official code's at the same precision and at fp32. ``--arch dmgan``
times DM-GAN instead (its presets: bird batch 10), and ``--official`` then takes a checkout of
github.com/MinfengZhu/DM-GAN (``official_dmgan.py``):

    python benchmarks/bench_train.py --arch dmgan --presets bird --batches 2 --precisions fp32 --official ~/DM-GAN
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from _bench import (
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

VOCAB = {"bird": 5450, "coco": 27297, "shapes": 100}  # the official CUB / COCO vocabularies


@dataclass
class Bench:
    """A preset's models (random weights) with a batch of random data on the device, ready to step."""

    device: Any
    cfg: Any
    m: Any  # train.gan.Models
    loss: Any  # the architecture's GANLoss
    batch: dict[str, Any]
    done: int = 0

    def step(self) -> None:
        from attngan_cli.training.gan import train_step

        train_step(self.m, self.batch, self.cfg, self.device, self.loss, self.done)
        self.done += 1


def build(s: dict[str, Any], device, amp: str) -> Bench:
    """Setting ``s`` (preset, batch (0: the preset's), channels_last, compile) in precision ``amp``."""
    import torch

    from attngan_cli.archs.registry import image_sizes, new_train_config
    from attngan_cli.config.presets import make_pretrain_config
    from attngan_cli.networks.image_encoder import ImageEncoder
    from attngan_cli.networks.text_encoder import TextEncoder
    from attngan_cli.training.gan import build_models, make_loss

    torch.manual_seed(0)
    values = {"precision": amp, "device": str(device), "channels_last": s.get("channels_last", False),
              "compile": s.get("compile", False)}
    if s.get("batch"):
        values["batch_size"] = s["batch"]
    cfg = new_train_config(s["preset"], {**values, "generator.arch": s.get("arch", "attngan")})
    pc = make_pretrain_config(s["preset"], {"text.vocab_size": VOCAB.get(s["preset"], 1000), "text.words": cfg.words})
    text = TextEncoder(pc.text).to(device).eval().requires_grad_(False)
    image = ImageEncoder(pc.image).to(device).eval().requires_grad_(False) if cfg.lambda_damsm > 0 else None
    m = build_models(cfg, device, text, image)
    loss = make_loss(cfg, device, image, [])
    B, T = cfg.batch_size, cfg.words
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    captions = torch.randint(1, pc.text.vocab_size, (B, T), generator=g)
    captions[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    batch = {"images": [(torch.rand(B, 3, n, n, generator=g) * 2 - 1).to(device) for n in image_sizes(cfg.generator)],
             "caption": captions.to(device), "length": lengths.to(device), "class_id": torch.arange(B, device=device)}
    return Bench(device, cfg, m, loss, batch)


def one_official(s: dict[str, Any]) -> dict[str, Any]:
    """The official code's training step (official.py, or official_dmgan.py for ``--arch dmgan``) at setting
    ``s``'s batch and precision."""
    if s.get("arch", "attngan") == "dmgan":
        import official_dmgan as official
        B = s["batch"] or official.BATCH
    else:
        import official
        B = s["batch"] or 20  # bird_attn2.yml
    device, peak, peak_n, st = official.setup(s, B, VOCAB["bird"])
    gflop = count_gflop(st.step)
    time_total(st.step, device, s["warmup"])
    reset_peak_memory(device)
    step_s = time_total(st.step, device, s["steps"]) / s["steps"]
    mem, mem_kind = peak_memory_gb(device)
    return {"bench": "train", "impl": "official", "arch": s.get("arch", "attngan"), "preset": "bird", "precision": s["precision"], "compile": False,
            "channels_last": False, "stages": 3, "size": 256, "batch": B, "steps": s["steps"], "warmup": s["warmup"],
            "step_s": step_s, "img_per_s": B / step_s, "gflop_per_step": gflop, **efficiency(gflop, step_s, peak),
            "peak_gflops": peak, "peak_n": peak_n, "peak_mem_gb": mem, "mem_kind": mem_kind,
            **environment(device), "note": None}


def one(s: dict[str, Any]) -> dict[str, Any]:
    if s.get("impl") == "official":
        return one_official(s)  # the official code as its users run it: glibc's default allocator settings
    from attngan_cli.core.allocator import tune_host_allocator

    tune_host_allocator()  # as every attngan command does (ATTNGAN_MALLOC=default: glibc's defaults)
    device = setup_device(s["device"], s["threads"])
    amp = set_precision_flags(device, s["precision"])
    peak, peak_n = matmul_peak_gflops(device, s["precision"], s["peak_n"])
    b = build(s, device, amp)
    m, cfg, step, B = b.m, b.cfg, b.step, b.cfg.batch_size
    m.use_compiled(False, device)  # FLOPs of the eager step (the same count as compiled)
    gflop = count_gflop(step)
    m.use_compiled(cfg.compile, device)
    note = None
    try:
        time_total(step, device, s["warmup"])
    except Exception as e:  # noqa: BLE001  # a torch.compile failure shows at the first call
        if not cfg.compile:
            raise
        note = compile_failed(e)
        m.use_compiled(False, device)
        time_total(step, device, s["warmup"])
    reset_peak_memory(device)
    total = time_total(step, device, s["steps"])
    mem, mem_kind = peak_memory_gb(device)
    step_s = total / s["steps"]
    return {"bench": "train", "impl": "attngan", "arch": cfg.generator.arch, "preset": s["preset"], "precision": s["precision"],
            "compile": cfg.compile and note is None, "channels_last": cfg.channels_last,
            "stages": cfg.generator.stages, "size": b.batch["images"][-1].shape[-1], "batch": B,
            "steps": s["steps"], "warmup": s["warmup"], "step_s": step_s, "img_per_s": B / step_s,
            "gflop_per_step": gflop, **efficiency(gflop, step_s, peak), "peak_gflops": peak, "peak_n": peak_n,
            "peak_mem_gb": mem, "mem_kind": mem_kind,
            "g_params_m": sum(p.numel() for p in m.G.parameters()) / 1e6,
            "d_params_m": sum(p.numel() for p in m.Ds.parameters()) / 1e6,
            **environment(device), "note": note}


COLUMNS = [("impl", "impl", ">8s"), ("arch", "arch", ">7s"), ("preset", "preset", ">7s"), ("prec", "precision", ">5s"), ("compile", "compile", ">7s"),
           ("px", "size", "4d"), ("batch", "batch", "5d"), ("img/s", "img_per_s", "9.2f"),
           ("s/step", "step_s", "8.4f"), ("GFLOP/step", "gflop_per_step", "10.1f"),
           ("GFLOP/s", "achieved_gflops", "9.1f"), ("peak GFLOP/s", "peak_gflops", "12.1f"),
           ("% of peak", "pct_of_peak", "9.2f"), ("peak mem GB", "peak_mem_gb", "11.2f"),
           ("x official", "x_official", "10.2f"), ("x official fp32", "x_official_fp32", "15.2f")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="shapes,bird")
    ap.add_argument("--batches", default="0", help="comma-separated batch sizes (0: the preset's)")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (0: 10; 2 for bird/coco on a CPU)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed steps first (0: 1 on a CPU, 3 on CUDA)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--arch", default="attngan", choices=("attngan", "dmgan"),
                    help="the architecture timed (and, with --official, the official code it is compared with)")
    add_common_args(ap)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(json.loads(a.one))), flush=True)
        return
    device = setup_device(a.device)
    print(f"train_step benchmark on {device}: img/s and s/step over the timed steps; GFLOP/step by "
          f"FlopCounterMode; peak = n x n matmul in the same precision; memory: "
          f"{'CUDA max allocated' if device.type == 'cuda' else 'peak RSS of the process'}", flush=True)
    settings = []
    for preset in a.presets.split(","):
        for batch in (int(b) for b in a.batches.split(",")):
            for precision in resolve_precisions(a.precisions, device):
                big = preset in ("bird", "coco") and device.type == "cpu"
                settings.append({"arch": a.arch, "preset": preset, "batch": batch, "precision": precision, "device": str(device),
                                 "threads": a.threads, "compile": a.compile, "channels_last": a.channels_last,
                                 "steps": a.steps or (2 if big else 10),
                                 "warmup": a.warmup or (3 if device.type == "cuda" else 1), "peak_n": a.peak_n})
    settings = with_official(settings, a.official, a.in_process)
    table, ratios = Table(COLUMNS, a.json), OfficialRatios()
    n = 0
    for r in run_settings(__file__, settings, a.timeout, one, a.in_process):
        table.row(ratios.add(r))
        n += 1
    if n < len(settings):
        sys.exit(f"{len(settings) - n} of {len(settings)} settings failed")


if __name__ == "__main__":
    main()
