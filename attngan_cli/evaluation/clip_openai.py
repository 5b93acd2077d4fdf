"""OpenAI's CLIP archives (``ViT-B-32.pt``, what ``clip.load("ViT-B/32")`` reads, as TISE does) as a
Hugging Face ``CLIPModel``, without executing anything from the file.

The archive is a TorchScript zip: ``<name>/data.pkl`` pickles the module tree (``__torch__.*`` objects whose
state dicts hold the parameters) and ``<name>/data/<key>`` the raw storages. :func:`read_torchscript_state`
unpickles ``data.pkl`` with an unpickler that knows only tensors, storages and ``OrderedDict`` and turns
every ``__torch__`` object into an inert record, so no TorchScript code and no other Python object is ever
built; the parameters are then gathered by their dotted names. :func:`openai_to_hf` maps OpenAI's names to
transformers' (the mapping of transformers' ``convert_clip_original_pytorch_to_hf.py``: the packed
``in_proj`` split into q, k, v; ``proj`` matrices transposed) and reads the sizes off the shapes as
``clip.model.build_model`` does.

The tokenizer is not in the archive: it is read from ``vocab.json`` + ``merges.txt`` (Hugging Face's files)
or OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` next to the archive.
"""

from __future__ import annotations

import gzip
import json
import pickle
import re
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from attngan_cli.core.errors import InputError

_DTYPES = {"HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
           "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
           "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
           "BoolStorage": torch.bool}


class _Record:
    """Stands in for any ``__torch__`` object: keeps its state, runs nothing."""

    def __init__(self, *args: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> torch.Tensor:
    return storage.as_strided(size, stride, offset).clone()


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(__import__("io").BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks, *rest: data
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        if module == "__torch__" or module.startswith("__torch__."):
            return _Record
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CLIP archive")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid
        dtype = stype.dtype if isinstance(stype, _StorageType) else torch.float32
        raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
        return flat[:numel]


def _collect(obj: Any, prefix: str, out: dict[str, torch.Tensor], depth: int = 0) -> None:
    if depth > 64:
        raise InputError("the CLIP archive's module tree is too deep")
    state = obj.state if isinstance(obj, _Record) else obj
    if not isinstance(state, dict):
        return
    for k, v in state.items():
        if not isinstance(k, str):
            continue
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v
        elif isinstance(v, _Record):
            _collect(v, f"{prefix}{k}.", out, depth + 1)


def read_torchscript_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive by dotted name, read without executing its code."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"--clip {path} is not a TorchScript (zip) archive ({e})") from None
    with archive:
        pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkl:
            raise InputError(f"--clip {path} has no data.pkl: not a TorchScript archive")
        prefix = pkl[0][: -len("data.pkl")]
        try:
            root = _Unpickler(archive.read(pkl[0]), archive, prefix).load()
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
            raise InputError(f"--clip {path} cannot be read safely ({e})") from None
    out: dict[str, torch.Tensor] = {}
    _collect(root, "", out)
    return out


_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
          "attn.out_proj": "self_attn.out_proj"}


def _layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.attn\.in_proj_weight$")
    return len({m.group(1) for k in state if (m := pat.match(k))})


def openai_to_hf(state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """OpenAI CLIP (ViT) state dict -> (CLIPConfig keyword arguments, transformers state dict)."""
    need = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "text_projection",
            "token_embedding.weight", "positional_embedding", "ln_final.weight")
    missing = [k for k in need if k not in state]
    if missing:
        raise InputError(f"not an OpenAI CLIP ViT state dict: missing {', '.join(missing)} (ResNet CLIPs are not "
                         "supported)")
    vw = state["visual.conv1.weight"].shape[0]
    patch = state["visual.conv1.weight"].shape[-1]
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    tw = state["ln_final.weight"].shape[0]
    vocab = state["token_embedding.weight"].shape[0]
    config = {
        "projection_dim": int(state["text_projection"].shape[1]),
        "logit_scale_init_value": float(state["logit_scale"].float()) if "logit_scale" in state else 2.6592,
        "text_config": {"vocab_size": int(vocab), "hidden_size": int(tw), "intermediate_size": int(4 * tw),
                        "num_hidden_layers": _layers(state, "transformer.resblocks."),
                        "num_attention_heads": max(1, tw // 64),
                        "max_position_embeddings": int(state["positional_embedding"].shape[0]),
                        "bos_token_id": int(vocab) - 2, "eos_token_id": int(vocab) - 1, "pad_token_id": int(vocab) - 1},
        "vision_config": {"hidden_size": int(vw), "intermediate_size": int(4 * vw),
                          "num_hidden_layers": _layers(state, "visual.transformer.resblocks."),
                          "num_attention_heads": max(1, vw // 64), "image_size": int(patch * grid),
                          "patch_size": int(patch)},
    }
    f = {k: v.float() for k, v in state.items()}
    hf: dict[str, torch.Tensor] = {
        "logit_scale": f.get("logit_scale", torch.tensor(2.6592)).reshape(()),
        "text_projection.weight": f["text_projection"].t().contiguous(),
        "visual_projection.weight": f["visual.proj"].t().contiguous(),
        "text_model.embeddings.token_embedding.weight": f["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": f["positional_embedding"],
        "text_model.final_layer_norm.weight": f["ln_final.weight"],
        "text_model.final_layer_norm.bias": f["ln_final.bias"],
        "vision_model.embeddings.class_embedding": f["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": f["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": f["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": f["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": f["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": f["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": f["visual.ln_post.bias"],
    }
    for src, dst, n in (("transformer.resblocks.", "text_model.encoder.layers.", config["text_config"]),
                        ("visual.transformer.resblocks.", "vision_model.encoder.layers.", config["vision_config"])):
        for i in range(n["num_hidden_layers"]):
            a, b = f"{src}{i}.", f"{dst}{i}."
            for w in ("weight", "bias"):
                q, k, v = f[f"{a}attn.in_proj_{w}"].chunk(3, dim=0)
                hf[f"{b}self_attn.q_proj.{w}"], hf[f"{b}self_attn.k_proj.{w}"], hf[f"{b}self_attn.v_proj.{w}"] = q, k, v
                for o, h in _BLOCK.items():
                    hf[f"{b}{h}.{w}"] = f[f"{a}{o}.{w}"]
    return config, hf


def _bytes_to_unicode() -> dict[int, str]:
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def tokenizer_files(folder: Path, out: Path) -> tuple[Path, Path]:
    """(vocab.json, merges.txt) for the archive in ``folder``: Hugging Face's files there, or made from
    OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` as its ``SimpleTokenizer`` builds its vocabulary."""
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return folder / "vocab.json", folder / "merges.txt"
    bpe = folder / "bpe_simple_vocab_16e6.txt.gz"
    if not bpe.is_file():
        raise InputError(f"--clip: the tokenizer of an OpenAI CLIP archive is not in the archive; put "
                         f"bpe_simple_vocab_16e6.txt.gz (from the openai/CLIP repository) or Hugging Face's "
                         f"vocab.json + merges.txt beside it in {folder}")
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    chars = list(_bytes_to_unicode().values())
    vocab = [*chars, *(c + "</w>" for c in chars), *("".join(m.split()) for m in merges),
             "<|startoftext|>", "<|endoftext|>"]
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return out / "vocab.json", out / "merges.txt"


def load_openai_clip(path: Path, tf: Any) -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) from an OpenAI CLIP archive and the tokenizer files beside it."""
    config, hf_state = openai_to_hf(read_torchscript_state(path))
    model = tf.CLIPModel(tf.CLIPConfig(**config))
    missing, unexpected = model.load_state_dict(hf_state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise InputError(f"--clip {path}: the mapped OpenAI weights do not fit ({len(missing)} missing, e.g. "
                         f"{missing[:2]}, {len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    size = config["vision_config"]["image_size"]
    with tempfile.TemporaryDirectory() as d:
        vocab, merges = tokenizer_files(path.parent, Path(d))
        tok = tf.CLIPTokenizer(str(vocab), str(merges))
    ip = tf.CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return model, tf.CLIPProcessor(image_processor=ip, tokenizer=tok)
