"""Train several architectures the same number of steps on the shapes data and score them the same way.

Every arm gets the same data, the same DAMSM (and captioner, for the arms that use one), the same step
budget, batch and precision, and each seed in ``--seeds``; each trained generator is scored by
``attngan eval -m rprecision,attributes`` with that DAMSM. The step budget makes the comparison
independent of the machine's speed.

    python benchmarks/compare_shapes.py --data data/shapes.h5 -e runs/00000-shapes-pretrain \
        --set successors --steps 300 --seeds 0,1,2 --out compare/successors

Writes ``results.jsonl`` (one line per finished arm and seed: its command, checkpoint and eval record),
and ``table.md``; an interrupted comparison resumes: the arms already in ``results.jsonl`` are skipped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name -> train arguments added to the common ones
SETS: dict[str, dict[str, list[str]]] = {
    "successors": {
        "attngan": ["--arch", "attngan"],
        "attngan++": ["--arch", "attngan", "--spectral-norm"],
        "dmgan": ["--arch", "dmgan"],
        "dfgan": ["--arch", "dfgan"],
    },
    "baselines": {
        "attngan": ["--arch", "attngan"],
        "stackgan++": ["--arch", "stackgan++", "--lambda", "0"],
        "stackgan": ["--arch", "stackgan"],
        "mirrorgan": ["--arch", "mirrorgan", "--captioner", "{captioner}"],
    },
}

ATTRIBUTES = ("bg_color", "color", "position", "shape", "size")


def run(cmd: list[str], log: Path) -> str:
    """Run ``cmd`` with its stderr appended to ``log``; return its stdout (raises on failure)."""
    with log.open("a") as err:
        err.write(f"\n$ {shlex.join(cmd)}\n")
        err.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}; see {log}")
    return proc.stdout


def metric_summary(metrics: dict) -> dict[str, float]:
    """R-precision mean/std and each attribute's accuracy (in %) from an eval record's ``metrics``."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, (int, float)):
                    out[f"{key}.{sub}"] = float(v)
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("-e", "--encoders", required=True, help="DAMSM checkpoint or pretrain run")
    ap.add_argument("--captioner", default="", help="captioner run (arms that use one)")
    ap.add_argument("--set", choices=sorted(SETS), default="successors")
    ap.add_argument("--arms", default="", help="comma list: only these arms of the set")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--samples", type=int, default=500, help="eval -n")
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra", default="", help="more train arguments for every arm (one string)")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path, log = out / "results.jsonl", out / "log.txt"
    done = {(r["arm"], r["seed"]) for r in map(json.loads, results_path.read_text().splitlines())} \
        if results_path.exists() else set()
    arms = SETS[args.set]
    if args.arms:
        arms = {k: v for k, v in arms.items() if k in args.arms.split(",")}
    exe = [sys.executable, "-m", "attngan_cli"]
    for seed in [int(s) for s in args.seeds.split(",")]:
        for arm, extra in arms.items():
            if (arm, seed) in done:
                continue
            extra = [a.replace("{captioner}", args.captioner) for a in extra]
            train = [*exe, "train", args.data, "-e", args.encoders, "--preset", "shapes", *extra,
                     "--max-steps", str(args.steps), "-b", str(args.batch_size), "--precision", args.precision,
                     "--seed", str(seed), "--runs", str(out / "runs"), "--no-tensorboard", "-q",
                     *shlex.split(args.extra)]
            t0 = time.time()
            checkpoint = run(train, log).strip().splitlines()[-1]
            train_s = time.time() - t0
            evaluate = [*exe, "eval", "-c", checkpoint, "--data", args.data, "-e", args.encoders,
                        "-m", "rprecision,attributes", "-n", str(args.samples), "--seed", "0", "--json", "-q"]
            record = json.loads(run(evaluate, log))
            line = {"arm": arm, "seed": seed, "train": shlex.join(train), "checkpoint": checkpoint,
                    "train_seconds": round(train_s, 1), "eval": record}
            with results_path.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(f"{arm} seed {seed}: {metric_summary(record['metrics'])}", flush=True)
    write_table(results_path, out / "table.md")


def write_table(results_path: Path, table_path: Path) -> None:
    rows: dict[str, list[dict[str, float]]] = {}
    for r in map(json.loads, results_path.read_text().splitlines()):
        rows.setdefault(r["arm"], []).append(metric_summary(r["eval"]["metrics"]) | {"seed": r["seed"]})
    keys = sorted({k for rs in rows.values() for r in rs for k in r if k != "seed" and not k.endswith("_n")})
    lines = ["| arm | seeds | " + " | ".join(keys) + " (%) |", "| --- | --- |" + " --- |" * len(keys)]
    for arm, rs in rows.items():
        cells = []
        for k in keys:
            vals = [r[k] for r in rs if k in r]
            if not vals:
                cells.append("")
            elif len(vals) == 1:
                cells.append(f"{100 * vals[0]:.1f}")
            else:
                cells.append(f"{100 * statistics.mean(vals):.1f} ± {100 * statistics.stdev(vals):.1f}")
        lines.append(f"| {arm} | {','.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    table_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
