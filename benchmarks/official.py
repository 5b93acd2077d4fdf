"""The official AttnGAN code (github.com/taoxugit/AttnGAN, ``code/``) as the speed baseline of the benchmarks.

Nothing of it is in this repository: pass a local checkout with ``--official PATH`` (the repository or its
``code/`` folder). Its ``model.py``, ``GlobalAttention.py``, ``miscc/config.py`` and ``miscc/losses.py`` are
read from there and run on the installed PyTorch, patched in memory only where today's PyTorch refuses
the 2018 idioms (each patch below names what it replaces and must match exactly, so a different
checkout fails loudly instead of being measured silently wrong):

* ``torch.ByteTensor`` masks -> bool masks (``masked_fill_`` takes only bool masks now);
* ``loss.data[0]`` -> ``loss.item()`` (0-dim tensors cannot be indexed);
* the ImageNet Inception-v3 download -> nothing (random weights, as this project's benchmarks use; the
  FLOPs are the same);
* ``nn.BCELoss()`` -> BCE computed in fp32 (autocast refuses BCE on probabilities in half precision; the
  official code predates autocast, and bf16/fp16 runs of it need this);
* ``easydict`` -> a small stand-in when the package is not installed.

The step (:class:`OfficialStep`) is ``condGANTrainer.train``'s loop body, written out here: the frozen text
encoder, G, each D's loss + backward + Adam step, G's loss (adversarial + DAMSM words/sentence + KL) +
backward + Adam step, and the parameter average ``avg_param_G`` (decay 0.999). Like the official code it
leaves the Ds' ``requires_grad`` on during G's backward. Sampling (:meth:`OfficialStep.sample`) is the
official ``sampling``: text encoder and G under ``torch.no_grad``.
"""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

FILES = ("miscc/config.py", "GlobalAttention.py", "miscc/losses.py", "model.py")

# (file, old, new, how many times old must occur)
PATCHES = [
    ("miscc/losses.py", "torch.ByteTensor(masks)", "torch.from_numpy(masks).bool()", 2),
    ("miscc/losses.py", ".data[0]", ".item()", 6),  # 3 of them in comments
    ("miscc/losses.py", "nn.BCELoss()", "_bce_fp32", 7),
    ("model.py", "model.load_state_dict(model_zoo.load_url(url))", "pass  # random weights (benchmark)", 1),
    ("model.py", "print('Load pretrained model from ', url)", "pass", 1),
]


def _bce_fp32(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(probs.float(), target.float())


def _easydict_stand_in() -> types.ModuleType:
    class EasyDict(dict):
        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError as e:
                raise AttributeError(name) from e

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

    mod = types.ModuleType("easydict")
    mod.EasyDict = EasyDict  # type: ignore[attr-defined]
    return mod


def code_dir(path: str | Path, files: tuple[str, ...] = FILES, repo: str = "taoxugit/AttnGAN") -> Path:
    """The ``code/`` folder of a checkout given as the repository or the folder itself; a clear error
    when the files are not there."""
    p = Path(path).expanduser()
    for cand in (p, p / "code"):
        if all((cand / f).is_file() for f in files):
            return cand
    missing = [f for f in files if not (p / "code" / f).is_file() and not (p / f).is_file()]
    raise SystemExit(f"--official {path}: not a checkout of github.com/{repo} (missing {', '.join(missing)} "
                     "under it or its code/ folder)")


def load(path: str | Path, *, cuda: bool, words: int = 18, branches: int = 3, embedding_dim: int = 256,
         gf_dim: int = 32, df_dim: int = 64, r_num: int = 2, files: tuple[str, ...] = FILES,
         patches: list[tuple[str, str, str, int]] = PATCHES, repo: str = "taoxugit/AttnGAN") -> types.SimpleNamespace:
    """The official modules ``cfg``, ``model`` and ``losses`` from the checkout at ``path``, configured as
    the ``bird_attn2.yml`` run (defaults) on CUDA or the CPU. ``files``, ``patches`` and ``repo``: another
    code of the same lineage (DM-GAN: ``official_dmgan.py``)."""
    root = code_dir(path, files, repo)
    saved = {name: sys.modules.get(name) for name in ("easydict", "miscc", *(f[:-3].replace("/", ".") for f in files))}
    mods: dict[str, types.ModuleType] = {}
    try:
        try:
            import easydict  # noqa: F401
        except ImportError:
            sys.modules["easydict"] = _easydict_stand_in()
        sys.modules["miscc"] = types.ModuleType("miscc")
        sys.modules["miscc"].__path__ = []  # type: ignore[attr-defined]
        for rel in files:
            name = rel[:-3].replace("/", ".")
            src = (root / rel).read_text()
            for file, old, new, count in patches:
                if file != rel:
                    continue
                found = src.count(old)
                if found != count:
                    raise SystemExit(f"--official {root}: {rel} holds {found} times {old!r} where the patch expects "
                                     f"{count}: this is not the checkout the benchmark knows")
                src = src.replace(old, new)
            mod = types.ModuleType(name)
            mod.__file__ = str(root / rel)
            mod._bce_fp32 = _bce_fp32  # type: ignore[attr-defined]
            sys.modules[name] = mod
            if name == "miscc.config":
                exec(compile(src, mod.__file__, "exec"), mod.__dict__)
                cfg = mod.cfg
                cfg.CUDA = cuda
                cfg.TRAIN.FLAG = True
                cfg.TREE.BRANCH_NUM = branches
                cfg.TEXT.WORDS_NUM = words
                cfg.TEXT.EMBEDDING_DIM = embedding_dim
                cfg.GAN.GF_DIM = gf_dim
                cfg.GAN.DF_DIM = df_dim
                cfg.GAN.R_NUM = r_num
                cfg.TRAIN.SMOOTH.GAMMA1, cfg.TRAIN.SMOOTH.GAMMA2 = 4.0, 5.0  # bird_attn2.yml
                cfg.TRAIN.SMOOTH.GAMMA3, cfg.TRAIN.SMOOTH.LAMBDA = 10.0, 5.0
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
            mods[name] = mod
    finally:
        for name, old_mod in saved.items():
            if old_mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old_mod
    return types.SimpleNamespace(cfg=mods["miscc.config"].cfg, model=mods["model"], losses=mods["miscc.losses"])


class OfficialStep:
    """The official networks (random weights) and one batch of random data, ready to train or sample."""

    def __init__(self, off: types.SimpleNamespace, device: torch.device, batch: int, vocab: int,
                 precision: str = "fp32", seed: int = 0) -> None:
        """``precision``: fp32, or bf16/fp16 autocast around the same code."""
        torch.manual_seed(seed)
        self.off, self.device, self.B = off, device, batch
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        cfg, M = off.cfg, off.model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.text_encoder = M.RNN_ENCODER(vocab, nhidden=cfg.TEXT.EMBEDDING_DIM).to(device).eval()
            self.image_encoder = M.CNN_ENCODER(cfg.TEXT.EMBEDDING_DIM).to(device).eval()
            self.G = M.G_NET().to(device)
            ds = [M.D_NET64(), M.D_NET128(), M.D_NET256()][:cfg.TREE.BRANCH_NUM]
        for p in list(self.text_encoder.parameters()) + list(self.image_encoder.parameters()):
            p.requires_grad = False
        self.Ds = [D.to(device) for D in ds]
        lr_g, lr_d = 2e-4, 2e-4
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=(0.5, 0.999))
        self.opt_ds = [torch.optim.Adam(D.parameters(), lr=lr_d, betas=(0.5, 0.999)) for D in self.Ds]
        self.avg_param_G = [p.detach().clone() for p in self.G.parameters()]
        T, B = cfg.TEXT.WORDS_NUM, batch
        g = torch.Generator().manual_seed(seed)
        lengths = torch.sort(torch.randint(3, T + 1, (B,), generator=g), descending=True).values
        lengths[0] = T  # the official loader pads to the longest caption, sorted by length
        captions = torch.randint(1, vocab, (B, T), generator=g)
        captions[torch.arange(T)[None, :] >= lengths[:, None]] = 0
        self.captions, self.lengths = captions.to(device), lengths.to(device)
        self.class_ids = np.arange(B)  # every sample its own class (no same-class masking)
        sizes = [64 * 2 ** i for i in range(cfg.TREE.BRANCH_NUM)]
        self.imgs = [(torch.rand(B, 3, s, s, generator=g) * 2 - 1).to(device) for s in sizes]
        self.noise = torch.empty(B, cfg.GAN.Z_DIM, device=device)
        self.real_labels = torch.ones(B, device=device)
        self.fake_labels = torch.zeros(B, device=device)
        self.match_labels = torch.arange(B, device=device)

    def _autocast(self):
        if self.dtype is None:
            import contextlib
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _text(self):
        hidden = self.text_encoder.init_hidden(self.B)
        words_embs, sent_emb = self.text_encoder(self.captions, self.lengths.cpu(), hidden)
        words_embs, sent_emb = words_embs.detach(), sent_emb.detach()
        mask = self.captions == 0
        mask = mask[:, :words_embs.size(2)]
        return words_embs, sent_emb, mask

    def step(self) -> None:
        L = self.off.losses
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self._autocast():
                words_embs, sent_emb, mask = self._text()
                self.noise.normal_(0, 1)
                fake_imgs, _, mu, logvar = self.G(self.noise, sent_emb, words_embs, mask)
            for i, D in enumerate(self.Ds):
                D.zero_grad()
                with self._autocast():
                    errD = L.discriminator_loss(D, self.imgs[i], fake_imgs[i], sent_emb, self.real_labels,
                                                self.fake_labels)
                errD.backward()
                self.opt_ds[i].step()
            self.G.zero_grad()
            with self._autocast():
                errG_total, _ = L.generator_loss(self.Ds, self.image_encoder, fake_imgs, self.real_labels, words_embs,
                                                 sent_emb, self.match_labels, self.lengths, self.class_ids)
                errG_total = errG_total + L.KL_loss(mu.float(), logvar.float())
            errG_total.backward()
            self.opt_g.step()
            with torch.no_grad():
                for p, avg_p in zip(self.G.parameters(), self.avg_param_G, strict=True):
                    avg_p.mul_(0.999).add_(p.detach(), alpha=0.001)

    @torch.no_grad()
    def sample(self, n: int | None = None) -> torch.Tensor:
        """The official ``sampling``: captions -> the last stage's images (the first ``n`` of the batch)."""
        self.G.eval()
        sl = slice(0, n or self.B)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self._autocast():
                hidden = self.text_encoder.init_hidden(sl.stop)
                words_embs, sent_emb = self.text_encoder(self.captions[sl], self.lengths[sl].cpu(), hidden)
                mask = (self.captions[sl] == 0)[:, :words_embs.size(2)]
                self.noise[sl].normal_(0, 1)
                fake_imgs, _, _, _ = self.G(self.noise[sl], sent_emb, words_embs, mask)
        self.G.train()
        return fake_imgs[-1]


def setup(s: dict[str, Any], batch: int, vocab: int) -> tuple[torch.device, float, int, OfficialStep]:
    """Benchmark setting ``s`` for the official code: its device (threads, TF32 switches), the peak GFLOP/s
    and matmul size measured in its precision, and the official networks with a batch, ready to time."""
    from _bench import matmul_peak_gflops, set_precision_flags, setup_device

    device = setup_device(s["device"], s["threads"])
    amp = set_precision_flags(device, s["precision"])
    peak, peak_n = matmul_peak_gflops(device, s["precision"], s["peak_n"])
    return device, peak, peak_n, OfficialStep(load(s["official"], cuda=device.type == "cuda"), device, batch, vocab, amp)
