"""The registry of evaluation metrics: each name points to its accumulator class as a ``"module:Class"``
string, imported only when the metric is used (so the registry imports no metric module).

A metric is a small streaming accumulator (torch-fidelity style: features -> statistics -> metric):

* ``__init__(self, ctx)`` receives the :class:`~attngan_cli.evaluation.evaluate.EvalContext` (device,
  dataset, the sampling plan, the shared feature extractors);
* ``update(self, batch)`` receives one :class:`~attngan_cli.evaluation.evaluate.GeneratedBatch` and folds
  it into running statistics (it never keeps images);
* ``compute(self) -> dict[str, float]`` returns the final numbers (e.g. ``{"mean": .., "std": ..}``).

``attngan eval --metric a,b`` validates the names with :func:`parse_metric_names`, which lists the
known ones on a typo.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from attngan_cli.core.errors import InputError


@dataclass(frozen=True)
class MetricSpec:
    name: str
    target: str  # "package.module:Class": the accumulator, called with the EvalContext
    description: str = ""
    needs_inception: bool = False  # needs --inception-weights
    needs_damsm: bool = False  # needs the DAMSM encoders
    needs_attributes: bool = False  # only for datasets with stored attributes (shapes)
    headline: str = "mean"  # the key of compute()'s result that ranks generators (best.pt, attngan runs)
    higher_is_better: bool = True
    needs_clip: bool = False  # needs --clip (a local CLIP checkpoint)

    def factory(self, ctx: Any) -> Any:
        """A new accumulator of this metric for ``ctx``."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)(ctx)


_BUILTIN = [
    MetricSpec("rprecision", "attngan_cli.evaluation.rprecision:RPrecisionMetric",
               "R-precision with the DAMSM encoders (1 true vs 99 other-class captions)", needs_damsm=True),
    MetricSpec("is", "attngan_cli.evaluation.inception:InceptionScoreMetric",
               "Inception Score (10 splits, TF-Inception 2015-12-05); IS* with --is-temperature", needs_inception=True),
    MetricSpec("fid", "attngan_cli.evaluation.fid:FIDMetric",
               "Fréchet Inception Distance to the real test images (2048-d pool3; TF or torchvision Inception "
               "by the protocol)", needs_inception=True,
               headline="fid", higher_is_better=False),
    MetricSpec("clipscore", "attngan_cli.evaluation.clip:CLIPScoreMetric",
               "CLIPScore (torchmetrics: max(100 cos, 0)) and GALIP's plain mean cosine, with --clip", needs_clip=True,
               headline="score"),
    MetricSpec("clip-rprecision", "attngan_cli.evaluation.clip:CLIPRPrecisionMetric",
               "CLIP R-precision (TISE: 1 true vs 99 captions of other images, 10 folds), with --clip",
               needs_clip=True),
    MetricSpec("attributes", "attngan_cli.evaluation.attributes:AttributeAccuracyMetric",
               "shapes only: accuracy of the true attributes read off the images by pixel statistics",
               needs_attributes=True),
]
_REGISTRY: dict[str, MetricSpec] = {spec.name: spec for spec in _BUILTIN}


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add a metric (lowercase name, no commas); a different metric under a taken name is an error."""
    key = spec.name.strip().lower()
    if not key or "," in key or key != spec.name:
        raise ValueError(f"bad metric name {spec.name!r} (lowercase, no commas)")
    if key in _REGISTRY and _REGISTRY[key] != spec:
        raise ValueError(f"metric {key!r} is registered twice")
    _REGISTRY[key] = spec
    return spec


def known_metrics() -> list[str]:
    return sorted(_REGISTRY)


def get_metric(name: str) -> MetricSpec:
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise InputError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def headline_value(name: str, values: dict[str, float]) -> float:
    """The number that ranks generators in metric ``name``'s result ``values`` (its ``headline`` key)."""
    spec = get_metric(name)
    if spec.headline not in values:
        raise InputError(f"metric {name!r} gave no {spec.headline!r} value (it gave: {', '.join(values) or 'nothing'})")
    return float(values[spec.headline])


def parse_metric_names(spec: str | Iterable[str]) -> list[str]:
    """``"is,fid"`` or ``["is", "fid"]`` (or ``["is,fid", "rprecision"]``) -> validated, de-duplicated names."""
    parts: list[str] = []
    for item in [spec] if isinstance(spec, str) else spec:
        parts.extend(p.strip().lower() for p in item.split(","))
    names: list[str] = []
    for p in parts:
        if not p:
            continue
        get_metric(p)
        if p not in names:
            names.append(p)
    if not names:
        raise InputError(f"no metric given; choose from: {', '.join(known_metrics())}")
    return names
