"""The registry of evaluation metrics: ``@register_metric("name")`` on an accumulator class.

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from attngan_cli.core.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    needs_inception: bool = False  # needs --inception-weights
    needs_damsm: bool = False  # needs the DAMSM encoders
    needs_attributes: bool = False  # only for datasets with stored attributes (shapes)


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(name: str, *, description: str = "", needs_inception: bool = False,
                    needs_damsm: bool = False, needs_attributes: bool = False) -> Callable[[T], T]:
    """Class decorator adding a metric accumulator under ``name`` (lowercase, no commas)."""
    key = name.strip().lower()
    if not key or "," in key:
        raise ValueError(f"bad metric name {name!r}")

    def deco(cls: T) -> T:
        if key in _REGISTRY and _REGISTRY[key].factory is not cls:
            raise ValueError(f"metric {key!r} is registered twice")
        _REGISTRY[key] = MetricSpec(key, cls, description or (cls.__doc__ or "").strip().split("\n")[0],  # type: ignore[attr-defined]
                                    needs_inception, needs_damsm, needs_attributes)
        return cls

    return deco


def _load_builtin() -> None:
    # Importing the modules runs their @register_metric decorators. Local: they import register_metric
    # from this module (an import cycle).
    from attngan_cli.evaluation import attributes, fid, inception, rprecision  # noqa: F401


def known_metrics() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_metric(name: str) -> MetricSpec:
    _load_builtin()
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise InputError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


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
