"""The registry of generator architectures: one name per system (``attngan``, and the related systems of
the papers as they land), recorded in :attr:`GeneratorConfig.arch` and so in every checkpoint.

Every command builds its networks here and nowhere else (``build_generator``, ``build_discriminators``),
so ``train``, ``sample``, ``attend``, ``eval``, the importer and torchrun handle every architecture alike.
An architecture's generator keeps the AttnGAN call::

    G(z, sent_emb, words_emb, mask, ca_noise=True) -> GeneratorOutput(images, attn, mu, logvar)

with ``attn`` empty for architectures without word attention (``attend`` says so instead of drawing
maps). Register one with :func:`register_arch`; the CLI validates ``--arch`` against :func:`arch_names`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.core.errors import ConfigMismatchError

DEFAULT_ARCH = "attngan"


@dataclass(frozen=True)
class Architecture:
    name: str
    summary: str  # one line for --help and README
    paper: str  # where it comes from
    build_generator: Callable[..., nn.Module]  # (GeneratorConfig, *, init: bool = True) -> nn.Module
    build_discriminators: Callable[..., nn.ModuleList]  # (GeneratorConfig, DiscriminatorConfig, *, init) -> ModuleList
    word_attention: bool = True  # the generator returns word-attention maps (``attend`` draws them)
    sentence_attention: bool = False  # ... and sentence-attention maps


_ARCHS: dict[str, Architecture] = {}


def register_arch(arch: Architecture) -> Architecture:
    """Add ``arch`` under its name (lowercase); registering a different one under a taken name is an error."""
    key = arch.name.strip().lower()
    if key != arch.name or not key:
        raise ValueError(f"architecture names are lowercase and non-empty, got {arch.name!r}")
    if key in _ARCHS and _ARCHS[key] != arch:
        raise ValueError(f"architecture {key!r} is registered twice")
    _ARCHS[key] = arch
    return arch


def _load_builtin() -> None:
    # importing the model modules runs their register_arch calls (local: they import this module)
    from attngan_cli.archs.attngan import generator  # noqa: F401
    from attngan_cli.archs.mirrorgan import glam  # noqa: F401
    from attngan_cli.archs.stackgan import networks  # noqa: F401


def arch_names() -> list[str]:
    _load_builtin()
    return sorted(_ARCHS)


def get_arch(name: str) -> Architecture:
    """The registered architecture ``name``; an unknown name is an error listing the known ones."""
    _load_builtin()
    if name not in _ARCHS:
        raise ConfigMismatchError(f"unknown architecture {name!r} (--arch): choose one of {', '.join(sorted(_ARCHS))}")
    return _ARCHS[name]


def build_generator(cfg: GeneratorConfig, *, init: bool = True) -> nn.Module:
    """The generator of ``cfg.arch`` (``init=False``: skip the initialisation, for weights loaded next)."""
    return get_arch(cfg.arch).build_generator(cfg, init=init)


def build_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    """The discriminators of ``gcfg.arch``, one per generator stage."""
    return get_arch(gcfg.arch).build_discriminators(gcfg, dcfg, init=init)
