"""Shared CLI options as ``Annotated`` aliases, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Device = Annotated[str, typer.Option("--device", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed (python, numpy, torch).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or info messages; errors still show.")]
Preset = Annotated[str, typer.Option("--preset", help="Official settings to start from: bird, coco or shapes.")]
Precision = Annotated[str, typer.Option("--precision", help="auto (bf16 where the CPU or GPU computes it in hardware: AVX-512 BF16/AMX, or a GPU with bf16; else fp32), fp32 (exact), bf16 or fp16 (CUDA only).")]
Workers = Annotated[int, typer.Option("--workers", help="DataLoader worker processes (0 = load in the main process; default with CUDA: min(4, cores per process - 1); on CPUs 0).")]
RunsRoot = Annotated[Path, typer.Option("--runs", help="Where run directories NNNNN-<dataset>-<command>/ are created.")]
Resume = Annotated[
    Path | None, typer.Option("--resume", help="Continue from a run directory or a checkpoint file.")
]
Checkpoint = Annotated[Path, typer.Option("--checkpoint", "-c", help="A generator checkpoint file or a train run directory.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
InceptionWeights = Annotated[
    Path | None,
    typer.Option("--inception-weights", help="Local Inception-v3 weights file (nothing is downloaded)."),
]
Truncation = Annotated[float | None, typer.Option(
    "--truncation", help="Truncate the noise: t > 0 (0: none; default: the architecture's, 0.88 for dfgan, "
    "none for the others). dfgan: z = t * N(0, 1) cut to [-2, 2]; others: N(0, 1) cut to [-t, t].")]
