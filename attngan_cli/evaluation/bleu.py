"""Corpus BLEU (Papineni et al., 2002): the captioner's test metric.

    BLEU-N = BP * exp(sum_{n=1..N} (1/N) log p_n)
    p_n    = sum over hypotheses of clipped n-gram matches / sum over hypotheses of n-gram counts
    BP     = 1 if c > r else exp(1 - r / c)

with the counts of an n-gram clipped to its largest count in any one reference, c the total hypothesis
length and r the sum of each hypothesis' closest reference length (the shorter one on a tie), as the
reference ``multi-bleu`` and NLTK's ``corpus_bleu``. No smoothing: a corpus with no matching n-gram of
some order scores 0.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                max_n: int = 4) -> float:
    """BLEU-``max_n`` of ``hypotheses`` (token lists), each against its list of references (token lists)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses, strict=True):
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(hyp, n)
            best: Counter[tuple[str, ...]] = Counter()
            for r in refs:
                best |= ngrams(r, n)  # the largest count in any one reference
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p)
