"""Where a GAN training step's time goes: torch.profiler over a few `train_step`s (after warm-up), as
two tables, per module and per kind of op, with self time per step and its share of all self time.

Modules are marked with profiler ranges from forward hooks (G's parts, each D's image encoder and
heads, the frozen text and image encoders) and from wrappers around the losses, the optimisers' steps
and the EMA update; the backward ops are given to the module whose forward op made their autograd node
(matched by sequence number). Kinds come from the op names (convolution, BatchNorm, GLU/LeakyReLU,
attention bmm/softmax, the bilinear resize to 299 px, LSTM, ...) or from the range (optimizer, EMA).
Times: self CPU time, and on CUDA also the self time of the GPU kernels an op launched.

    python benchmarks/profile_train.py --preset shapes --threads 1 --steps 3          # CPU
    python benchmarks/profile_train.py --device cuda --preset bird --precision bf16 --steps 3 --json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from _bench import set_precision_flags, setup_device, sync, time_total
from bench_train import build

# op kind by aten op name (first match wins); ops inside the optimizer / EMA ranges are of those kinds
KINDS = [
    ("conv", r"conv|cudnn_convolution"),
    ("BatchNorm", r"batch_norm"),
    ("GLU/LeakyReLU/ReLU", r"glu|leaky_relu|relu|threshold"),
    ("attention bmm/softmax", r"bmm|softmax|baddbmm"),
    ("resize 299 px (bilinear)", r"upsample_bilinear"),
    ("upsample nearest", r"upsample_nearest"),
    ("LSTM", r"lstm|rnn"),
    ("linear/matmul", r"addmm|\bmm\b|::mm|matmul|linear"),
    ("pooling", r"pool"),
    ("loss (BCE, log-softmax, ...)", r"binary_cross_entropy|log_softmax|nll_loss|cross_entropy"),
    ("copy/cast", r"copy_|::to\b|_to_copy|contiguous|clone"),
    ("allocation/views", r"empty|view|as_strided|reshape|slice|narrow|transpose|resize_|permute|expand|squeeze|"
                         r"select|detach|alias|::t\b|split|chunk|unbind|index"),
    ("reduction", r"sum|mean|norm|max|min"),
    ("element-wise", r"add|mul|sub|div|exp|log|pow|sqrt|neg|where|fill|zero|masked|cat|stack|rand|normal|sigmoid|tanh"),
]
OPTIMIZER, EMA = "optimizer (Adam)", "EMA update"
FRAMEWORK = "framework (Python between ops, autograd engine)"


def op_kind(name: str, label: str, labels: set[str]) -> str:
    if label in (OPTIMIZER, EMA):
        return label
    if name in labels or name.startswith(("autograd::", "Optimizer.")) or re.fullmatch(r"\w+Backward\d*", name):
        return FRAMEWORK  # a range's or autograd node's own time: the Python and C++ around the ops
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


class Ranges:
    """Profiler ranges named after modules (forward hooks) and around callables (wrappers)."""

    def __init__(self) -> None:
        self.labels: set[str] = set()
        self.open: list[Any] = []
        self.handles: list[Any] = []

    def module(self, label: str, module) -> None:
        from torch.autograd.profiler import record_function

        self.labels.add(label)

        def pre(_mod, _args) -> None:
            rf = record_function(label)
            rf.__enter__()
            self.open.append(rf)

        def post(_mod, _args, _out) -> None:
            self.open.pop().__exit__(None, None, None)

        self.handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        from torch.autograd.profiler import record_function

        self.labels.add(label)

        def wrapped(*args, **kwargs):
            with record_function(label):
                return fn(*args, **kwargs)

        return wrapped


def mark(b, ranges: Ranges) -> None:
    """Ranges for every part of the step of bench ``b`` (bench_train.Bench)."""
    m = b.m
    for name, child in m.G.named_children():
        ranges.module(f"G.{name}", child)
        for sub, mod in child.named_children():
            if sub == "att":
                ranges.module(f"G.{name}.att (word attention)", mod)
    for i, D in enumerate(m.Ds):
        for name, child in D.named_children():
            ranges.module(f"D{i}.{name}", child)
    ranges.module("text encoder (frozen)", m.text_encoder)
    if m.image_encoder is not None:  # the GAN loss calls the inception-v3 layers without forward()
        enc, label = m.image_encoder, "DAMSM image encoder (frozen)"
        ranges.module(label, enc)
        for child in enc.children():
            ranges.module(label, child)
        enc.resize = ranges.wrap(label, enc.resize)
    b.loss.discriminator = ranges.wrap("D loss (other ops)", b.loss.discriminator)
    b.loss.generator = ranges.wrap("G loss (other ops)", b.loss.generator)
    for opt in [m.opt_g, *m.opt_ds]:
        opt.step = ranges.wrap(OPTIMIZER, opt.step)
    m.ema.update = ranges.wrap(EMA, m.ema.update)


def attribute(events, labels: set[str], use_device: bool) -> list[dict[str, Any]]:
    """One record per CPU op: its module (the innermost range; for a backward op that of the forward op
    that made its autograd node), whether it is a backward op, its kind, self CPU and device microseconds."""
    from torch.autograd import DeviceType

    def range_of(e) -> tuple[str | None, Any]:
        """The innermost label range above ``e`` and the nearest autograd-engine event above it."""
        label, node = None, None
        p = e
        while p is not None:
            if label is None and p.name in labels:
                label = p.name
            if node is None and p.name.startswith("autograd::engine::evaluate_function"):
                node = p
            p = p.cpu_parent
        return label, node

    forward_label: dict[tuple[int, int], str] = {}
    rows = []
    for e in events:
        if e.device_type != DeviceType.CPU:
            continue
        label, node = range_of(e)
        if label is not None and node is None and e.sequence_nr >= 0:
            forward_label[(e.thread, e.sequence_nr)] = label
        rows.append((e, label, node))
    records = []
    for e, label, node in rows:
        backward = node is not None
        if backward:  # the module of the forward op that made its autograd node
            module = forward_label.get((node.fwd_thread, node.sequence_nr)) or label or "backward (unmatched)"
        else:
            module = label or "(outside the marked parts)"
        network = module.split(".")[0] if re.match(r"(G|D\d+)\.", module) else module
        records.append({"network": network, "module": module, "backward": backward, "name": e.name,
                        "kind": op_kind(e.name, module, labels),
                        "cpu_us": e.self_cpu_time_total,
                        "device_us": e.self_device_time_total if use_device else 0.0})
    return records


def group(records: list[dict[str, Any]], key: str, steps: int, use_device: bool) -> list[dict[str, Any]]:
    """Per value of ``key``: self ms per step and share (%) of all self time, sorted by the main time."""
    main = "device_us" if use_device else "cpu_us"
    tot = defaultdict(lambda: [0.0, 0.0, 0.0, 0])  # cpu, device, main clock in backward ops, ops
    for r in records:
        t = tot[r[key]]
        t[0] += r["cpu_us"]
        t[1] += r["device_us"]
        t[2] += r[main] if r["backward"] else 0.0
        t[3] += 1
    all_cpu = sum(t[0] for t in tot.values()) or 1.0
    all_dev = sum(t[1] for t in tot.values()) or 1.0
    out = [{key: k, "self_cpu_ms": c / 1e3 / steps, "cpu_pct": 100 * c / all_cpu,
            "self_device_ms": d / 1e3 / steps if use_device else None,
            "device_pct": 100 * d / all_dev if use_device else None, "backward_ms": b / 1e3 / steps,
            "ops_per_step": n / steps}
           for k, (c, d, b, n) in tot.items()]
    return sorted(out, key=lambda r: -(r["self_device_ms"] if use_device else r["self_cpu_ms"]))


def print_table(title: str, key: str, rows: list[dict[str, Any]], use_device: bool, width: int = 50) -> None:
    print(f"\n{title}")
    head = f"{key:<{width}} {'self CPU ms/step':>16} {'% of CPU':>8}"
    if use_device:
        head += f" {'self CUDA ms/step':>17} {'% of CUDA':>9}"
    print(head + f" {'of which backward ms':>20} {'ops/step':>8}")
    for r in rows:
        line = f"{str(r[key])[:width]:<{width}} {r['self_cpu_ms']:16.2f} {r['cpu_pct']:8.1f}"
        if use_device:
            line += f" {r['self_device_ms']:17.2f} {r['device_pct']:9.1f}"
        print(line + f" {r['backward_ms']:20.2f} {r['ops_per_step']:8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--preset", default="bird")
    ap.add_argument("--batch", type=int, default=0, help="0: the preset's")
    ap.add_argument("--precision", default="fp32", help="fp32, tf32 (CUDA), bf16 or fp16 (CUDA)")
    ap.add_argument("--steps", type=int, default=3, help="profiled steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--top", type=int, default=15, help="also list the N ops with the most self time")
    ap.add_argument("--trace", help="write a Chrome trace (chrome://tracing, Perfetto) to this file")
    ap.add_argument("--json", action="store_true", help="also print the tables as one JSON object")
    a = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from attngan_cli.core.allocator import tune_host_allocator

    tune_host_allocator()  # as every attngan command does (ATTNGAN_MALLOC=default: glibc's defaults)
    device = setup_device(a.device, a.threads)
    amp = set_precision_flags(device, a.precision)
    b = build({"preset": a.preset, "batch": a.batch}, device, amp)
    cuda = device.type == "cuda"
    time_total(b.step, device, a.warmup)
    step_s = time_total(b.step, device, a.steps) / a.steps  # without the profiler
    ranges = Ranges()
    mark(b, ranges)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(a.steps):
            b.step()
        sync(device)
    profiled_s = (time.perf_counter() - t0) / a.steps
    if a.trace:
        prof.export_chrome_trace(a.trace)
    records = attribute(prof.events(), ranges.labels, cuda)
    by_network = group(records, "network", a.steps, cuda)
    by_module = group(records, "module", a.steps, cuda)
    by_kind = group(records, "kind", a.steps, cuda)
    by_op = group(records, "name", a.steps, cuda)[: a.top]
    cfg = b.cfg
    print(f"train_step profile: preset {a.preset} ({cfg.generator.stages} stages, {b.batch['images'][-1].shape[-1]} px, "
          f"batch {cfg.batch_size}), {a.precision}, {device} ({torch.get_num_threads()} CPU threads); "
          f"{a.steps} steps after {a.warmup} warm-up: {step_s:.4f} s/step unprofiled, {profiled_s:.4f} s/step "
          f"profiled. Self time: an op's own time, without the ops it calls; % = share of all self time.")
    cpu_ms = sum(r["cpu_us"] for r in records) / 1e3 / a.steps
    kernel_ms = sum(r["device_us"] for r in records) / 1e3 / a.steps
    print(f"all self CPU time: {cpu_ms:.1f} ms/step" + (
        f"; all self CUDA kernel time: {kernel_ms:.1f} ms/step = {100 * kernel_ms / (1e3 * profiled_s):.0f} % of the "
        f"profiled step (the rest: the GPU waits for the CPU)" if cuda else ""))
    print_table("per network (forward + backward: a backward op counts for the module of its forward op)",
                "network", by_network, cuda)
    print_table("per module", "module", by_module, cuda)
    print_table("per kind of op", "kind", by_kind, cuda)
    print_table(f"top {a.top} ops", "name", by_op, cuda)
    if a.json:
        print(json.dumps({"bench": "profile", "preset": a.preset, "precision": a.precision, "device": str(device),
                          "batch": cfg.batch_size, "size": b.batch["images"][-1].shape[-1], "steps": a.steps,
                          "threads": torch.get_num_threads(), "step_s": step_s, "profiled_step_s": profiled_s,
                          "self_cpu_ms": cpu_ms, "self_device_ms": kernel_ms if cuda else None,
                          "by_network": by_network, "by_module": by_module, "by_kind": by_kind, "top_ops": by_op}))


if __name__ == "__main__":
    main()
