"""The DAMSM image encoder (paper section 3.2): local region features and a global feature, both in the
common embedding space.

Two backbones:

* ``inception-v3`` (the paper): torchvision's Inception-v3 layers under their official names
  (``Conv2d_1a_3x3`` ... ``Mixed_7c``), input of another size resized bilinearly to 299 (corners
  aligned with ``resize_align_corners``: the official ``nn.Upsample`` under PyTorch 0.3, set for imported
  official encoders) and kept in [-1, 1]; ``Mixed_6e`` (768, 17, 17) -> ``emb_features`` (1x1 conv, no
  bias) -> regions (256, 17, 17); ``Mixed_7c`` -> average pool -> ``emb_cnn_code`` (2048 -> 256). The
  Inception weights are frozen (no gradients) and come only from a local file
  (:func:`load_inception_weights`); nothing is downloaded. Their BatchNorm in training mode follows
  ``frozen_bn``: ``"train"`` (the official ``pretrain_DAMSM.py``, which calls ``cnn_model.train()``)
  normalises with batch statistics and moves the running statistics to the training images, which are
  saved with the encoder and used in eval mode afterwards (GAN loss, R-precision); ``"eval"`` keeps the
  loaded ImageNet statistics (a departure; what ``--cache-features`` needs).
* ``compact``: a small CNN trained from scratch, for CPUs and small images (the shapes demo, the tests):
  regions (4w channels) at 1/8 of the input size (8x8 for 64 px), global feature from 1/16.

  - version 2 (``compact_version``, the default): the image plus two coordinate channels (x, y in
    [-1, 1]); stride-1 3x3 convs each followed by a 2x2 max-pool; the global feature is a linear map of
    the whole flattened 1/16 map. Version 1 was nearly blind to absolute position (mean pooling) and to
    shape (strided convs): a DAMSM trained with it on the shapes data told captions that differ only in
    position or only in shape apart at 32 % and 52 % (chance 11 % and 25 %); version 2 reaches 96 % on
    position, and as a supervised shape classifier it reaches 97 % in 400 steps where version 1 is
    at 51 %.
  - version 1: stride-2 3x3 conv blocks, mean-pooled global feature (DAMSM configs without ``compact_version``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from attngan_cli.config.schema import ImageEncoderConfig
from attngan_cli.core.errors import AttnGANError, InputError

BACKBONES = ("inception-v3", "compact")

# The Inception-v3 layers the encoder uses, in order (the official CNN_ENCODER's attribute names).
INCEPTION_LAYERS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c",
)
_UPTO_6E = INCEPTION_LAYERS[: INCEPTION_LAYERS.index("Mixed_6e") + 1]
_FROM_7A = INCEPTION_LAYERS[INCEPTION_LAYERS.index("Mixed_7a"):]


class ImageEncoder(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] -> regions (B, D, h, w) and global feature (B, D).

    ``regions=False`` builds the global feature alone, without the ``emb_features`` projection of the
    regions: what the STREAM captioner reads (:meth:`global_feature`); :meth:`forward` and :meth:`project`
    then refuse."""

    emb_features: nn.Conv2d | None

    def __init__(self, cfg: ImageEncoderConfig, regions: bool = True) -> None:
        super().__init__()
        if cfg.backbone not in BACKBONES:
            raise AttnGANError(f"image.backbone must be one of {', '.join(BACKBONES)}, got {cfg.backbone!r}")
        self.cfg = cfg
        self.backbone = cfg.backbone
        D = cfg.embedding_dim
        if cfg.backbone == "inception-v3":
            # deferred: torchvision.models takes ~2 s to import; only this backbone needs it
            from torchvision.models import inception_v3

            net = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
            for name in INCEPTION_LAYERS:
                setattr(self, name, getattr(net, name))
            for name in INCEPTION_LAYERS:
                for p in getattr(self, name).parameters():
                    p.requires_grad_(False)
            self.emb_features = nn.Conv2d(768, D, kernel_size=1, bias=False) if regions else None
            self.emb_cnn_code = nn.Linear(2048, D)
        elif cfg.compact_version == 1:
            w = cfg.width
            self.features = nn.Sequential(  # 1/8 resolution, 4w channels
                _conv_block(3, w, stride=2), _conv_block(w, w),
                _conv_block(w, 2 * w, stride=2), _conv_block(2 * w, 2 * w),
                _conv_block(2 * w, 4 * w, stride=2), _conv_block(4 * w, 4 * w),
            )
            self.head = nn.Sequential(_conv_block(4 * w, 8 * w, stride=2), _conv_block(8 * w, 8 * w))
            self.emb_features = nn.Conv2d(4 * w, D, kernel_size=1, bias=False) if regions else None
            self.emb_cnn_code = nn.Linear(8 * w, D)
        elif cfg.compact_version == 2:
            w, s = cfg.width, cfg.image_size
            if s % 16:
                raise AttnGANError(f"image.image_size must be a multiple of 16 for the compact encoder, got {s}")
            pool = nn.MaxPool2d(2)
            self.features = nn.Sequential(  # 1/8 resolution, 4w channels
                _conv_block(5, w), pool, _conv_block(w, 2 * w), pool, _conv_block(2 * w, 4 * w), pool,
            )
            self.head = nn.Sequential(_conv_block(4 * w, 4 * w), pool, _conv_block(4 * w, 8 * w))  # 1/16, 8w
            self.emb_features = nn.Conv2d(4 * w, D, kernel_size=1, bias=False) if regions else None
            self.emb_cnn_code = nn.Linear(8 * w * (s // 16) ** 2, D)
        else:
            raise AttnGANError(f"image.compact_version must be 1 or 2, got {cfg.compact_version}")
        if self.emb_features is not None:
            nn.init.uniform_(self.emb_features.weight, -0.1, 0.1)  # official init of the projections
        nn.init.uniform_(self.emb_cnn_code.weight, -0.1, 0.1)

    # ---------------------------------------------------------------------------------------------
    @property
    def frozen_backbone(self) -> bool:
        return self.backbone == "inception-v3"

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.frozen_backbone and self.cfg.frozen_bn == "eval":  # frozen layers keep their BN statistics
            for name in INCEPTION_LAYERS:
                getattr(self, name).eval()
        return self

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        s = self.cfg.image_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=self.cfg.resize_align_corners)
        return images

    def backbone_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen Inception part: (Mixed_6e (B, 768, 17, 17), pooled Mixed_7c (B, 2048)).

        Only for the inception-v3 backbone; this is what feature caching stores.
        """
        if not self.frozen_backbone:
            raise AttnGANError("backbone_features is only defined for the inception-v3 backbone")
        x = self.resize(images)  # (B, 3, 299, 299)
        for name in _UPTO_6E:
            x = getattr(self, name)(x)
            if name in ("Conv2d_2b_3x3", "Conv2d_4a_3x3"):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
        local = x  # (B, 768, 17, 17)
        for name in _FROM_7A:
            x = getattr(self, name)(x)  # -> (B, 2048, 8, 8)
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 2048)
        return local, pooled

    def project(self, local: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The trainable projections on top of backbone features (inception: also on cached features)."""
        if self.emb_features is None:
            raise AttnGANError("this image encoder was built without region features (regions=False): "
                               "use global_feature")
        return self.emb_features(local), self.emb_cnn_code(pooled)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frozen_backbone:
            with torch.no_grad():
                local, pooled = self.backbone_features(images)
            return self.project(local, pooled)  # (B, D, 17, 17), (B, D)
        return self.project(*self._compact_maps(images))

    def global_feature(self, images: torch.Tensor, backbone_grad: bool = True) -> torch.Tensor:
        """The global feature alone: (B, 3, H, W) -> (B, D). With the frozen inception-v3 backbone,
        ``backbone_grad=False`` runs it without building a graph; True lets gradients reach ``images``.
        The compact backbone trains, so gradients always flow."""
        if self.frozen_backbone:
            with torch.set_grad_enabled(backbone_grad and torch.is_grad_enabled()):
                _local, pooled = self.backbone_features(images)  # (B, 2048)
            return self.emb_cnn_code(pooled)
        return self.emb_cnn_code(self._compact_maps(images)[1])

    def _compact_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The compact backbone: regions (B, 4w, s/8, s/8) and the unprojected global vector."""
        x = self.resize(images)  # (B, 3, s, s)
        if self.cfg.compact_version == 1:
            x = self.features(x)  # (B, 4w, s/8, s/8)
            return x, self.head(x).mean(dim=(2, 3))  # global from (B, 8w)
        x = self.features(torch.cat((x, _coordinates(x)), dim=1))  # (B, 4w, s/8, s/8)
        return x, self.head(x).flatten(1)  # global from (B, 8w * s/16 * s/16)


def _coordinates(x: torch.Tensor) -> torch.Tensor:
    """Two channels (x, y), each from -1 (left / top) to 1 (right / bottom): (B, C, H, W) -> (B, 2, H, W)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat((xs, ys), dim=1)


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


def trainable_parameters(encoder: ImageEncoder) -> list[nn.Parameter]:
    return [p for p in encoder.parameters() if p.requires_grad]


_WEIGHTS_HINT = ("download torchvision's inception_v3_google-0cc3c7bd.pth (or the older -1a9a5a14.pth) yourself, "
                 "e.g. from https://download.pytorch.org/models/, and pass it with --inception-weights PATH")


def inception_weights_file(path: str | os.PathLike[str] | None) -> Path:
    """``path`` as a Path when it is an existing file; else :class:`InputError` saying where to get the
    ImageNet weights (checked before a run starts, without building a model)."""
    if path is None:
        raise InputError(f"the inception-v3 image encoder needs ImageNet weights: {_WEIGHTS_HINT}")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Inception-v3 weights file {path} does not exist; {_WEIGHTS_HINT}")
    return path


def load_inception_weights(encoder: ImageEncoder, path: str | os.PathLike[str] | None) -> None:
    """Load torchvision's ImageNet Inception-v3 weights (``inception_v3_google-*.pth``) from a local file
    into the frozen layers of ``encoder``. Raises :class:`InputError` naming the file when it is missing,
    unreadable or not an Inception-v3 state dict."""
    if not encoder.frozen_backbone:
        raise AttnGANError("--inception-weights is only used with --image-encoder inception-v3")
    path = inception_weights_file(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise InputError(f"{path} is not a readable torch weights file ({type(e).__name__}); {_WEIGHTS_HINT}") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{path} does not hold a state dict (found {type(sd).__name__}); {_WEIGHTS_HINT}")
    wanted = {k: v for k, v in encoder.state_dict().items() if k.split(".", 1)[0] in INCEPTION_LAYERS}
    missing = [k for k in wanted if k not in sd]
    # torchvision's file has no num_batches_tracked buffers in old versions: those may be absent.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(
            f"{path} is not a torchvision Inception-v3 state dict: {len(missing)} expected keys are missing "
            f"(first: {missing[0]!r}); {_WEIGHTS_HINT}"
        )
    for k, v in wanted.items():
        if k in sd and tuple(sd[k].shape) != tuple(v.shape):
            raise InputError(f"{path}: {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)} "
                             f"(not an Inception-v3 file?)")
    sub = {k: sd[k] for k in wanted if k in sd}
    encoder.load_state_dict(sub, strict=False)
