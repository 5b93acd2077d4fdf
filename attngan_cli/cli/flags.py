"""Which command-line flag sets which config field, per command: the CLI's half of a
:class:`~attngan_cli.core.errors.FieldError`.

The config code names fields (``batch_size must be >= 1, got 0``); when such an error reaches a command,
:func:`field_message` names the flag too (``--batch-size (batch_size) must be >= 1, got 0``), so a user
sees what to change on the command line. A field with no flag of its own keeps its dotted name alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from attngan_cli.core.errors import FieldError

# Fields set the same way by every training command (RunOptions).
_RUN_FLAGS = {
    "max_minutes": "--max-minutes", "precision": "--precision", "workers": "--workers", "seed": "--seed",
    "device": "--device",
}

# command name (as registered in cli/app.py) -> {dotted config field: flag}
FLAGS: dict[str, dict[str, str]] = {
    "train": {  # TrainConfig
        **_RUN_FLAGS,
        "generator.arch": "--arch", "generator.stages": "--stages", "generator.ngf": "--ngf",
        "discriminator.ndf": "--ndf", "discriminator.spectral_norm": "--spectral-norm", "lambda_damsm": "--lambda", "color_consistency": "--color-consistency",
        "stream_weight": "--stream-weight", "captioner": "--captioner", "init": "--init",
        "batch_size": "--batch-size", "epochs": "--epochs", "max_steps": "--max-steps", "lr_g": "--lr-g",
        "lr_d": "--lr-d", "words": "--words", "grad_accum": "--grad-accum", "sample_every": "--sample-every",
        "snapshot_every": "--snapshot-every", "keep_last": "--keep-last",
        "evaluation.every": "--eval-every", "evaluation.metrics": "--eval-metrics", "evaluation.samples": "--eval-samples",
        "evaluation.best_metric": "--best-metric", "evaluation.split": "--eval-split",
        "evaluation.inception_weights": "--eval-inception-weights", "evaluation.encoders": "--eval-encoders",
    },
    # PretrainConfig (--model damsm) and CaptionPretrainConfig (--model captioner); image.frozen_bn is named
    # by its field alone (--frozen-bn's help lists its values)
    "pretrain": {
        **_RUN_FLAGS,
        "image.backbone": "--image-encoder", "model.backbone": "--image-encoder", "group_by": "--group-by", "batch_size": "--batch-size", "epochs": "--epochs", "lr": "--lr",
        "snapshot_every": "--snapshot-every", "grad_accum": "--grad-accum",
    },
    "sample": {  # SampleSettings
        "n": "--n", "which": "--which", "batch_size": "--batch-size", "precision": "--precision", "seed": "--seed",
    },
    "demo": {"seed": "--seed", "minutes": "--minutes"},  # DemoOptions
    "eval": {  # EvalOptions
        "num_samples": "--num-samples", "batch_size": "--batch-size", "workers": "--workers", "seed": "--seed",
        "device": "--device", "fid_extractor": "--fid-extractor", "fid_preprocess": "--fid-preprocess",
        "fid_reference": "--fid-reference", "reference_passes": "--reference-passes", "truncation": "--truncation",
        "image_size": "--image-size", "is_temperature": "--is-temperature", "rp_wrong": "--rp-wrong",
        "rp_folds": "--rp-folds",
    },
    "serve": {  # ServeSettings (apps/serve/engine.py)
        "max_n": "--max-n", "max_batch": "--max-batch", "queue": "--queue", "timeout_s": "--timeout",
        "batch_wait_ms": "--batch-wait-ms", "max_chars": "--max-chars", "top": "--top", "precision": "--precision",
    },
}


def field_message(error: FieldError, flags: Mapping[str, str]) -> str:
    """The message of ``error`` naming the flag that sets its field, when ``flags`` has one."""
    flag = flags.get(error.field)
    return f"{flag} ({error.field}) {error.problem}" if flag else str(error)
