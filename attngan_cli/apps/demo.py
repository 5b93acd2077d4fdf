"""The whole pipeline on the built-in shapes data, sized for a CPU and a time budget.

``prep shapes`` -> ``pretrain`` (compact DAMSM) -> ``train`` -> ``sample`` -> ``attend`` -> ``eval``.
Every phase records itself in ``<out>/demo.json`` when complete, so an interrupted demo continues
where it stopped: finished phases are reused, an interrupted pretrain or train run is resumed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attngan_cli.apps.plot import plot_runs_if_possible
from attngan_cli.apps.sample import CaptionSource, SampleSettings, attend, sample_to_dir
from attngan_cli.config.fields import seed_field, validate
from attngan_cli.core.device import resolve_device, resolve_precision
from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.core.fileio import atomic_write_json, read_jsonl
from attngan_cli.core.progress import NullProgress, Progress
from attngan_cli.data.shapes import make_shapes
from attngan_cli.evaluation.evaluate import EvalOptions, evaluate
from attngan_cli.inference.pipeline import load_generator
from attngan_cli.storage.rundirs import FINAL_NAME, RunDir, checkpoint_files
from attngan_cli.training.damsm import pretrain
from attngan_cli.training.gan import train_gan
from attngan_cli.training.resolve import PretrainSettings, TrainSettings, resolve_pretrain, resolve_train

log = logging.getLogger(__name__)

PHASES = ("prep", "pretrain", "train", "sample", "attend", "eval")

DEMO_CAPTIONS = [
    "a large red circle at the top left on a black background",
    "a blue square in the center on a white background",
    "a yellow star at the bottom right on a gray background",
    "a green triangle on the left on a brown background",
    "a purple circle at the bottom on a white background",
    "a large orange square at the top right on a black background",
]
ATTEND_CAPTION = "a large red circle at the top left on a white background"

# Shares of the budget; prep, sample and attend are short and fixed.
PRETRAIN_SHARE = 0.2
TRAIN_SHARE = 0.7


@dataclass
class DemoOptions:
    out: Path = Path("demo")
    minutes: float = 10.0
    device: str = "auto"
    seed: int = seed_field()
    precision: str = "auto"  # bf16 where the hardware computes it, else fp32 (device.resolve_precision)
    lambda_damsm: float | None = None  # None: the shapes preset's value
    n_train: int = 4000
    n_test: int = 1000
    eval_samples: int = 1000
    captions: list[str] = field(default_factory=lambda: list(DEMO_CAPTIONS))
    attend_caption: str = ATTEND_CAPTION
    max_steps: int = 0  # > 0: the train phase also ends after this many steps (a budget free of machine speed)


@dataclass
class DemoResult:
    out: Path
    phases: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, float]]

    @property
    def figures(self) -> dict[str, str]:
        figures = {
            "attention figure": self.phases["attend"]["figure"],
            "sample grid": self.phases["sample"]["grid"],
        }
        if (self.out / "curves.png").is_file():
            figures["training curves"] = str(self.out / "curves.png")
        return figures


class _State:
    """``<out>/demo.json``: what each finished phase produced (written atomically after each phase)."""

    def __init__(self, out: Path, options: DemoOptions) -> None:
        self.path = out / "demo.json"
        self.data: dict[str, Any] = {"phases": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError as e:
                raise AttnGANError(f"{self.path} is damaged ({e}); delete it or choose another --out") from e
        key = {"seed": options.seed, "lambda_damsm": options.lambda_damsm, "n_train": options.n_train,
               "n_test": options.n_test, "precision": options.precision}
        old = self.data.get("options")
        if old is not None and old != key:
            changed = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in key.items() if old.get(k) != v)
            raise AttnGANError(
                f"{out} holds a demo made with other settings ({changed}); use another --out or delete it"
            )
        self.data["options"] = key

    def done(self, phase: str) -> dict[str, Any] | None:
        rec = self.data["phases"].get(phase)
        if rec is None:
            return None
        for key in ("path", "checkpoint", "figure", "grid"):
            if key in rec and not Path(rec[key]).exists():
                return None  # its output was removed: redo the phase
        return rec

    def record(self, phase: str, **info: Any) -> dict[str, Any]:
        self.data["phases"][phase] = info
        atomic_write_json(self.path, self.data)
        return info


def _unfinished_run(runs: Path, command: str, encoders: Path | None = None) -> Path | None:
    """The newest run directory of ``command`` under ``runs`` that has a checkpoint but no ``final.pt``.
    With ``encoders`` (the train phase), only a run trained with those DAMSM encoders: a run left from an
    earlier pretraining cannot continue with new encoders, and a new run is started instead."""
    if not runs.is_dir():
        return None
    cands = sorted(p for p in runs.iterdir() if p.is_dir() and p.name.endswith(f"-{command}"))
    for p in reversed(cands):
        if (p / FINAL_NAME).exists() or not checkpoint_files(p):
            continue
        if encoders is not None and _run_encoders(p) != Path(encoders).resolve():
            log.warning("%s: not continuing %s, which was trained with other DAMSM encoders", command, p)
            continue
        return p
    return None


def _run_encoders(run: Path) -> Path | None:
    """The DAMSM encoders a train run directory's config.json names (resolved), or None."""
    try:
        named = json.loads((run / "config.json").read_text()).get("encoders")
    except (OSError, ValueError):
        return None
    return Path(named).resolve() if named else None


def run_demo(options: DemoOptions, progress: Progress | None = None,
             abort: Callable[[], bool] | None = None) -> DemoResult:
    validate(options)
    if not options.minutes > 0:
        raise InputError(f"--minutes must be more than 0, got {options.minutes:g}")
    for name in ("n_train", "n_test", "eval_samples"):
        if getattr(options, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(options, name)}")
    if options.max_steps < 0:
        raise InputError(f"max_steps must be 0 (no limit) or more, got {options.max_steps}")
    if options.precision == "auto":
        chosen = resolve_precision("auto", resolve_device(options.device))
        log.info("precision auto: %s (%s)", chosen, "bf16 runs in hardware here" if chosen == "bf16"
                 else "no bf16 hardware here, where bf16 is emulated and many times slower")
        options = dataclasses.replace(options, precision=chosen)
    progress = progress or NullProgress()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out, options)
    runs = out / "runs"
    budget_s = options.minutes * 60.0
    t_start = time.monotonic()

    def remaining_minutes(share: float) -> float:
        spent = time.monotonic() - t_start
        return max(0.25, min(share * budget_s, budget_s - spent - 0.1 * budget_s) / 60.0)

    with progress.task("demo", total=len(PHASES), unit="phase") as overall:
        # ---------------------------------------------------------------- prep
        overall.update(description="demo: prep")
        rec = state.done("prep")
        if rec is None:
            t0 = time.monotonic()
            data = make_shapes(out / "data" / "shapes.h5", n_train=options.n_train, n_test=options.n_test,
                               seed=options.seed, overwrite=True, progress=progress, abort=abort)
            rec = state.record("prep", path=str(data), seconds=round(time.monotonic() - t0, 1))
        else:
            log.info("prep: reusing %s", rec["path"])
        data = Path(rec["path"])
        overall.advance(1)

        # ---------------------------------------------------------------- pretrain (compact DAMSM)
        overall.update(description="demo: pretrain")
        rec = _training_phase(state, "pretrain", runs, None, lambda resume: resolve_pretrain(data, preset="shapes", overrides={
            "seed": options.seed, "device": options.device, "precision": options.precision,
            "max_minutes": remaining_minutes(PRETRAIN_SHARE),
        }, resume=resume), pretrain, progress, abort)
        encoders = Path(rec["checkpoint"])
        overall.advance(1)

        # ---------------------------------------------------------------- train
        overall.update(description="demo: train")
        rec = _training_phase(state, "train", runs, encoders, lambda resume: resolve_train(data, encoders=encoders, preset="shapes", overrides={
            "seed": options.seed, "device": options.device, "precision": options.precision,
            "max_minutes": remaining_minutes(TRAIN_SHARE), "lambda_damsm": options.lambda_damsm, "epochs": 1000,
            "max_steps": options.max_steps or None,
            "compile": False,  # minutes of compiling would come out of a budget of minutes
        }, resume=resume), train_gan, progress, abort)
        generator = Path(rec["checkpoint"])
        overall.advance(1)

        bundle = None
        if state.done("sample") is None or state.done("attend") is None:
            bundle = load_generator(generator, device=resolve_device(options.device), need_vocab=True)

        # ---------------------------------------------------------------- sample
        overall.update(description="demo: sample")
        rec = state.done("sample")
        if rec is None:
            t0 = time.monotonic()
            sample_dir = out / "samples"
            settings = SampleSettings(n=4, seed=options.seed, which="all", grid=True, batch_size=24,
                                      precision="fp32", overwrite=True)  # redo an interrupted sample phase
            grid = out / "samples.png"
            files = list(sample_to_dir(bundle, CaptionSource(options.captions), sample_dir, settings,
                                       progress=progress, abort=abort, overview=grid))
            rec = state.record("sample", path=str(sample_dir), grid=str(grid), files=len(files),
                               seconds=round(time.monotonic() - t0, 1))
        overall.advance(1)

        # ---------------------------------------------------------------- attend
        overall.update(description="demo: attend")
        rec = state.done("attend")
        if rec is None:
            t0 = time.monotonic()
            res = attend(bundle, options.attend_caption, out / "attend.png", top=5, seed=options.seed)
            rec = state.record("attend", figure=str(res.figure), json=str(res.json),
                               seconds=round(time.monotonic() - t0, 1))
        overall.advance(1)

        # ---------------------------------------------------------------- eval
        overall.update(description="demo: eval")
        rec = state.done("eval")
        if rec is None:
            t0 = time.monotonic()
            eopts = EvalOptions(metrics=["rprecision", "attributes"], num_samples=options.eval_samples,
                                batch_size=100, seed=options.seed, device=options.device, encoders=encoders)
            result = evaluate(generator, data, eopts, progress=progress, abort=abort)
            rec = state.record("eval", metrics=result.metrics, num_samples=result.num_samples,
                               seconds=round(time.monotonic() - t0, 1))
        overall.advance(1)
        # the training curves with the eval point (a PNG; skipped with a message without matplotlib)
        plot_runs_if_possible([state.data["phases"]["train"]["run"]], out / "curves.png",
                              title="attngan demo: training curves")
        overall.update(description="demo: done")

    return DemoResult(out=out, phases=state.data["phases"], metrics=state.data["phases"]["eval"]["metrics"])


def _training_phase(state: _State, phase: str, runs: Path, encoders: Path | None,
                    resolve: Callable[[Path | None], PretrainSettings | TrainSettings],
                    train_fn: Callable[..., Path], progress: Progress, abort: Callable[[], bool] | None
                    ) -> dict[str, Any]:
    """Reuse a finished ``phase`` (pretrain or train), resume an interrupted one, or start it. ``resolve``
    turns the run to resume (or None) into the phase's settings, as the command would; ``encoders``: the
    DAMSM the train phase uses (an unfinished train run made with others is not continued)."""
    rec = state.done(phase)
    if rec is not None:
        log.info("%s: reusing %s", phase, rec["run"])
        return rec
    t0 = time.monotonic()
    unfinished = _unfinished_run(runs, phase, encoders)
    settings = resolve(unfinished)
    run = RunDir(unfinished) if unfinished else RunDir.create(runs, "shapes", phase)
    ckpt = train_fn(settings, run, progress=progress, abort=abort)
    return state.record(phase, run=str(run.path), checkpoint=str(ckpt),
                        seconds=round(time.monotonic() - t0, 1), **_last_stats(run))


def _last_stats(run: RunDir) -> dict[str, Any]:
    path = run.file("stats.jsonl")
    if not path.exists():
        return {}
    rows = read_jsonl(path)
    return {"last_stats": rows[-1]} if rows else {}
