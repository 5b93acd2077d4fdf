"""`attngan demo`: the whole pipeline on the built-in shapes data, in minutes on a CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from attngan_cli.cli.commands.common import command, progress
from attngan_cli.cli.commands.options import Device, Json, Quiet, Seed
from attngan_cli.cli.console import console, stdout
from attngan_cli.cli.flags import FLAGS


@command(flags=FLAGS["demo"])
def demo(
    minutes: Annotated[float, typer.Option("--minutes", "-m", help="Time budget for the whole demo (training "
                                           "phases share it; prep, sampling and eval come on top).")] = 10.0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's data, runs and figures. "
                                      "Rerunning with the same folder continues an interrupted demo.")] = Path("demo"),
    device: Device = "auto",
    seed: Seed = 0,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 where the CPU or GPU computes it in "
                                           "hardware, else fp32), fp32, bf16 or fp16 (CUDA).")] = "auto",
    lambda_: Annotated[float | None, typer.Option("--lambda", help="DAMSM loss weight (0 = the paper's "
                                                  "no-DAMSM ablation; default: the shapes preset's).")] = None,
    n_train: Annotated[int, typer.Option("--n-train", help="Training images to render.")] = 4000,
    eval_samples: Annotated[int, typer.Option("--eval-samples", help="Images generated for `eval`.")] = 1000,
    json_: Json = False,
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline on the built-in shapes data, in minutes on a CPU.

    prep shapes -> pretrain (compact DAMSM) -> train (3 stages, 16/32/64 px) -> sample -> attend ->
    eval (R-precision and attribute accuracy), then a summary table and the paths of the figures.
    Each phase is recorded in OUT/demo.json when complete; running the same command again continues an
    interrupted demo and reuses what is finished.

    Examples:

      attngan demo

      attngan demo --minutes 20 --out demo-long

      attngan demo --lambda 0 --out demo-no-damsm
    """
    from attngan_cli.apps.demo import DemoOptions, run_demo  # deferred: keeps `attngan --help` fast

    opts = DemoOptions(out=out, minutes=minutes, device=device, seed=seed, precision=precision,
                       lambda_damsm=lambda_, n_train=n_train, n_test=max(200, n_train // 4),
                       eval_samples=eval_samples)
    with progress() as prog:
        result = run_demo(opts, progress=prog)

    table = Table(title=f"attngan demo: {out}")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for name, rec in result.phases.items():
        detail = rec.get("checkpoint") or rec.get("path") or rec.get("figure") or ""
        table.add_row(name, f"{rec.get('seconds', 0):.0f}", str(detail))
    for metric, values in result.metrics.items():
        for key, v in values.items():
            table.add_row("", "", f"{metric}.{key} = {v:.4g}" if isinstance(v, float) else f"{metric}.{key} = {v}")
    console.print(table)
    if json_:
        stdout.print_json(json.dumps({"out": str(result.out), "phases": result.phases, "metrics": result.metrics}))
    else:
        for label, path in result.figures.items():
            stdout.print(f"{label}: {path}", highlight=False)
    train_run = result.phases.get("train", {}).get("run")
    if train_run:
        console.print(f"your own captions in a browser: attngan serve -c {train_run}", highlight=False)
