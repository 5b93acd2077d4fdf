"""Reading the official DM-GAN release files (MinfengZhu/DM-GAN: ``bird_DMGAN.pth``, ``coco_DMGAN.pth``)
and turning them into this project's checkpoints (``attngan import dmgan``).

DM-GAN released its generators only; they run on AttnGAN's DAMSM encoders and ``captions.pickle``,
read here as the AttnGAN importer reads them (:mod:`attngan_cli.apps.importers.attngan`: safe loading,
sizes from the tensors, the vocabulary checked against the text encoder and the preset). The generator's
parameter names are the official ones (:mod:`attngan_cli.archs.dmgan.generator`). Discriminators of a
user's own training with the official code (``netD0.pth`` ...) may be given too: their spectral norms
(the official ``spectral.SpectralNorm`` wrapper: ``<conv>.module.weight_bar``, ``weight_u``, ``weight_v``)
are mapped to PyTorch's parametrization (``<conv>.parametrizations.weight.original``, ``.0._u``, ``.0._v``).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from attngan_cli.apps.importers.attngan import (
    CUSTOM_HINT,
    OFFICIAL_DATASET_NAMES,
    OFFICIAL_VOCAB_SIZES,
    ImportResult,
    _check_image_encoder,
    _expect_kind,
    _load_strict,
    _preset_for_vocab,
    _shape,
    _vocab_label,
    infer_generator_config,
    infer_image_encoder_config,
    infer_text_encoder_config,
    load_state_file,
    read_captions_pickle,
    write_imported,
)
from attngan_cli.archs.dmgan import PRESETS as DMGAN_PRESETS
from attngan_cli.archs.dmgan.discriminators import DMGANDiscriminator
from attngan_cli.archs.dmgan.generator import DMGANGenerator
from attngan_cli.archs.registry import image_sizes, new_train_config
from attngan_cli.config.presets import preset_names
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError, InputError
from attngan_cli.networks.text_encoder import TextEncoder

log = logging.getLogger(__name__)

RELEASED = {"bird": "bird_DMGAN.pth", "coco": "coco_DMGAN.pth"}
_SN = {"weight_bar": "parametrizations.weight.original", "weight_u": "parametrizations.weight.0._u",
       "weight_v": "parametrizations.weight.0._v"}


def discriminator_from_official(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """An official DM-GAN discriminator state dict in this project's names (spectral norm as PyTorch's
    parametrization); keys without a spectral norm stay as they are."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in state.items():
        m = re.fullmatch(r"(.+)\.module\.(bias|weight_bar|weight_u|weight_v)", k)
        out[f"{m.group(1)}.{_SN.get(m.group(2), m.group(2))}" if m else k] = v
    return out


def discriminator_to_official(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """The inverse of :func:`discriminator_from_official` (official key order is irrelevant to loading)."""
    back = {v: k for k, v in _SN.items()}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    sn = {k.rsplit(".parametrizations.", 1)[0] for k in state if ".parametrizations." in k}
    for k, v in state.items():
        base, _, leaf = k.partition(".parametrizations.")
        if leaf:
            out[f"{base}.module.{back['parametrizations.' + leaf]}"] = v
        elif k.rsplit(".", 1)[0] in sn:
            out[f"{k.rsplit('.', 1)[0]}.module.{k.rsplit('.', 1)[1]}"] = v
        else:
            out[k] = v
    return out


def infer_dmgan_discriminator(state: dict[str, torch.Tensor], path: Path, role: str) -> tuple[DiscriminatorConfig, int]:
    """(config, image size) of a DM-GAN discriminator state dict in this project's names."""
    convs = sorted(int(m.group(1)) for k in state
                   if (m := re.fullmatch(r"img_code_s16\.(\d+)\.parametrizations\.weight\.original", k)))
    if not convs:
        raise CheckpointError(f"{role} {path} lacks img_code_s16; not a DM-GAN discriminator")
    ndf8 = state[f"img_code_s16.{convs[-1]}.parametrizations.weight.original"].shape[0]
    downs = [k for k in state if re.fullmatch(r"img_code_s(\d+)\.0\.parametrizations\.weight\.original", k)
             and not k.startswith("img_code_s16.")]
    joint = _shape(state, "COND_DNET.jointConv.0.parametrizations.weight.original", path, role)
    if ndf8 % 8:
        raise CheckpointError(f"{role} {path}: image code has {ndf8} channels, not a multiple of 8")
    cfg = DiscriminatorConfig(ndf=ndf8 // 8, embedding_dim=joint[1] - ndf8, spectral_norm=True)
    return cfg, 4 * 2 ** (len(convs) + len(downs))


def _check_vocabulary(words: list[str], n_encoder: int, preset: str, custom: bool, tpath: Path,
                      captions: Path, notes: list[str]) -> None:
    if n_encoder != len(words):
        raise ConfigMismatchError(
            f"the text encoder {tpath} has a vocabulary of {_vocab_label(n_encoder)}, but --captions {captions} has "
            f"{_vocab_label(len(words))}: they belong to different datasets; pass the captions.pickle of the "
            "dataset the encoder was trained on")
    if preset in OFFICIAL_VOCAB_SIZES and len(words) != OFFICIAL_VOCAB_SIZES[preset]:
        other = _preset_for_vocab(len(words))
        if other:
            raise ConfigMismatchError(
                f"the files are for {OFFICIAL_DATASET_NAMES[other]} ({len(words):,} words) but --preset {preset} was "
                f"given (the official {OFFICIAL_DATASET_NAMES[preset]} vocabulary has "
                f"{OFFICIAL_VOCAB_SIZES[preset]:,} words): use --preset {other}")
        if not custom:
            raise ConfigMismatchError(
                f"--captions {captions} has {len(words):,} words, but the released {OFFICIAL_DATASET_NAMES[preset]} "
                f"DM-GAN ({RELEASED[preset]}) uses {OFFICIAL_VOCAB_SIZES[preset]:,} {CUSTOM_HINT}")
        notes.append(f"vocabulary of {len(words):,} words (not the released {preset} one)")


def _check_layout(gcfg: GeneratorConfig, preset: str, custom: bool, gpath: Path, notes: list[str]) -> None:
    want = DMGAN_PRESETS.get(preset, {})
    wanted = {"ngf": want.get("generator.ngf"), "r_num": want.get("generator.r_num"),
              "base_size": want.get("generator.base_size"), "z_dim": want.get("generator.z_dim"),
              "condition_dim": want.get("generator.condition_dim")}
    diffs = ", ".join(f"{k} {getattr(gcfg, k)} (preset: {v})" for k, v in wanted.items() if getattr(gcfg, k) != v)
    if not diffs:
        return
    if not custom:
        other = next((p for p in RELEASED if p != preset and DMGAN_PRESETS[p]["generator.r_num"] == gcfg.r_num
                      and DMGAN_PRESETS[p]["generator.ngf"] == gcfg.ngf), None)
        hint = f": it has the layout of {RELEASED[other]}, use --preset {other}" if other else f" {CUSTOM_HINT}"
        raise ConfigMismatchError(f"the generator {gpath} does not have the --arch dmgan --preset {preset} layout: "
                                  f"{diffs}{hint}")
    notes.append(f"generator sizes differ from the dmgan {preset} preset: {diffs}")


def import_dmgan(
    *,
    generator: str | Path,
    text_encoder: str | Path,
    captions: str | Path,
    preset: str,
    out: str | Path,
    image_encoder: str | Path | None = None,
    discriminators: Sequence[str | Path] = (),
    custom: bool = False,
    overwrite: bool = False,
) -> ImportResult:
    """Check an official DM-GAN generator against the DAMSM text encoder, ``captions.pickle`` and the
    ``--arch dmgan`` preset, and write ``out/generator.pt`` (kind ``generator``, architecture ``dmgan``)
    and ``out/damsm.pt`` (kind ``damsm``). ``custom`` accepts sizes other than the released models'."""
    if preset not in preset_names():
        raise InputError(f"unknown preset {preset!r}; choose one of: {', '.join(preset_names())}")
    if preset not in RELEASED and not custom:
        raise InputError(f"--preset {preset} has no official DM-GAN release ({', '.join(RELEASED.values())}); use "
                         "bird or coco, or add --custom")
    out = Path(out)
    g_out, d_out = out / "generator.pt", out / "damsm.pt"
    if not overwrite:
        for p in (g_out, d_out):
            if p.exists():
                raise InputError(f"{p} already exists; pass --overwrite to replace it or choose another --out")
    notes: list[str] = []
    gpath, tpath, cpath = Path(generator), Path(text_encoder), Path(captions)

    g_state = load_state_file(gpath, "--generator")
    _expect_kind(g_state, "dmgan_generator", "--generator", gpath)
    t_state = load_state_file(tpath, "--text-encoder")
    _expect_kind(t_state, "text_encoder", "--text-encoder", tpath)
    i_state = None
    if image_encoder is not None:
        i_state = load_state_file(Path(image_encoder), "--image-encoder")
        _expect_kind(i_state, "image_encoder", "--image-encoder", Path(image_encoder))
    d_states = []
    for k, p in enumerate(discriminators):
        role = f"--discriminators file {k + 1}"
        s = load_state_file(Path(p), role)
        _expect_kind(s, "dmgan_discriminator", role, Path(p))
        d_states.append((Path(p), role, discriminator_from_official(s)))
    words = read_captions_pickle(cpath)

    gcfg = infer_generator_config(g_state, gpath)
    gcfg.arch = "dmgan"
    tcfg = infer_text_encoder_config(t_state, tpath)
    _check_vocabulary(words, tcfg.vocab_size, preset, custom, tpath, cpath, notes)
    if gcfg.embedding_dim != tcfg.embedding_dim:
        raise ConfigMismatchError(f"the generator {gpath} takes {gcfg.embedding_dim}-d text features but the text "
                                  f"encoder {tpath} makes {tcfg.embedding_dim}-d ones: they were not trained together")
    _check_layout(gcfg, preset, custom, gpath, notes)

    generator_net = DMGANGenerator(gcfg, init=False)
    _load_strict(generator_net, g_state, "--generator", gpath,
                 f"a {gcfg.stages}-stage DM-GAN generator with ngf {gcfg.ngf} and {gcfg.r_num} residual blocks")
    text_net = TextEncoder(tcfg)
    _load_strict(text_net, t_state, "--text-encoder", tpath, "the text encoder")

    ndf = DMGAN_PRESETS.get(preset, {}).get("discriminator.ndf", 32)
    dcfg = DiscriminatorConfig(ndf=ndf, embedding_dim=gcfg.embedding_dim, spectral_norm=True)
    d_out_states: dict[str, dict[str, torch.Tensor]] = {}
    if d_states and len(d_states) != gcfg.stages:
        raise ConfigMismatchError(f"--discriminators got {len(d_states)} files but the generator has {gcfg.stages} "
                                  f"stages ({', '.join(f'{s} px' for s in image_sizes(gcfg))}): pass one per stage, in order")
    for k, ((p, role, s), size) in enumerate(zip(d_states, image_sizes(gcfg), strict=False)):
        cfg_k, size_k = infer_dmgan_discriminator(s, p, role)
        if size_k != size:
            raise ConfigMismatchError(f"{role} {p} is a discriminator for {size_k} px images, but stage {k + 1} makes "
                                      f"{size} px images: pass the discriminators in stage order (netD0 netD1 netD2)")
        if cfg_k.embedding_dim != gcfg.embedding_dim or (k and cfg_k.ndf != dcfg.ndf):
            raise ConfigMismatchError(f"{role} {p} (ndf {cfg_k.ndf}, {cfg_k.embedding_dim}-d sentences) does not fit "
                                      f"the others (ndf {dcfg.ndf}, {gcfg.embedding_dim}-d)")
        if k == 0 and cfg_k.ndf != dcfg.ndf:
            if not custom:
                raise ConfigMismatchError(f"{role} {p} has ndf {cfg_k.ndf}, but the dmgan {preset} preset has ndf "
                                          f"{dcfg.ndf} {CUSTOM_HINT}")
            notes.append(f"discriminator ndf {cfg_k.ndf} (preset: {dcfg.ndf})")
        dcfg = cfg_k
        net = DMGANDiscriminator(cfg_k, size, gcfg.base_size, init=False)
        _load_strict(net, s, role, p, f"a {size} px DM-GAN discriminator with ndf {cfg_k.ndf}")
        d_out_states[str(k)] = net.state_dict()

    icfg = None
    if i_state is not None:
        icfg = infer_image_encoder_config(i_state, Path(image_encoder))  # type: ignore[arg-type]
        if icfg.embedding_dim != tcfg.embedding_dim:
            raise ConfigMismatchError(f"the image encoder {image_encoder} makes {icfg.embedding_dim}-d features but "
                                      f"the text encoder {tpath} {tcfg.embedding_dim}-d ones: not trained together")
        i_state = _check_image_encoder(i_state, icfg, Path(image_encoder))  # type: ignore[arg-type]

    train_cfg = new_train_config(preset, {
        "generator.arch": "dmgan", "generator.stages": gcfg.stages, "generator.base_size": gcfg.base_size,
        "generator.ngf": gcfg.ngf, "generator.r_num": gcfg.r_num, "generator.z_dim": gcfg.z_dim,
        "generator.condition_dim": gcfg.condition_dim, "generator.embedding_dim": gcfg.embedding_dim,
        "discriminator.ndf": dcfg.ndf, "discriminator.embedding_dim": dcfg.embedding_dim,
        "discriminator.spectral_norm": True, "encoders": str(d_out.resolve()),
    })
    tcfg.words = train_cfg.words
    sources = {"generator": gpath, "text_encoder": tpath, "captions": cpath}
    pre_cfg = write_imported(
        g_out, d_out, preset=preset, train_cfg=train_cfg, tcfg=tcfg, icfg=icfg, words=words,
        generator_state=generator_net.state_dict(), text_state=text_net.state_dict(), i_state=i_state,
        d_out_states=d_out_states, sources=sources, image_encoder=image_encoder,
        d_paths=[p for p, _, _ in d_states], source="official-dmgan", notes=notes)
    log.info("imported a %d-stage DM-GAN generator (ngf %d, %d residual blocks) and text encoder (%s words)%s",
             gcfg.stages, gcfg.ngf, gcfg.r_num, f"{len(words):,}",
             f", {len(d_out_states)} discriminators" if d_out_states else "")
    return ImportResult(generator_path=g_out, damsm_path=d_out, train_config=train_cfg, pretrain_config=pre_cfg,
                        vocab_size=len(words), discriminators=len(d_out_states), image_encoder=i_state is not None,
                        notes=notes)
