"""A request's output as JSON: PNG images (base64 data URLs) and the attention data, per sample.

What is drawn comes from what the generator returned (:class:`attngan_cli.inference.pipeline.Generated`)
and the architecture's flags, never from its name, so an architecture added later is served as it is:

* ``attn``: word attention, one (n, T, h, w) map per attention model (model k at the input of stage
  k + 2): every word ranked as ``attngan attend`` ranks them (equation 15), the top words' maps blended
  over that stage's image, and the paper's figure;
* ``sent_attn``: sentence attention (MirrorGAN's GLAM), one (n, 1, h, w) map per model: its map and how
  peaked it is;
* any other output: per module, its shape, and per word (n, T, ...) its weight summed over the rest
  (e.g. a memory's per-word weights), or a spatial (n, 1, h, w) map drawn like the sentence maps.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from attngan_cli.apps.serve.engine import Job, Output, ServedModel
from attngan_cli.viz.attention import attention_figure, blend, rank_words, word_map
from attngan_cli.viz.grid import to_uint8, upsample

WORD_MAPS = "attn"
SENTENCE_MAPS = "sent_attn"
MAP_SIZE_MAX = 256  # side of a word's map over its image (the last stage's size, at most this)


def png_data_url(image: np.ndarray | Image.Image) -> str:
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_name(seed: int, sample: int, size: int) -> str:
    """The name ``attngan sample`` gives this image (caption 0), with the seed: ``seed7-c00000-s01-64.png``."""
    return f"seed{seed}-c00000-s{sample:02d}-{size}.png"


def render(model: ServedModel, job: Job, out: Output, top: int, attention: bool = True, figure: bool = True
           ) -> dict[str, Any]:
    """The JSON answer of ``POST /generate``."""
    cap = job.caption
    sizes = model.bundle.image_sizes
    last = sizes[-1]
    words = cap.words
    samples = []
    for s in range(job.n):
        stage_images = [im[s] for im in out.images]  # per stage (3, size, size)
        sample: dict[str, Any] = {
            "sample": s,
            "stages": [{"size": int(sizes[i]), "name": image_name(job.seed, s, sizes[i]),
                        "png": png_data_url(out.pixels[i][s] if out.pixels else to_uint8(stage_images[i]))}
                       for i in range(len(sizes))],
        }
        if attention:
            sample.update(_attention(model, out, s, stage_images, words, top, figure))
        samples.append(sample)
    return {
        "model": model.name,
        "caption": cap.text,
        "words": words,
        "unknown": cap.unknown,
        "warnings": _warnings(model, job),
        "seed": job.seed,
        "n": job.n,
        "image_sizes": [int(v) for v in sizes],
        "threshold": f"weights below 1/T set to 0 (equation 15), T = {len(words)} words",
        "samples": samples,
        "timing": {"forward_s": round(out.seconds, 4), "batch_images": out.batch_images},
        "precision": model.precision,
        "filename_stem": f"seed{job.seed}-c00000",
        "last_size": int(last),
    }


def _warnings(model: ServedModel, job: Job) -> list[str]:
    cap = job.caption
    out = []
    if cap.unknown:
        out.append(f"dropped words not in the model's vocabulary: {', '.join(cap.unknown)}")
    words = model.bundle.config.words
    if len(cap.ids) > words:
        out.append(f"{len(cap.ids)} words, more than the {words} the model was trained with; all "
                   f"{len(cap.ids)} are used")
    return out


def _attention(model: ServedModel, out: Output, s: int, stage_images: list[torch.Tensor], words: list[str],
               top: int, figure: bool) -> dict[str, Any]:
    last = int(stage_images[-1].shape[-1])
    size = min(last, MAP_SIZE_MAX)
    bases = [to_uint8(upsample(im[None].float(), size)[0]) for im in stage_images]  # (size, size, 3) each
    word_maps = [m[s] for m in out.extras.get(WORD_MAPS, [])]  # per model (T, h, w)
    sent_maps = [m[s] for m in out.extras.get(SENTENCE_MAPS, [])]  # per model (1, h, w)
    result: dict[str, Any] = {"attention": [], "sentence_attention": [], "other": []}
    for k, m in enumerate(word_maps):
        ranked = rank_words(m, words)
        base = bases[min(k + 1, len(bases) - 1)]
        maps = {str(w.index): png_data_url(blend(base, word_map(m[w.index], len(words), size)))
                for w in ranked[:top]}
        result["attention"].append({
            "model": k + 1, "stage": k + 2, "regions": [int(m.shape[-2]), int(m.shape[-1])],
            # DM-GAN's (B, T, s, s) maps are its memory's key-addressing weights, drawn as word attention is
            "kind": "memory addressing" if model.facts.get("memory") else "word attention",
            "ranked": [w.to_dict() for w in ranked], "top": [w.to_dict() for w in ranked[:top]], "maps": maps,
        })
    for k, m in enumerate(sent_maps):
        result["sentence_attention"].append(_spatial(k, m, bases))
    for name, ts in out.extras.items():
        if name in (WORD_MAPS, SENTENCE_MAPS):
            continue
        for k, t in enumerate(ts):
            result["other"].append(_other(name, k, t[s], words, bases))
    if figure and (word_maps or sent_maps):
        fig = attention_figure(stage_images, word_maps, words, top=top, caption=" ".join(words),
                               sentence_maps=[m[0] for m in sent_maps])
        result["figure"] = png_data_url(fig.image)
    return result


def _spatial(k: int, m: torch.Tensor, bases: list[np.ndarray], name: str = SENTENCE_MAPS) -> dict[str, Any]:
    """A map over the image's regions (1, h, w) summing to 1: drawn with weights below the uniform share
    set to 0, as equation 15 does for words."""
    hw = m.reshape(m.shape[-2], m.shape[-1]).float()  # (h, w)
    size = bases[0].shape[0]
    base = bases[min(k + 1, len(bases) - 1)]
    return {"name": name, "model": k + 1, "stage": k + 2, "regions": [int(hw.shape[0]), int(hw.shape[1])],
            "peak_share": float(hw.max()), "uniform_share": 1.0 / hw.numel(),
            "map": png_data_url(blend(base, word_map(hw, hw.numel(), size)))}


def _other(name: str, k: int, t: torch.Tensor, words: list[str], bases: list[np.ndarray]) -> dict[str, Any]:
    """An output this module has no drawing for: per word (T, ...) its weights summed over the rest; a
    spatial (1, h, w) map as a sentence map; else only its shape."""
    record: dict[str, Any] = {"name": name, "model": k + 1, "shape": [int(v) for v in t.shape]}
    if t.dim() == 3 and t.shape[0] == 1:
        return {**_spatial(k, t, bases, name), "shape": record["shape"]}
    if t.dim() >= 1 and t.shape[0] == len(words) and len(words) > 1:
        weights = t.float().reshape(len(words), -1).sum(1)  # (T,)
        record["words"] = [{"index": i, "word": w, "weight": float(weights[i])} for i, w in enumerate(words)]
    return record
