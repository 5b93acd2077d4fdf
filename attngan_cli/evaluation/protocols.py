"""Named evaluation protocols: everything that moves a number, fixed by one name.

The papers' tables are not on one scale (see docs/evaluation.md): DM-GAN, DF-GAN and TISE compute FID with
torchvision's ImageNet Inception-v3 and pytorch-fid's old preprocessing, DF-GAN samples with truncated noise
against an augmented reference set, TISE divides the Inception logits by a fitted temperature (IS*) and
scores text alignment with CLIP on COCO. A :class:`Protocol` is that list of choices as data;
:func:`resolve_settings` turns a protocol, the dataset's source and the options the user set into one flat
dict of settings (every option the user gives overrides the protocol), which is what is written with the
score.

Where a setting depends on the dataset (sample counts, the IS* temperature, the text-alignment metric), the
protocol holds a mapping ``source -> value`` with a ``"*"`` default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from attngan_cli.core.errors import InputError

FID_EXTRACTORS = ("tf-inception", "torchvision-inception")
# tf-bilinear: torch-fidelity's TF-exact resize of the uint8 images (the TTUR / TF-FID input);
# dmgan: uint8 images truncated as DM-GAN saves its PNGs, PIL bilinear resize to 299, ToTensor, pytorch-fid's
#        (old) normalisation; dfgan: the float images mapped to [0, 1], tensor bilinear resize to 299, the same
#        normalisation (no uint8 step).
FID_PREPROCESS = ("tf-bilinear", "dmgan", "dfgan")
FID_REFERENCES = ("test", "test-augmented")
RP_TIES = ("miss", "hit")  # a tie between the true caption and a mismatched one
RP_FOLD_STYLES = ("consecutive", "dmgan")  # dmgan: shuffled hits, folds [i m, (i + 1) m - 1) (trainer.py)

CUB_IS_STAR_T = 0.5980541706085205  # tise-toolbox image_realism/IS/bird/inception_score_star_bird.py l.192
COCO_IS_STAR_T = 0.9091363549232483  # tise-toolbox image_realism/IS/coco/inception_score_star_coco.py l.107


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Protocol:
    """One published evaluation protocol. Mappings are ``dataset source -> value`` (``"*"``: any other)."""

    name: str
    summary: str
    metrics: Mapping[str, tuple[str, ...]]  # the metrics run when --metric is not given
    fid_extractor: str = "tf-inception"
    fid_preprocess: str = "tf-bilinear"
    fid_reference: Mapping[str, str] = field(default_factory=lambda: _frozen({"*": "test"}))
    reference_passes: int = 1  # test-augmented: augmented copies of each test image
    # samples: a fixed count, or (when sample_passes maps the source) passes over the test split, each pass
    # cut to a multiple of pass_batch (the official loaders' drop_last)
    num_samples: int = 30000
    sample_passes: Mapping[str, int] = field(default_factory=lambda: _frozen({}))
    pass_batch: int = 1
    # None: the architecture's own sampling noise (plain N(0, 1) but for DF-GAN); t > 0: truncated normal in
    # [-2, 2] times t (DF-GAN's rule); 0: plain N(0, 1)
    truncation: float | None = None
    image_size: int = 0  # 0: the generator's output size
    is_splits: int = 10
    is_temperature: Mapping[str, float] = field(default_factory=lambda: _frozen({"*": 1.0}))
    rp_wrong: int = 99
    rp_folds: int = 10
    rp_ties: str = "miss"
    rp_fold_style: str = "consecutive"
    clip_rp_wrong: int = 99
    clip_rp_folds: int = 10
    sources: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # setting -> "repo: file (line)"


def _by_source(m: Mapping[str, Any], source: str) -> Any:
    return m.get(source, m.get("*"))


PROTOCOLS: Mapping[str, Protocol] = _frozen({p.name: p for p in (
    Protocol(
        name="attngan",
        summary="this toolkit's default: TF-FID (torch-fidelity's port of the TF Inception 2015-12-05), IS on the "
                "same network, DAMSM R-precision (1 true vs 99 other-class captions, 10 folds), 30,000 samples",
        metrics=_frozen({"*": ("rprecision", "is", "fid")}),
        sources=_frozen({
            "fid_extractor": "toshas/torch-fidelity: feature_extractor_inceptionv3.py; bioinf-jku/TTUR: fid.py",
            "num_samples": "taoxugit/AttnGAN: code/trainer.py (gen_example / sampling), AttnGAN paper section 4",
            "rp_wrong": "MinfengZhu/DM-GAN: code/trainer.py l.468-484",
        }),
    ),
    Protocol(
        name="dmgan",
        summary="DM-GAN's released evaluation: torchvision ImageNet Inception-v3 FID (old pytorch-fid port) on "
                "PNG-quantised images, 30,000 samples, DAMSM R-precision with argmax (ties hit) over shuffled "
                "hits in 10 folds of 2,999",
        metrics=_frozen({"*": ("rprecision", "fid")}),
        fid_extractor="torchvision-inception",
        fid_preprocess="dmgan",
        rp_ties="hit",
        rp_fold_style="dmgan",
        sources=_frozen({
            "fid_extractor": "MinfengZhu/DM-GAN: eval/FID/inception.py l.57 (models.inception_v3(pretrained=True))",
            "fid_preprocess": "MinfengZhu/DM-GAN: code/trainer.py l.459-461 (PNG: (x+1)*127.5 astype uint8); "
                              "eval/FID/fid_score.py l.219-222 (Resize((299, 299)), ToTensor); eval/FID/inception.py "
                              "l.124-131 (upsample align_corners, normalisation)",
            "num_samples": "MinfengZhu/DM-GAN: code/trainer.py l.419-421 (R = np.zeros(30000), 11 loops)",
            "rp_wrong": "MinfengZhu/DM-GAN: code/trainer.py l.470 (get_mis_caption: 99 of other classes)",
            "rp_ties": "MinfengZhu/DM-GAN: code/trainer.py l.481 (torch.argmax(scores0) == 0)",
            "rp_fold_style": "MinfengZhu/DM-GAN: code/trainer.py l.487-489 (shuffle, R[i*3000:(i+1)*3000-1])",
        }),
    ),
    Protocol(
        name="dfgan",
        summary="DF-GAN's released evaluation: torchvision Inception-v3 FID on the float images, truncated noise "
                "(x 0.88), 10 passes over the CUB test split (1 on COCO) in batches of 32 with drop_last, "
                "against the test images augmented with flips and shifts (10 copies)",
        metrics=_frozen({"*": ("fid",)}),
        fid_extractor="torchvision-inception",
        fid_preprocess="dfgan",
        fid_reference=_frozen({"coco": "test", "*": "test-augmented"}),
        reference_passes=10,
        sample_passes=_frozen({"coco": 1, "*": 10}),
        pass_batch=32,
        truncation=0.88,
        sources=_frozen({
            "fid_extractor": "tobran/DF-GAN: code/models/inception.py l.60",
            "fid_preprocess": "tobran/DF-GAN: code/lib/modules.py l.147-150 (Normalize((-1,)*3, (2,)*3), "
                              "Resize((299, 299))), code/models/inception.py l.124-131",
            "sample_passes": "tobran/DF-GAN: code/cfg/bird.yml (sample_times: 10), code/cfg/coco.yml "
                             "(sample_times: 1); code/lib/perpare.py l.118-120 (batch 32, drop_last=True)",
            "truncation": "tobran/DF-GAN: code/cfg/bird.yml (truncation: True, trunc_rate: 0.88); "
                          "code/lib/utils.py l.37-41 (truncnorm(-2, 2) * trunc_rate)",
            "fid_reference": "tobran/DF-GAN issue #18 (author, 2022-06-15: COCO: the test images; the smaller sets: "
                             "test images augmented with horizontal flips and small random shifts to about 30k); the shift as the dataset's transform, "
                             "code/lib/perpare.py l.77-81 (Resize(imsize * 76 / 64), RandomCrop, "
                             "RandomHorizontalFlip)",
        }),
    ),
    Protocol(
        name="tise",
        summary="TISE (Dinh et al., ECCV 2022): IS* (logits / fitted temperature), FID as DM-GAN, DAMSM "
                "R-precision on CUB, CLIP ViT-B/32 R-precision on COCO",
        metrics=_frozen({"coco": ("is", "fid", "clip-rprecision"), "*": ("is", "fid", "rprecision")}),
        fid_extractor="torchvision-inception",
        fid_preprocess="dmgan",
        is_temperature=_frozen({"cub": CUB_IS_STAR_T, "coco": COCO_IS_STAR_T, "*": COCO_IS_STAR_T}),
        rp_ties="hit",
        rp_fold_style="dmgan",
        sources=_frozen({
            "is_temperature": "VinAIResearch/tise-toolbox: image_realism/IS/bird/inception_score_star_bird.py "
                              "l.192 (0.5980541706085205), image_realism/IS/coco/inception_score_star_coco.py "
                              "l.107 (0.9091363549232483)",
            "fid_extractor": "VinAIResearch/tise-toolbox: image_realism/FID/inception.py (as DM-GAN)",
            "clip_rp_wrong": "VinAIResearch/tise-toolbox: text_relevance/RP_coco.py (1 true + 99 mismatched, "
                             "np.argmax(probs) == 0, 10 bins, np.std)",
            "rp_wrong": "VinAIResearch/tise-toolbox: text_relevance/RP_cub.py (DAMSM, as DM-GAN)",
        }),
    ),
)})


def known_protocols() -> list[str]:
    return sorted(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    key = name.strip().lower()
    if key not in PROTOCOLS:
        raise InputError(f"unknown --protocol {name!r}; known protocols: {', '.join(known_protocols())}")
    return PROTOCOLS[key]


def default_metrics(protocol: Protocol, source: str) -> list[str]:
    return list(_by_source(protocol.metrics, source))


def protocol_num_samples(protocol: Protocol, source: str, n_test: int) -> int:
    passes = _by_source(protocol.sample_passes, source) if protocol.sample_passes else None
    if passes is None:
        return protocol.num_samples
    per_pass = n_test - n_test % protocol.pass_batch if n_test >= protocol.pass_batch else n_test
    return max(1, passes * per_pass)


# the option fields of EvalOptions that a protocol fills in when the user leaves them None
SETTING_FIELDS = ("num_samples", "fid_extractor", "fid_preprocess", "fid_reference", "reference_passes",
                  "truncation", "image_size", "is_splits", "is_temperature", "rp_wrong", "rp_folds", "rp_ties",
                  "rp_fold_style", "clip_rp_wrong", "clip_rp_folds")


def resolve_settings(protocol: Protocol, source: str, n_test: int, given: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol's value of every setting in :data:`SETTING_FIELDS` for data of ``source`` with ``n_test``
    test images, replaced by the value in ``given`` where that is not None."""
    base: dict[str, Any] = {
        "num_samples": protocol_num_samples(protocol, source, n_test),
        "fid_extractor": protocol.fid_extractor,
        "fid_preprocess": protocol.fid_preprocess,
        "fid_reference": _by_source(protocol.fid_reference, source),
        "reference_passes": protocol.reference_passes,
        "truncation": protocol.truncation,
        "image_size": protocol.image_size,
        "is_splits": protocol.is_splits,
        "is_temperature": float(_by_source(protocol.is_temperature, source)),
        "rp_wrong": protocol.rp_wrong,
        "rp_folds": protocol.rp_folds,
        "rp_ties": protocol.rp_ties,
        "rp_fold_style": protocol.rp_fold_style,
        "clip_rp_wrong": protocol.clip_rp_wrong,
        "clip_rp_folds": protocol.clip_rp_folds,
    }
    for k in SETTING_FIELDS:
        if given.get(k) is not None:
            base[k] = given[k]
    return base
