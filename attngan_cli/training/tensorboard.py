"""TensorBoard logging for ``train`` and ``pretrain`` (optional: ``pip install -e ".[tensorboard]"``).

The :class:`TensorBoard` callback writes into the run directory itself, so ``tensorboard --logdir runs``
shows every run by its directory name. It adds nothing of its own to measure: it receives the records
:class:`attngan_cli.training.loop.StatsLog` writes to ``stats.jsonl`` (``on_stats``, the same means, at the
same steps) and the images the run writes (``on_image``: the sample grids of ``train``, the DAMSM
attention maps of ``pretrain``). Only the main process writes; events are flushed at every checkpoint
and when the loop ends. A TensorBoard failure never stops training: it is reported once and logging stops.

Tags (x axis: the optimisation step of the record):

- ``D/total``, ``D/stage<i>``: the discriminators' losses; ``G/total``, ``G/adv_stage<i>``, ``G/kl``;
  ``DAMSM/word``, ``DAMSM/sentence``: the DAMSM terms of G's loss;
- ``DAMSM_train/*``, ``DAMSM_test/*`` (pretrain): ``word1``, ``word2``, ``sentence1``, ``sentence2``, ``total``;
- ``retrieval/*`` (pretrain, per epoch): ``rprec``, ``rprec_std``, ``i2t_top1``, ``t2i_top1``;
- ``lr/G``, ``lr/D`` (train), ``lr/encoders`` (pretrain); ``speed/images_per_s``, ``speed/epoch_seconds``;
- ``eval/<metric>``, ``eval/<metric>_<key>``, ``eval/seconds``, ``eval/best`` (train ``--eval-every``: the
  stats keys themselves);
- any other numeric stats key as ``other/<key>``; images ``samples`` and ``attention``; texts ``config``, ``end``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from attngan_cli.core.distributed import is_main_process
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.loop import Callback, Loop

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install tensorboard (or, in a checkout, pip install -e ".[tensorboard]")'
SAMPLES_TAG, ATTENTION_TAG = "samples", "attention"

_FIXED_TAGS = {
    "d": "D/total", "g": "G/total", "kl": "G/kl",
    "w_loss": "DAMSM/word", "s_loss": "DAMSM/sentence",
    "images_per_s": "speed/images_per_s", "train_images_per_s": "speed/images_per_s",
    "time_s": "speed/epoch_seconds", "lr": "lr/encoders",
    "rprec": "retrieval/rprec", "rprec_std": "retrieval/rprec_std", "rprec_k": "retrieval/rprec_wrong_captions",
    "i2t_top1": "retrieval/i2t_top1", "t2i_top1": "retrieval/t2i_top1",
}
_STAGE_RE = re.compile(r"^(d|g_adv)(\d+)$")
_DAMSM_TERMS = {"w1": "word1", "w2": "word2", "s1": "sentence1", "s2": "sentence2", "loss": "total"}
_NOT_SCALARS = ("step", "epoch", "end")
EVAL_TAG_PREFIX = "eval/"  # evaluation during training (training.evaluation.EVAL_PREFIX)

_said: set[str] = set()  # messages already logged in this process


def _once(key: str, level: int, msg: str, *args: Any) -> None:
    if key not in _said:
        _said.add(key)
        log.log(level, msg, *args)


def scalar_tag(key: str) -> str | None:
    """The TensorBoard tag of a ``stats.jsonl`` key (None: not a scalar to plot)."""
    if key in _NOT_SCALARS:
        return None
    if key in _FIXED_TAGS:
        return _FIXED_TAGS[key]
    if key.startswith(EVAL_TAG_PREFIX):
        return key
    m = _STAGE_RE.match(key)
    if m:
        return f"D/stage{m.group(2)}" if m.group(1) == "d" else f"G/adv_stage{m.group(2)}"
    for split in ("train", "test"):
        term = key.removeprefix(f"{split}_")
        if term != key and term in _DAMSM_TERMS:
            return f"DAMSM_{split}/{_DAMSM_TERMS[term]}"
    return f"other/{key}"


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The tagged finite numbers of a ``stats.jsonl`` record."""
    out = {}
    for key, value in record.items():
        tag = scalar_tag(key)
        if tag is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        out[tag] = float(value)
    return out


def summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``; ImportError (with how to install it) when the
    ``tensorboard`` package is missing or unusable."""
    try:
        module = importlib.import_module("torch.utils.tensorboard")
    except Exception as e:  # ImportError, or a protobuf mismatch raising at import
        raise ImportError(f"TensorBoard is not usable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                          f"install it with: {INSTALL_HINT}") from e
    return module.SummaryWriter


def tensorboard_callbacks(enabled: bool, run: RunDir, config: dict[str, Any] | None = None) -> list[Callback]:
    """``[TensorBoard(run)]`` when ``enabled`` on the main process and TensorBoard can be imported; else
    ``[]`` (when it cannot be imported, says once that logging is off and how to install it)."""
    if not enabled or not is_main_process():
        return []
    try:
        writer_class = summary_writer_class()
    except ImportError as e:
        _once("missing", logging.INFO, "TensorBoard logging is off: %s (or pass --no-tensorboard)", e)
        return []
    return [TensorBoard(run, writer_class, config)]


class TensorBoard(Callback):
    """Scalars (every ``stats.jsonl`` record, plus learning rates), images and texts into
    ``run/events.out.tfevents.*``. Put it after the callbacks whose events it receives (StatsLog, the
    image writers): the writer opens at the first event and closes with the last one."""

    def __init__(self, run: RunDir, writer_class: Any = None, config: dict[str, Any] | None = None) -> None:
        self.run, self.config = run, config
        self.writer_class = writer_class or summary_writer_class()
        self.writer: Any = None
        self.closed = False

    # ---------------------------------------------------------------------------------------- writer
    def _open(self, loop: Loop) -> Any:
        if self.writer is None and not self.closed:
            path = self.run.path
            # a run continued in the same directory (the demo does this): drop events after the resumed step
            purge = loop.state.step + 1 if loop.state.step > 0 and any(path.glob("events.out.tfevents.*")) else None
            self.writer = self.writer_class(log_dir=str(path), purge_step=purge)
            log.info("TensorBoard events in %s (view them with: tensorboard --logdir %s)", path, path.parent)
            if self.config is not None:
                text = json.dumps(self.config, indent=2, sort_keys=True)
                self.writer.add_text("config", "    " + text.replace("\n", "\n    "), loop.state.step)
        return self.writer

    def _do(self, loop: Loop, what: str, fn: Any) -> None:
        """Run ``fn(writer)``; a failure ends TensorBoard logging with one warning, never the training."""
        if self.closed:
            return
        try:
            fn(self._open(loop))
        except Exception as e:
            log.warning("TensorBoard logging stopped (%s failed: %s); training goes on", what, e)
            self.closed = True
            self._close_quietly()

    def _close_quietly(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass

    def close(self, loop: Loop) -> None:
        if self.writer is not None:
            self._do(loop, "closing", lambda w: w.close())
            self.writer = None
        self.closed = True

    # ---------------------------------------------------------------------------------------- events
    def on_start(self, loop: Loop) -> None:
        self._do(loop, "opening", lambda w: None)

    def on_stats(self, loop: Loop, record: dict[str, Any]) -> None:
        step = int(record.get("step", loop.state.step))
        values = scalars(record)
        rates = getattr(loop.task, "learning_rates", None)
        if rates is not None:
            values.update({f"lr/{name}": float(v) for name, v in rates().items()})

        def write(w: Any) -> None:
            for tag, v in values.items():
                w.add_scalar(tag, v, step)

        self._do(loop, "writing scalars", write)

    def on_image(self, loop: Loop, tag: str, image: np.ndarray, step: int) -> None:
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        self._do(loop, f"writing image {tag}", lambda w: w.add_image(tag, arr, step, dataformats="HWC"))

    def on_checkpoint(self, loop: Loop, path: Path, kind: str) -> None:
        self._do(loop, "flushing", lambda w: w.flush())

    def on_end(self, loop: Loop, reason: str) -> None:  # the last event of a run, after final.pt
        self._do(loop, "writing the end", lambda w: (w.add_text("end", reason, loop.state.step), w.flush()))
        self.close(loop)
