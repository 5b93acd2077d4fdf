"""The official DM-GAN code (github.com/MinfengZhu/DM-GAN, ``code/``) as the speed baseline of
``bench_train.py --arch dmgan --official PATH``.

Nothing of it is in this repository: pass a local checkout (the repository or its ``code/`` folder). Its
``model.py``, ``spectral.py``, ``GlobalAttention.py``, ``miscc/config.py`` and ``miscc/losses.py`` are read
from there by :func:`official.load` and run on the installed PyTorch with AttnGAN's in-memory patches
(DM-GAN's ``losses.py`` is AttnGAN's: bool masks, ``.item()``, BCE in fp32; no ImageNet download), plus one:
``G_NET.forward``'s unused ``cap_lens`` argument gets a default, so the official training step of
:class:`official.OfficialStep` (DM-GAN's ``trainer.py`` loop body is AttnGAN's: each D's loss and Adam step,
G's adversarial + DAMSM + KL loss and Adam step, the 0.999 parameter average) drives it unchanged.
Configured as ``code/cfg/bird_DMGAN.yml``: GF_DIM 64, DF_DIM 32, R_NUM 2, 18 words, lambda 5.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import official
import torch

FILES = ("miscc/config.py", "GlobalAttention.py", "spectral.py", "miscc/losses.py", "model.py")

PATCHES = [
    ("miscc/losses.py", "torch.ByteTensor(masks)", "torch.from_numpy(masks).bool()", 2),
    ("miscc/losses.py", ".data[0]", ".item()", 5),  # in comments
    ("miscc/losses.py", "nn.BCELoss()", "_bce_fp32", 7),
    ("model.py", "model.load_state_dict(model_zoo.load_url(url))", "pass  # random weights (benchmark)", 1),
    ("model.py", "print('Load pretrained model from ', url)", "pass", 1),
    ("model.py", "def forward(self, z_code, sent_emb, word_embs, mask, cap_lens):",
     "def forward(self, z_code, sent_emb, word_embs, mask, cap_lens=None):", 1),
]

BATCH = 10  # code/cfg/bird_DMGAN.yml


def load(path: str | Path, *, cuda: bool) -> types.SimpleNamespace:
    """The official DM-GAN modules (``cfg``, ``model``, ``losses``) at the bird configuration. DM-GAN's
    ``discriminator_loss`` returns ``(errD, log)`` where AttnGAN's returns ``errD``: the step takes the loss."""
    off = official.load(path, cuda=cuda, gf_dim=64, df_dim=32, r_num=2, files=FILES, patches=PATCHES,
                        repo="MinfengZhu/DM-GAN")
    L = off.losses
    off.losses = types.SimpleNamespace(discriminator_loss=lambda *a: L.discriminator_loss(*a)[0],
                                       generator_loss=L.generator_loss, KL_loss=L.KL_loss)
    return off


def setup(s: dict[str, Any], batch: int, vocab: int) -> tuple[torch.device, float, int, official.OfficialStep]:
    """As :func:`official.setup`, with the DM-GAN modules."""
    from _bench import matmul_peak_gflops, set_precision_flags, setup_device

    device = setup_device(s["device"], s["threads"])
    amp = set_precision_flags(device, s["precision"])
    peak, peak_n = matmul_peak_gflops(device, s["precision"], s["peak_n"])
    return device, peak, peak_n, official.OfficialStep(load(s["official"], cuda=device.type == "cuda"), device, batch,
                                                       vocab, amp)
