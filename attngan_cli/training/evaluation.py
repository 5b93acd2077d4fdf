"""Evaluation during GAN training (``attngan train --eval-every N --eval-metrics ...``).

Every ``N`` steps the EMA generator is scored as ``attngan eval`` scores a checkpoint
(:class:`attngan_cli.evaluation.evaluate.Evaluator`), on the held-out split (test by default), with the
same captions and noise at every evaluation (drawn from ``--eval-seed``), so that the scores of two steps
differ only by the weights. Each evaluation

- appends a ``stats.jsonl`` record ``{"step", "epoch", "eval/<metric>": .., "eval/<metric>_<key>": ..,
  "eval/seconds", "eval/samples", "eval/best"}`` (the headline number of each metric under its own name:
  ``mean`` of R-precision/IS/attributes, ``fid`` of FID), which TensorBoard plots under the same tags and
  ``attngan runs`` shows;
- keeps ``best.pt`` (a full training checkpoint, written atomically) and ``best.json`` (the score, every
  metric's result and the :mod:`manifest <attngan_cli.evaluation.manifest>` with best.pt's sha256) when
  the ``--best-metric`` improves in its direction (R-precision, IS, attributes: higher; FID: lower).

The best score so far is in every checkpoint (``extra.eval_best``): a resumed run keeps it, brings the
earlier run's ``best.pt`` into its own directory and replaces it only with a better one.

Under torchrun every rank generates a share of the images and rank 0 scores them
(:meth:`Evaluator.run`); the result is broadcast, so every rank takes the same decision and writes (or
not) ``best.pt`` together (:meth:`attngan_cli.training.loop.Loop.save`). The evaluation draws from its
own generators and leaves the training's random state as it was.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from attngan_cli.config.schema import TrainConfig
from attngan_cli.core.distributed import barrier, broadcast_object, is_main_process
from attngan_cli.core.fileio import atomic_path, atomic_write_json
from attngan_cli.evaluation.evaluate import EvalOptions, EvalResult, Evaluator
from attngan_cli.evaluation.manifest import file_sha256
from attngan_cli.evaluation.registry import get_metric, headline_value
from attngan_cli.inference.pipeline import DAMSMBundle, GeneratorBundle
from attngan_cli.training.loop import Callback, Loop, StatsLog, StepInfo, preserve_rng

log = logging.getLogger(__name__)

BEST_NAME = "best.pt"
BEST_JSON = "best.json"
EVAL_PREFIX = "eval/"


@dataclass
class BestScore:
    """The best evaluation so far (``extra.eval_best`` of every checkpoint)."""

    metric: str
    value: float
    step: int
    higher_is_better: bool
    path: str  # the best.pt holding the weights of ``step``

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, data: Any) -> BestScore | None:
        try:
            return cls(str(data["metric"]), float(data["value"]), int(data["step"]), bool(data["higher_is_better"]),
                       str(data["path"]))
        except (TypeError, KeyError, ValueError):
            return None


def is_better(value: float, best: float | None, higher_is_better: bool) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) in the metric's direction; NaN never does."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if higher_is_better else value < best


def stats_values(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """An evaluation's results as flat ``stats.jsonl`` keys: ``eval/<metric>`` (its headline number) and
    ``eval/<metric>_<key>`` (the others)."""
    out: dict[str, float] = {}
    for name, values in metrics.items():
        head = get_metric(name).headline
        for key, value in values.items():
            out[f"{EVAL_PREFIX}{name}" if key == head else f"{EVAL_PREFIX}{name}_{key}"] = float(value)
    return out


def eval_options(cfg: TrainConfig) -> EvalOptions:
    """The :class:`EvalOptions` of ``cfg.evaluation`` (checked by the resolver)."""
    ev = cfg.evaluation
    return EvalOptions(metrics=list(ev.metrics), num_samples=ev.samples, batch_size=ev.batch_size,
                       inception_weights=Path(ev.inception_weights) if ev.inception_weights else None,
                       encoders=Path(ev.encoders) if ev.encoders else None, seed=ev.seed, device=cfg.device,
                       ema=True, log_to_run=False, split=ev.split)


class TrainEvaluation(Callback):
    """Scores the EMA generator every ``cfg.evaluation.every`` steps and keeps ``best.pt`` (module docstring).

    ``bundle``: the EMA generator and the text encoder, in memory; ``damsm``: the training's DAMSM;
    ``previous``: ``extra.eval_best`` of the checkpoint the run resumes (None: a new run)."""

    def __init__(self, cfg: TrainConfig, bundle: GeneratorBundle, damsm: DAMSMBundle, device: torch.device,
                 previous: dict[str, Any] | None = None) -> None:
        self.cfg, self.bundle, self.damsm, self.device = cfg, bundle, damsm, device
        self.every = cfg.evaluation.every
        self.metric = cfg.evaluation.best_metric or cfg.evaluation.metrics[0]
        self.higher = get_metric(self.metric).higher_is_better
        self.previous = previous
        self.evaluator: Evaluator | None = None
        self.best: BestScore | None = None
        self.results: list[tuple[int, EvalResult]] = []  # every evaluation of this process (tests, the demo)

    # ---------------------------------------------------------------------------------------- start
    def on_start(self, loop: Loop) -> None:
        self._take_previous(loop)
        loop.task.eval_best = self.best.to_dict() if self.best is not None else None
        t0 = time.perf_counter()
        with preserve_rng():
            self.evaluator = Evaluator(self.bundle, self.cfg.dataset, eval_options(self.cfg), device=self.device,
                                       progress=loop.progress, damsm=self.damsm)
        for cb in loop.callbacks:  # the training speed in stats.jsonl counts the steps only
            if isinstance(cb, StatsLog):
                cb.exclude(time.perf_counter() - t0)
        log.info("evaluation every %d steps (%s on %d %s images; best.pt by %s, %s is better), prepared in %.1f s",
                 self.every, ",".join(self.cfg.evaluation.metrics), self.cfg.evaluation.samples,
                 self.cfg.evaluation.split, self.metric, "higher" if self.higher else "lower",
                 time.perf_counter() - t0)

    def _take_previous(self, loop: Loop) -> None:
        """The resumed run's best score (same metric only), and its best.pt copied into this run's directory."""
        prev = BestScore.of(self.previous) if self.previous else None
        if prev is None:
            return
        if prev.metric != self.metric:
            log.info("the resumed run kept best.pt by %s; this run keeps it by %s and starts afresh", prev.metric,
                     self.metric)
            return
        target = loop.run.file(BEST_NAME)
        source = Path(prev.path)
        if source.resolve() != target.resolve():
            found = broadcast_object(source.is_file() if is_main_process() else None)  # rank 0's file system decides
            if found and is_main_process():
                _copy_atomic(source, target)
                if source.with_name(BEST_JSON).is_file():
                    _copy_atomic(source.with_name(BEST_JSON), target.with_name(BEST_JSON))
            barrier()
            if not found:
                log.warning("the best.pt of the resumed run (%s, step %d, %s %.4g) is gone; its score is kept, so a "
                            "best.pt is written here only when it is beaten", source, prev.step, prev.metric,
                            prev.value)
        self.best = BestScore(prev.metric, prev.value, prev.step, prev.higher_is_better, str(target))

    # ---------------------------------------------------------------------------------------- steps
    def on_step(self, loop: Loop, info: StepInfo) -> None:
        if self.every > 0 and info.step % self.every == 0:
            self.evaluate(loop, info)

    def evaluate(self, loop: Loop, info: StepInfo) -> EvalResult:
        """Score the generator now (every rank), log the scores, keep best.pt if the best metric improved."""
        assert self.evaluator is not None, "on_start prepares the evaluator"
        self.bundle.step, self.bundle.epoch = info.step, info.epoch
        t0 = time.perf_counter()
        with preserve_rng():
            result = self.evaluator.run()
        self.results.append((info.step, result))
        value = headline_value(self.metric, result.metrics[self.metric])
        if is_better(value, self.best.value if self.best is not None else None, self.higher):
            self._keep_best(loop, info, value, result)
        record: dict[str, Any] = {"step": info.step, "epoch": info.epoch + 1, **stats_values(result.metrics),
                                  f"{EVAL_PREFIX}seconds": round(result.seconds, 3),
                                  f"{EVAL_PREFIX}samples": result.num_samples}
        if self.best is not None:
            record[f"{EVAL_PREFIX}best"] = self.best.value
        loop.log_stats(record)
        for cb in loop.callbacks:  # the training speed in stats.jsonl counts the steps only
            if isinstance(cb, StatsLog):
                cb.exclude(time.perf_counter() - t0)
        for line in result.manifest.get("warnings", []) if len(self.results) == 1 else []:
            log.warning("%s", line)
        return result

    def _keep_best(self, loop: Loop, info: StepInfo, value: float, result: EvalResult) -> None:
        target = loop.run.file(BEST_NAME)
        self.best = BestScore(self.metric, value, info.step, self.higher, str(target))
        loop.task.eval_best = self.best.to_dict()
        path = loop.save(BEST_NAME, "best")
        if is_main_process():
            assert self.evaluator is not None
            manifest = self.evaluator.manifest(path, info.step, info.epoch)
            atomic_write_json(path.with_name(BEST_JSON), {
                **self.best.to_dict(), "metrics": result.metrics, "manifest": manifest})
            log.info("step %d: %s %.4g, the best so far: saved %s", info.step, self.metric, value, path)


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def damsm_sha256(damsm: DAMSMBundle) -> str | None:
    """The sha256 of the DAMSM file training uses (recorded in every checkpoint: the TISE caveat's test)."""
    return file_sha256(damsm.path) if damsm.path is not None and Path(damsm.path).is_file() else None
