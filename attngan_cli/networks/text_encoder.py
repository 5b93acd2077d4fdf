"""The DAMSM text encoder (paper section 3.2): word embedding -> bidirectional LSTM.

Parameter names follow the official ``RNN_ENCODER`` (``encoder.weight``, ``rnn.weight_ih_l0``, ...,
``rnn.bias_hh_l0_reverse``), so official ``text_encoder*.pth`` state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attngan_cli.config.schema import TextEncoderConfig
from attngan_cli.core.errors import AttnGANError


class TextEncoder(nn.Module):
    """Captions (B, T) word ids with lengths (B,) -> word features (B, D, T) and sentence feature (B, D)."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        if cfg.vocab_size < 1:
            raise AttnGANError(f"text.vocab_size must be >= 1, got {cfg.vocab_size}")
        if cfg.embedding_dim % 2:
            raise AttnGANError(f"text.embedding_dim must be even (two LSTM directions), got {cfg.embedding_dim}")
        self.cfg = cfg
        self.hidden = cfg.embedding_dim // 2  # per direction
        self.encoder = nn.Embedding(cfg.vocab_size, cfg.word_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = nn.LSTM(cfg.word_dim, self.hidden, num_layers=1, batch_first=True, bidirectional=True)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # as the official init; the LSTM keeps torch's init

    def forward(self, captions: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = captions.shape
        lengths_cpu = lengths.detach().to("cpu", torch.int64).clamp(min=1, max=T)
        emb = self.drop(self.encoder(captions))  # (B, T, word_dim)
        packed = pack_padded_sequence(emb, lengths_cpu, batch_first=True, enforce_sorted=False)
        out, (h, _c) = self.rnn(packed)  # h: (2, B, D/2), already in the input's batch order
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D), zeros past each length
        words_emb = out.transpose(1, 2)  # (B, D, T)
        sent_emb = h.transpose(0, 1).reshape(B, -1)  # (B, D): [forward final, backward final]
        return words_emb, sent_emb
