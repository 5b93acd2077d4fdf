"""Batch composition for contrastive (DAMSM) training.

In a random batch of the shapes data, the main object's colour, the background and the position almost
always tell two images apart, so the DAMSM never needs the shape or size words and does not learn
them (measured: captions that differ only in the shape were ranked right 35-52 % of the time, chance
25 %). :class:`GroupedBatchSampler` fills a share of each batch with images that agree on some stored
attributes (e.g. background and colour); among those the other attributes are the only difference, so
they become hard negatives. The loss itself is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from attngan_cli.core.errors import InputError


class GroupedBatchSampler:
    """Batches of ``batch_size`` indices into ``range(len(keys))``: ``round(share * batch_size)`` of them
    (at most the group's size) from one random group of equal ``keys``, the rest uniformly from the others;
    ``len(keys) // batch_size`` batches per epoch, no index twice in a batch. The order is a function of
    ``(seed, epoch)`` only, so a resumed run sees the same batches."""

    def __init__(self, keys: Sequence[int] | np.ndarray, batch_size: int, share: float, seed: int = 0,
                 epoch: int = 0) -> None:
        keys = np.asarray(keys)
        if keys.ndim != 1 or len(keys) < batch_size:
            raise InputError(f"grouped batches need at least batch_size={batch_size} items, got {len(keys)}")
        if not 0.0 <= share <= 1.0:
            raise InputError(f"group share must be between 0 and 1, got {share}")
        self.n = len(keys)
        self.batch_size = batch_size
        self.share = share
        self.seed = seed
        self.epoch = epoch
        _, inverse = np.unique(keys, return_inverse=True)
        self.groups = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        want = round(self.share * self.batch_size)
        for _ in range(len(self)):
            group = self.groups[rng.integers(len(self.groups))]
            same = rng.choice(group, size=min(want, len(group)), replace=False)
            free = np.ones(self.n, dtype=bool)
            free[same] = False
            rest = rng.choice(np.flatnonzero(free), size=self.batch_size - len(same), replace=False)
            batch = np.concatenate([same, rest])
            rng.shuffle(batch)
            yield batch.tolist()


def attribute_keys(columns: Sequence[np.ndarray]) -> np.ndarray:
    """One integer key per item from several attribute columns of value indices: (N,) int64."""
    if not columns:
        raise InputError("no attributes to group by")
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for col in columns:
        col = np.asarray(col, dtype=np.int64)
        key = key * (int(col.max(initial=0)) + 1) + col
    return key
