"""CLIP metrics from a local checkpoint: CLIPScore and CLIP R-precision.

The model is Hugging Face ``transformers``' ``CLIPModel`` with its ``CLIPProcessor``, loaded from a local
folder (``config.json``, weights, tokenizer and preprocessor files, as ``save_pretrained`` writes them);
nothing is downloaded. It is the library torchmetrics' ``CLIPScore`` uses, so the two agree to the last
digit on the same folder and images (tested).

* ``clipscore`` (torchmetrics' ``CLIPScore``): ``max(mean_i 100 cos(E_I_i, E_C_i), 0)`` (the clamp acts on
  the mean, as torchmetrics' ``compute``), reported as ``score``; also ``cosine``, the plain mean cosine
  that GALIP reports (``code/lib/modules.py::calc_clip_sim``; GALIP's own input scaling is not reproduced).
* ``clip-rprecision`` (TISE ``text_relevance/RP_coco.py``): each image against its true caption and 99
  captions of other images, a hit when the true caption has the highest similarity (``argmax == 0``: a tie
  counts as a hit), the samples shuffled into 10 bins (the last takes the remainder), mean and population
  std of the bins.

The images are given to the processor as uint8 tensors, as torchmetrics does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from attngan_cli.core.errors import InputError
from attngan_cli.evaluation.features import file_sha256
from attngan_cli.evaluation.retrieval import r_precision_hits

if TYPE_CHECKING:
    from attngan_cli.evaluation.evaluate import EvalContext, GeneratedBatch

CLIPSCORE_SCALE = 100.0
CLIPSCORE_CLAMP = "max(mean, 0)"
_NEEDED = ("CLIP metrics need a local CLIP checkpoint: a Hugging Face CLIP folder (e.g. openai/clip-vit-base-patch32 "
           "saved with save_pretrained or downloaded with `huggingface-cli download` on a machine with internet "
           "access), or OpenAI's ViT-B-32.pt with its tokenizer file beside it; pass it with --clip PATH")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise InputError("CLIP metrics need the transformers package: pip install 'attngan[clip]'") from None
    return transformers


class ClipBundle:
    """A CLIP model and its processor on ``device``; embeddings come back float32 on the CPU."""

    def __init__(self, model: Any, processor: Any, path: Path, device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.path = path
        self.device = device
        self._sha: str | None = None

    @property
    def backbone(self) -> str:
        v = self.model.config.vision_config
        return (f"CLIP ViT (patch {v.patch_size}, width {v.hidden_size}, {v.num_hidden_layers} layers, "
                f"{v.image_size} px, embed {self.model.config.projection_dim})")

    @property
    def sha256(self) -> str:
        """sha256 of the weights file(s): of each file in a folder, hashed together in name order."""
        if self._sha is None:
            if self.path.is_dir():
                files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin"))
                import hashlib

                h = hashlib.sha256()
                for p in files:
                    h.update(p.name.encode() + file_sha256(p).encode())
                self._sha = h.hexdigest()
            else:
                self._sha = file_sha256(self.path)
        return self._sha

    def settings(self) -> dict[str, Any]:
        return {"clip_backbone": self.backbone, "clip_model": str(self.path), "clip_sha256": self.sha256}

    @staticmethod
    def _features(out: Any) -> torch.Tensor:
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    @torch.no_grad()
    def image_embeddings(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> (B, D)."""
        px = self.processor(images=[i.cpu() for i in images_uint8], return_tensors="pt", padding=True)
        return self._features(self.model.get_image_features(px["pixel_values"].to(self.device))).float().cpu()

    @torch.no_grad()
    def text_embeddings(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """``texts`` -> (N, D); captions longer than the model's context are truncated (as torchmetrics)."""
        out = []
        limit = self.model.config.text_config.max_position_embeddings
        for s in range(0, len(texts), batch_size):
            tok = self.processor(text=texts[s : s + batch_size], return_tensors="pt", padding=True)
            ids, mask = tok["input_ids"][..., :limit], tok["attention_mask"][..., :limit]
            out.append(self._features(self.model.get_text_features(ids.to(self.device), mask.to(self.device)))
                       .float().cpu())
        return torch.cat(out) if out else torch.zeros(0)


def load_clip(path: str | os.PathLike[str] | None, device: torch.device | str = "cpu") -> ClipBundle:
    """A Hugging Face CLIP folder -> :class:`ClipBundle`, or an :class:`InputError` naming --clip."""
    if path is None:
        raise InputError(f"no --clip given. {_NEEDED}")
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"--clip {path} does not exist. {_NEEDED}")
    tf = _transformers()
    if path.is_file():  # OpenAI's TorchScript archive (ViT-B-32.pt), read without running it
        from attngan_cli.evaluation.clip_openai import load_openai_clip

        model, processor = load_openai_clip(path, tf)
        return ClipBundle(model, processor, path, torch.device(device))
    if not (path / "config.json").is_file():
        raise InputError(f"--clip {path} has no config.json: not a Hugging Face CLIP folder. {_NEEDED}")
    try:
        model = tf.CLIPModel.from_pretrained(str(path), local_files_only=True)
        processor = tf.CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"--clip {path} cannot be loaded as a CLIP model with its processor "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). {_NEEDED}") from e
    return ClipBundle(model, processor, path, torch.device(device))


def clip_rprecision_bins(hits: torch.Tensor | np.ndarray, bins: int = 10, seed: int = 0) -> tuple[float, float]:
    """TISE's bins: the samples shuffled, ``len // bins`` per bin, the last bin takes the rest; mean and
    population std of the bin hit rates."""
    r = np.asarray(torch.as_tensor(hits).reshape(-1).float().numpy(), dtype=np.float64)
    if r.size == 0:
        return float("nan"), float("nan")
    order = np.random.default_rng([seed, 2022]).permutation(r.size)
    bins = max(1, min(bins, r.size))
    per = r.size // bins
    parts = [order[i * per : (i + 1) * per] if i < bins - 1 else order[i * per :] for i in range(bins)]
    scores = np.array([r[p].mean() for p in parts])
    return float(scores.mean()), float(scores.std())


class CLIPScoreMetric:
    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.sum_cos = 0.0
        self.n = 0

    def update(self, batch: GeneratedBatch) -> None:
        img = F.normalize(batch.clip_image(), dim=-1)  # (B, D)
        txt = F.normalize(self.ctx.clip_caption_embeddings()[torch.as_tensor(batch.caption_rows)], dim=-1)
        self.sum_cos += float((img * txt).sum(-1).double().sum())
        self.n += img.shape[0]

    def compute(self) -> dict[str, float]:
        cos = self.sum_cos / max(self.n, 1)
        return {"score": max(CLIPSCORE_SCALE * cos, 0.0), "cosine": cos, "scale": CLIPSCORE_SCALE}


class CLIPRPrecisionMetric:
    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.hits: list[torch.Tensor] = []

    def update(self, batch: GeneratedBatch) -> None:
        table = self.ctx.clip_caption_embeddings()  # (M, D)
        img = batch.clip_image()  # (B, D)
        true = table[torch.as_tensor(batch.caption_rows)]  # (B, D)
        wrong = table[torch.as_tensor(batch.clip_wrong_rows)]  # (B, K, D)
        self.hits.append(r_precision_hits(img, true, wrong, ties="hit"))

    def compute(self) -> dict[str, float]:
        hits = torch.cat(self.hits) if self.hits else torch.zeros(0, dtype=torch.bool)
        mean, std = clip_rprecision_bins(hits, self.ctx.options.clip_rp_folds, self.ctx.options.seed)
        return {"mean": mean, "std": std}


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2 / CLIP), in byte order."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs, strict=True))]


def write_random_clip(folder: str | os.PathLike[str], seed: int = 0, width: int = 16, image_size: int = 32) -> Path:
    """A tiny randomly initialised Hugging Face CLIP folder (model, byte-level tokenizer without merges,
    image processor), for tests and dry runs only: the numbers it gives mean nothing. Sizes follow OpenAI's
    rules (heads = width // 64, MLP 4 x width) so the model has an OpenAI-archive equivalent."""
    import json

    tf = _transformers()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    vocab = [*chars, *(c + "</w>" for c in chars), "</w>", "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tok = tf.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    ip = tf.CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    eos = len(vocab) - 1
    cfg = tf.CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=width, intermediate_size=4 * width, num_hidden_layers=1,
                         num_attention_heads=max(1, width // 64), max_position_embeddings=77, bos_token_id=eos - 1, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=1,
                           num_attention_heads=max(1, width // 64),
                           image_size=image_size, patch_size=8),
        projection_dim=8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.CLIPModel(cfg)
    model.save_pretrained(str(folder))
    tf.CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(str(folder))
    return folder
