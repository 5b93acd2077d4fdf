"""Load check of `attngan serve`: N concurrent clients for a bounded time against 127.0.0.1.

Starts the real server (`python -m attngan_cli serve --port 0`) once per setting, warms it up, then has
--clients threads post `POST /generate` back to back for --seconds and reports requests/s, images/s, the
latency percentiles (p50, p90, p99, max) and the mean images per forward of the model (from /health).
The settings: batching at --max-batch, then one request at a time (--max-batch equal to --n), and the
batching gain = the first's requests/s over the second's.

    python benchmarks/bench_serve.py -c demo/runs/00001-shapes-train --clients 8 --seconds 20
    python benchmarks/bench_serve.py --clients 4 --seconds 5 --json        # a random shapes model

Without -c a random-weight generator of the shapes preset is written to a temporary folder (its speed is
that of a trained one: the weights do not change the work).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CAPTIONS = ["a red square at the top left", "a small blue circle in the middle of a green background",
            "a large yellow triangle at the bottom right", "a green circle", "a purple square on a white background",
            "a small red triangle at the top"]


def random_checkpoint(folder: Path) -> Path:
    """A ``generator`` checkpoint of the shapes preset with random weights, for the shapes vocabulary."""
    import torch

    from attngan_cli.archs.registry import build_generator
    from attngan_cli.config.presets import make_train_config
    from attngan_cli.config.schema import TextEncoderConfig
    from attngan_cli.config.serialize import to_dict
    from attngan_cli.data.tokenizer import tokenize
    from attngan_cli.networks.text_encoder import TextEncoder
    from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

    torch.manual_seed(0)
    words = ["<end>", *sorted({w for c in CAPTIONS for w in tokenize(c)})]
    cfg = make_train_config("shapes", {})
    tcfg = TextEncoderConfig(vocab_size=len(words), word_dim=32, embedding_dim=cfg.generator.embedding_dim,
                             words=cfg.words)
    ckpt = Checkpoint(kind="generator", config=to_dict(cfg),
                      state={"generator": build_generator(cfg.generator).state_dict(),
                             "text_encoder": TextEncoder(tcfg).state_dict()},
                      vocab=words, extra={"text_config": to_dict(tcfg)})
    return save_checkpoint(ckpt, folder / "random-shapes.pt")


class Server:
    """`attngan serve` in a subprocess on a free port."""

    def __init__(self, checkpoint: Path, args: list[str], threads: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen([sys.executable, "-m", "attngan_cli", "-q", "serve", "-c", str(checkpoint),
                                      "--port", "0", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            raise SystemExit(f"the server did not start:\n{line}{self.proc.stderr.read()}")
        self.url = line.split()[2].rstrip("/")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(url: str, clients: int, seconds: float, n: int, attention: bool) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(k: int) -> None:
        with httpx.Client(timeout=120) as http:
            i = 0
            while time.perf_counter() < stop_at:
                body = {"caption": CAPTIONS[(k + i) % len(CAPTIONS)], "seed": k * 1000 + i, "n": n,
                        "attention": attention, "figure": attention}
                t0 = time.perf_counter()
                r = http.post(f"{url}/generate", json=body)
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                i += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    return {"requests": len(lat), "errors": len(errors), "first_error": errors[0] if errors else "",
            "seconds": round(wall, 2), "req_per_s": len(lat) / wall, "img_per_s": len(lat) * n / wall,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": 1000 * lat[-1] if lat else float("nan"),
            "mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan")}


def run_setting(checkpoint: Path, max_batch: int, a: argparse.Namespace) -> dict[str, Any]:
    import httpx

    server = Server(checkpoint, ["--max-batch", str(max_batch), "--max-n", str(a.n), "--device", a.device,
                                 "--precision", a.precision, "--queue", str(max(32, 2 * a.clients))], a.threads)
    try:
        for _ in range(3):  # warm-up: first forwards, allocator
            httpx.post(f"{server.url}/generate", json={"caption": CAPTIONS[0], "n": a.n}, timeout=120)
        before = httpx.get(f"{server.url}/health").json()["models"]
        row = load(server.url, a.clients, a.seconds, a.n, a.attention)
        after = httpx.get(f"{server.url}/health").json()["models"]
        model = httpx.get(f"{server.url}/models").json()["models"][0]
    finally:
        server.stop()
    name = next(iter(after))
    batches = after[name]["batches"] - before[name]["batches"]
    images = after[name]["images"] - before[name]["images"]
    row.update({"bench": "serve", "max_batch": max_batch, "clients": a.clients, "n": a.n,
                "attention": a.attention, "device": model["device"], "precision": model["precision"],
                "image_sizes": model["image_sizes"], "arch": model["arch"],
                "mean_batch": images / batches if batches else float("nan")})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", "--checkpoint", type=Path, help="generator checkpoint or train run (default: random shapes)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the clients post, per setting")
    ap.add_argument("--n", type=int, default=1, help="images per request")
    ap.add_argument("--max-batch", type=int, default=16, help="the batched setting's --max-batch")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="the server's OMP_NUM_THREADS (0: torch's default)")
    ap.add_argument("--attention", action="store_true", help="ask for the attention data and figure too")
    ap.add_argument("--json", action="store_true", help="also print one JSON object per setting")
    a = ap.parse_args()
    if a.max_batch < a.n:
        ap.error(f"--max-batch ({a.max_batch}) must be >= --n ({a.n})")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = a.checkpoint or random_checkpoint(Path(tmp))
        rows = [run_setting(checkpoint, a.max_batch, a), run_setting(checkpoint, a.n, a)]
    gain = rows[0]["req_per_s"] / rows[1]["req_per_s"] if rows[1]["req_per_s"] else float("nan")
    for r in rows:
        r["gain"] = gain
    first = rows[0]
    print(f"attngan serve: {first['arch']} {first['image_sizes']} px on {first['device']} ({first['precision']}), "
          f"{a.clients} clients x {a.seconds:g} s, n = {a.n}, attention {'on' if a.attention else 'off'}")
    print(f"{'max batch':>9} {'req/s':>8} {'img/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'img/fwd':>8} {'errors':>6}")
    for r in rows:
        print(f"{r['max_batch']:>9} {r['req_per_s']:>8.1f} {r['img_per_s']:>8.1f} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['mean_batch']:>8.2f} {r['errors']:>6}")
    print(f"batching gain: {gain:.2f}x the requests/s of one request at a time")
    for r in rows:
        if r["first_error"]:
            print(f"max batch {r['max_batch']}: first error: {r['first_error']}", file=sys.stderr)
    if a.json:
        for r in rows:
            print(json.dumps(r))
    if any(r["errors"] or not r["requests"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
