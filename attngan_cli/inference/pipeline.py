"""Using trained models: the generator and DAMSM bundles, their loaders, and the one way to run the
generator on captions.

Everything that turns a checkpoint into images goes through this module: ``sample``, ``attend``,
``eval``, the demo, the training loop's sample grids and the benchmarks. A checkpoint is given as a file
or a run directory; :func:`attngan_cli.storage.rundirs.resolve_checkpoint` picks the file. The models never
import a data module: the vocabulary is attached here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attngan_cli.archs.registry import build_generator, image_sizes
from attngan_cli.config.schema import GeneratorConfig, PretrainConfig, TextEncoderConfig, TrainConfig
from attngan_cli.config.serialize import from_dict
from attngan_cli.core.device import autocast
from attngan_cli.core.errors import CheckpointError
from attngan_cli.data.vocab import Vocabulary
from attngan_cli.networks.image_encoder import ImageEncoder
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import (
    DAMSM_KIND,
    GAN_KIND,
    GENERATOR_KIND,
    Checkpoint,
    load_checkpoint,
    load_module_state,
    require_state,
)
from attngan_cli.storage.rundirs import resolve_checkpoint


# --------------------------------------------------------------------------------------------------
# Bundles
# --------------------------------------------------------------------------------------------------
@dataclass
class GeneratorBundle:
    """A trained generator with what it needs to turn text into images; every module in eval mode,
    without gradients."""

    generator: nn.Module  # the architecture of config.generator.arch (attngan_cli.archs.registry)
    text_encoder: TextEncoder
    vocab: Vocabulary | None
    config: TrainConfig
    path: Path | None = None
    step: int | None = None  # training position of the checkpoint (None: imported)
    epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the checkpoint's extra (e.g. damsm_path)

    @property
    def image_sizes(self) -> list[int]:
        """The image size of every stage."""
        return image_sizes(self.config.generator)


@dataclass
class DAMSMBundle:
    """Trained DAMSM text and image encoders (eval mode, no gradients)."""

    text_encoder: TextEncoder
    image_encoder: ImageEncoder | None  # None: loaded without it (``need_image=False``) from a text-only file
    vocab: Vocabulary | None
    config: PretrainConfig
    path: Path | None = None


def _freeze(module: nn.Module, device: str | torch.device) -> None:
    module.to(device).eval()
    module.requires_grad_(False)


def _vocab(ckpt: Checkpoint) -> Vocabulary | None:
    return Vocabulary(list(ckpt.vocab)) if ckpt.vocab is not None else None


# --------------------------------------------------------------------------------------------------
# DAMSM
# --------------------------------------------------------------------------------------------------
def damsm_config(config: dict[str, Any]) -> PretrainConfig:
    """The :class:`PretrainConfig` stored in a DAMSM checkpoint. A compact encoder saved before
    ``image.compact_version`` (a field format_version 1 configs may lack) is version 1."""
    image = config.get("image") if isinstance(config, dict) else None
    if isinstance(image, dict) and image.get("backbone") == "compact" and "compact_version" not in image:
        config = {**config, "image": {**image, "compact_version": 1}}
    return from_dict(PretrainConfig, config, where="checkpoint config")


def build_encoders(cfg: PretrainConfig) -> tuple[TextEncoder, ImageEncoder]:
    """Freshly initialised DAMSM encoders of ``cfg``."""
    return TextEncoder(cfg.text), ImageEncoder(cfg.image)


def damsm_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu", need_image: bool = True) -> DAMSMBundle:
    """The encoders of a ``damsm`` checkpoint; ``need_image=False`` accepts one without the image encoder
    (an imported text encoder alone: enough for an objective without the DAMSM loss)."""
    cfg = damsm_config(ckpt.config)
    text, image = build_encoders(cfg)
    modules: list[tuple[str, nn.Module]] = [("text_encoder", text)]
    if need_image or "image_encoder" in ckpt.state:
        modules.append(("image_encoder", image))
    for name, module in modules:
        require_state(ckpt, name)
        load_module_state(module, ckpt.state[name], name.replace("_", " "), ckpt.path)
        _freeze(module, device)
    return DAMSMBundle(text, image if len(modules) == 2 else None, _vocab(ckpt), cfg, ckpt.path)


def load_damsm(path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "cpu",
               need_image: bool = True) -> DAMSMBundle:
    """DAMSM encoders from a ``damsm`` checkpoint or a pretrain run directory (``need_image``: see
    :func:`damsm_from_checkpoint`)."""
    path = resolve_checkpoint(path_or_run_dir, what="DAMSM checkpoint")
    return damsm_from_checkpoint(load_checkpoint(path, kind=DAMSM_KIND, map_location="cpu"), device, need_image)


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------
def _text_config(ckpt: Checkpoint, state: dict[str, torch.Tensor], caption_words: int) -> TextEncoderConfig:
    for key in ("damsm_config", "text_config"):
        if isinstance(ckpt.extra.get(key), dict):
            return from_dict(TextEncoderConfig, ckpt.extra[key], where=f"checkpoint extra.{key}")
    if isinstance(ckpt.config.get("text"), dict):
        return from_dict(TextEncoderConfig, ckpt.config["text"], where="checkpoint config.text")
    try:  # infer from the weights' shapes: encoder.weight (V, word_dim), rnn.weight_hh_l0 (4H, H)
        vocab_size, word_dim = state["encoder.weight"].shape
        hidden = state["rnn.weight_hh_l0"].shape[1]
    except KeyError as e:
        raise CheckpointError(f"checkpoint {ckpt.path}: text encoder weights lack {e}") from e
    return TextEncoderConfig(vocab_size=int(vocab_size), word_dim=int(word_dim), embedding_dim=2 * int(hidden),
                             words=caption_words)


def generator_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu", ema: bool = True) -> GeneratorBundle:
    """The generator (its EMA weights unless ``ema=False``) and text encoder of a ``gan`` or ``generator``
    checkpoint."""
    if "generator" in ckpt.config:
        cfg = from_dict(TrainConfig, ckpt.config, where="checkpoint config")
    else:
        cfg = TrainConfig(generator=from_dict(GeneratorConfig, ckpt.config.get("generator_config", {}),
                                              where="checkpoint config.generator_config"))
    if ckpt.kind == GAN_KIND:
        key = "generator_ema" if ema and "generator_ema" in ckpt.state else "generator"
        g_state = ckpt.state.get(key)
        t_state = ckpt.extra.get("damsm_text_encoder")
        if g_state is None:
            raise CheckpointError(f"checkpoint {ckpt.path} has no state {key!r}")
        if t_state is None:
            raise CheckpointError(f"checkpoint {ckpt.path} holds no text encoder (extra.damsm_text_encoder)")
    else:
        g_state, t_state = ckpt.state.get("generator"), ckpt.state.get("text_encoder")
        if g_state is None or t_state is None:
            raise CheckpointError(f"generator checkpoint {ckpt.path} needs state 'generator' and 'text_encoder'")
    generator = build_generator(cfg.generator)
    text_encoder = TextEncoder(_text_config(ckpt, t_state, cfg.words))
    load_module_state(generator, g_state, "generator", ckpt.path)
    load_module_state(text_encoder, t_state, "text encoder", ckpt.path)
    _freeze(generator, device)
    _freeze(text_encoder, device)
    trained = ckpt.kind == GAN_KIND
    return GeneratorBundle(generator, text_encoder, _vocab(ckpt), cfg, ckpt.path,
                           step=ckpt.step if trained else None, epoch=ckpt.epoch if trained else None,
                           extra=dict(ckpt.extra))


def load_generator(path_or_run_dir: str | os.PathLike[str], device: str | torch.device = "cpu",
                   ema: bool = True, need_vocab: bool = False) -> GeneratorBundle:
    """A trained generator from a ``gan`` checkpoint or train run directory, or a ``generator`` checkpoint
    written by ``attngan import official``. ``need_vocab``: fail when the checkpoint stores no vocabulary
    (captions could not be encoded)."""
    path = resolve_checkpoint(path_or_run_dir, what="generator checkpoint")
    ckpt = load_checkpoint(path, kind=(GAN_KIND, GENERATOR_KIND), map_location="cpu")
    bundle = generator_from_checkpoint(ckpt, device, ema)
    if need_vocab and bundle.vocab is None:
        raise CheckpointError(f"checkpoint {path} holds no vocabulary; captions cannot be encoded")
    return bundle


# --------------------------------------------------------------------------------------------------
# Running the generator
# --------------------------------------------------------------------------------------------------
@dataclass
class Generated:
    images: list[torch.Tensor]  # per stage (B, 3, s, s) float32 in [-1, 1], on the model's device
    attn: list[torch.Tensor]  # per attention model (B, T, h, w) float32
    sent_attn: list[torch.Tensor] = field(default_factory=list)  # per sentence attention (B, 1, h, w): mirrorgan


def module_device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def embed_captions(text_encoder: nn.Module, token_ids: torch.Tensor, lengths: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Text features of 0-padded captions (B, T): words (B, D, T), sentence (B, D), both float32, and the
    padding mask (B, T), True = padding."""
    words_emb, sent_emb = text_encoder(token_ids, lengths)
    mask = (token_ids == 0)[:, : words_emb.shape[2]]
    return words_emb.float(), sent_emb.float(), mask


@torch.inference_mode()
def generate(bundle: GeneratorBundle, token_ids: torch.Tensor, lengths: torch.Tensor, z: torch.Tensor,
             eps: torch.Tensor | None = None, precision: str = "fp32") -> Generated:
    """Every stage's images for a batch of captions.

    token_ids (B, T) 0-padded, lengths (B,), z (B, z_dim) and eps (B, condition_dim), on any device: the
    conditioning augmentation uses c = mu + sigma * eps, or c = mu when ``eps`` is None. Nothing is drawn
    from a random generator, so the result is a function of the inputs. The generator runs in eval mode
    (and is put back in the mode it was in).
    """
    gen, enc = bundle.generator, bundle.text_encoder
    device = module_device(gen)
    token_ids = token_ids.to(device)
    words_emb, sent_emb, mask = embed_captions(enc, token_ids, lengths.to(device))
    was_training = gen.training
    gen.eval()
    try:
        with autocast(device, precision):
            out = gen(z.to(device), sent_emb, words_emb, mask,
                      ca_noise=False if eps is None else eps.to(device, sent_emb.dtype))
    finally:
        gen.train(was_training)
    return Generated([im.float() for im in out.images], [a.float() for a in getattr(out, "attn", ())],
                     [a.float() for a in getattr(out, "sent_attn", ())])
