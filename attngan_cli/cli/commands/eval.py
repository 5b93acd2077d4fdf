"""`attngan eval`: R-precision, Inception Score, FID and (shapes) attribute accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from attngan_cli.cli.commands.common import command, progress
from attngan_cli.cli.commands.options import (
    Checkpoint,
    Device,
    InceptionWeights,
    Json,
    Quiet,
    Seed,
    Truncation,
    Workers,
)
from attngan_cli.cli.console import console
from attngan_cli.cli.flags import FLAGS
from attngan_cli.core.distributed import init_from_env, is_main_process
from attngan_cli.core.errors import AttnGANError
from attngan_cli.evaluation.registry import parse_metric_names

if TYPE_CHECKING:
    from attngan_cli.evaluation.evaluate import EvalResult


@command(flags=FLAGS["eval"])
def evaluate(
    checkpoint: Checkpoint,
    data: Annotated[Path, typer.Option("--data", "-d", help="Prepared HDF5 dataset; its test split is used.")],
    metric: Annotated[list[str], typer.Option(
        "--metric", "-m", help="Metrics, comma-separated or repeated: rprecision, is, fid, attributes (shapes).")],
    encoders: Annotated[Path | None, typer.Option(
        "--encoders", "-e", help="DAMSM checkpoint or pretrain run for R-precision (default: the one the "
        "generator was trained with).")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="Images to generate (the papers: 30000).")] = 30000,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per generation batch.")] = 50,
    inception_weights: InceptionWeights = None,
    save_images: Annotated[Path | None, typer.Option(
        "--save-images", help="Also write the generated images as PNG files (+ index.jsonl) to this folder.")] = None,
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw generator weights, not the EMA ones.")] = False,
    truncation: Truncation = None,
    json_: Json = False,
    workers: Workers = 0,
    seed: Seed = 0,
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Evaluate a generator on the test captions: R-precision, Inception Score, FID, attribute accuracy.

    Generates --num-samples images (the test split's captions, one random caption per image, the split
    repeated as needed) in batches and scores them as the papers do: R-precision with the DAMSM encoders
    (true caption vs 99 captions of other classes, 10 folds), IS (10 splits) and FID (against the real
    test images, statistics cached beside DATA) with the TF Inception weights
    pt_inception-2015-12-05-6726825d.pth given by --inception-weights (nothing is downloaded). The
    results go to a table on stderr, --json on stdout, and a line of the run's metrics.jsonl.

    Examples:

      attngan eval --metric rprecision -c runs/00002-cub-train --data data/cub.h5

      attngan eval --metric is,fid -c G.pt --data data/cub.h5 --inception-weights pt_inception-2015-12-05-6726825d.pth --json

      attngan eval -m attributes,rprecision -c runs/00003-shapes-train --data data/shapes.h5 -n 2000
    """
    # deferred: keeps `attngan --help` fast
    from attngan_cli.evaluation.evaluate import EvalOptions, append_to_run
    from attngan_cli.evaluation.evaluate import evaluate as run_eval

    names = parse_metric_names(metric)
    options = EvalOptions(metrics=names, num_samples=num_samples, batch_size=batch_size,
                          inception_weights=inception_weights, encoders=encoders, save_images=save_images,
                          seed=seed, device=device, workers=workers, ema=not no_ema, log_to_run=False,
                          truncation=truncation)
    init_from_env(device)  # under torchrun each process generates a share; rank 0 reports
    with progress() as bar:
        result = run_eval(checkpoint, data, options, progress=bar)
    if not is_main_process():
        return
    try:  # after the results are computed, so that a read-only run directory loses nothing
        append_to_run(result, checkpoint)
        write_error = None
    except AttnGANError as e:
        write_error = str(e)
    _print_table(result)
    for line in result.manifest.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    if write_error is not None:
        console.print(f"[bold yellow]warning:[/] {write_error}; the results are printed here", highlight=False,
                      soft_wrap=True)
    if json_:
        typer.echo(json.dumps(result.record(), indent=2))
    elif result.metrics_file is not None:
        typer.echo(str(result.metrics_file))


def _print_table(result: EvalResult) -> None:
    where = f"step {result.step}" if result.step else ""
    table = Table(title="attngan eval", title_justify="left", caption_justify="left",
                  caption=f"{result.checkpoint} {where}\non {result.data}: {result.num_samples} samples at "
                  f"{result.image_size} px, seed {result.seed}, {result.seconds:.0f} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, values in result.metrics.items():
        if "mean" in values and "std" in values:
            table.add_row(name, f"{values['mean']:.4f} ± {values['std']:.4f}")
        elif name == "fid":
            table.add_row(name, f"{values['fid']:.3f} (vs {int(values.get('real_images', 0))} real)")
        else:
            for k, v in values.items():
                table.add_row(f"{name}: {k}", f"{v:.4f}")
    console.print(table)
    if result.metrics_file is not None:
        console.print(f"appended to {result.metrics_file}", highlight=False)
