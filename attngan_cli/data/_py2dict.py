"""The iteration order of a Python 2.7 ``dict`` of ASCII strings, emulated.

The official AttnGAN vocabulary (``captions.pickle``) was built under Python 2.7 by iterating a
``defaultdict`` of word counts, so its word indices follow CPython 2.7's hash-table slot order (string
hash without randomisation, open addressing with perturbed probing, growth by 4x when 2/3 full). This
module replays that table for a sequence of insertions, which lets a vocabulary built from the text
carry exactly the official indices.
"""

from __future__ import annotations

from collections.abc import Iterable

_MASK64 = (1 << 64) - 1
_MIN_SIZE = 8
_PERTURB_SHIFT = 5


def py2_str_hash(word: str) -> int:
    """CPython 2.7's 64-bit ``hash()`` of an ASCII string (as an unsigned 64-bit integer)."""
    data = word.encode("ascii", "ignore") if not word.isascii() else word.encode("ascii")
    if not data:
        return 0
    x = (data[0] << 7) & _MASK64
    for c in data:
        x = ((1000003 * x) & _MASK64) ^ c
    x ^= len(data)
    if x == _MASK64:  # -1 is reserved for errors: becomes -2
        x = _MASK64 - 1
    return x


def _free_slot(table: list[str | None], mask: int, key: str, h: int) -> int:
    i = h & mask
    if table[i] is None or table[i] == key:
        return i
    perturb = h
    while True:
        i = ((i << 2) + i + perturb + 1) & _MASK64
        j = i & mask
        if table[j] is None or table[j] == key:
            return j
        perturb >>= _PERTURB_SHIFT


def py2_dict_order(keys: Iterable[str]) -> list[str]:
    """Distinct ``keys`` in the order a Python 2.7 dict would iterate them after inserting them in turn."""
    table: list[str | None] = [None] * _MIN_SIZE
    hashes: dict[str, int] = {}
    used = 0
    for key in keys:
        h = hashes.get(key)
        if h is not None:  # already present: an update, no insertion, no resize check
            continue
        h = hashes[key] = py2_str_hash(key)
        mask = len(table) - 1
        table[_free_slot(table, mask, key, h)] = key
        used += 1
        if used * 3 >= len(table) * 2:
            minused = (2 if used > 50000 else 4) * used
            size = _MIN_SIZE
            while size <= minused:
                size <<= 1
            old, table = table, [None] * size
            for k in old:
                if k is not None:
                    table[_free_slot(table, size - 1, k, hashes[k])] = k
    return [k for k in table if k is not None]
