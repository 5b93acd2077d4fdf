"""DF-GAN training speed against the official modules, in one process and one precision (fp32).

Ours: the real ``train_step`` of ``--arch dfgan`` (frozen text encoder, D step: hinge on real, fake and
mismatched pairs + the matching-aware gradient penalty, Adam; G step: -D(G(z, s), s), Adam; the
moving-average copy, decay 0) at the bird preset's sizes (256 px, nf 32, z 100, 256-d sentences).

Official: ``NetG``, ``NetD`` and ``NetC`` of DF-GAN's ``code/models/GAN.py`` read from a local checkout
given with ``--official PATH`` (the repository or its ``code/`` folder; nothing of it is in this
repository: DF-GAN's code is CC BY-NC-SA), run unmodified with random weights, driven by the DF-GAN
step as the paper describes it (written here, with this project's penalty and hinge functions): the same
text encoder, the D loss on features computed once for the real and mismatched terms, the penalty on
(real image, sentence), Adam 1e-4 / 4e-4 with betas (0.0, 0.9) over G and over D + C.

Both arms take the same random batch; they alternate (warm-up, then ``--steps`` timed steps each) so
that a shared machine's load affects both alike. Reported: s/step, images/s, GFLOP per step
(torch.utils.flop_counter: convolutions and matmuls), the share of an n x n matmul's GFLOP/s measured in
the same process, and ours as a multiple of the official speed.

    python benchmarks/bench_dfgan.py --official ~/src/DF-GAN --batch 4 --steps 2
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _bench import efficiency, environment, matmul_peak_gflops, setup_device, time_total
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

VOCAB = 5450  # the official CUB vocabulary


class _FlopCount(TorchDispatchMode):
    """Counts what torch.utils.flop_counter counts (convolutions, matmuls; forward and backward) without its
    module hooks, which refuse the penalty's ``autograd.grad`` inside a step."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **kwargs, out_val=out)
        return out


def count_gflop(fn) -> float:  # noqa: ANN001
    with _FlopCount() as c:
        fn()
    return c.flops / 1e9


def load_official(path: str) -> types.ModuleType:
    """``code/models/GAN.py`` of the checkout at ``path`` as a module (run as it is)."""
    p = Path(path).expanduser()
    for cand in (p / "code" / "models" / "GAN.py", p / "models" / "GAN.py", p / "GAN.py"):
        if cand.is_file():
            mod = types.ModuleType("dfgan_official_GAN")
            mod.__file__ = str(cand)
            exec(compile(cand.read_text(), str(cand), "exec"), mod.__dict__)
            for name in ("NetG", "NetD", "NetC"):
                if not hasattr(mod, name):
                    raise SystemExit(f"--official {path}: {cand} has no {name}; not a DF-GAN checkout")
            return mod
    raise SystemExit(f"--official {path}: not a checkout of github.com/tobran/DF-GAN (no code/models/GAN.py)")


def make_batch(B: int, T: int, size: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, T + 1, (B,), generator=g)
    captions = torch.randint(1, VOCAB, (B, T), generator=g)
    captions[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    return {"images": [torch.rand(B, 3, size, size, generator=g) * 2 - 1], "caption": captions, "length": lengths,
            "class_id": torch.arange(B)}


class Ours:
    def __init__(self, B: int, device: torch.device) -> None:
        from attngan_cli.archs.registry import new_train_config
        from attngan_cli.config.presets import make_pretrain_config
        from attngan_cli.networks.text_encoder import TextEncoder
        from attngan_cli.training.gan import build_models, make_loss

        torch.manual_seed(0)
        self.cfg = new_train_config("bird", {"generator.arch": "dfgan", "batch_size": B, "precision": "fp32",
                                             "device": str(device)})
        pc = make_pretrain_config("bird", {"text.vocab_size": VOCAB, "text.words": self.cfg.words})
        self.text = TextEncoder(pc.text).to(device).eval().requires_grad_(False)
        self.m = build_models(self.cfg, device, self.text, None)
        self.loss = make_loss(self.cfg, device, None, [])
        self.batch = make_batch(B, self.cfg.words, self.cfg.generator.base_size)
        self.device, self.done = device, 0

    def step(self) -> None:
        from attngan_cli.training.gan import train_step

        train_step(self.m, self.batch, self.cfg, self.device, self.loss, self.done)
        self.done += 1


class Official:
    """The official NetG/NetD/NetC at the bird configuration, stepped as the paper's training iteration."""

    def __init__(self, mod: types.ModuleType, ours: Ours) -> None:
        from attngan_cli.archs.dfgan.loss import ma_gp, roll_one

        torch.manual_seed(0)
        cfg = ours.cfg
        self.ma_gp, self.roll_one = ma_gp, roll_one
        nf, nz, cond, size = cfg.generator.ngf, cfg.generator.z_dim, cfg.generator.embedding_dim, cfg.generator.base_size
        self.G, self.D, self.C = mod.NetG(nf, nz, cond, size, 3), mod.NetD(nf, size, 3), mod.NetC(nf, cond)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(list(self.D.parameters()) + list(self.C.parameters()), lr=4e-4, betas=(0.0, 0.9))
        self.text, self.batch, self.nz = ours.text, ours.batch, nz

    def step(self) -> None:
        from attngan_cli.training.gan import embed_captions

        b = self.batch
        _, sent, _ = embed_captions(self.text, b["caption"], b["length"])
        imgs = b["images"][0].detach().requires_grad_()
        sent = sent.detach().requires_grad_()
        real_features = self.D(imgs)
        real = self.C(real_features, sent).flatten()
        d_real = F.relu(1 - real).mean()
        d_mis = F.relu(1 + self.C(self.roll_one(real_features), sent)).mean()
        fake = self.G(torch.randn(imgs.shape[0], self.nz), sent)
        d_fake = F.relu(1 + self.C(self.D(fake.detach()), sent)).mean()
        err_d = d_real + (d_fake + d_mis) / 2 + self.ma_gp(real, imgs, sent, 2.0, 6.0)
        self.opt_d.zero_grad()
        err_d.backward()
        self.opt_d.step()
        err_g = -self.C(self.D(fake), sent).mean()
        self.opt_g.zero_grad()
        err_g.backward()
        self.opt_g.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="a local checkout of github.com/tobran/DF-GAN")
    ap.add_argument("--batch", type=int, default=32, help="images per step (the official: 32 per GPU)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per arm")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--peak-n", type=int, default=0, help="size of the peak-measuring matmul (0: 1536 on a CPU)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    module = load_official(a.official)
    device = setup_device(a.device, a.threads)
    if device.type != "cpu":
        raise SystemExit("this comparison runs on the CPU in fp32 (the official modules are moved nowhere)")
    peak, peak_n = matmul_peak_gflops(device, "fp32", a.peak_n)
    ours = Ours(a.batch, device)
    official = Official(module, ours)
    n_ours = sum(p.numel() for p in ours.m.G.parameters())
    n_off = sum(p.numel() for p in official.G.parameters())
    rows: dict[str, dict[str, Any]] = {}
    for name, arm in (("official", official), ("ours", ours)):
        rows[name] = {"gflop_per_step": count_gflop(arm.step), "seconds": 0.0}
        time_total(arm.step, device, a.warmup)
    for _ in range(a.steps):  # alternate, so that the machine's load falls on both arms alike
        for name, arm in (("official", official), ("ours", ours)):
            rows[name]["seconds"] += time_total(arm.step, device, 1)
    out = []
    for name, r in rows.items():
        step_s = r["seconds"] / a.steps
        out.append({"impl": name, "batch": a.batch, "size": ours.cfg.generator.base_size, "nf": ours.cfg.generator.ngf,
                    "steps": a.steps, "step_s": step_s, "img_per_s": a.batch / step_s,
                    "gflop_per_step": r["gflop_per_step"], **efficiency(r["gflop_per_step"], step_s, peak),
                    "peak_gflops": peak, "peak_n": peak_n, "g_params": n_ours if name == "ours" else n_off,
                    **environment(device)})
    ratio = out[0]["step_s"] / out[1]["step_s"]
    if a.json:
        print(json.dumps({"rows": out, "x_official": ratio}))
        return
    print(f"{'impl':<9} {'batch':>5} {'s/step':>8} {'img/s':>7} {'GFLOP':>8} {'% peak':>7} {'G params':>10}")
    for r in out:
        print(f"{r['impl']:<9} {r['batch']:>5} {r['step_s']:>8.2f} {r['img_per_s']:>7.2f} {r['gflop_per_step']:>8.1f} "
              f"{r['pct_of_peak']:>7.1f} {r['g_params']:>10,}")
    print(f"ours: {ratio:.2f} x the official speed ({out[0]['device_name']}, {out[0]['threads']} threads, "
          f"peak {peak:.0f} GFLOP/s fp32)", file=sys.stderr)


if __name__ == "__main__":
    main()
