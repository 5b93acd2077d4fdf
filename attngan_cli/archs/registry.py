"""The registry of architectures: one name per system (``attngan``, ``mirrorgan``, ``stackgan++``,
``stackgan``), recorded in :attr:`GeneratorConfig.arch` and so in every checkpoint.

A name resolves lazily to an :class:`attngan_cli.archs.base.Architecture` from a ``"module:attribute"``
string (stylegan3's ``class_name``): importing this module imports no architecture, and ``--arch X``
imports only X. Adding an architecture is one module and one line in :data:`_BUILTIN`; a third party
(or a test) calls :func:`register_arch` instead. Every command builds its networks here
(:func:`build_generator`, :func:`build_discriminators`) and reads an architecture through
:func:`get_arch`, so ``train``, ``sample``, ``attend``, ``eval``, the importer and torchrun handle every
architecture alike.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from attngan_cli.archs.base import Architecture
from attngan_cli.config.presets import make_train_config, preset_names
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig, TrainConfig
from attngan_cli.core.errors import AttnGANError, ConfigMismatchError

if TYPE_CHECKING:  # annotations only: importing the registry imports neither torch nor an architecture
    from torch import nn

DEFAULT_ARCH = "attngan"

_BUILTIN: dict[str, str] = {
    "attngan": "attngan_cli.archs.attngan:ARCH",
    "mirrorgan": "attngan_cli.archs.mirrorgan:ARCH",
    "stackgan++": "attngan_cli.archs.stackganpp:ARCH",
    "stackgan": "attngan_cli.archs.stackgan:ARCH",
    "dmgan": "attngan_cli.archs.dmgan:ARCH",
    "dfgan": "attngan_cli.archs.dfgan:ARCH",
}
_TARGETS: dict[str, str | Architecture] = dict(_BUILTIN)  # name -> "module:attr" or the loaded architecture


def register_arch(name_or_arch: str | Architecture, target: str | Architecture | None = None) -> None:
    """Register ``register_arch(arch)``, or ``register_arch(name, "package.module:ATTR")`` (imported on
    first use). Registering something else under a taken name is an error."""
    if isinstance(name_or_arch, Architecture):
        name, target = name_or_arch.name, name_or_arch
    else:
        name = name_or_arch
        if target is None:
            raise ValueError("register_arch(name, target): give the architecture or its 'module:attr'")
    key = name.strip().lower()
    if key != name or not key:
        raise ValueError(f"architecture names are lowercase and non-empty, got {name!r}")
    if isinstance(target, str) and ":" not in target:
        raise ValueError(f"architecture target {target!r}: expected 'package.module:ATTRIBUTE'")
    old = _TARGETS.get(key)
    if old is not None and old is not target and old != target and not _same(old, target):
        raise ValueError(f"architecture {key!r} is registered twice")
    _TARGETS[key] = target


def unregister_arch(name: str) -> None:
    """Remove an architecture registered with :func:`register_arch` (the built-in ones stay)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in architecture")
    _TARGETS.pop(name, None)


def _same(a: str | Architecture, b: str | Architecture) -> bool:
    """A loaded architecture and the target it was loaded from are the same registration."""
    loaded, target = (a, b) if isinstance(a, Architecture) else (b, a)
    return isinstance(loaded, Architecture) and isinstance(target, str) and _load(target) is loaded


def _load(target: str) -> Architecture:
    module, _, attr = target.partition(":")
    arch = getattr(importlib.import_module(module), attr)
    if not isinstance(arch, Architecture):
        raise AttnGANError(f"architecture target {target} is a {type(arch).__name__}, not an Architecture")
    return arch


def arch_names() -> list[str]:
    """The registered names (imports nothing)."""
    return sorted(_TARGETS)


def get_arch(name: str) -> Architecture:
    """The architecture ``name`` (imported on first use); an unknown name is an error listing the known ones."""
    if name not in _TARGETS:
        raise ConfigMismatchError(f"unknown architecture {name!r} (--arch): choose one of {', '.join(arch_names())}")
    target = _TARGETS[name]
    if isinstance(target, str):
        arch = _load(target)
        if arch.name != name:
            raise AttnGANError(f"architecture target {target} is named {arch.name!r}, registered as {name!r}")
        _TARGETS[name] = target = arch
    return target


def build_generator(cfg: GeneratorConfig, *, init: bool = True) -> nn.Module:
    """The generator of ``cfg.arch`` (``init=False``: skip the initialisation, for weights loaded next)."""
    return get_arch(cfg.arch).build_generator(cfg, init=init)


def build_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """The discriminators of ``gcfg.arch``."""
    return get_arch(gcfg.arch).build_discriminators(gcfg, dcfg, init=init)


def image_sizes(gcfg: GeneratorConfig) -> list[int]:
    """The image size of every stage of ``gcfg`` (its architecture sets the factor between stages)."""
    return get_arch(gcfg.arch).image_sizes(gcfg)


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------
def named_preset(name: str) -> tuple[Architecture, str, dict[str, Any]] | None:
    """The architecture that defines the named preset ``name`` (e.g. ``mirrorgan-bird``), its dataset
    preset and its overrides; None when no architecture defines it (imports every architecture)."""
    for arch_name in arch_names():
        arch = get_arch(arch_name)
        if name in arch.named_presets:
            base, overrides = arch.named_presets[name]
            return arch, base, dict(overrides)
    return None


def named_preset_names() -> list[str]:
    """Every architecture's named presets (imports every architecture)."""
    return sorted(n for a in arch_names() for n in get_arch(a).named_presets)


def base_preset(name: str) -> str:
    """The dataset preset ``name`` is or starts from (``mirrorgan-bird``: ``bird``); an unknown name is an
    error listing every preset."""
    if name in _dataset_presets():
        return name
    found = named_preset(name)
    if found is None:
        raise AttnGANError(f"unknown preset {name!r}; choose one of: "
                           f"{', '.join([*_dataset_presets(), *named_preset_names()])}")
    return found[1]


def new_train_config(preset: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A new run's config: a dataset preset (``bird``, ``coco``, ``shapes``) and the overrides its
    architecture (``overrides["generator.arch"]``, default attngan) applies to it, or an architecture's
    named preset (``mirrorgan-bird``: its dataset preset, the architecture and its overrides); then
    ``overrides`` (dotted keys; None values ignored)."""
    overrides = dict(overrides or {})
    found = named_preset(preset) if preset not in _dataset_presets() else None
    if found is not None:
        arch, base, own = found
        given = overrides.get("generator.arch")
        if given is not None and given != arch.name:
            raise ConfigMismatchError(f"--preset {preset} is a preset of --arch {arch.name}, not --arch {given}")
        start = {**arch.presets.get(base, {}), "generator.arch": arch.name, **own, "preset": preset}
        return make_train_config(base, {**start, **overrides})
    if preset not in _dataset_presets():
        raise AttnGANError(f"unknown preset {preset!r}; choose one of: "
                           f"{', '.join([*_dataset_presets(), *named_preset_names()])}")
    arch = get_arch(overrides.get("generator.arch") or DEFAULT_ARCH)
    return make_train_config(preset, {**arch.presets.get(preset, {}), **overrides})


def _dataset_presets() -> list[str]:
    return preset_names()
