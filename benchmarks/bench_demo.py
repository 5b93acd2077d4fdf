"""The demo's quality bar: run `attngan demo` (default settings) and `attngan demo --lambda 0`, then compare
what `eval` measured on each demo's own output with the bar of the demo issue:

* R-precision (1 true + 99 other-class captions) >= 25 % with the default settings;
* every attribute (background colour, colour, shape, position, size) clearly above chance: at least
  5 binomial standard errors above the chance rate (1 / number of values), over the images whose caption
  names the attribute (every caption names all of them but the size, which 3 of 8 templates name);
* ``--lambda 0`` (no DAMSM loss) gives a clearly lower R-precision than the default.

    python benchmarks/bench_demo.py                      # two demos of 10 minutes each, into bench-demo/
    python benchmarks/bench_demo.py --minutes 20 --out /tmp/bench-demo
    python benchmarks/bench_demo.py --skip-ablation      # the default demo only

An existing, finished demo folder is reused (the demo continues rather than redoes), so the numbers of
a previous run can be printed again at no cost. Prints a table and, with ``--json``, one JSON line.
Exits with 1 when a bar is missed. Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from attngan_cli.data.shapes import ATTRIBUTE_VALUES

RPREC_BAR = 0.25
Z_BAR = 5.0  # standard errors above chance
ABLATION_GAP = 0.05  # "clearly lower": at least 5 points


def run_demo(out: Path, minutes: float, extra: list[str]) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "attngan_cli", "demo", "--out", str(out), "--minutes", str(minutes),
           "--quiet", *extra]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {done.returncode}")
    state = json.loads((out / "demo.json").read_text())
    return state, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-demo"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    settings = {"default": []}
    if not a.skip_ablation:
        settings["lambda 0"] = ["--lambda", "0"]
    results: dict[str, dict] = {}
    for name, extra in settings.items():
        state, seconds = run_demo(a.out / name.replace(" ", "-"), a.minutes, extra)
        metrics = state["phases"]["eval"]["metrics"]
        train = state["phases"]["train"]
        results[name] = {"metrics": metrics, "wall_s": round(seconds, 1),
                         "train_steps": train.get("last_stats", {}).get("step"),
                         "train_images_per_s": train.get("last_stats", {}).get("images_per_s")}

    attrs = list(ATTRIBUTE_VALUES)
    print(f"{'run':10s} {'wall':>7s} {'steps':>6s} {'R-prec':>14s} " + " ".join(f"{n:>9s}" for n in attrs))
    print(f"{'chance':10s} {'':>7s} {'':>6s} {1 / 100:14.1%} "
          + " ".join(f"{1 / len(ATTRIBUTE_VALUES[n]):9.1%}" for n in attrs))
    print(f"{'images':10s} {'':>7s} {'':>6s} {'':>14s} "
          + " ".join(f"{int(results['default']['metrics']['attributes'].get(n + '_n', 0)):9d}" for n in attrs))
    for name, r in results.items():
        m = r["metrics"]
        rp = m["rprecision"]
        print(f"{name:10s} {r['wall_s'] / 60:6.1f}m {r['train_steps'] or 0:6d} "
              f"{rp['mean']:7.1%} ± {rp['std']:4.1%} " + " ".join(f"{m['attributes'][n]:9.1%}" for n in attrs))

    default = results["default"]["metrics"]
    checks = {"R-precision >= 25%": default["rprecision"]["mean"] >= RPREC_BAR}
    for n in attrs:
        chance = 1 / len(ATTRIBUTE_VALUES[n])
        acc, count = default["attributes"].get(n, 0.0), default["attributes"].get(f"{n}_n", 0)
        z = (acc - chance) / math.sqrt(chance * (1 - chance) / max(count, 1))
        checks[f"{n}: {acc:.1%} = {acc / chance:.2f}x chance, {z:.1f} standard errors above it (>= {Z_BAR:g})"] = \
            count > 0 and z >= Z_BAR
    if "lambda 0" in results:
        gap = default["rprecision"]["mean"] - results["lambda 0"]["metrics"]["rprecision"]["mean"]
        checks[f"lambda 0 lower by >= {ABLATION_GAP:.0%} (gap {gap:.1%})"] = gap >= ABLATION_GAP
    for label, ok in checks.items():
        print(f"{'met ' if ok else 'MISSED'} {label}")
    if a.json:
        print(json.dumps({"results": results, "checks": checks}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
