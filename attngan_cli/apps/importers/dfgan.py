"""Reading DF-GAN's released training states (``state_epoch_1220.pth`` for CUB, ``state_epoch_290.pth``
for COCO) and turning them into a ``gan`` checkpoint of ``--arch dfgan``.

A DF-GAN state file is the dict the official training saves every few epochs (tobran/DF-GAN
``code/lib/utils.py``)::

    {"model": {"netG": ..., "netD": ..., "netC": ...},
     "optimizers": {"optimizer_G": ..., "optimizer_D": ...}, "epoch": int}

with the three state dicts prefixed by ``module.`` when the training ran under DistributedDataParallel
(as the released ones did). ``optimizer_D`` holds the discriminator's and the condition head's
parameters, in that order. The file is read with ``torch.load(weights_only=True)``: no code from it runs.

The parameter names are mapped onto :mod:`attngan_cli.archs.dfgan.networks` (:func:`map_key`), the
optimiser states follow their parameters by name, and every size is read from the tensors. The result is
a training checkpoint (kind ``gan``): ``sample``, ``attend``, ``eval`` read it like a trained run, and
``train DATA --resume OUT/dfgan.pt`` fine-tunes it with the official Adam moments, from the official
epoch on. DF-GAN keeps no moving average of G, so the checkpoint's EMA weights are G's.

The text encoder is AttnGAN's DAMSM (``text_encoder200.pth`` on CUB, ``text_encoder100.pth`` on COCO) with
its ``captions.pickle``, read by :mod:`attngan_cli.apps.importers.attngan`.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attngan_cli.apps.importers.attngan import (
    CUSTOM_HINT,
    OFFICIAL_DATASET_NAMES,
    OFFICIAL_VOCAB_SIZES,
    _check_file,
    _check_image_encoder,
    _expect_kind,
    _load_strict,
    _sha256,
    _vocab_label,
    infer_image_encoder_config,
    infer_text_encoder_config,
    load_state_file,
    read_captions_pickle,
)
from attngan_cli.archs.dfgan.networks import DFDiscriminator, DFGenerator
from attngan_cli.archs.registry import new_train_config
from attngan_cli.config.presets import make_pretrain_config, preset_names
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig, PretrainConfig, TrainConfig
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError, InputError
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import GAN_KIND, Checkpoint, save_checkpoint

log = logging.getLogger(__name__)

ROLE = "--state"
LAYOUT = ("a DF-GAN training state (state_epoch_*.pth: a dict with model.netG, model.netD, model.netC and "
          "optimizers.optimizer_G, optimizers.optimizer_D)")
RELEASED = {"bird": "state_epoch_1220.pth", "coco": "state_epoch_290.pth"}

# official name (without ``module.``) -> ours; the groups are the block index and the tensor's name
_G_RULES = [
    (r"fc\.(weight|bias)", r"fc.\1"),
    (r"GBlocks\.(\d+)\.c1\.(weight|bias)", r"blocks.\1.conv1.\2"),
    (r"GBlocks\.(\d+)\.c2\.(weight|bias)", r"blocks.\1.conv2.\2"),
    (r"GBlocks\.(\d+)\.c_sc\.(weight|bias)", r"blocks.\1.shortcut.\2"),
    (r"to_rgb\.1\.(weight|bias)", r"to_rgb.\1"),
]
_D_RULES = [
    (r"conv_img\.(weight|bias)", r"conv_in.\1"),
    (r"DBlocks\.(\d+)\.gamma", r"blocks.\1.gain"),
    (r"DBlocks\.(\d+)\.conv_r\.0\.weight", r"blocks.\1.conv1.weight"),
    (r"DBlocks\.(\d+)\.conv_r\.2\.weight", r"blocks.\1.conv2.weight"),
    (r"DBlocks\.(\d+)\.conv_s\.(weight|bias)", r"blocks.\1.shortcut.\2"),
]
_C_RULES = [(r"joint_conv\.0\.weight", "head.conv1.weight"), (r"joint_conv\.2\.weight", "head.conv2.weight")]
_AFFINE = re.compile(r"GBlocks\.(\d+)\.fuse([12])\.affine([01])\.fc_(gamma|beta)\.linear([12])\.(weight|bias)")


def map_key(net: str, key: str) -> str | None:
    """Our name of the official parameter ``key`` of ``net`` (netG, netD or netC); None when unknown."""
    if net == "netG" and (m := _AFFINE.fullmatch(key)):
        block, fuse, affine, which, linear, tensor = m.groups()
        return f"blocks.{block}.fuse{fuse}.affine{int(affine) + 1}.{which}.{0 if linear == '1' else 2}.{tensor}"
    for pattern, repl in {"netG": _G_RULES, "netD": _D_RULES, "netC": _C_RULES}[net]:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    return None


# --------------------------------------------------------------------------------------------------
# Reading the state file
# --------------------------------------------------------------------------------------------------
def load_dfgan_state(path: str | Path) -> dict[str, Any]:
    """The official state dict, safely loaded and checked for the layout of :data:`LAYOUT`; the networks'
    ``module.`` prefixes dropped."""
    path = Path(path)
    _check_file(path, ROLE)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{ROLE} {path} holds pickled Python objects, not {LAYOUT}; attngan does not run "
                              "code from model files") from e
    except (RuntimeError, EOFError, ValueError, OSError, UnicodeDecodeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CheckpointError(f"{ROLE} {path} is not a readable PyTorch file ({type(e).__name__}: {first})") from e
    if isinstance(obj, dict) and obj.get("format") == "attngan":
        raise CheckpointError(f"{ROLE} {path} is already an attngan checkpoint (kind {obj.get('kind')!r}); "
                              f"`attngan import dfgan` takes {LAYOUT}")
    model = obj.get("model") if isinstance(obj, dict) else None
    if not isinstance(model, dict) or not all(isinstance(model.get(k), Mapping) for k in ("netG", "netD", "netC")):
        found = ", ".join(map(str, list(obj)[:4])) if isinstance(obj, dict) else type(obj).__name__
        bare = isinstance(obj, dict) and ("fc.weight" in obj or "module.fc.weight" in obj)
        hint = " (a bare generator state dict? the importer needs the whole training state)" if bare else ""
        raise CheckpointError(f"{ROLE} {path} is not {LAYOUT}: found {found}{hint}")
    nets = {}
    for name in ("netG", "netD", "netC"):
        state = model[name]
        bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"{ROLE} {path}: model.{name} entry {bad[0]!r} is not a named tensor")
        nets[name] = OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in state.items())
    optim = obj.get("optimizers")
    if optim is not None and not (isinstance(optim, dict) and all(
            isinstance(optim.get(k), dict) and "state" in optim[k] and "param_groups" in optim[k]
            for k in ("optimizer_G", "optimizer_D"))):
        raise CheckpointError(f"{ROLE} {path}: 'optimizers' is not the official pair of Adam state dicts "
                              "(optimizer_G, optimizer_D)")
    epoch = obj.get("epoch", 0)
    return {"nets": nets, "optimizers": optim, "epoch": int(epoch) if isinstance(epoch, int) else 0}


def _need(state: Mapping[str, torch.Tensor], key: str, net: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{ROLE} {path}: model.{net} lacks {key!r}, so it is not DF-GAN's {net} "
                              "(code/models/GAN.py) or the file is incomplete")
    return state[key]


def infer_configs(nets: Mapping[str, Mapping[str, torch.Tensor]], path: Path) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """The generator's and discriminator's sizes read from the tensors."""
    g, d, c = nets["netG"], nets["netD"], nets["netC"]
    fc = _need(g, "fc.weight", "netG", path)
    z_dim = fc.shape[1]
    cond_in = _need(g, "GBlocks.0.fuse1.affine0.fc_gamma.linear1.weight", "netG", path).shape[1]
    nf = _need(g, "to_rgb.1.weight", "netG", path).shape[1]
    g_blocks = len({m.group(1) for k in g if (m := re.match(r"GBlocks\.(\d+)\.", k))})
    ndf = _need(d, "conv_img.weight", "netD", path).shape[0]
    d_blocks = len({m.group(1) for k in d if (m := re.match(r"DBlocks\.(\d+)\.", k))})
    joint = _need(c, "joint_conv.0.weight", "netC", path)
    if d_blocks != g_blocks:
        raise CheckpointError(f"{ROLE} {path}: netG has {g_blocks} up-blocks ({4 * 2**g_blocks} px) but netD "
                              f"{d_blocks} down-blocks ({4 * 2**d_blocks} px): they are not one model")
    embedding = cond_in - z_dim
    if embedding < 1:
        raise CheckpointError(f"{ROLE} {path}: the affines take {cond_in} inputs, fewer than the noise's {z_dim}")
    feature_ch = d[f"DBlocks.{d_blocks - 1}.conv_r.2.weight"].shape[0] if d_blocks else ndf
    if joint.shape[1] - feature_ch != embedding:
        raise CheckpointError(f"{ROLE} {path}: netC joins {joint.shape[1] - feature_ch}-d sentences, netG "
                              f"{embedding}-d ones: they are not one model")
    gcfg = GeneratorConfig(arch="dfgan", stages=1, base_size=4 * 2**g_blocks, ngf=nf, z_dim=z_dim,
                           embedding_dim=embedding)
    return gcfg, DiscriminatorConfig(ndf=ndf, embedding_dim=embedding)


def map_state(net: str, official: Mapping[str, torch.Tensor], module: nn.Module, path: Path
              ) -> tuple[OrderedDict[str, torch.Tensor], dict[str, str]]:
    """(our state dict for ``module``'s part of ``net``, official name -> our name). Official tensors
    without a place in ``module`` are dropped only where the official network never uses them either (the
    1x1 shortcut of a discriminator block whose channels do not change)."""
    own = module.state_dict()
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    names: dict[str, str] = {}
    for key, value in official.items():
        ours = map_key(net, key)
        if ours is None:
            raise CheckpointError(f"{ROLE} {path}: model.{net} holds {key!r}, which DF-GAN's {net} does not have")
        if ours not in own:
            if net == "netD" and ".conv_s." in key:
                continue  # created but never applied by the official down-block whose channels stay
            raise CheckpointError(f"{ROLE} {path}: model.{net}.{key} has no place in a {net} of these sizes")
        out[ours] = value.detach().clone()
        names[key] = ours
    return out, names


def map_optimizer(state: Mapping[str, Any], official_order: list[tuple[str, str]], names: dict[tuple[str, str], str],
                  module: nn.Module, opt_name: str, path: Path) -> dict[str, Any]:
    """The official Adam state dict (indices over ``official_order``: (net, key) per parameter) as one over
    ``module.parameters()`` (ours), through ``names`` ((net, official key) -> our name)."""
    own_index = {name: i for i, (name, _) in enumerate(module.named_parameters())}
    groups = state["param_groups"]
    if len(groups) != 1:
        raise CheckpointError(f"{ROLE} {path}: optimizers.{opt_name} has {len(groups)} parameter groups; the "
                              "official Adam has one")
    if len(groups[0]["params"]) != len(official_order):
        raise CheckpointError(f"{ROLE} {path}: optimizers.{opt_name} covers {len(groups[0]['params'])} parameters, "
                              f"the networks have {len(official_order)}: the file mixes two models")
    moved: dict[int, Any] = {}
    for position, index in enumerate(groups[0]["params"]):
        if index not in state["state"]:
            continue  # a parameter without gradients so far (the unused shortcuts)
        ours = names.get(official_order[position])
        if ours is None:
            continue
        moved[own_index[ours]] = state["state"][index]
    group = {k: v for k, v in groups[0].items() if k != "params"}
    return {"state": moved, "param_groups": [{**group, "params": list(range(len(own_index)))}]}


# --------------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------------
@dataclass
class DFGANImport:
    checkpoint_path: Path
    damsm_path: Path
    train_config: TrainConfig
    pretrain_config: PretrainConfig
    vocab_size: int
    epoch: int
    optimizers: bool
    image_encoder: bool
    notes: list[str] = field(default_factory=list)


def import_dfgan(*, state: str | Path, text_encoder: str | Path, captions: str | Path, preset: str,
                 out: str | Path, image_encoder: str | Path | None = None, custom: bool = False,
                 overwrite: bool = False) -> DFGANImport:
    """Check a DF-GAN state file against the text encoder, ``captions.pickle`` and ``preset``, and write
    ``out/dfgan.pt`` (kind ``gan``, ``--arch dfgan``) and ``out/damsm.pt`` (kind ``damsm``). ``custom``
    accepts sizes and vocabularies other than the released models' of ``preset``."""
    if preset not in preset_names():
        raise InputError(f"unknown preset {preset!r}; choose one of: {', '.join(preset_names())}")
    if preset not in RELEASED and not custom:
        raise InputError(f"--preset {preset} has no released DF-GAN model; use bird or coco, or add --custom")
    out = Path(out)
    c_out, d_out = out / "dfgan.pt", out / "damsm.pt"
    if not overwrite:
        for p in (c_out, d_out):
            if p.exists():
                raise InputError(f"{p} already exists; pass --overwrite to replace it or choose another --out")
    spath, tpath = Path(state), Path(text_encoder)
    notes: list[str] = []

    # ---- read the files
    loaded = load_dfgan_state(spath)
    t_state = load_state_file(tpath, "--text-encoder")
    _expect_kind(t_state, "text_encoder", "--text-encoder", tpath)
    words = read_captions_pickle(captions)
    tcfg = infer_text_encoder_config(t_state, tpath)
    gcfg, dcfg = infer_configs(loaded["nets"], spath)

    # ---- consistency
    if tcfg.vocab_size != len(words):
        raise ConfigMismatchError(
            f"the text encoder {tpath} has a vocabulary of {_vocab_label(tcfg.vocab_size)}, but --captions "
            f"{captions} has {_vocab_label(len(words))}: they belong to different datasets; pass the "
            "captions.pickle of the dataset the encoder was trained on")
    if preset in OFFICIAL_VOCAB_SIZES and len(words) != OFFICIAL_VOCAB_SIZES[preset]:
        if not custom:
            raise ConfigMismatchError(
                f"--captions {captions} has {len(words):,} words, but the released {OFFICIAL_DATASET_NAMES[preset]} "
                f"DF-GAN ({RELEASED[preset]}, --preset {preset}) uses {OFFICIAL_VOCAB_SIZES[preset]:,} {CUSTOM_HINT}")
        notes.append(f"vocabulary of {len(words):,} words (not the released {preset} one)")
    if gcfg.embedding_dim != tcfg.embedding_dim:
        raise ConfigMismatchError(
            f"the DF-GAN in {spath} takes {gcfg.embedding_dim}-d sentence features but the text encoder {tpath} "
            f"makes {tcfg.embedding_dim}-d ones: they were not trained together")
    released = {"ngf": 32, "base_size": 256, "z_dim": 100, "ndf": 32}
    got = {"ngf": gcfg.ngf, "base_size": gcfg.base_size, "z_dim": gcfg.z_dim, "ndf": dcfg.ndf}
    if got != released:
        diffs = ", ".join(f"{k} {got[k]} (released: {released[k]})" for k in released if got[k] != released[k])
        if not custom:
            raise ConfigMismatchError(f"the DF-GAN in {spath} does not have the released layout: {diffs} {CUSTOM_HINT}")
        notes.append(f"sizes differ from the released models: {diffs}")

    # ---- the networks, strictly
    G = DFGenerator(gcfg)
    D = DFDiscriminator(dcfg, gcfg.base_size)
    g_state, g_names = map_state("netG", loaded["nets"]["netG"], G, spath)
    d_state, d_names = map_state("netD", loaded["nets"]["netD"], D, spath)
    head_state, c_names = map_state("netC", loaded["nets"]["netC"], D, spath)
    what = f"a {gcfg.base_size} px DF-GAN with nf {gcfg.ngf}"
    _load_strict(G, g_state, ROLE, spath, f"the generator of {what}")
    _load_strict(D, {**d_state, **head_state}, ROLE, spath, f"the discriminator of {what}")
    text_net = TextEncoder(tcfg)
    _load_strict(text_net, t_state, "--text-encoder", tpath, "the text encoder")

    optim: dict[str, Any] = {}
    if loaded["optimizers"] is not None:
        g_order = [("netG", k) for k in loaded["nets"]["netG"]]
        d_order = [("netD", k) for k in loaded["nets"]["netD"]] + [("netC", k) for k in loaded["nets"]["netC"]]
        names = {("netG", k): v for k, v in g_names.items()}
        names.update({("netD", k): v for k, v in d_names.items()})
        names.update({("netC", k): v for k, v in c_names.items()})
        opt_g = map_optimizer(loaded["optimizers"]["optimizer_G"], g_order, names, G, "optimizer_G", spath)
        opt_d = map_optimizer(loaded["optimizers"]["optimizer_D"], d_order, names, D, "optimizer_D", spath)
        optim = {"g": _through_adam(G, opt_g, spath, "optimizer_G"), "d": {"0": _through_adam(D, opt_d, spath, "optimizer_D")}}
    else:
        notes.append("no optimiser states in the file: fine-tuning starts new Adam moments")

    # ---- image encoder
    i_state = None
    icfg = None
    if image_encoder is not None:
        ipath = Path(image_encoder)
        i_state = load_state_file(ipath, "--image-encoder")
        _expect_kind(i_state, "image_encoder", "--image-encoder", ipath)
        icfg = infer_image_encoder_config(i_state, ipath)
        if icfg.embedding_dim != tcfg.embedding_dim:
            raise ConfigMismatchError(f"the image encoder {ipath} makes {icfg.embedding_dim}-d features but the "
                                      f"text encoder {tpath} {tcfg.embedding_dim}-d ones: they were not trained together")
        i_state = _check_image_encoder(i_state, icfg, ipath)

    # ---- configs and checkpoints
    train_cfg = new_train_config(preset, {
        "generator.arch": "dfgan", "generator.base_size": gcfg.base_size, "generator.ngf": gcfg.ngf,
        "generator.z_dim": gcfg.z_dim, "generator.embedding_dim": gcfg.embedding_dim,
        "discriminator.ndf": dcfg.ndf, "discriminator.embedding_dim": dcfg.embedding_dim,
        "encoders": str(d_out.resolve()),
    })
    tcfg.words = train_cfg.words
    pre_over: dict[str, Any] = {"text.vocab_size": tcfg.vocab_size, "text.word_dim": tcfg.word_dim,
                                "text.embedding_dim": tcfg.embedding_dim}
    if icfg is not None:
        pre_over.update({"image.backbone": icfg.backbone, "image.embedding_dim": icfg.embedding_dim,
                         "image.image_size": icfg.image_size, "image.resize_align_corners": icfg.resize_align_corners})
    pre_cfg = make_pretrain_config(preset, pre_over)
    sources = {"state": spath, "text_encoder": tpath, "captions": Path(captions)}
    if image_encoder is not None:
        sources["image_encoder"] = Path(image_encoder)
    provenance = {name: {"path": str(p.resolve()), "sha256": _sha256(p)} for name, p in sources.items()}
    g_weights = G.state_dict()
    save_checkpoint(Checkpoint(
        kind=GAN_KIND, config=to_dict(train_cfg), vocab=words,
        state={"generator": g_weights, "generator_ema": g_weights, "discriminators": {"0": D.state_dict()}},
        optim=optim, step=0, epoch=loaded["epoch"],
        extra={"damsm_text_encoder": text_net.state_dict(), "damsm_config": to_dict(tcfg),
               "damsm_path": str(d_out.resolve()), "batch_in_epoch": 0, "dataset": "", "source": "official dfgan",
               "official_files": provenance, "notes": notes}), c_out)
    d_state_out: dict[str, Any] = {"text_encoder": text_net.state_dict()}
    if i_state is not None:
        d_state_out["image_encoder"] = i_state
    save_checkpoint(Checkpoint(kind="damsm", config=to_dict(pre_cfg), state=d_state_out, vocab=words,
                               extra={"source": "official", "official_files": provenance, "notes": notes}), d_out)
    log.info("imported DF-GAN (%d px, nf %d, epoch %d%s) and its text encoder (%s words)", gcfg.base_size,
             gcfg.ngf, loaded["epoch"], ", with optimiser states" if optim else "", f"{len(words):,}")
    return DFGANImport(checkpoint_path=c_out, damsm_path=d_out, train_config=train_cfg, pretrain_config=pre_cfg,
                       vocab_size=len(words), epoch=loaded["epoch"], optimizers=bool(optim),
                       image_encoder=i_state is not None, notes=notes)


def _through_adam(module: nn.Module, state: dict[str, Any], path: Path, name: str) -> dict[str, Any]:
    """``state`` loaded into an Adam over ``module`` and saved again: checked, in this PyTorch's layout."""
    opt = torch.optim.Adam(module.parameters())
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{ROLE} {path}: optimizers.{name} does not fit the networks ({e})") from e
    for index, moments in opt.state_dict()["state"].items():
        param = list(module.parameters())[index]
        for key in ("exp_avg", "exp_avg_sq"):
            if key in moments and moments[key].shape != param.shape:
                raise CheckpointError(f"{ROLE} {path}: optimizers.{name} holds a {key} of shape "
                                      f"{tuple(moments[key].shape)} for a parameter of shape {tuple(param.shape)}")
    return opt.state_dict()
