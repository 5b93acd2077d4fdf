"""Inception feature extraction from a local weights file (random weights: tests cannot get the real ones)."""

from __future__ import annotations

import pytest
import torch

from attngan_cli.core.errors import InputError
from attngan_cli.evaluation.features import (
    INCEPTION_FILE,
    InceptionFeatures,
    check_inception_weights,
    write_random_inception_weights,
)
from attngan_cli.viz.grid import images_to_uint8


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory):
    return write_random_inception_weights(tmp_path_factory.mktemp("inception") / INCEPTION_FILE, seed=0)


def test_missing_or_absent_weights_name_the_file_needed(tmp_path):
    with pytest.raises(InputError, match=r"no --inception-weights given.*pt_inception-2015-12-05-6726825d\.pth"):
        check_inception_weights(None)
    with pytest.raises(InputError, match=r"does not exist.*pt_inception-2015-12-05-6726825d\.pth.*--inception-weights"):
        check_inception_weights(tmp_path / "nope.pth")
    with pytest.raises(InputError, match="directory without pt_inception"):
        check_inception_weights(tmp_path)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot be read"):
        check_inception_weights(tmp_path / "junk.pth")


def test_torchvision_inception_is_rejected_with_an_explanation(tmp_path):
    p = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save({"fc.weight": torch.zeros(1000, 2048), "AuxLogits.fc.weight": torch.zeros(1000, 768)}, p)
    with pytest.raises(InputError, match="torchvision's ImageNet Inception-v3"):
        check_inception_weights(p)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InputError, match="not the TF-Inception state dict"):
        check_inception_weights(tmp_path / "other.pth")
    torch.save({"fc.weight": torch.zeros(1008, 2048), "Mixed_7c.branch_pool.conv.weight": torch.zeros(1)},
               tmp_path / "partial.pth")
    with pytest.raises(InputError, match="does not fit the TF-Inception network"):
        InceptionFeatures(tmp_path / "partial.pth")


def test_features_shapes_key_and_batch_independence(random_inception):
    assert check_inception_weights(random_inception.parent) == random_inception  # a folder holding the file works
    ext = InceptionFeatures(random_inception)
    assert ext.key.startswith("inception-v3-tf-2015-12-05:") and len(ext.key.split(":")[1]) == 64
    g = torch.Generator().manual_seed(0)
    imgs = images_to_uint8(torch.rand(2, 3, 32, 32, generator=g) * 2 - 1)
    out = ext(imgs)
    assert out["pool"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    assert out["pool"].std() > 1e-3 and torch.isfinite(out["logits"]).all()
    parts = [ext(imgs[:1]), ext(imgs[1:])]
    torch.testing.assert_close(torch.cat([p["pool"] for p in parts]), out["pool"], rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        ext(imgs.float())

