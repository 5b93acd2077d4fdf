"""Loss and metric curves of one or more runs in one PNG (``attngan plot``; needs matplotlib:
``pip install -e ".[plot]"``).

Curves come from ``stats.jsonl`` (the means the training logged, against the step) and ``metrics.jsonl``
(``attngan eval`` results, as points at the evaluated checkpoint's step). Runs are overlaid, one colour
each, so two trainings (say ``--lambda 0`` and ``--lambda 5``) compare at a glance. A panel is drawn when
some run has its values: GAN panels (D loss, G's adversarial loss summed over stages, the DAMSM terms of G's
loss, KL), pretraining panels (DAMSM train and test loss) and R-precision (the DAMSM's on real test images
during pretraining; the generator's from ``attngan eval``), then one panel per other evaluated metric.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import atomic_path, read_jsonl

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install matplotlib (or, in a checkout, pip install -e ".[plot]")'
STYLES = ("-", "--", ":", "-.")

Value = Callable[[dict[str, Any]], float | None]


def _key(name: str) -> Value:
    def get(rec: dict[str, Any]) -> float | None:
        v = rec.get(name)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
    return get


def _adv_sum(rec: dict[str, Any]) -> float | None:
    parts = [float(v) for k, v in rec.items() if re.fullmatch(r"g_adv\d+", k) and isinstance(v, int | float)]
    return sum(parts) if parts else None


@dataclass(frozen=True)
class Series:
    label: str
    value: Value
    source: str = "stats"  # "stats": a line over stats.jsonl; "metrics": points from metrics.jsonl


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[Series, ...]
    ylabel: str = "loss"


def _eval_value(metric: str) -> Value:
    """The headline number of ``metric`` in a metrics.jsonl record ("mean", else "value", else the first)."""
    def get(rec: dict[str, Any]) -> float | None:
        m = (rec.get("metrics") or {}).get(metric)
        if isinstance(m, dict):
            for key in ("mean", "value", metric, *m):
                v = m.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    return float(v)
            return None
        return float(m) if isinstance(m, int | float) and not isinstance(m, bool) else None
    return get


PANELS = (
    Panel("discriminator loss (sum over stages)", (Series("D", _key("d")),)),
    Panel("generator adversarial loss (sum over stages)", (Series("G adv", _adv_sum),)),
    Panel("DAMSM terms of the generator loss", (Series("word", _key("w_loss")), Series("sentence", _key("s_loss")))),
    Panel("KL (conditioning augmentation)", (Series("KL", _key("kl")),)),
    Panel("DAMSM pretraining loss", (Series("train", _key("train_loss")), Series("test", _key("test_loss")))),
    Panel("R-precision", (Series("DAMSM, real images", _key("rprec")),
                          Series("generated (eval)", _eval_value("rprecision"), "metrics"),
                          Series("generated (--eval-every)", _key("eval/rprecision"))), "R-precision"),
)


@dataclass
class RunCurves:
    label: str
    path: Path
    stats: list[dict[str, Any]]
    metrics: list[dict[str, Any]]


def _run_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_file():  # a checkpoint or the stats file of a run
        p = p.parent
    if not (p / "stats.jsonl").is_file():
        raise InputError(f"{path} is not a run directory with a stats.jsonl (give runs/NNNNN-<dataset>-<command>)")
    return p


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """The directory names, or, where two runs share one (two demos), their paths from where they differ."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath([str(p) for p in resolved]))
    return [str(p.relative_to(common)) if p != common else p.name for p in resolved]


def smoothed(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a debiased exponential moving average (``weight`` 0: the values)."""
    if weight <= 0:
        return list(values)
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** n))
    return out


def _points(records: list[dict[str, Any]], value: Value) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for rec in records:
        step, v = rec.get("step"), value(rec)
        if isinstance(step, int | float) and v is not None and math.isfinite(v):
            xs.append(float(step))
            ys.append(v)
    return xs, ys


def _eval_panels(runs: Sequence[RunCurves]) -> list[Panel]:
    """A panel per evaluated metric but R-precision: ``attngan eval`` points and ``--eval-every`` lines."""
    evaluated = {name for r in runs for rec in r.metrics for name in (rec.get("metrics") or {})}
    during = {k.removeprefix("eval/") for r in runs for rec in r.stats for k in rec
              if k.startswith("eval/") and "_" not in k and k not in ("eval/seconds", "eval/samples", "eval/best")}
    panels = []
    for name in sorted((evaluated | during) - {"rprecision"}):
        series = (Series(name, _eval_value(name), "metrics"),) if name in evaluated else ()
        if name in during:
            series += (Series(f"{name} (--eval-every)", _key(f"eval/{name}")),)
        panels.append(Panel(f"eval: {name}", series, name))
    return panels


def figure_module() -> Any:
    """``matplotlib.figure`` (no pyplot: nothing global changes); ImportError with how to install it."""
    try:
        figure = importlib.import_module("matplotlib.figure")
        importlib.import_module("matplotlib.backends.backend_agg")
    except ImportError as e:
        raise ImportError(f"attngan plot needs matplotlib ({e}); install it with: {INSTALL_HINT}") from e
    return figure


@dataclass
class Line:
    """One curve of one run in one panel."""

    panel: Panel
    run: str  # the run's label
    series: Series
    xs: list[float]
    ys: list[float]


def load_runs(runs: Sequence[str | os.PathLike[str]], labels: Sequence[str] | None = None) -> list[RunCurves]:
    if not runs:
        raise InputError("give at least one run directory to plot")
    dirs = [_run_dir(r) for r in runs]
    if labels is not None and len(labels) != len(dirs):
        raise InputError(f"{len(labels)} labels for {len(dirs)} runs: give one label per run")
    names = list(labels) if labels is not None else unique_labels(dirs)
    return [RunCurves(n, d, read_jsonl(d / "stats.jsonl", lenient=True), read_jsonl(d / "metrics.jsonl", lenient=True))
            for n, d in zip(names, dirs, strict=True)]


def curves(runs: Sequence[RunCurves]) -> tuple[list[Panel], list[Line]]:
    """The panels that have data and their lines, in drawing order (by panel, then run, then series)."""
    panels, lines = [], []
    for panel in (*PANELS, *_eval_panels(runs)):
        found = []
        for run in runs:
            for s in panel.series:
                xs, ys = _points(run.stats if s.source == "stats" else run.metrics, s.value)
                if xs:
                    found.append(Line(panel, run.label, s, xs, ys))
        if found:
            panels.append(panel)
            lines.extend(found)
    return panels, lines


def plot_runs(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
              labels: Sequence[str] | None = None, smooth: float = 0.6, title: str | None = None) -> Path:
    """Draw the curves of ``runs`` (run directories) into the PNG ``out``; returns its path.

    ``labels`` name the runs in the legends (default: their directory names); ``smooth`` (0 to < 1) is
    TensorBoard's smoothing of the stats lines (the raw values stay as a faint line). Raises
    :class:`InputError` for a missing run or nothing to draw, and ImportError without matplotlib.
    """
    if not 0 <= smooth < 1:
        raise InputError(f"--smooth must be in [0, 1), got {smooth:g}")
    loaded = load_runs(runs, labels)
    panels, lines = curves(loaded)
    if not panels:
        raise InputError("nothing to plot: no losses or metrics in "
                         + ", ".join(str(r.path / "stats.jsonl") for r in loaded))
    figure = figure_module()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    cols = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / cols)
    fig = figure.Figure(figsize=(6.0 * cols, 3.4 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    color = {r.label: f"C{i % 10}" for i, r in enumerate(loaded)}
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        mine = [line for line in lines if line.panel is panel]
        for line in mine:
            style = STYLES[panel.series.index(line.series) % len(STYLES)]
            c, label = color[line.run], _legend(line.run, line.series.label, len(loaded), len(panel.series))
            if line.series.source == "metrics":
                ax.plot(line.xs, line.ys, marker="o", linestyle=style, color=c, label=label)
            elif smooth > 0 and len(line.ys) > 2:
                ax.plot(line.xs, line.ys, linestyle=style, color=c, alpha=0.25, linewidth=1)
                ax.plot(line.xs, smoothed(line.ys, smooth), linestyle=style, color=c, label=label, linewidth=1.6)
            else:
                ax.plot(line.xs, line.ys, linestyle=style, color=c, label=label, linewidth=1.6)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
        if len(mine) > 1 or len(loaded) > 1:
            ax.legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return out


def plot_runs_if_possible(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], **kw: Any) -> Path | None:
    """:func:`plot_runs`, or None without matplotlib (saying how to install it): for pipelines such as
    the demo, where the plot is a bonus."""
    try:
        return plot_runs(runs, out, **kw)
    except ImportError as e:
        log.info("no loss curves plot: %s", e)
        return None


def _legend(run: str, series: str, n_runs: int, n_series: int) -> str:
    if n_runs == 1:
        return series
    return run if n_series == 1 else f"{run}: {series}"
