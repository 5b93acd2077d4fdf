"""Reading the official AttnGAN release files and turning them into this project's checkpoints.

The official files (``bird_AttnGAN2.pth``, ``coco_AttnGAN2.pth``, ``DAMSMencoders/<dataset>/
{text,image}_encoder*.pth``, ``netD*.pth``, ``captions.pickle``) were written by PyTorch 0.3/0.4 under
Python 2. They are read here without executing code from the files:

- state dicts through ``torch.load(weights_only=True)``, which reads both the old non-zip format and the
  zip format and only rebuilds tensors and containers (a file holding a pickled model object is refused
  with a message saying how to re-save it);
- ``captions.pickle`` (a Python 2 pickle, ``encoding="latin1"``) through the one restricted unpickler
  (:func:`attngan_cli.core.fileio.safe_unpickle`), which allows no global except plain containers and numbers.

Our modules use the official parameter names, so the key mapping is trivial: a ``module.`` prefix
(``DataParallel``) is dropped, and BatchNorm ``num_batches_tracked`` buffers, absent from files saved by
PyTorch < 0.4.1, are added as zeros. Every size is inferred from the tensors and checked against the
preset, the vocabulary and the other files, with a message naming the file and what differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attngan_cli.archs.attngan.discriminators import Discriminator
from attngan_cli.archs.attngan.generator import Generator
from attngan_cli.archs.registry import image_sizes
from attngan_cli.config.presets import get_preset, make_pretrain_config, make_train_config, preset_names
from attngan_cli.config.schema import (
    DiscriminatorConfig,
    GeneratorConfig,
    ImageEncoderConfig,
    PretrainConfig,
    TextEncoderConfig,
    TrainConfig,
)
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError, InputError
from attngan_cli.core.fileio import safe_unpickle
from attngan_cli.networks.image_encoder import ImageEncoder
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

log = logging.getLogger(__name__)

# Vocabulary sizes of the released captions.pickle files (index 0 = "<end>").
OFFICIAL_VOCAB_SIZES = {"bird": 5450, "coco": 27297}
OFFICIAL_DATASET_NAMES = {"bird": "CUB birds", "coco": "MS-COCO"}

KIND_DESCRIPTIONS = {
    "generator": "an official AttnGAN generator (G_NET: ca_net.*, h_net1.*, img_net1.*)",
    "dcgan_generator": "an official AttnDCGAN generator (G_DCGAN: one img_net at the last stage)",
    "text_encoder": "an official DAMSM text encoder (RNN_ENCODER: encoder.weight, rnn.*)",
    "image_encoder": "an official DAMSM image encoder (CNN_ENCODER: Conv2d_1a_3x3.*, ..., emb_features, emb_cnn_code)",
    "discriminator": "an official discriminator (D_NET64/128/256: img_code_s16.*, UNCOND_DNET.*, COND_DNET.*)",
    "dmgan_generator": "an official DM-GAN generator (G_NET with the dynamic memory: h_net2.M_w.*, h_net2.key.*)",
    "dmgan_discriminator": "an official DM-GAN discriminator (spectral norm: img_code_s16.0.module.weight_bar, ...)",
}


# --------------------------------------------------------------------------------------------------
# Reading files safely
# --------------------------------------------------------------------------------------------------
def _check_file(path: Path, role: str) -> None:
    if not path.exists():
        raise InputError(f"{role} file {path} does not exist")
    if path.is_dir():
        raise InputError(f"{role} {path} is a directory; pass the .pth file")


def load_state_file(path: str | Path, role: str = "state dict") -> OrderedDict[str, torch.Tensor]:
    """A state dict (name -> tensor) from an official ``.pth`` file, old or zip format, loaded safely.

    ``role`` names the file in messages (e.g. ``"--generator"``). Parameters become plain tensors, a
    ``module.`` prefix is dropped and missing BatchNorm ``num_batches_tracked`` buffers are added.
    """
    path = Path(path)
    _check_file(path, role)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({m.group(1)})" if m else ""
        raise CheckpointError(
            f"{role} {path} holds pickled Python objects{what}, not a plain state dict; attngan does not run "
            "code from model files. Re-save it where it was made with torch.save(model.state_dict(), path)"
        ) from e
    except (RuntimeError, EOFError, ValueError, OSError, UnicodeDecodeError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CheckpointError(f"{role} {path} is not a readable PyTorch file ({type(e).__name__}: {first})") from e
    if isinstance(obj, dict) and obj.get("format") == "attngan":
        raise CheckpointError(
            f"{role} {path} is already an attngan checkpoint (kind {obj.get('kind')!r}); "
            "`attngan import official` takes the official AttnGAN .pth files"
        )
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "netG", "net"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{role} {path} does not hold a state dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{role} {path} is not a state dict: entry {bad[0]!r} is not a named tensor")
    return from_official(obj)


def from_official(state: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Official state dict -> ours: drop a ``module.`` prefix, add missing ``num_batches_tracked``."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        out[k] = v.detach().clone() if isinstance(v, nn.Parameter) else v
    for k in list(out):
        if k.endswith(".running_var"):
            nbt = k[: -len("running_var")] + "num_batches_tracked"
            if nbt not in out:
                out[nbt] = torch.tensor(0, dtype=torch.long)
    # keep each BN's buffers together (cosmetic; load_state_dict does not care about order)
    return out


def to_official(state: dict[str, torch.Tensor], num_batches_tracked: bool = False) -> OrderedDict[str, torch.Tensor]:
    """Our state dict -> the official layout (same names). Without ``num_batches_tracked`` buffers by
    default, so the result also loads into the original code under PyTorch 0.4.0."""
    return OrderedDict(
        (k, v) for k, v in state.items() if num_batches_tracked or not k.endswith(".num_batches_tracked")
    )


def read_captions_pickle(path: str | Path) -> list[str]:
    """The vocabulary (``ixtoword`` as a list, index 0 = ``"<end>"``) of an official ``captions.pickle``
    (``[train_captions, test_captions, ixtoword, wordtoix]``, Python 2 or 3); also accepts a JSON list of
    words or a JSON object with a ``"words"`` list."""
    path = Path(path)
    _check_file(path, "--captions")
    raw = path.read_bytes()
    if raw[:1] in (b"[", b"{"):
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"--captions {path} is neither a captions.pickle nor a JSON vocabulary ({e})") from e
        words = data.get("words") if isinstance(data, dict) else data
        return _check_words(words, path)
    if raw[:2] == b"PK" or raw[:10] == b"\x80\x02\x8a\nl\xfc\x9cF\xf9 ":
        raise InputError(f"--captions {path} is a PyTorch file, not the official captions.pickle")
    data = safe_unpickle(path, "an official captions.pickle", label="--captions", data=raw)
    if not isinstance(data, (list, tuple)) or len(data) < 3:
        raise InputError(
            f"--captions {path} is not an official captions.pickle: expected the list "
            f"[train_captions, test_captions, ixtoword, wordtoix], got {type(data).__name__}"
            + (f" of length {len(data)}" if isinstance(data, (list, tuple)) else "")
        )
    ixtoword = data[2]
    if isinstance(ixtoword, dict):
        n = len(ixtoword)
        if set(ixtoword) != set(range(n)):
            missing = sorted(set(range(n)) - set(ixtoword))[:3]
            raise InputError(f"--captions {path}: ixtoword is not indexed 0..{n - 1} (missing e.g. {missing})")
        words = [ixtoword[i] for i in range(n)]
    else:
        words = ixtoword
    return _check_words(words, path)


def _check_words(words: Any, path: Path) -> list[str]:
    if not isinstance(words, (list, tuple)) or not words:
        raise InputError(f"--captions {path}: no word list found")
    out = []
    for i, w in enumerate(words):
        if isinstance(w, bytes):
            w = w.decode("latin1")
        if not isinstance(w, str):
            raise InputError(f"--captions {path}: word {i} is {w!r}, not a string")
        out.append(w)
    if out[0] != "<end>":
        raise InputError(f"--captions {path}: word 0 is {out[0]!r}, expected '<end>' (the padding word)")
    return out


# --------------------------------------------------------------------------------------------------
# Recognising files and inferring sizes
# --------------------------------------------------------------------------------------------------
def detect_kind(state: dict[str, torch.Tensor]) -> str:
    """``generator``, ``dcgan_generator``, ``dmgan_generator``, ``text_encoder``, ``image_encoder``,
    ``discriminator``, ``dmgan_discriminator`` or ``unknown``."""
    keys = set(state)
    if "ca_net.fc.weight" in keys and "h_net1.fc.0.weight" in keys:
        if "h_net2.M_w.0.weight" in keys:
            return "dmgan_generator"
        return "dcgan_generator" if "img_net.img.0.weight" in keys else "generator"
    if "encoder.weight" in keys and any(k.startswith("rnn.") for k in keys):
        return "text_encoder"
    if "emb_cnn_code.weight" in keys or any(k.startswith("Conv2d_1a_3x3.") for k in keys):
        return "image_encoder"
    if "img_code_s16.0.weight" in keys:
        return "discriminator"
    if "img_code_s16.0.module.weight_bar" in keys:
        return "dmgan_discriminator"
    return "unknown"


def _expect_kind(state: dict[str, torch.Tensor], want: str, role: str, path: Path) -> None:
    kind = detect_kind(state)
    if kind == want:
        return
    if kind == "unknown":
        sample = ", ".join(list(state)[:4])
        raise CheckpointError(
            f"{role} {path} is not {KIND_DESCRIPTIONS[want]}: its keys ({sample}, ...) match no official AttnGAN file"
        )
    if kind == "dcgan_generator" and want == "generator":
        raise CheckpointError(
            f"{role} {path} is {KIND_DESCRIPTIONS[kind]}; only the attentional G_NET generators "
            "(bird_AttnGAN2.pth, coco_AttnGAN2.pth) can be imported"
        )
    if kind.startswith("dmgan_") != want.startswith("dmgan_") and kind in ("generator", "dmgan_generator",
                                                                           "discriminator", "dmgan_discriminator"):
        command = "attngan import dmgan" if kind.startswith("dmgan_") else "attngan import official"
        raise CheckpointError(f"{role} {path} is {KIND_DESCRIPTIONS[kind]}, not {KIND_DESCRIPTIONS[want]}: "
                              f"import it with `{command}`")
    flags = {"generator": "--generator", "text_encoder": "--text-encoder", "image_encoder": "--image-encoder",
             "discriminator": "--discriminators", "dcgan_generator": "--generator",
             "dmgan_generator": "--generator", "dmgan_discriminator": "--discriminators"}
    raise CheckpointError(
        f"{role} {path} is {KIND_DESCRIPTIONS[kind]}, not {KIND_DESCRIPTIONS[want]}: "
        f"pass it with {flags[kind]}"
    )


def _shape(state: dict[str, torch.Tensor], key: str, path: Path, role: str) -> tuple[int, ...]:
    if key not in state:
        raise CheckpointError(f"{role} {path} lacks the tensor {key!r}; the file is incomplete or of another layout")
    return tuple(state[key].shape)


def infer_generator_config(state: dict[str, torch.Tensor], path: Path = Path("?"), role: str = "--generator",
                           default_r_num: int = 2) -> GeneratorConfig:
    """Stages, base size, ngf, residual blocks, z/condition/embedding sizes from an official G_NET state dict."""
    c4, emb = _shape(state, "ca_net.fc.weight", path, role)
    cond = c4 // 4
    stages = 0
    while f"img_net{stages + 1}.img.0.weight" in state:
        stages += 1
    if stages == 0:
        raise CheckpointError(f"{role} {path} has no image head img_net1; it is not a complete generator")
    if f"h_net{stages + 1}.att.conv_context.weight" in state:
        raise CheckpointError(f"{role} {path} has a stage h_net{stages + 1} without its image head img_net{stages + 1}")
    if stages > 4:
        raise CheckpointError(f"{role} {path} has {stages} stages; attngan supports 1 to 4")
    ngf = _shape(state, "img_net1.img.0.weight", path, role)[1]
    fc_out, fc_in = _shape(state, "h_net1.fc.0.weight", path, role)
    n_up = 0
    while f"h_net1.upsample{n_up + 1}.1.weight" in state:
        n_up += 1
    gf = fc_out // 32
    if gf != ngf * 2**n_up:
        raise CheckpointError(
            f"{role} {path}: the first stage starts at {gf} channels and has {n_up} up-blocks, which does not "
            f"end at the image heads' {ngf} channels"
        )
    r_num = 0
    if stages >= 2:
        while f"h_net2.residual.{r_num}.block.0.weight" in state:
            r_num += 1
    return GeneratorConfig(stages=stages, base_size=4 * 2**n_up, ngf=ngf, r_num=r_num or default_r_num,
                           z_dim=fc_in - cond, condition_dim=cond, embedding_dim=emb)


def infer_text_encoder_config(state: dict[str, torch.Tensor], path: Path = Path("?"),
                              role: str = "--text-encoder") -> TextEncoderConfig:
    vocab, word_dim = _shape(state, "encoder.weight", path, role)
    gates, hidden = _shape(state, "rnn.weight_hh_l0", path, role)
    if gates == 3 * hidden:
        raise CheckpointError(f"{role} {path} is a GRU text encoder (RNN_TYPE: GRU); only the LSTM encoders "
                              "of the official releases are supported")
    if gates != 4 * hidden:
        raise CheckpointError(f"{role} {path}: rnn.weight_hh_l0 has shape {(gates, hidden)}, not an LSTM's (4h, h)")
    if "rnn.weight_hh_l0_reverse" not in state:
        raise CheckpointError(f"{role} {path} is a one-directional RNN; the official encoder is bidirectional")
    if "rnn.weight_hh_l1" in state:
        raise CheckpointError(f"{role} {path} has a 2-layer RNN; the official encoder has one layer")
    return TextEncoderConfig(vocab_size=vocab, word_dim=word_dim, embedding_dim=2 * hidden)


def infer_image_encoder_config(state: dict[str, torch.Tensor], path: Path = Path("?"),
                               role: str = "--image-encoder") -> ImageEncoderConfig:
    emb, feat = _shape(state, "emb_cnn_code.weight", path, role)
    if feat != 2048 or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise CheckpointError(f"{role} {path} is not an Inception-v3 DAMSM image encoder "
                              f"(emb_cnn_code takes {feat} features, Mixed_7c present: "
                              f"{'Mixed_7c.branch_pool.conv.weight' in state})")
    # the official nn.Upsample(size=(299, 299), mode='bilinear') of PyTorch 0.3 aligned corners: the
    # encoder resizes the generator's 256 px images as it did when it was trained and scored
    return ImageEncoderConfig(backbone="inception-v3", embedding_dim=emb, image_size=299, resize_align_corners=True)


def infer_discriminator(state: dict[str, torch.Tensor], path: Path = Path("?"),
                        role: str = "--discriminators") -> tuple[DiscriminatorConfig, int]:
    """(config, image size) of an official D_NET state dict (or one of ours)."""
    convs = sorted(
        int(m.group(1)) for k, v in state.items()
        if (m := re.fullmatch(r"img_code_s16\.(\d+)\.weight", k)) and v.dim() == 4
    )
    if not convs:
        raise CheckpointError(f"{role} {path} lacks img_code_s16; not a discriminator")
    ndf8 = state[f"img_code_s16.{convs[-1]}.weight"].shape[0]
    downs = [k for k in state if re.fullmatch(r"img_code_s(\d+)\.0\.weight", k) and k != "img_code_s16.0.weight"]
    levels = len(convs) + len(downs)
    joint = _shape(state, "COND_DNET.jointConv.0.weight", path, role)
    if ndf8 % 8:
        raise CheckpointError(f"{role} {path}: image code has {ndf8} channels, not a multiple of 8")
    return DiscriminatorConfig(ndf=ndf8 // 8, embedding_dim=joint[1] - ndf8), 4 * 2**levels


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], role: str, path: Path, what: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        if shapes:
            parts.append(f"shape {', '.join(shapes[:3])}")
        raise CheckpointError(f"{role} {path} does not fit {what}: {'; '.join(parts)}")
    module.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------------
@dataclass
class ImportResult:
    generator_path: Path
    damsm_path: Path
    train_config: TrainConfig
    pretrain_config: PretrainConfig
    vocab_size: int
    discriminators: int
    image_encoder: bool
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _preset_for_vocab(n: int) -> str | None:
    return next((p for p, v in OFFICIAL_VOCAB_SIZES.items() if v == n), None)


def _vocab_label(n: int) -> str:
    p = _preset_for_vocab(n)
    return f"{n:,} words (the official {OFFICIAL_DATASET_NAMES[p]} vocabulary)" if p else f"{n:,} words"


def _preset_for_generator(g: GeneratorConfig) -> str | None:
    for name in preset_names():
        pg = get_preset(name).train.generator
        if name in OFFICIAL_VOCAB_SIZES and (pg.ngf, pg.r_num, pg.base_size) == (g.ngf, g.r_num, g.base_size):
            return name
    return None


CUSTOM_HINT = "(files of your own training with the official code: add --custom)"


def import_official(
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
    """Check the official files against each other, the preset and ``captions.pickle``, and write
    ``out/generator.pt`` (kind ``generator``) and ``out/damsm.pt`` (kind ``damsm``).

    ``custom`` accepts sizes that differ from the released models of ``preset`` (the preset then only
    supplies the training settings).
    """
    if preset not in preset_names():
        raise InputError(f"unknown preset {preset!r}; choose one of: {', '.join(preset_names())}")
    preset_train = get_preset(preset).train
    if preset not in OFFICIAL_VOCAB_SIZES and not custom:
        raise InputError(f"--preset {preset} has no official AttnGAN release; use bird or coco, or add --custom")
    out = Path(out)
    g_out, d_out = out / "generator.pt", out / "damsm.pt"
    if not overwrite:
        for p in (g_out, d_out):
            if p.exists():
                raise InputError(f"{p} already exists; pass --overwrite to replace it or choose another --out")
    notes: list[str] = []
    gpath, tpath = Path(generator), Path(text_encoder)

    # ---- read every file and check what it is
    g_state = load_state_file(gpath, "--generator")
    _expect_kind(g_state, "generator", "--generator", gpath)
    t_state = load_state_file(tpath, "--text-encoder")
    _expect_kind(t_state, "text_encoder", "--text-encoder", tpath)
    i_state = None
    if image_encoder is not None:
        ipath = Path(image_encoder)
        i_state = load_state_file(ipath, "--image-encoder")
        _expect_kind(i_state, "image_encoder", "--image-encoder", ipath)
    d_states = []
    for k, p in enumerate(discriminators):
        role = f"--discriminators file {k + 1}"
        s = load_state_file(Path(p), role)
        _expect_kind(s, "discriminator", role, Path(p))
        d_states.append((Path(p), role, s))
    words = read_captions_pickle(captions)

    # ---- sizes and consistency
    gcfg = infer_generator_config(g_state, gpath, default_r_num=preset_train.generator.r_num)
    tcfg = infer_text_encoder_config(t_state, tpath)
    if tcfg.vocab_size != len(words):
        raise ConfigMismatchError(
            f"the text encoder {tpath} has a vocabulary of {_vocab_label(tcfg.vocab_size)}, but --captions "
            f"{captions} has {_vocab_label(len(words))}: they belong to different datasets; pass the "
            "captions.pickle of the dataset the encoder was trained on"
        )
    if preset in OFFICIAL_VOCAB_SIZES and len(words) != OFFICIAL_VOCAB_SIZES[preset]:
        other = _preset_for_vocab(len(words))
        if other:
            raise ConfigMismatchError(
                f"the files are for {OFFICIAL_DATASET_NAMES[other]} ({len(words):,} words) but --preset {preset} "
                f"was given (the official {OFFICIAL_DATASET_NAMES[preset]} vocabulary has "
                f"{OFFICIAL_VOCAB_SIZES[preset]:,} words): use --preset {other}"
            )
        if not custom:
            raise ConfigMismatchError(
                f"--captions {captions} has {len(words):,} words, but the released {OFFICIAL_DATASET_NAMES[preset]} "
                f"models (--preset {preset}) use {OFFICIAL_VOCAB_SIZES[preset]:,} {CUSTOM_HINT}"
            )
        notes.append(f"vocabulary of {len(words):,} words (not the released {preset} one)")
    if gcfg.embedding_dim != tcfg.embedding_dim:
        raise ConfigMismatchError(
            f"the generator {gpath} takes {gcfg.embedding_dim}-d text features but the text encoder {tpath} "
            f"makes {tcfg.embedding_dim}-d ones: they were not trained together"
        )
    pg = preset_train.generator
    wanted = {"ngf": pg.ngf, "r_num": pg.r_num, "base_size": pg.base_size, "z_dim": 100, "condition_dim": 100}
    got = {k: getattr(gcfg, k) for k in wanted}
    if got != wanted:
        diffs = ", ".join(f"{k} {got[k]} (preset: {wanted[k]})" for k in wanted if got[k] != wanted[k])
        if not custom:
            match = _preset_for_generator(gcfg)
            if match and match != preset and len(words) == OFFICIAL_VOCAB_SIZES.get(preset):
                raise ConfigMismatchError(
                    f"the generator {gpath} has the official {OFFICIAL_DATASET_NAMES[match]} layout ({diffs}), but the "
                    f"text encoder and captions are {OFFICIAL_DATASET_NAMES[preset]} ({len(words):,} words): pass the "
                    f"{preset} generator ({preset}_AttnGAN2.pth)"
                )
            hint = f": it has the official {match} layout, use --preset {match}" if match and match != preset else f" {CUSTOM_HINT}"
            raise ConfigMismatchError(f"the generator {gpath} does not have the --preset {preset} layout: {diffs}{hint}")
        notes.append(f"generator sizes differ from preset {preset}: {diffs}")

    generator_net = Generator(gcfg, init=False)
    _load_strict(generator_net, g_state, "--generator", gpath, f"a {gcfg.stages}-stage generator with ngf {gcfg.ngf}")
    text_net = TextEncoder(tcfg)
    _load_strict(text_net, t_state, "--text-encoder", tpath, "the text encoder")

    # ---- discriminators
    dcfg = DiscriminatorConfig(ndf=preset_train.discriminator.ndf, embedding_dim=gcfg.embedding_dim)
    d_out_states: dict[str, dict[str, torch.Tensor]] = {}
    if d_states:
        if len(d_states) != gcfg.stages:
            raise ConfigMismatchError(
                f"--discriminators got {len(d_states)} files but the generator has {gcfg.stages} stages "
                f"({', '.join(f'{s} px' for s in image_sizes(gcfg))}): pass one per stage, in order"
            )
        for k, ((p, role, s), size) in enumerate(zip(d_states, image_sizes(gcfg), strict=True)):
            cfg_k, size_k = infer_discriminator(s, p, role)
            if size_k != size:
                raise ConfigMismatchError(
                    f"{role} {p} is a discriminator for {size_k} px images, but stage {k + 1} makes {size} px images: "
                    "pass the discriminators in stage order (netD0 netD1 netD2)"
                )
            if cfg_k.embedding_dim != gcfg.embedding_dim:
                raise ConfigMismatchError(f"{role} {p} takes {cfg_k.embedding_dim}-d sentence features, the "
                                          f"generator {gcfg.embedding_dim}-d ones")
            if k and cfg_k.ndf != dcfg.ndf:
                raise ConfigMismatchError(f"{role} {p} has ndf {cfg_k.ndf} but the first discriminator has {dcfg.ndf}")
            if k == 0 and cfg_k.ndf != dcfg.ndf:
                if not custom:
                    raise ConfigMismatchError(
                        f"{role} {p} has ndf {cfg_k.ndf}, but --preset {preset} has ndf {dcfg.ndf} {CUSTOM_HINT}"
                    )
                notes.append(f"discriminator ndf {cfg_k.ndf} (preset: {dcfg.ndf})")
            dcfg = cfg_k
            net = Discriminator(cfg_k, size, gcfg.base_size, init=False)
            _load_strict(net, s, role, p, f"a {size} px discriminator with ndf {cfg_k.ndf}")
            d_out_states[str(k)] = net.state_dict()

    # ---- image encoder
    icfg = None
    if i_state is not None:
        icfg = infer_image_encoder_config(i_state, Path(image_encoder))  # type: ignore[arg-type]
        if icfg.embedding_dim != tcfg.embedding_dim:
            raise ConfigMismatchError(
                f"the image encoder {image_encoder} makes {icfg.embedding_dim}-d features but the text encoder "
                f"{tpath} {tcfg.embedding_dim}-d ones: they were not trained together"
            )
        i_state = _check_image_encoder(i_state, icfg, Path(image_encoder))  # type: ignore[arg-type]

    # ---- configs and checkpoints
    words_num = preset_train.words
    tcfg.words = words_num
    train_cfg = make_train_config(preset, {
        "generator.stages": gcfg.stages, "generator.base_size": gcfg.base_size, "generator.ngf": gcfg.ngf,
        "generator.r_num": gcfg.r_num, "generator.z_dim": gcfg.z_dim, "generator.condition_dim": gcfg.condition_dim,
        "generator.embedding_dim": gcfg.embedding_dim, "discriminator.ndf": dcfg.ndf,
        "discriminator.embedding_dim": dcfg.embedding_dim, "encoders": str(d_out.resolve()),
    })
    sources = {"generator": gpath, "text_encoder": tpath, "captions": Path(captions)}
    pre_cfg = write_imported(
        g_out, d_out, preset=preset, train_cfg=train_cfg, tcfg=tcfg, icfg=icfg, words=words,
        generator_state=generator_net.state_dict(), text_state=text_net.state_dict(), i_state=i_state,
        d_out_states=d_out_states, sources=sources, image_encoder=image_encoder,
        d_paths=[p for p, _, _ in d_states], source="official", notes=notes)
    log.info("imported %d-stage generator (ngf %d, %d residual blocks) and text encoder (%s words)%s%s",
             gcfg.stages, gcfg.ngf, gcfg.r_num, f"{len(words):,}",
             f", {len(d_out_states)} discriminators" if d_out_states else "",
             ", image encoder" if i_state is not None else "")
    if i_state is None:
        log.info("no --image-encoder: %s holds only the text encoder (R-precision needs the image encoder)", d_out)
    return ImportResult(generator_path=g_out, damsm_path=d_out, train_config=train_cfg, pretrain_config=pre_cfg,
                        vocab_size=len(words), discriminators=len(d_out_states), image_encoder=i_state is not None,
                        notes=notes)


def write_imported(g_out: Path, d_out: Path, *, preset: str, train_cfg: TrainConfig, tcfg: TextEncoderConfig,
                   icfg: ImageEncoderConfig | None, words: list[str], generator_state: dict[str, Any],
                   text_state: dict[str, Any], i_state: dict[str, torch.Tensor] | None,
                   d_out_states: list[dict[str, Any]], sources: dict[str, Path], image_encoder: str | Path | None,
                   d_paths: Sequence[Path], source: str, notes: list[str]) -> PretrainConfig:
    """Write an imported generator (``g_out``: generator + text encoder + vocabulary + config, with the
    official files' paths and sha256 as provenance) and its DAMSM (``d_out``); return the DAMSM's config."""
    pre_over: dict[str, Any] = {"text.vocab_size": tcfg.vocab_size, "text.word_dim": tcfg.word_dim,
                                "text.embedding_dim": tcfg.embedding_dim}
    if icfg is not None:
        pre_over.update({"image.backbone": icfg.backbone, "image.embedding_dim": icfg.embedding_dim,
                         "image.image_size": icfg.image_size,
                         "image.resize_align_corners": icfg.resize_align_corners})
    pre_cfg = make_pretrain_config(preset, pre_over)
    sources = dict(sources)
    if image_encoder is not None:
        sources["image_encoder"] = Path(image_encoder)
    for k, p in enumerate(d_paths):
        sources[f"discriminator{k}"] = p
    provenance = {name: {"path": str(p.resolve()), "sha256": _sha256(p)} for name, p in sources.items()}
    g_state_out: dict[str, Any] = {"generator": generator_state, "text_encoder": text_state}
    if d_out_states:
        g_state_out["discriminators"] = d_out_states
    extra = {"damsm_config": to_dict(tcfg), "damsm_path": str(d_out.resolve()), "source": source,
             "official_files": provenance, "notes": notes}
    save_checkpoint(Checkpoint(kind="generator", config=to_dict(train_cfg), state=g_state_out, vocab=words,
                               extra=extra), g_out)
    d_state_out: dict[str, Any] = {"text_encoder": text_state}
    if i_state is not None:
        d_state_out["image_encoder"] = i_state
    save_checkpoint(Checkpoint(kind="damsm", config=to_dict(pre_cfg), state=d_state_out, vocab=words,
                               extra={"source": source, "official_files": provenance, "notes": notes}), d_out)
    return pre_cfg


def _check_image_encoder(state: dict[str, torch.Tensor], icfg: ImageEncoderConfig, path: Path) -> dict[str, torch.Tensor]:
    """Load the official image encoder into this project's ImageEncoder (strict key/shape check); returns
    the state dict to store."""
    net = ImageEncoder(icfg)
    own = net.state_dict()
    # Official files may lack BN buffers the modern inception has, or carry extra ones we do not use.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"--image-encoder {path} does not fit the Inception-v3 image encoder: missing "
                              f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    _load_strict(net, {k: state.get(k, v) for k, v in own.items()}, "--image-encoder", path, "the image encoder")
    return net.state_dict()
