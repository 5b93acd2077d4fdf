"""The DAMSM matching losses (paper equations 7-14, with the official code's details).

Conventions: row i of a score matrix is image i, column j is caption j; labels are ``arange(B)``
(image i matches caption i). Pairs of the same class other than the true one are masked out (-inf),
as the official ``words_loss``/``sent_loss``. ``loss_*1`` is image -> caption (softmax over captions),
``loss_*2`` is caption -> image (softmax over images).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attngan_cli.config.schema import DAMSMConfig

EPS = 1e-8


def same_class_mask(class_ids: torch.Tensor | None, B: int, device: torch.device) -> torch.Tensor | None:
    """(B, B) bool: True where pair (i, j), i != j, has the same class (to be masked out)."""
    if class_ids is None:
        return None
    c = torch.as_tensor(class_ids, device=device).reshape(-1)
    mask = c[:, None] == c[None, :]
    mask.fill_diagonal_(False)
    return mask


def word_attention(words: torch.Tensor, regions: torch.Tensor, gamma1: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of words over regions (eqs. 7-9).

    words (N, D, T), regions (N, D, R) -> region-context per word (N, D, T) and attention (N, T, R):
    s = e^T v (N, R, T); softmax over words per region; times gamma1; softmax over regions per word.
    """
    s = torch.bmm(regions.transpose(1, 2), words)  # (N, R, T)  eq. 7
    s = F.softmax(s, dim=2)  # over words, eq. 8
    attn = F.softmax(gamma1 * s.transpose(1, 2), dim=2)  # (N, T, R), over regions, eq. 9
    context = torch.bmm(regions, attn.transpose(1, 2))  # (N, D, T)
    return context, attn


def word_similarities(regions: torch.Tensor, words_emb: torch.Tensor, lengths: torch.Tensor,
                      gamma1: float, gamma2: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """R(Q_i, D_j) for every image i and caption j (eq. 10): (B_img, B_txt), and the attention of each
    caption j < B_img over its own image as (1, T_j, h, w).

    Vectorised over all pairs; padding words (position >= length) take no part, which is the same as the
    official code's slicing of each caption to its length.
    """
    Bi, D, h, w = regions.shape
    Bt, _, T = words_emb.shape
    R = h * w
    ctx = regions.reshape(Bi, D, R)  # (Bi, D, R)
    lens = torch.as_tensor(lengths, device=words_emb.device).reshape(-1).clamp(1, T)
    pad = torch.arange(T, device=words_emb.device)[None, :] >= lens[:, None]  # (Bt, T) True = padding
    raw = torch.einsum("idr,jdt->ijrt", ctx, words_emb)  # (Bi, Bt, R, T)  eq. 7
    s = F.softmax(raw.masked_fill(pad[None, :, None, :], float("-inf")), dim=3)  # over words, eq. 8
    attn = F.softmax(gamma1 * s, dim=2)  # over regions, eq. 9  (Bi, Bt, R, T)
    # cosine between each word e_t and its region-context vector c_t = sum_r attn[r, t] v_r (eq. 9)
    if R < D:  # cheaper without forming c: e.c = sum_r attn (v_r.e) and |c|^2 = attn^T (V^T V) attn
        dots = (attn * raw).sum(dim=2)  # (Bi, Bt, T)
        gram = torch.bmm(ctx.transpose(1, 2), ctx)  # (Bi, R, R)
        csq = (torch.einsum("irq,ijqt->ijrt", gram, attn) * attn).sum(dim=2)  # (Bi, Bt, T)
        cnorm = csq.clamp(min=1e-12).sqrt()
    else:
        context = torch.einsum("idr,ijrt->ijdt", ctx, attn)  # (Bi, Bt, D, T)  region-context vectors
        dots = torch.einsum("ijdt,jdt->ijt", context, words_emb)  # (Bi, Bt, T)
        cnorm = context.norm(dim=2)
    norms = cnorm * words_emb.norm(dim=1)[None]  # (Bi, Bt, T)
    rel = dots / norms.clamp(min=EPS)  # R(c_t, e_t)
    rel = (gamma2 * rel).masked_fill(pad[None], float("-inf"))
    sims = torch.logsumexp(rel, dim=2)  # (Bi, Bt)  eq. 10
    maps = []
    for j in range(min(Bi, Bt)):
        n = int(lens[j])
        maps.append(attn[j, j, :, :n].t().reshape(1, n, h, w))
    return sims, maps


def words_loss(regions: torch.Tensor, words_emb: torch.Tensor, lengths: torch.Tensor,
               class_ids: torch.Tensor | None, gamma1: float, gamma2: float, gamma3: float
               ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Word-level DAMSM loss (eqs. 11-13): (L1w image->caption, L2w caption->image, attention maps)."""
    B = regions.shape[0]
    sims, maps = word_similarities(regions, words_emb, lengths, gamma1, gamma2)
    scores = gamma3 * sims  # (B, B)
    mask = same_class_mask(class_ids, B, scores.device)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    labels = torch.arange(B, device=scores.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels), maps


def sentence_scores(img_global: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """Cosine between every image (rows) and every sentence (columns): (B_img, B_txt)."""
    dots = img_global @ sent_emb.t()
    norms = img_global.norm(dim=1, keepdim=True) @ sent_emb.norm(dim=1, keepdim=True).t()
    return dots / norms.clamp(min=EPS)


def sentence_loss(img_global: torch.Tensor, sent_emb: torch.Tensor, class_ids: torch.Tensor | None,
                  gamma3: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence-level DAMSM loss (eq. 14 with the global features): (L1s image->caption, L2s caption->image)."""
    B = img_global.shape[0]
    scores = gamma3 * sentence_scores(img_global.float(), sent_emb.float())  # (B, B)
    mask = same_class_mask(class_ids, B, scores.device)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    labels = torch.arange(B, device=scores.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


@dataclass
class DAMSMTerms:
    w1: torch.Tensor
    w2: torch.Tensor
    s1: torch.Tensor
    s2: torch.Tensor
    attn_maps: list[torch.Tensor]

    @property
    def total(self) -> torch.Tensor:
        return self.w1 + self.w2 + self.s1 + self.s2

    def items(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("w1", "w2", "s1", "s2")}


class DAMSMLoss(torch.nn.Module):
    """All four DAMSM terms for a batch; ``L_DAMSM = L1w + L2w + L1s + L2s`` (eq. 14)."""

    def __init__(self, cfg: DAMSMConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DAMSMConfig()

    def forward(self, regions: torch.Tensor, img_global: torch.Tensor, words_emb: torch.Tensor,
                sent_emb: torch.Tensor, lengths: torch.Tensor, class_ids: torch.Tensor | None) -> DAMSMTerms:
        c = self.cfg
        w1, w2, maps = words_loss(regions.float(), words_emb.float(), lengths, class_ids, c.gamma1, c.gamma2, c.gamma3)
        s1, s2 = sentence_loss(img_global, sent_emb, class_ids, c.gamma3)
        return DAMSMTerms(w1, w2, s1, s2, maps)
