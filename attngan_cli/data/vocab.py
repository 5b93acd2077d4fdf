"""The word vocabulary: index 0 is ``<end>`` (padding), official ``captions.pickle`` compatible."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import atomic_write_json, safe_unpickle
from attngan_cli.data._py2dict import py2_dict_order
from attngan_cli.data.tokenizer import tokenize

log = logging.getLogger(__name__)

END = "<end>"
VOCAB_FORMAT = "attngan-vocab"


def vocab_sha256(words: Sequence[str] | None) -> str | None:
    """The SHA-256 of a word list (one word a line), as checkpoints record it; None for None."""
    if words is None:
        return None
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()


class Vocabulary:
    """Words and their indices. ``words[0] == "<end>"``, the padding / end token."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if not words or words[0] != END:
            raise InputError(f"a vocabulary must start with {END!r} at index 0, got {words[:1]}")
        self.words: list[str] = words
        self.word_to_index: dict[str, int] = {w: i for i, w in enumerate(words)}
        if len(self.word_to_index) != len(words):
            seen: set[str] = set()
            dup = [w for w in words if w in seen or seen.add(w)]  # type: ignore[func-returns-value]
            raise InputError(f"the vocabulary lists some words twice: {dup[:5]}")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words, sha256={self.sha256[:12]})"

    @property
    def sha256(self) -> str:
        return vocab_sha256(self.words)  # type: ignore[return-value]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of ``ids`` joined by spaces, stopping at the first 0 (padding)."""
        out = []
        for i in ids:
            i = int(i)
            if i == 0:
                break
            out.append(self.words[i] if 0 <= i < len(self.words) else f"<{i}?>")
        return " ".join(out)

    # ------------------------------------------------------------------ encoding
    def encode_tokens(self, tokens: Iterable[str]) -> tuple[list[int], list[str]]:
        ids, unknown = [], []
        for t in tokens:
            i = self.word_to_index.get(t)
            if i is None or i == 0:
                unknown.append(t)
            else:
                ids.append(i)
        return ids, unknown

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        """Word ids of ``text`` (official tokenization) and the unknown words that were dropped."""
        return self.encode_tokens(tokenize(text))

    def encode_batch(self, texts: list[str], warn: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions as ``(ids (B, T) int64 padded with 0, lengths (B,))``, T = longest caption.

        Raises :class:`InputError` for a caption with no word, or whose words are all unknown; logs a
        warning naming the unknown words that were dropped.
        """
        if isinstance(texts, str):
            texts = [texts]
        rows: list[list[int]] = []
        dropped: dict[str, int] = {}
        for n, text in enumerate(texts):
            tokens = tokenize(text)
            if not tokens:
                raise InputError(f"caption {n + 1} ({text!r}) has no words (empty or only punctuation)")
            ids, unknown = self.encode_tokens(tokens)
            if not ids:
                raise InputError(
                    f"caption {n + 1} ({text!r}): none of its words is in the vocabulary "
                    f"({', '.join(repr(u) for u in unknown[:10])}); the vocabulary has {len(self)} words"
                )
            for u in unknown:
                dropped[u] = dropped.get(u, 0) + 1
            rows.append(ids)
        if warn and dropped:
            log.warning("dropped words not in the vocabulary: %s", ", ".join(sorted(dropped)))
        if not rows:
            raise InputError("no captions given")
        length = max(len(r) for r in rows)
        out = torch.zeros(len(rows), length, dtype=torch.long)  # (B, T)
        for b, r in enumerate(rows):
            out[b, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out, torch.tensor([len(r) for r in rows], dtype=torch.long)

    # ------------------------------------------------------------------ construction / files
    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], order: str = "official") -> Vocabulary:
        """A vocabulary of every word in ``token_lists`` (all words, any count, as officially).

        ``order="official"`` numbers the words as the official code does under Python 2.7 (the iteration
        order of its word-count dict), so CUB captions, train then test, give exactly the released
        ``captions.pickle`` indices. ``"first"``: order of first appearance; ``"sorted"``: alphabetical.
        """
        seq = (w for toks in token_lists for w in toks)
        if order == "official":
            words = py2_dict_order(w for w in seq if w != END)
        elif order == "first":
            words = list(dict.fromkeys(w for w in seq if w != END))
        elif order == "sorted":
            words = sorted({w for w in seq if w != END})
        else:
            raise ValueError(f"unknown vocabulary order {order!r} (official, first or sorted)")
        return cls([END, *words])

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read the official ``captions.pickle`` or a JSON vocabulary saved by :meth:`save` (or a plain JSON
        list of words). The ``/vocab`` of a prepared HDF5 file: :func:`attngan_cli.data.h5.read_vocabulary`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"vocabulary file {path} does not exist")
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as e:
            raise InputError(f"cannot read vocabulary file {path}: {e.strerror or e}") from None
        if head.startswith(b"\x89HDF"):
            raise InputError(f"{path} is an HDF5 file: read a prepared dataset's vocabulary with "
                             "attngan_cli.data.h5.read_vocabulary")
        if head[:1] == b"\x80":  # a pickle (protocol >= 2)
            return cls._load_pickle(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(
                f"{path} is neither an official captions.pickle nor a JSON vocabulary ({e})"
            ) from None
        words = obj.get("words") if isinstance(obj, dict) else obj
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise InputError(f"{path}: expected a JSON object with a list of strings under 'words'")
        return cls(words)

    @classmethod
    def _load_pickle(cls, path: Path) -> Vocabulary:
        obj = safe_unpickle(path, "the official captions.pickle")
        if not (isinstance(obj, (list, tuple)) and len(obj) >= 4 and isinstance(obj[2], dict)):
            raise InputError(
                f"{path}: expected the official captions.pickle "
                "[train_captions, test_captions, ixtoword, wordtoix]"
            )
        ixtoword = obj[2]
        n = len(ixtoword)
        try:
            words = [str(ixtoword[i]) for i in range(n)]
        except KeyError as e:
            raise InputError(f"{path}: ixtoword has no index {e}; indices must be 0..{n - 1}") from None
        return cls(words)

    def save(self, path: str | Path) -> Path:
        """Write a JSON vocabulary (atomically)."""
        path = Path(path)
        atomic_write_json(path, {"format": VOCAB_FORMAT, "format_version": 1, "sha256": self.sha256,
                                 "words": self.words})
        return path

