"""The official AttnGAN tokenization, as a spaCy blank English pipeline with our own tokenizer.

The official code (``datasets.py``, ``load_captions``) does, per caption line::

    skip the line if it is empty
    replace "\\ufffd\\ufffd" with " "        (mojibake in the CUB caption files)
    lowercase, then take the runs of \\w (Unicode word characters), NLTK RegexpTokenizer(r"\\w+")
    skip the caption if there are no runs
    drop the non-ASCII characters of each run, and runs that become empty (we warn, naming the words)

and keeps the first 10 such captions of each file. :func:`tokenize` reproduces the per-caption rules
exactly; :func:`read_caption_file` the per-file ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from attngan_cli.core.fileio import read_text

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

# NLTK's RegexpTokenizer compiles with UNICODE | MULTILINE | DOTALL; on a Python 3 str \w is Unicode anyway.
log = logging.getLogger(__name__)

_WORD_RUN = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.DOTALL)
_MOJIBAKE = "\ufffd\ufffd"


def _raw_runs(text: str) -> list[str]:
    """Word runs before the ASCII filter (what the official code tests for an empty caption)."""
    return _WORD_RUN.findall(text.replace(_MOJIBAKE, " ").lower())


def _ascii_only(runs: Iterable[str], text: str = "") -> list[str]:
    """The runs without their non-ASCII characters (the official rule), with one warning per caption
    naming each word that lost letters (``text``: the caption, for the message)."""
    out, changed = [], []
    for r in runs:
        if not r.isascii():
            a = r.encode("ascii", "ignore").decode("ascii")
            changed.append(f"{r!r} -> {a!r}" if a else f"{r!r} -> (dropped)")
            r = a
        if r:
            out.append(r)
    if changed:
        shown = text if len(text) <= 80 else text[:77] + "..."
        log.warning("caption %r: non-ASCII letters are dropped, as the official tokenizer does: %s",
                    shown, ", ".join(changed))
    return out


class AttnGANTokenizer:
    """A spaCy tokenizer (``nlp.tokenizer``) that makes one token per official AttnGAN word.

    Token texts are already normalised (lowercase ASCII), so ``[t.text for t in nlp(text)]`` is the
    official token list.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        from spacy.tokens import Doc  # deferred with spacy itself, see nlp()

        words = _ascii_only(_raw_runs(text), text)
        return Doc(self.vocab, words=words, spaces=[True] * len(words))

    # spaCy calls these when a pipeline is saved/loaded; this tokenizer has no state to serialise.
    def to_bytes(self, **kwargs) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs) -> AttnGANTokenizer:
        return self

    def to_disk(self, path, **kwargs) -> None:
        return None

    def from_disk(self, path, **kwargs) -> AttnGANTokenizer:
        return self


@lru_cache(maxsize=1)
def nlp() -> Language:
    """The shared blank English pipeline with :class:`AttnGANTokenizer` (created on first use)."""
    # deferred: spaCy takes ~0.9 s to import and only tokenizing needs it (loading a checkpoint, the
    # DataLoader and eval do not)
    import spacy

    pipeline = spacy.blank("en")
    pipeline.tokenizer = AttnGANTokenizer(pipeline.vocab)
    return pipeline


def tokenize(text: str) -> list[str]:
    """Official AttnGAN tokens of one caption: lowercase ASCII word runs (``\\w+``), non-ASCII dropped."""
    return [t.text for t in nlp().tokenizer(text)]


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    """:func:`tokenize` for many captions (through ``nlp.pipe``)."""
    return [[t.text for t in doc] for doc in nlp().pipe(texts)]


def split_caption_lines(text: str, max_captions: int | None = 10) -> tuple[list[list[str]], list[str]]:
    """The official per-file rules on the text of one caption file.

    Returns ``(captions, skipped)``: the token lists of the first ``max_captions`` usable lines (all when
    None), and the non-empty lines that were skipped because they hold no word (the official code prints
    them). Empty lines are skipped silently, as officially.
    """
    captions: list[list[str]] = []
    skipped: list[str] = []
    tok = nlp().tokenizer
    for line in text.split("\n"):
        if len(line) == 0:
            continue
        if not _raw_runs(line):
            skipped.append(line)
            continue
        captions.append([t.text for t in tok(line)])
        if max_captions is not None and len(captions) == max_captions:
            break
    return captions, skipped


def read_caption_file(path: str | Path, max_captions: int | None = 10) -> tuple[list[list[str]], list[str]]:
    """Read a caption file (one caption per line, UTF-8, as the official code decodes it).

    Raises :class:`InputError` naming the file when it is missing or unreadable, binary (NUL bytes) or
    not UTF-8 (the official code fails on such a file too); U+FFFD characters written in the file (the
    CUB files hold some) are ordinary text.
    """
    text = read_text(path, "caption file", "captions must be UTF-8 text, one caption per line")
    return split_caption_lines(text, max_captions)
