"""What an architecture is: the :class:`Architecture` record every text-to-image GAN of the package fills,
and the small types its hooks exchange with the generic training engine (:mod:`attngan_cli.training.gan`).

An architecture owns, in one module or folder under ``attngan_cli/archs/``:

* its networks (``build_generator``, ``build_discriminators``) and the size factor between its stages
  (``stage_scale``);
* its settings: dotted config overrides per dataset preset (``presets``), presets chosen by name only
  (``named_presets``), its own hyperparameters (``options``: a dataclass stored in
  ``TrainConfig.arch_options``, set with ``train --arch-option KEY=VALUE``), and the checks of a run's
  settings (``check_settings``, run once by the resolver before any run directory exists);
* its training objective (``make_loss``: a :class:`GANLoss`, one method per phase) and what a new run
  does to the models before the first step (``prepare_models``);
* its sampling (``noise_truncation``) and what it can show (``word_attention``, ``sentence_attention``,
  ``memory``).

The engine calls the generator as ``G(z, sent_emb, words_emb, mask, ca_noise=...)`` and reads only
``out.images`` (one (B, 3, s, s) tensor per stage); ``attend`` and ``sample`` also read ``out.attn`` and
``out.sent_attn`` when the flags say there are any. ``ca_noise`` is True (draw the conditioning
augmentation's noise), False (use its mean) or a (B, condition_dim) tensor of noise; a generator without
conditioning augmentation ignores it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from attngan_cli.config.schema import GeneratorConfig, TrainConfig
from attngan_cli.core.errors import InputError

if TYPE_CHECKING:  # annotations only: the CLI imports this module before torch
    import torch
    from torch import nn

    from attngan_cli.storage.checkpoints import Checkpoint


# --------------------------------------------------------------------------------------------------
# What the losses see
# --------------------------------------------------------------------------------------------------
class TextBatch(NamedTuple):
    """A batch's text as the losses see it (a NamedTuple, so DistributedDataParallel passes it through)."""

    words_emb: torch.Tensor  # (B, D, T) frozen DAMSM word features
    sent_emb: torch.Tensor  # (B, D) sentence features
    mask: torch.Tensor | None  # (B, T) True = padding
    wrong_emb: torch.Tensor  # (B, D) the next sample's sentence over the whole batch (all ranks): mismatched pairs
    captions: torch.Tensor  # (B, T) token ids
    lengths: torch.Tensor  # (B,)
    class_ids: torch.Tensor  # (B,)
    # the generator's conditioning code mu of this batch (B, c_dim), detached: for the discriminators that
    # are conditioned on it (StackGAN++'s official ones); set by the engine for the D phase only
    cond: torch.Tensor | None = None

    def part(self, sl: slice) -> TextBatch:
        """The micro-batch ``sl`` (``--grad-accum``)."""
        return TextBatch(*(None if x is None else x[sl] for x in self))


@dataclass
class LossTerms:
    """One phase's loss: ``total`` (what is back-propagated) and named values to log (detached)."""

    total: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class GANLoss:
    """An architecture's training objective, one method per phase (stylegan3's ``Loss`` without the
    backward: the engine owns autocast, gradient scaling, ``--grad-accum`` and DDP).

    * phase D, :meth:`discriminator`: the loss of one discriminator ``D`` on real images and detached fakes
      of the stage it judges. It runs inside the discriminator's DDP forward, so it may call ``D`` and its
      heads any number of times, and may take gradients with respect to its inputs (a gradient penalty:
      ``real.requires_grad_()`` and ``torch.autograd.grad(..., create_graph=True)``; ``real`` and ``text``
      are leaves of no other graph).
    * phase G, :meth:`generator`: the generator's loss against every discriminator (their weights are
      frozen during it) from the generator's output ``out`` (``out.images``: every stage's images).

    ``record`` is what a GAN checkpoint's ``extra`` keeps of the objective (e.g. the captioner's path).
    """

    record: Mapping[str, Any] = {}

    def discriminator(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, text: TextBatch) -> LossTerms:
        raise NotImplementedError

    def generator(self, Ds: Sequence[nn.Module], out: Any, text: TextBatch) -> LossTerms:
        raise NotImplementedError


@dataclass(frozen=True)
class LossContext:
    """What :attr:`Architecture.make_loss` may use besides the config."""

    device: torch.device
    image_encoder: nn.Module | None  # the frozen DAMSM image encoder (None when lambda_damsm is 0)
    vocab_words: list[str]  # the dataset's vocabulary


@dataclass(frozen=True)
class SettingsContext:
    """What :attr:`Architecture.check_settings` may use besides the config (all checked to exist)."""

    resuming: bool  # the config continues a checkpoint (else: a new run)
    dataset_words: list[str]  # the dataset's vocabulary
    encoders: Checkpoint  # the DAMSM checkpoint the run uses, memory-mapped (its ``path``: the file)


# --------------------------------------------------------------------------------------------------
# The architecture
# --------------------------------------------------------------------------------------------------
Overrides = Mapping[str, Any]  # dotted config keys -> values


@dataclass(frozen=True)
class Architecture:
    """One text-to-image GAN. Only the name, the texts, the builders and ``make_loss`` are required."""

    name: str  # lowercase; recorded as GeneratorConfig.arch in every checkpoint
    summary: str  # one line for --help and README
    paper: str  # where it comes from
    build_generator: Callable[..., nn.Module]  # (GeneratorConfig, *, init: bool = True) -> G
    build_discriminators: Callable[..., nn.ModuleList]  # (GeneratorConfig, DiscriminatorConfig, *, init) -> Ds
    make_loss: Callable[[TrainConfig, LossContext], GANLoss]  # the training objective of a run
    stage_scale: int = 2  # size factor between neighbouring stages: images of base_size * scale**i
    presets: Mapping[str, Overrides] = field(default_factory=dict)  # dataset preset -> overrides over it
    named_presets: Mapping[str, tuple[str, Overrides]] = field(default_factory=dict)  # name -> (base preset, overrides)
    options: type | None = None  # dataclass of its own hyperparameters (TrainConfig.arch_options, --arch-option)
    # (cfg, context) -> cfg: checks (and may complete) a run's settings; raises an AttnGANError naming the option
    check_settings: Callable[[TrainConfig, SettingsContext], TrainConfig] | None = None
    # (cfg) -> the DAMSM encoders a new run takes when none are given ("": none)
    default_encoders: Callable[[TrainConfig], str] | None = None
    # (cfg, G, G_ema) -> None: a new run's models before the first step (e.g. frozen weights of an earlier run)
    prepare_models: Callable[[TrainConfig, nn.Module, nn.Module], None] | None = None
    # sampling's noise (``sample``, ``attend``, ``eval``; --truncation overrides t): t > 0 draws z from N(0, 1)
    # truncated to [-t, t]; with ``truncation_bound`` b > 0, z = t * (N(0, 1) truncated to [-b, b]) (DF-GAN)
    noise_truncation: float = 0.0
    truncation_bound: float = 0.0
    word_attention: bool = True  # the generator returns word-attention maps (``attend`` draws them)
    sentence_attention: bool = False  # ... and sentence-attention maps
    memory: bool = False  # a dynamic memory over the words (DM-GAN)

    def image_sizes(self, gcfg: GeneratorConfig) -> list[int]:
        """The image size of every stage of ``gcfg``."""
        return gcfg.sizes(self.stage_scale)

    def option_values(self, stored: Mapping[str, Any]) -> Any:
        """Its options dataclass filled from ``stored`` (``TrainConfig.arch_options``), defaults elsewhere."""
        if self.options is None:
            if stored:
                raise InputError(f"--arch {self.name} has no options, but arch_options holds {', '.join(stored)}")
            return None
        return self.options(**{k: _coerce_option(self, k, v) for k, v in _known(self, stored).items()})


# --------------------------------------------------------------------------------------------------
# Architecture options (--arch-option KEY=VALUE)
# --------------------------------------------------------------------------------------------------
def option_fields(arch: Architecture) -> dict[str, dataclasses.Field]:
    """The options an architecture declares (empty without any)."""
    return {f.name: f for f in dataclasses.fields(arch.options)} if arch.options is not None else {}


def describe_options(arch: Architecture) -> str:
    fields = option_fields(arch)
    if not fields:
        return f"--arch {arch.name} has no options"
    return f"the options of --arch {arch.name}: " + "; ".join(
        f"{n} ({f.metadata.get('help', '')})" if f.metadata.get("help") else n for n, f in fields.items())


def _known(arch: Architecture, given: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = option_fields(arch)
    for key in given:
        if key not in fields:
            raise InputError(f"--arch-option {key}: unknown option ({describe_options(arch)})")
    return given


def _coerce_option(arch: Architecture, key: str, value: Any) -> Any:
    """``value`` (a command-line string, or a stored JSON value) as the option's declared type."""
    tp = typing.get_type_hints(arch.options)[key]
    if not isinstance(value, str) or tp is str:
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if tp is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return tp(value)
    except (TypeError, ValueError):
        name = getattr(tp, "__name__", str(tp))
        raise InputError(f"--arch-option {key}={value}: expected {name} ({describe_options(arch)})") from None


def resolve_options(arch: Architecture, given: Mapping[str, Any], stored: Mapping[str, Any] | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``given`` options (KEY -> value, strings from the command line) over the ``stored`` ones, checked
    by the architecture's options dataclass: (the options to store in ``TrainConfig.arch_options``, the
    config overrides of the options that name a config field instead: ``metadata={"config": "dotted.key"}``)."""
    stored = dict(stored or {})
    if not given and not stored:
        return {}, {}
    if arch.options is None:
        raise InputError(f"--arch-option {next(iter({**stored, **given}))}: {describe_options(arch)}")
    values = {k: _coerce_option(arch, k, v) for k, v in _known(arch, {**stored, **given}).items()}
    arch.options(**values)  # the dataclass checks the values (__post_init__), naming the option
    fields = option_fields(arch)
    keep = {k: v for k, v in values.items() if "config" not in fields[k].metadata}
    overrides = {fields[k].metadata["config"]: v for k, v in values.items() if "config" in fields[k].metadata}
    return keep, overrides


def parse_option_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` from a repeatable ``--arch-option`` into a dict (a later key wins)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--arch-option {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------------------------------
# Settings an architecture does not use
# --------------------------------------------------------------------------------------------------
# TrainConfig fields that belong to one architecture or another: (field, flag, its unset value).
ARCH_FIELDS = {"captioner": ("--captioner", ""), "color_consistency": ("--color-consistency", 0.0),
               "init": ("--init", "")}


def refuse_unused(cfg: TrainConfig, arch: Architecture, uses: Sequence[str] = ()) -> None:
    """An :class:`InputError` for a field of :data:`ARCH_FIELDS` set on a run of ``arch`` that does not
    use it (``uses``): e.g. ``--captioner`` with an architecture without MirrorGAN's STREAM."""
    for name, (flag, unset) in ARCH_FIELDS.items():
        if name not in uses and getattr(cfg, name) != unset:
            raise InputError(f"{flag} ({name}) is not used by --arch {arch.name} ({arch.paper}); leave it out")
