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
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Metrics, comma-separated or repeated: rprecision, is, fid, clipscore, clip-rprecision, "
        "attributes (shapes). Default: the protocol's for the dataset.")] = None,
    protocol: Annotated[str, typer.Option(
        "--protocol", help="Evaluation protocol: attngan (TF-FID), dmgan, dfgan or tise; it sets every option "
        "below that is not given (docs/evaluation.md).")] = "attngan",
    encoders: Annotated[Path | None, typer.Option(
        "--encoders", "-e", help="DAMSM checkpoint or pretrain run for R-precision (default: the one the "
        "generator was trained with).")] = None,
    num_samples: Annotated[int | None, typer.Option(
        "--num-samples", "-n", help="Images to generate [protocol: 30000; dfgan: 10 passes over the CUB test "
        "split, 1 over COCO's].")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per generation batch.")] = 50,
    inception_weights: InceptionWeights = None,
    torchvision_inception: Annotated[Path | None, typer.Option(
        "--torchvision-inception", help="torchvision's ImageNet Inception-v3 weights (inception_v3_google-*.pth) "
        "for the FID of the dmgan, dfgan and tise protocols.")] = None,
    clip: Annotated[Path | None, typer.Option(
        "--clip", help="Local CLIP for clipscore and clip-rprecision: a Hugging Face CLIP folder, or OpenAI's "
        "ViT-B-32.pt with bpe_simple_vocab_16e6.txt.gz beside it.")] = None,
    fid_extractor: Annotated[str | None, typer.Option(
        "--fid-extractor", help="FID network: tf-inception or torchvision-inception [protocol].")] = None,
    fid_preprocess: Annotated[str | None, typer.Option(
        "--fid-preprocess", help="FID input: tf-bilinear (tf-inception), dmgan or dfgan (torchvision) [protocol].")] = None,
    fid_reference: Annotated[str | None, typer.Option(
        "--fid-reference", help="FID real set: test, or test-augmented (DF-GAN: flips and shifts) [protocol].")] = None,
    reference_passes: Annotated[int | None, typer.Option(
        "--reference-passes", help="Augmented copies of each test image for test-augmented [protocol: 10].")] = None,
    truncation: Annotated[float | None, typer.Option(
        "--truncation", help="Noise truncation t (0: none), drawn by the architecture's rule as in sample "
        "(dfgan: t * N(0, 1) cut to [-2, 2]; others: N(0, 1) cut to [-t, t]) [protocol: dfgan 0.88 by DF-GAN's "
        "rule; the others: the architecture's own, 0.88 for dfgan models].")] = None,
    image_size: Annotated[int | None, typer.Option(
        "--image-size", help="Score the images at this size (0 = the generator's) [protocol].")] = None,
    is_temperature: Annotated[float | None, typer.Option(
        "--is-temperature", help="IS*: divide the Inception logits by this (1 = plain IS) [protocol: tise "
        "0.598 CUB, 0.909 COCO].")] = None,
    rp_wrong: Annotated[int | None, typer.Option(
        "--rp-wrong", help="Mismatched captions per image for R-precision [protocol: 99].")] = None,
    rp_folds: Annotated[int | None, typer.Option("--rp-folds", help="R-precision folds [protocol: 10].")] = None,
    save_images: Annotated[Path | None, typer.Option(
        "--save-images", help="Also write the generated images as PNG files (+ index.jsonl) to this folder.")] = None,
    no_ema: Annotated[bool, typer.Option("--no-ema", help="Use the raw generator weights, not the EMA ones.")] = False,
    json_: Json = False,
    workers: Workers = 0,
    seed: Seed = 0,
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Evaluate a generator on the test captions: R-precision, IS, FID, CLIP score, attribute accuracy.

    Generates --num-samples images (the test split's captions, one random caption per image, the split
    repeated as needed) in batches and scores them as the papers do: R-precision with the DAMSM encoders
    (true caption vs 99 captions of other classes, 10 folds), IS (10 splits) and FID (against the real
    test images, statistics cached beside DATA) with the TF Inception weights
    pt_inception-2015-12-05-6726825d.pth given by --inception-weights (nothing is downloaded). The
    results go to a table on stderr, --json on stdout, and a line of the run's metrics.jsonl.

    --protocol NAME reproduces a published table's settings: dmgan (torchvision-Inception FID, DM-GAN's
    R-precision), dfgan (torchvision FID, truncation 0.88, DF-GAN's sample counts, augmented reference),
    tise (IS*, FID as DM-GAN, CLIP R-precision on COCO). Every option given overrides the protocol; the
    result records the protocol and the settings it used.

    Examples:

      attngan eval --metric rprecision -c runs/00002-cub-train --data data/cub.h5

      attngan eval --metric is,fid -c G.pt --data data/cub.h5 --inception-weights pt_inception-2015-12-05-6726825d.pth --json

      attngan eval -m attributes,rprecision -c runs/00003-shapes-train --data data/shapes.h5 -n 2000

      attngan eval --protocol dfgan -c G.pt --data data/cub.h5 --torchvision-inception inception_v3_google-0cc3c7bd.pth
    """
    # deferred: keeps `attngan --help` fast
    from attngan_cli.evaluation.evaluate import EvalOptions, append_to_run
    from attngan_cli.evaluation.evaluate import evaluate as run_eval

    names = parse_metric_names(metric) if metric else []
    options = EvalOptions(metrics=names, num_samples=num_samples, batch_size=batch_size,
                          inception_weights=inception_weights, encoders=encoders, save_images=save_images,
                          seed=seed, device=device, workers=workers, ema=not no_ema, log_to_run=False,
                          protocol=protocol, torchvision_inception=torchvision_inception, clip_model=clip,
                          fid_extractor=fid_extractor, fid_preprocess=fid_preprocess, fid_reference=fid_reference,
                          reference_passes=reference_passes, truncation=truncation, image_size=image_size,
                          is_temperature=is_temperature, rp_wrong=rp_wrong, rp_folds=rp_folds)
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
    table = Table(title=f"attngan eval (protocol {result.protocol})", title_justify="left", caption_justify="left",
                  caption=f"{result.checkpoint} {where}\non {result.data}: {result.num_samples} samples at "
                  f"{result.image_size} px, seed {result.seed}, {result.seconds:.0f} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, values in result.metrics.items():
        if "mean" in values and "std" in values:
            extra = f" (T {values['temperature']:.4g})" if "temperature" in values else ""
            table.add_row(name, f"{values['mean']:.4f} ± {values['std']:.4f}{extra}")
        elif name == "fid":
            table.add_row(name, f"{values['fid']:.3f} (vs {int(values.get('real_images', 0))} real)")
        else:
            for k, v in values.items():
                table.add_row(f"{name}: {k}", f"{v:.4f}")
    console.print(table)
    if result.metrics_file is not None:
        console.print(f"appended to {result.metrics_file}", highlight=False)
