"""Grouped batches for DAMSM pretraining (hard negatives on the shapes data)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.core.errors import InputError
from attngan_cli.data.sampling import GroupedBatchSampler, attribute_keys


def _keys(n=400, groups=10, seed=0):
    return np.random.default_rng(seed).integers(0, groups, n)


def test_grouped_batches_are_full_unique_and_grouped():
    keys = _keys()
    s = GroupedBatchSampler(keys, batch_size=32, share=0.5, seed=1, epoch=0)
    batches = list(s)
    assert len(batches) == len(s) == 400 // 32
    for b in batches:
        assert len(b) == 32 and len(set(b)) == 32 and all(0 <= i < 400 for i in b)
        # at least half of the batch shares one key (the group), beyond what random batches give
        assert np.bincount(keys[b]).max() >= 16
    random_max = [np.bincount(keys[np.random.default_rng(i).choice(400, 32, replace=False)]).max() for i in range(50)]
    assert max(random_max) < 16  # so the check above can fail for ungrouped batches


def test_grouped_batches_depend_only_on_seed_and_epoch():
    keys = _keys()
    a = list(GroupedBatchSampler(keys, 32, 0.5, seed=1, epoch=2))
    assert a == list(GroupedBatchSampler(keys, 32, 0.5, seed=1, epoch=2))
    assert a != list(GroupedBatchSampler(keys, 32, 0.5, seed=1, epoch=3))
    assert a != list(GroupedBatchSampler(keys, 32, 0.5, seed=2, epoch=2))


def test_grouped_batches_small_groups_and_share_zero():
    keys = np.arange(40)  # every item its own group: one item from the group, the rest random
    for b in GroupedBatchSampler(keys, 8, 0.5):
        assert len(set(b)) == 8
    keys = _keys()
    for b in GroupedBatchSampler(keys, 32, 0.0):
        assert len(set(b)) == 32
    with pytest.raises(InputError, match="between 0 and 1"):
        GroupedBatchSampler(keys, 32, 1.5)
    with pytest.raises(InputError, match="at least batch_size"):
        GroupedBatchSampler(keys[:10], 32, 0.5)


def test_attribute_keys_tell_combinations_apart():
    a = np.array([0, 0, 1, 1, 2])
    b = np.array([0, 1, 0, 1, 1])
    k = attribute_keys([a, b])
    assert len(set(k.tolist())) == 5
    assert attribute_keys([a, a]).tolist() == attribute_keys([a, a]).tolist()
    assert len(set(attribute_keys([a, a]).tolist())) == 3
    with pytest.raises(InputError):
        attribute_keys([])


def test_dataset_attribute_values_and_cli_group_by_errors(tmp_path):
    from attngan_cli.data.dataset import TextImageDataset
    from attngan_cli.data.shapes import make_shapes

    data = make_shapes(tmp_path / "s.h5", n_train=20, n_test=8, seed=2)
    ds = TextImageDataset(data, "train", image_sizes=(32,), words=12)
    colors = ds.attribute_values("color")
    assert colors.shape == (20,) and colors.dtype == np.int64 and colors.max() < 8
    with pytest.raises(InputError, match="no attribute 'weight'"):
        ds.attribute_values("weight")
    res = CliRunner().invoke(app, ["pretrain", str(data), "--group-by", "color,weight", "--runs", str(tmp_path / "r")])
    assert res.exit_code == 1 and "weight" in res.output and "bg_color" in res.output
    assert not (tmp_path / "r").exists()  # failed before creating a run directory
