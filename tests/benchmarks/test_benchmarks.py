"""Smoke runs of the benchmark scripts: tiny sizes on the CPU, through a subprocess with --json. Checks
that each prints its table and, per setting, one JSON object whose numbers are positive and finite
(never how fast anything is)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
# a 128 x 128 matmul for the peak: the smoke runs check the plumbing, not the machine
COMMON = ["--device", "cpu", "--json", "--threads", "1", "--peak-n", "128"]
SPEED_KEYS = ["img_per_s", "achieved_gflops", "peak_gflops", "pct_of_peak", "peak_mem_gb"]


def run_bench(script: str, *args: str, timeout: float = 600) -> tuple[list[dict], str, subprocess.CompletedProcess]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, str(BENCH / script), *COMMON, *args], capture_output=True, text=True,
                         timeout=timeout, env=env)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    table = "\n".join(line for line in out.stdout.splitlines() if not line.startswith("{"))
    return rows, table, out


def check_numbers(row: dict, keys: list[str]) -> None:
    for k in keys:
        v = row[k]
        assert isinstance(v, (int, float)) and not isinstance(v, bool), (k, v)
        assert math.isfinite(v) and v > 0, (k, v)


def check_table(table: str, units: list[str]) -> None:
    for unit in units:
        assert unit in table, (unit, table)


def test_bench_train_smoke():
    """Two settings, one after the other in one process (--in-process), one of them failing."""
    rows, table, out = run_bench("bench_train.py", "--presets", "shapes,no-such-preset", "--batches", "2,4",
                                 "--steps", "1", "--warmup", "1", "--precisions", "fp32", "--in-process")
    assert out.returncode != 0 and "2 of 4 settings failed" in out.stderr and "no-such-preset" in out.stderr
    assert [r["batch"] for r in rows] == [2, 4]
    for r in rows:
        assert r["bench"] == "train" and r["preset"] == "shapes" and r["precision"] == "fp32"
        assert r["device"] == "cpu" and r["threads"] == 1 and r["compile"] is False and r["mem_kind"] == "cpu_peak_rss"
        check_numbers(r, SPEED_KEYS + ["step_s", "gflop_per_step", "g_params_m", "d_params_m"])
        assert r["img_per_s"] == pytest.approx(r["batch"] / r["step_s"])
        assert r["pct_of_peak"] == pytest.approx(100 * r["gflop_per_step"] / r["step_s"] / r["peak_gflops"])
    assert rows[1]["gflop_per_step"] == pytest.approx(2 * rows[0]["gflop_per_step"], rel=0.05)  # FLOPs ~ batch
    check_table(table, ["img/s", "s/step", "GFLOP/step", "% of peak", "peak mem GB"])


def test_bench_sample_smoke():
    rows, table, out = run_bench("bench_sample.py", "--preset", "shapes", "--batch", "4", "--repeats", "1",
                                 "--precisions", "fp32")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(rows) == 1
    r = rows[0]
    assert r["bench"] == "sample" and r["precision"] == "fp32" and r["batch"] == 4 and r["stages"] == 3
    check_numbers(r, SPEED_KEYS + ["latency_ms", "batch_s", "gflop_per_img", "e2e_img_per_s"])
    check_table(table, ["latency ms", "s/batch", "img/s", "GFLOP/img", "% of peak", "peak mem GB"])


def test_bench_eval_smoke():
    rows, table, out = run_bench("bench_eval.py", "--preset", "shapes", "--num-samples", "4", "--batch", "2",
                                 "--n-test", "10", "--in-process")
    assert out.returncode == 0, out.stderr[-3000:]
    by_what = {r["what"]: r for r in rows}
    assert set(by_what) == {"rprecision", "features"} and len(rows) == 2
    rp, feat = by_what["rprecision"], by_what["features"]
    check_numbers(rp, SPEED_KEYS + ["e2e_img_per_s", "loop_s", "gflop_per_img"])
    assert 0.0 <= rp["rprecision"] <= 1.0 and rp["num_samples"] == 4
    check_numbers(feat, SPEED_KEYS + ["loop_s", "gflop_per_img"])
    assert feat["gflop_per_img"] > 5  # Inception-v3 at 299 px: ~11 GFLOP per image
    check_table(table, ["img/s", "GFLOP/img", "% of peak", "peak mem GB"])


def test_bench_failure_is_an_error():
    """Settings that fail (each in its own process) are reported and make the script exit non-zero: no
    silent empty output."""
    rows, _, out = run_bench("bench_train.py", "--presets", "no-such-preset", "--batches", "2,4", "--precisions",
                             "fp32", timeout=120)
    assert out.returncode != 0 and rows == []
    assert "2 of 2 settings failed" in out.stderr and "no-such-preset" in out.stderr


def test_profile_train_smoke():
    out = subprocess.run([sys.executable, str(BENCH / "profile_train.py"), "--device", "cpu", "--preset", "shapes",
                          "--batch", "4", "--steps", "1", "--warmup", "1", "--threads", "1", "--json"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 1
    r = rows[0]
    check_numbers(r, ["step_s", "profiled_step_s"])
    for table in ("by_network", "by_module", "by_kind"):
        assert sum(x["cpu_pct"] for x in r[table]) == pytest.approx(100.0)
        for x in r[table]:
            assert math.isfinite(x["self_cpu_ms"]) and x["self_cpu_ms"] >= 0
    assert {"G", "D0", "D1", "D2", "optimizer (Adam)"} <= {x["network"] for x in r["by_network"]}
    modules = {x["module"] for x in r["by_module"]}
    assert {"G.h_net1", "G.h_net2.att (word attention)", "D0.img_code_s16", "optimizer (Adam)", "EMA update",
            "text encoder (frozen)", "DAMSM image encoder (frozen)"} <= modules
    kinds = {x["kind"]: x for x in r["by_kind"]}
    assert {"conv", "BatchNorm", "GLU/LeakyReLU/ReLU", "attention bmm/softmax", "LSTM", "optimizer (Adam)"} <= set(kinds)
    assert kinds["conv"]["backward_ms"] > 0  # backward ops are found and counted
    assert "per module" in out.stdout and "per kind of op" in out.stdout and "self CPU ms/step" in out.stdout


# ---------------------------------------------------------------- the official-code baseline (--official)
OFFICIAL = os.environ.get("ATTNGAN_OFFICIAL_CODE")  # a local checkout of github.com/taoxugit/AttnGAN, if any


@pytest.fixture()
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _bench
    import official
    return _bench, official


def test_official_twins_come_first_and_ratios_use_them(bench_modules) -> None:
    _bench, _ = bench_modules
    ours = [{"preset": p, "batch": b, "precision": q} for p in ("shapes", "bird") for b in (4, 20)
            for q in ("fp32", "bf16")] + [{"preset": "bird", "batch": 4, "precision": "fp32", "compile": True}]
    plan = _bench.with_official(ours, "/x/AttnGAN")
    twins = [s for s in plan if s.get("impl") == "official"]
    assert [(s["batch"], s["precision"]) for s in twins] == [(4, "fp32"), (4, "bf16"), (20, "fp32"), (20, "bf16")]
    for t in twins:  # each twin comes right before the first setting it rates
        i = plan.index(t)
        assert {k: plan[i + 1][k] for k in ("preset", "batch", "precision")} == \
               {"preset": "bird", "batch": t["batch"], "precision": t["precision"]}
    assert _bench.with_official(ours, None) == ours
    with pytest.raises(SystemExit, match="leave out --in-process"):
        _bench.with_official(ours, "/x/AttnGAN", in_process=True)

    ratios = _bench.OfficialRatios()
    ratios.add({"impl": "official", "preset": "bird", "batch": 4, "precision": "fp32", "img_per_s": 2.0})
    ratios.add({"impl": "official", "preset": "bird", "batch": 4, "precision": "bf16", "img_per_s": 4.0})
    r = ratios.add({"impl": "attngan", "preset": "bird", "batch": 4, "precision": "bf16", "img_per_s": 10.0})
    assert r["x_official"] == 2.5 and r["x_official_fp32"] == 5.0
    r = ratios.add({"impl": "attngan", "preset": "bird", "batch": 20, "precision": "fp32", "img_per_s": 10.0})
    assert r["x_official"] is None and r["x_official_fp32"] is None  # no official run at that batch
    latency = _bench.OfficialRatios("latency_ms", out="latency_x_official", lower_is_faster=True)
    latency.add({"impl": "official", "preset": "bird", "batch": 4, "precision": "fp32", "latency_ms": 300.0})
    r = latency.add({"impl": "attngan", "preset": "bird", "batch": 4, "precision": "fp32", "latency_ms": 200.0})
    assert r["latency_x_official"] == 1.5  # a time: the official one over ours, > 1 when faster


def test_official_loader_refuses_what_it_does_not_know(bench_modules, tmp_path) -> None:
    """A folder that is not the official checkout, or a checkout whose text differs from what the patches
    expect, is refused by name instead of being measured silently wrong."""
    _, official = bench_modules
    with pytest.raises(SystemExit, match="not a checkout of github.com/taoxugit/AttnGAN .*model.py"):
        official.code_dir(tmp_path)
    code = tmp_path / "code"
    (code / "miscc").mkdir(parents=True)
    for rel in official.FILES:
        (code / rel).write_text("x = 1\n")
    (code / "miscc" / "config.py").write_text(
        "from easydict import EasyDict as edict\ncfg = edict()\n"
        "for k in ('TRAIN', 'TREE', 'TEXT', 'GAN'):\n    cfg[k] = edict()\ncfg.TRAIN.SMOOTH = edict()\n")
    assert official.code_dir(tmp_path) == code
    with pytest.raises(SystemExit, match=r"miscc/losses.py holds 0 times 'torch.ByteTensor\(masks\)'"):
        official.load(tmp_path, cuda=False)
    assert "model" not in sys.modules and "miscc" not in sys.modules  # nothing left behind


@pytest.mark.skipif(not OFFICIAL, reason="set ATTNGAN_OFFICIAL_CODE to a checkout of taoxugit/AttnGAN")
def test_bench_train_against_the_official_code() -> None:
    rows, table, out = run_bench("bench_train.py", "--presets", "bird", "--batches", "2", "--steps", "1",
                                 "--warmup", "1", "--precisions", "fp32", "--official", OFFICIAL)
    assert out.returncode == 0, out.stderr[-3000:]
    off, ours = rows
    assert off["impl"] == "official" and ours["impl"] == "attngan"
    check_numbers(off, SPEED_KEYS)
    assert ours["x_official"] == pytest.approx(ours["img_per_s"] / off["img_per_s"])
    check_table(table, ["x official"])


def test_official_dmgan_loader_refuses_what_it_does_not_know(bench_modules, tmp_path) -> None:
    """The DM-GAN baseline (official_dmgan.py) names its repository and checks its own patch counts."""
    import official_dmgan

    with pytest.raises(SystemExit, match="not a checkout of github.com/MinfengZhu/DM-GAN .*spectral.py"):
        official_dmgan.load(tmp_path, cuda=False)
    code = tmp_path / "code"
    (code / "miscc").mkdir(parents=True)
    for rel in official_dmgan.FILES:
        (code / rel).write_text("x = 1\n")
    (code / "miscc" / "config.py").write_text(
        "from easydict import EasyDict as edict\ncfg = edict()\n"
        "for k in ('TRAIN', 'TREE', 'TEXT', 'GAN'):\n    cfg[k] = edict()\ncfg.TRAIN.SMOOTH = edict()\n")
    with pytest.raises(SystemExit, match=r"miscc/losses.py holds 0 times 'torch.ByteTensor\(masks\)'"):
        official_dmgan.load(tmp_path, cuda=False)
    assert "model" not in sys.modules and "spectral" not in sys.modules  # nothing left behind


DMGAN_OFFICIAL = os.environ.get("ATTNGAN_OFFICIAL_DMGAN")  # a local checkout of github.com/MinfengZhu/DM-GAN


@pytest.mark.slow
@pytest.mark.skipif(not DMGAN_OFFICIAL, reason="set ATTNGAN_OFFICIAL_DMGAN to a checkout of MinfengZhu/DM-GAN")
def test_bench_train_dmgan_against_the_official_code() -> None:
    rows, table, out = run_bench("bench_train.py", "--arch", "dmgan", "--presets", "bird", "--batches", "2",
                                 "--steps", "1", "--warmup", "1", "--precisions", "fp32", "--official", DMGAN_OFFICIAL)
    assert out.returncode == 0, out.stderr[-3000:]
    off, ours = rows
    assert (off["impl"], off["arch"], ours["impl"], ours["arch"]) == ("official", "dmgan", "attngan", "dmgan")
    assert ours["x_official"] == pytest.approx(ours["img_per_s"] / off["img_per_s"])
def test_bench_dfgan_names_a_wrong_checkout(tmp_path) -> None:
    _, _, out = run_bench("bench_dfgan.py", "--official", str(tmp_path), "--batch", "2", timeout=120)
    assert out.returncode != 0
    assert f"--official {tmp_path}: not a checkout of github.com/tobran/DF-GAN (no code/models/GAN.py)" in out.stderr


DFGAN_OFFICIAL = os.environ.get("ATTNGAN_DFGAN_CODE")


@pytest.mark.slow
@pytest.mark.skipif(not DFGAN_OFFICIAL, reason="set ATTNGAN_DFGAN_CODE to a checkout of tobran/DF-GAN")
def test_bench_dfgan_against_the_official_modules() -> None:
    _, table, out = run_bench("bench_dfgan.py", "--official", DFGAN_OFFICIAL, "--batch", "2", "--steps", "1",
                              "--warmup", "0", timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    official, ours = result["rows"]
    assert (official["impl"], ours["impl"]) == ("official", "ours") and official["g_params"] == ours["g_params"]
    check_numbers(ours, ["img_per_s", "achieved_gflops", "pct_of_peak"])
    assert result["x_official"] == pytest.approx(official["step_s"] / ours["step_s"])
@pytest.mark.slow  # two server processes
def test_bench_serve_smoke():
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "ATTNGAN_AUTO_PRECISION": "fp32"}
    out = subprocess.run([sys.executable, str(BENCH / "bench_serve.py"), "--clients", "2", "--seconds", "1",
                          "--device", "cpu", "--threads", "1", "--json"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [r["max_batch"] for r in rows] == [16, 1]
    for r in rows:
        assert r["bench"] == "serve" and r["errors"] == 0 and r["precision"] == "fp32"
        check_numbers(r, ["req_per_s", "img_per_s", "p50_ms", "p90_ms", "p99_ms", "mean_batch", "gain"])
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert rows[1]["mean_batch"] == 1.0
    assert "batching gain" in out.stdout and "p99 ms" in out.stdout


def test_compare_shapes_table_averages_the_seeds_of_each_arm(bench_modules, tmp_path) -> None:
    """compare_shapes.py's table: per arm the mean ± std over its seeds, in %, the counts left out."""
    import compare_shapes

    def line(arm: str, seed: int, rp: float, color: float) -> str:
        metrics = {"rprecision": {"mean": rp, "std": 0.01}, "attributes": {"color": color, "color_n": 500.0}}
        return json.dumps({"arm": arm, "seed": seed, "eval": {"metrics": metrics}})

    results = tmp_path / "results.jsonl"
    results.write_text("\n".join([line("a", 0, 0.5, 0.2), line("a", 1, 0.7, 0.4), line("b", 0, 0.1, 0.9)]) + "\n")
    compare_shapes.write_table(results, tmp_path / "table.md")
    rows = (tmp_path / "table.md").read_text().splitlines()
    assert "color_n" not in rows[0]
    assert rows[2] == "| a | 0,1 | 30.0 ± 14.1 | 60.0 ± 14.1 | 1.0 ± 0.0 |"
    assert rows[3] == "| b | 0 | 90.0 | 10.0 | 1.0 |"
