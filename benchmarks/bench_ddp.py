"""Scale-out speed: `attngan train` on the shapes preset in one process and under torchrun, the same total
batch, images per second from the run's own stats.jsonl (median of the 10-step windows after the first).

    python benchmarks/bench_ddp.py                           # CPU: 1 process x 2 threads vs 2 x 1 (gloo)
    python benchmarks/bench_ddp.py --threads 8 --steps 60    # 1 x 8 vs 2 x 4
    python benchmarks/bench_ddp.py --cuda                    # also CUDA: one process vs torchrun (NCCL)

Prepares a small shapes dataset and a 1-epoch compact DAMSM in a temporary folder first. Prints a table
and, with --json, one JSON object per setting. Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], threads: int, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(args)}\n{p.stderr[-3000:]}")


def throughput(run_dir: Path) -> float:
    rates = [r["images_per_s"] for r in map(json.loads, (run_dir / "stats.jsonl").read_text().splitlines())
             if "images_per_s" in r and r.get("step", 0) % 10 == 0]
    return statistics.median(rates[1:] or rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all (split over the processes)")
    ap.add_argument("--procs", type=int, default=2, help="processes of the torchrun setting")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cuda", action="store_true", help="also CUDA: one process vs torchrun --nproc-per-node 1 (NCCL)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    py = [sys.executable, "-m", "attngan_cli"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        d = Path(tmp)
        run(py + ["prep", "shapes", "--out", "s.h5", "--train", "2048", "--test", "128", "-q"], a.threads, d)
        run(py + ["pretrain", "s.h5", "--epochs", "1", "--batch-size", "64", "--runs", "pre", "--device", "cpu", "-q"],
            a.threads, d)
        damsm = next((d / "pre").iterdir()) / "final.pt"
        train = ["train", "s.h5", "-e", str(damsm), "--max-steps", str(a.steps), "--batch-size", str(a.batch_size),
                 "--sample-every", "0", "--no-tensorboard", "-q"]
        settings = [(f"1 process x {a.threads} threads", py, 1, a.threads, "cpu"),
                    (f"torchrun {a.procs} x {a.threads // a.procs} threads (gloo)",
                     torchrun + ["--nproc-per-node", str(a.procs), "-m", "attngan_cli"], a.procs,
                     max(1, a.threads // a.procs), "cpu")]
        if a.cuda:
            settings += [("CUDA, 1 process", py, 1, a.threads, "cuda"),
                         ("CUDA, torchrun 1 process (NCCL)", torchrun + ["--nproc-per-node", "1", "-m", "attngan_cli"],
                          1, a.threads, "cuda")]
        rows = []
        for name, launcher, procs, threads, device in settings:
            runs = d / f"runs-{len(rows)}"
            t0 = time.perf_counter()
            run(launcher + train + ["--runs", str(runs), "--device", device], threads, d)
            rate = throughput(next(runs.iterdir()))
            rows.append({"setting": name, "device": device, "processes": procs, "threads_per_process": threads,
                         "batch": a.batch_size, "steps": a.steps, "img_per_s": rate,
                         "wall_s": time.perf_counter() - t0})
    base = rows[0]["img_per_s"]
    print(f"{'setting':45s} {'img/s':>8s} {'vs first':>9s} {'wall s':>7s}")
    for r in rows:
        r["speedup"] = r["img_per_s"] / base
        print(f"{r['setting']:45s} {r['img_per_s']:8.1f} {r['speedup']:8.2f}x {r['wall_s']:7.1f}")
    if a.json:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
