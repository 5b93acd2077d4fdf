"""Inception-v3 features for IS and FID, from a local weights file (nothing is downloaded).

The network is torch-fidelity's ``FeatureExtractorInceptionV3``: a PyTorch port of the TensorFlow
Inception graph of 2015-12-05 that the original Inception Score (Salimans et al.) and FID (Heusel et
al., TTUR) code use, with TensorFlow-1.x-exact bilinear resizing to 299 x 299. One pass gives both

* ``pool``: the 2048-d pool3 features (FID), and
* ``logits``: the 1008 unbiased logits (pool3 @ W, no bias: exactly what the original IS code feeds to
  its softmax).

The weights are the converted TF graph distributed as ``pt_inception-2015-12-05-6726825d.pth``
(pytorch-fid) or ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity); both hold the same
state dict. torchvision's ``inception_v3_google-*.pth`` is a different network (retrained ImageNet
classifier, 1000 classes) whose scores are not comparable with the papers': it is rejected with a
clear message.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import atomic_path

if TYPE_CHECKING:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_FILE_ALT = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URLS = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
)
EXTRACTOR_NAME = "inception-v3-tf-2015-12-05"  # part of the FID cache key
POOL_DIM = 2048
LOGITS_DIM = 1008

_NEEDED = (f"IS and FID need the TF-Inception weights file {INCEPTION_FILE} (same content as torch-fidelity's "
           f"{INCEPTION_FILE_ALT}); download it on a machine with internet access from {INCEPTION_URLS[0]} "
           f"and pass it with --inception-weights PATH")


def _extractor_class() -> type[FeatureExtractorInceptionV3]:
    # deferred: torch-fidelity takes ~3 s to import (it loads torchvision.models); only IS and FID need it
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


def check_inception_weights(path: str | os.PathLike[str] | None) -> Path:
    """Validate ``path`` (exists, loads without executing code, has the TF-Inception keys) or raise an
    :class:`InputError` that names the file needed."""
    if path is None:
        raise InputError(f"no --inception-weights given. {_NEEDED}")
    path = Path(path).expanduser()
    if path.is_dir():
        for name in (INCEPTION_FILE, INCEPTION_FILE_ALT):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise InputError(f"--inception-weights {path} is a directory without {INCEPTION_FILE}. {_NEEDED}")
    if not path.is_file():
        raise InputError(f"--inception-weights {path} does not exist. {_NEEDED}")
    state = _load_state(path)
    fc = state.get("fc.weight")
    if "AuxLogits.fc.weight" in state or (fc is not None and tuple(fc.shape) == (1000, POOL_DIM)):
        raise InputError(
            f"--inception-weights {path} looks like torchvision's ImageNet Inception-v3 (inception_v3_google-*.pth, "
            f"1000 classes); IS/FID need the original TF graph instead, so numbers match the papers. {_NEEDED}"
        )
    if fc is None or tuple(fc.shape) != (LOGITS_DIM, POOL_DIM) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise InputError(f"--inception-weights {path} is not the TF-Inception state dict (no fc.weight of shape "
                         f"({LOGITS_DIM}, {POOL_DIM}) / Mixed_7c). {_NEEDED}")
    return path


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise InputError(f"--inception-weights {path} cannot be read as a PyTorch weights file "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160]}). {_NEEDED}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"--inception-weights {path} does not hold a state dict. {_NEEDED}")
    return state


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class InceptionFeatures:
    """``extractor(images_uint8 (B, 3, H, W)) -> {"pool": (B, 2048), "logits": (B, 1008)}`` (float32, CPU).

    Any image size works (TF-exact bilinear resize to 299 inside).
    """

    def __init__(self, weights: str | os.PathLike[str] | None, device: torch.device | str = "cpu") -> None:
        self.path = check_inception_weights(weights)
        cls = _extractor_class()
        # torch-fidelity reads the file with weights_only=False; check_inception_weights has just loaded it
        # with weights_only=True, so it holds tensors only and nothing can execute.
        try:
            self.model = cls(EXTRACTOR_NAME, ["2048", "logits_unbiased"], feature_extractor_weights_path=str(self.path))
        except RuntimeError as e:  # load_state_dict (strict): missing / unexpected keys or wrong shapes
            raise InputError(f"--inception-weights {self.path} does not fit the TF-Inception network "
                             f"({str(e).splitlines()[0][:200]}). {_NEEDED}") from e
        self.device = torch.device(device)
        self.model.to(self.device)
        self._sha: str | None = None

    @property
    def key(self) -> str:
        """Identifies the extractor for caches: network name + sha256 of the weights file."""
        if self._sha is None:
            self._sha = file_sha256(self.path)
        return f"{EXTRACTOR_NAME}:{self._sha}"

    @torch.no_grad()
    def __call__(self, images_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        if images_uint8.dtype != torch.uint8:
            raise TypeError("InceptionFeatures expects uint8 images; use viz.grid.images_to_uint8 first")
        pool, logits = self.model(images_uint8.to(self.device))
        return {"pool": pool.float().cpu(), "logits": logits.float().cpu()}


def write_random_inception_weights(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a randomly initialised state dict with the TF-Inception keys and shapes to ``path``.

    For tests and dry runs of the pipeline only: the numbers it gives mean nothing.
    """
    cls = _extractor_class()

    class _Unloaded(cls):  # type: ignore[misc, valid-type]
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: D401
            if not state_dict:
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    with tempfile.TemporaryDirectory() as d:
        empty = Path(d) / "empty.pth"
        torch.save({}, empty)
        model = _Unloaded("random", ["2048"], feature_extractor_weights_path=str(empty))
    return save_random_inception(model, path, seed,
                                 lambda name, p: (lambda x: x * 4.0 / POOL_DIM**0.5) if name == "fc.weight" else None)


def save_random_inception(model: torch.nn.Module, path: str | os.PathLike[str], seed: int,
                          linear: Callable[[str, torch.Tensor], Callable[[torch.Tensor], torch.Tensor] | None]) -> Path:
    """Randomise an Inception network for tests (convs variance-preserving through the ReLUs, the linear
    weights for which ``linear(name, p)`` gives a scaling drawn from N(0, 1) and scaled by it, identity batch norms, every other
    parameter 0), deterministically in ``seed``, and save its state dict atomically to ``path``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = linear(name, p) if p.dim() == 2 else None
            if p.dim() == 4:
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif scale is not None:
                p.copy_(scale(torch.randn(p.shape, generator=g)))
            elif name.endswith("bn.weight"):
                p.fill_(1.0)
            else:
                p.zero_()
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.zero_()
            elif name.endswith("running_var"):
                b.fill_(1.0)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return path
