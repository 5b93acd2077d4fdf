"""End to end through the real entry points: `attngan prep shapes` -> `attngan pretrain` (compact, tiny)
-> `attngan train`; the losses move and the EMA samples stop being flat grey: their colour statistics
approach the data's, measured against the untrained generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.core.fileio import read_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def colour_stats(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, s, s) in [-1, 1] -> per channel: spread of the image means over images (colour variety),
    mean within-image std (contrast), mean |x| (saturation). An untrained G draws flat grey: all ~0."""
    means = x.mean(dim=(2, 3))  # (N, 3)
    return torch.cat([means.std(0), x.std(dim=(2, 3)).mean(0), x.abs().mean(dim=(0, 2, 3))])  # (9,)


def _run(runner: CliRunner, args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return r.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("ngf,steps,max_ratio", [
    (8, 40, 0.8),
    pytest.param(16, 300, 0.5, marks=pytest.mark.slow),
])
def test_prep_pretrain_train_end_to_end(tmp_path, ngf, steps, max_ratio):
    from attngan_cli.archs.attngan.generator import Generator
    from attngan_cli.inference.pipeline import GeneratorBundle, generate, load_generator
    from attngan_cli.training.gan import fixed_samples, open_datasets

    runner = CliRunner()
    data = tmp_path / "shapes.h5"
    _run(runner, ["prep", "shapes", "--out", str(data), "--train", "96", "--test", "16", "--image-size", "38", "-q"])
    runs = tmp_path / "runs"
    enc = _run(runner, ["pretrain", str(data), "--preset", "shapes", "--image-encoder", "compact", "--epochs", "2",
                        "--batch-size", "16", "--runs", str(runs), "--device", "cpu", "-q"])
    final = Path(_run(runner, ["train", str(data), "--encoders", enc, "--preset", "shapes", "--stages", "2",
                               "--ngf", str(ngf), "--ndf", str(ngf), "--batch-size", "16", "--max-steps", str(steps), "--epochs", "1000",
                               "--sample-every", "20", "--runs", str(runs), "--device", "cpu", "-q"]))
    run = final.parent
    assert (run / "samples-000020.png").is_file() and (run / f"samples-{steps:06d}.png").is_file()
    stats = read_jsonl(run / "stats.jsonl")
    assert [r["step"] for r in stats] == list(range(10, steps + 1, 10))
    first, last = stats[0], stats[-1]
    assert abs(last["d"] - first["d"]) > 0.05 * first["d"], (first, last)  # D loss moves
    g_adv = lambda r: r["g_adv0"] + r["g_adv1"]  # noqa: E731
    assert abs(g_adv(last) - g_adv(first)) > 0.05 * g_adv(first), (first, last)  # G's adversarial loss moves
    assert all(k in last for k in ("w_loss", "s_loss", "kl"))

    bundle = load_generator(run)
    cfg = bundle.config
    _, test_ds = open_datasets(cfg)
    real = torch.stack([test_ds[i]["images"][-1] for i in range(len(test_ds))])
    s = fixed_samples(test_ds, cfg, n=16)
    torch.manual_seed(0)
    untrained = Generator(cfg.generator)
    untrained_bundle = GeneratorBundle(untrained, bundle.text_encoder, bundle.vocab, cfg)
    before = colour_stats(generate(untrained_bundle, s.captions, s.lengths, s.noise).images[-1])
    after = colour_stats(generate(bundle, s.captions, s.lengths, s.noise).images[-1])
    target = colour_stats(real)
    d_before, d_after = (before - target).abs().sum(), (after - target).abs().sum()
    assert d_after < max_ratio * d_before, (before, after, target)
