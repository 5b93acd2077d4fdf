"""torchvision's ImageNet Inception-v3 as the FID feature extractor of DM-GAN, DF-GAN, TISE and GALIP.

Those codes build the old pytorch-fid port (``InceptionV3`` in MinfengZhu/DM-GAN ``eval/FID/inception.py``,
tobran/DF-GAN ``code/models/inception.py``): ``torchvision.models.inception_v3(pretrained=True)`` cut after
``Mixed_7c`` and a global average pool (2048-d "pool3"). Its forward takes images in [0, 1], resizes them to
299 x 299 (bilinear, ``align_corners=True``) and applies

    x_c <- x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5      (ImageNet mean / std)

(torchvision's ``transform_input`` formula, applied to [0, 1] inputs as that port does). The input before it
differs between the codes (:data:`~attngan_cli.evaluation.protocols.FID_PREPROCESS`):

* ``dmgan``: the generated images are saved as PNG with ``((x + 1) * 127.5).astype(np.uint8)`` (truncation,
  ``code/trainer.py`` l.459-461), read back, ``transforms.Resize((299, 299))`` on the PIL image (PIL
  bilinear) and ``ToTensor`` (``eval/FID/fid_score.py`` l.219-222);
* ``dfgan``: the float images, ``Normalize((-1,)*3, (2,)*3)`` (to [0, 1]) and ``transforms.Resize((299,
  299))`` on the tensor (bilinear, no antialiasing as in the torchvision of 2022; ``code/lib/modules.py``
  l.147-150).

The weights are a local ``inception_v3_google-*.pth`` file (torchvision's download); nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from attngan_cli.core.errors import InputError
from attngan_cli.evaluation.features import _load_state, file_sha256, save_random_inception

EXTRACTOR_NAME = "torchvision-inception-v3-pool3"
POOL_DIM = 2048
TV_FILE = "inception_v3_google-0cc3c7bd.pth"
TV_URL = "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
_NEEDED = (f"this protocol's FID uses torchvision's ImageNet Inception-v3 ({TV_FILE}, or the older "
           f"inception_v3_google-1a9a5a14.pth); download it on a machine with internet access from {TV_URL} and "
           "pass it with --torchvision-inception PATH")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def check_torchvision_inception(path: str | os.PathLike[str] | None) -> Path:
    """Validate ``path`` (exists, loads without executing code, has torchvision's Inception-v3 keys)."""
    if path is None:
        raise InputError(f"no --torchvision-inception given. {_NEEDED}")
    path = Path(path).expanduser()
    if path.is_dir():
        found = sorted(path.glob("inception_v3_google-*.pth"))
        if not found:
            raise InputError(f"--torchvision-inception {path} is a directory without inception_v3_google-*.pth. "
                             f"{_NEEDED}")
        path = found[0]
    if not path.is_file():
        raise InputError(f"--torchvision-inception {path} does not exist. {_NEEDED}")
    state = _load_state(path)
    fc = state.get("fc.weight")
    if fc is None or tuple(fc.shape) != (1000, POOL_DIM) or "Mixed_7c.branch_pool.conv.weight" not in state:
        hint = (" (it looks like the TF-FID file: pass that one with --inception-weights)"
                if fc is not None and tuple(fc.shape) == (1008, POOL_DIM) else "")
        raise InputError(f"--torchvision-inception {path} is not torchvision's Inception-v3 state dict (no fc.weight "
                         f"of shape (1000, {POOL_DIM}) / Mixed_7c){hint}. {_NEEDED}")
    return path


def build_inception3() -> torch.nn.Module:
    """torchvision's Inception3 with random weights (aux classifier kept, so its state dict loads strictly)."""
    from torchvision.models.inception import Inception3

    return Inception3(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False)


class Pool3(torch.nn.Module):
    """Inception3 up to the 2048-d average pool; input (B, 3, H, W) in [0, 1] -> (B, 2048)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, torch.nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, torch.nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
            net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, torch.nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.register_buffer("scale", torch.tensor([s / 0.5 for s in _STD]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor([(m - 0.5) / 0.5 for m in _MEAN]).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=True)  # identity at 299
        x = x * self.scale + self.shift
        return self.body(x).flatten(1)  # (B, 2048)


def _pil_resize_299(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, 299, 299) in [0, 1]: PIL bilinear resize + ToTensor, per image."""
    arr = images_uint8.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
    out = [np.asarray(Image.fromarray(a).resize((299, 299), Image.BILINEAR)) for a in arr]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255)


def dmgan_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 as DM-GAN saves them: ``((x + 1) * 127.5).astype(np.uint8)``
    (truncation toward zero; values outside [-1, 1] are clamped first instead of wrapping around)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).to(torch.uint8)


class TorchvisionInceptionFeatures:
    """``extractor(images (B, 3, S, S) in [-1, 1], quantize) -> {"pool": (B, 2048)}`` (float32, CPU).

    ``quantize`` (dmgan preprocessing only) says how the float images become uint8: ``"floor"`` as DM-GAN
    saves generated PNGs, ``"round"`` for real images stored as uint8 (exactly their stored values).
    """

    def __init__(self, weights: str | os.PathLike[str] | None, preprocess: str,
                 device: torch.device | str = "cpu") -> None:
        if preprocess not in ("dmgan", "dfgan"):
            raise InputError(f"--fid-preprocess {preprocess} does not apply to torchvision's Inception "
                             "(use dmgan or dfgan)")
        self.path = check_torchvision_inception(weights)
        net = build_inception3()
        state = _load_state(self.path)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise InputError(f"--torchvision-inception {self.path} does not fit torchvision's Inception3 "
                             f"({str(e).splitlines()[0][:200]}). {_NEEDED}") from e
        self.device = torch.device(device)
        self.model = Pool3(net).eval().to(self.device)
        self.preprocess = preprocess
        self._sha: str | None = None

    @property
    def key(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.path)
        return f"{EXTRACTOR_NAME}:{self.preprocess}:{self._sha}"

    @property
    def sha256(self) -> str:
        return self.key.rsplit(":", 1)[1]

    def to_unit(self, images: torch.Tensor, quantize: str = "floor") -> torch.Tensor:
        """The network's input: (B, 3, 299, 299) in [0, 1] (before its own resize and normalisation)."""
        if self.preprocess == "dmgan":
            if quantize == "floor":
                u8 = dmgan_uint8(images)
            else:
                u8 = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            return _pil_resize_299(u8)
        x = (images.detach().float() + 1) / 2  # Normalize((-1,)*3, (2,)*3)
        return F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=False)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, quantize: str = "floor") -> dict[str, torch.Tensor]:
        x = self.to_unit(images, quantize).to(self.device)
        return {"pool": self.model(x).float().cpu()}


def write_random_torchvision_inception(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """A randomly initialised torchvision Inception-v3 state dict (variance-preserving convs, identity batch
    norms), for tests and dry runs only: the numbers it gives mean nothing. Deterministic in ``seed``."""
    return save_random_inception(build_inception3(), path, seed, lambda name, p: lambda x: x / p.shape[1] ** 0.5)
