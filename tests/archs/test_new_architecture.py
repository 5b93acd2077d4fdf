"""An architecture is one module: a throwaway toy GAN defined and registered entirely here (its networks,
its hinge objective with DF-GAN's matching-aware gradient penalty, its preset overrides, a named preset and
one option) trains, resumes exactly, samples and is refused by ``attend`` through the CLI with no edit
anywhere else; and the registry imports no architecture until one is asked for."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from attngan_cli.archs.base import (
    Architecture,
    GANLoss,
    LossContext,
    LossTerms,
    SettingsContext,
    TextBatch,
    refuse_unused,
)
from attngan_cli.archs.registry import arch_names, get_arch, new_train_config, register_arch, unregister_arch
from attngan_cli.cli import app
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig, TrainConfig
from attngan_cli.core.errors import InputError
from attngan_cli.storage.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ------------------------------------------------------------------------------------------ the toy
class ToyOutput(NamedTuple):
    images: list[torch.Tensor]  # one stage (B, 3, s, s)


class ToyG(nn.Module):
    """(z, sentence) -> linear -> (3, 4, 4) -> upsampled to base_size, tanh. No attention, no CA."""

    def __init__(self, cfg: GeneratorConfig, *, init: bool = True) -> None:
        super().__init__()
        self.size = cfg.base_size
        self.fc = nn.Linear(cfg.z_dim + cfg.embedding_dim, 3 * 4 * 4)

    def forward(self, z: torch.Tensor, sent_emb: torch.Tensor, words_emb: Any = None, mask: Any = None,
                ca_noise: Any = True) -> ToyOutput:
        x = self.fc(torch.cat((z, sent_emb.to(z.dtype)), dim=1)).view(-1, 3, 4, 4)  # (B, 3, 4, 4)
        return ToyOutput([torch.tanh(F.interpolate(x, size=self.size, mode="bilinear", align_corners=False))])


class ToyD(nn.Module):
    """A projection discriminator: ``D(images (B, 3, s, s), sentence (B, D)) -> scores (B,)``."""

    def __init__(self, dcfg: DiscriminatorConfig, size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, dcfg.ndf, 4, 4)  # (B, ndf, s/4, s/4)
        self.proj = nn.Linear(dcfg.ndf * (size // 4) ** 2, dcfg.embedding_dim)

    def forward(self, images: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        code = self.proj(F.leaky_relu(self.conv(images), 0.2).flatten(1))  # (B, D)
        return (code * sent_emb.to(code.dtype)).sum(dim=1) / math.sqrt(code.shape[1])  # (B,)


def toy_discriminators(gcfg: GeneratorConfig, dcfg: DiscriminatorConfig, *, init: bool = True) -> nn.ModuleList:
    return nn.ModuleList([ToyD(dcfg, gcfg.sizes(2)[-1])])


@dataclass
class ToyOptions:
    gp_weight: float = field(default=2.0, metadata={"help": "weight of the matching-aware gradient penalty"})

    def __post_init__(self) -> None:
        if not self.gp_weight >= 0:
            raise InputError(f"--arch-option gp_weight must be >= 0, got {self.gp_weight}")


class HingeLoss(GANLoss):
    """DF-GAN's objective: hinge D loss on (real, fake, mismatched) + the matching-aware gradient
    penalty gp_weight * mean(||grad of D(real, sentence) w.r.t. (real, sentence)||^6); G: -D(fake, sentence)."""

    margin = 1.0

    def __init__(self, gp_weight: float) -> None:
        self.gp_weight = gp_weight

    def discriminator(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, text: TextBatch) -> LossTerms:
        real = real.detach().requires_grad_(True)
        sent = text.sent_emb.detach().requires_grad_(True)
        real_score = D(real, sent)
        d_real = F.relu(self.margin - real_score.float()).mean()
        d_fake = F.relu(self.margin + D(fake.detach(), text.sent_emb).float()).mean()
        d_wrong = F.relu(self.margin + D(real, text.wrong_emb).float()).mean()
        grads = torch.autograd.grad(real_score.sum(), (real, sent), create_graph=True)
        norm = torch.cat([g.flatten(1) for g in grads], dim=1).float().norm(dim=1)  # (B,)
        gp = self.gp_weight * norm.pow(6).mean()
        return LossTerms(d_real + (d_fake + d_wrong) / 2 + gp, {"gp": gp.detach()})

    def generator(self, Ds: Any, out: Any, text: TextBatch) -> LossTerms:
        adv = -Ds[0](out.images[-1], text.sent_emb).float().mean()
        return LossTerms(adv, {"g_adv0": adv.detach()})


def toy_loss(cfg: TrainConfig, ctx: LossContext) -> HingeLoss:
    return HingeLoss(get_arch("toy").option_values(cfg.arch_options).gp_weight)


def toy_check(cfg: TrainConfig, ctx: SettingsContext) -> TrainConfig:
    refuse_unused(cfg, get_arch("toy"))
    return cfg


TOY = Architecture(
    name="toy", summary="a linear generator and a projection discriminator", paper="this test",
    build_generator=ToyG, build_discriminators=toy_discriminators, make_loss=toy_loss, check_settings=toy_check,
    presets={"shapes": {"generator.stages": 1, "lambda_damsm": 0.0, "lr_g": 1e-3}},
    named_presets={"toy-shapes": ("shapes", {"batch_size": 16})},
    options=ToyOptions, noise_truncation=1.5, word_attention=False,
)


@pytest.fixture(scope="module")
def toy():
    register_arch(TOY)
    yield TOY
    unregister_arch("toy")


# ------------------------------------------------------------------------------------------ through the CLI
TINY = ["--batch-size", "16", "--sample-every", "0", "--quiet", "--no-tensorboard", "--device", "cpu",
        "--precision", "fp32"]


def _train(runs: Path, *args: str) -> Path:
    r = CliRunner().invoke(app, ["train", *args, *TINY, "--runs", str(runs)])
    assert r.exit_code == 0, r.output
    return Path(r.output.strip().splitlines()[-1]).parent


@pytest.fixture(scope="module")
def toy_runs(toy, shapes_h5, damsm_path, tmp_path_factory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("toy_runs")
    new = [str(shapes_h5), "-e", str(damsm_path), "--arch", "toy", "--arch-option", "gp_weight=50"]
    two = _train(runs, *new, "--max-steps", "2")
    whole = _train(runs, *new, "--max-steps", "3")
    resumed = _train(runs, "--resume", str(two), "--max-steps", "3")
    return {"two": two, "whole": whole, "resumed": resumed, "runs": runs}


def test_the_toy_trains_with_its_preset_option_and_loss(toy_runs) -> None:
    cfg = json.loads((toy_runs["two"] / "config.json").read_text())
    assert cfg["generator"]["arch"] == "toy" and cfg["arch_options"] == {"gp_weight": 50.0}
    assert (cfg["generator"]["stages"], cfg["lambda_damsm"], cfg["lr_g"]) == (1, 0.0, 1e-3)  # its shapes overrides
    stats = [json.loads(line) for line in (toy_runs["two"] / "stats.jsonl").read_text().splitlines()]
    assert stats and {"d", "d0", "d0_gp", "g", "g_adv0"} <= set(stats[-1])
    assert stats[-1]["d0_gp"] > 0
    ckpt = load_checkpoint(toy_runs["two"] / "final.pt")
    assert ckpt.step == 2 and list(ckpt.state["discriminators"]) == ["0"]


def test_the_toy_resumes_exactly(toy_runs) -> None:
    whole = torch.load(toy_runs["whole"] / "final.pt", weights_only=True)
    resumed = torch.load(toy_runs["resumed"] / "final.pt", weights_only=True)
    assert resumed["step"] == whole["step"] == 3
    for key in ("generator", "generator_ema"):
        for name, value in whole["state"][key].items():
            torch.testing.assert_close(resumed["state"][key][name], value, rtol=1e-5, atol=1e-7, msg=f"{key}.{name}")


def test_the_toy_samples_and_has_no_word_attention(toy_runs, tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "samples"
    r = runner.invoke(app, ["sample", "a red circle", "-c", str(toy_runs["two"]), "-o", str(out), "--n", "2",
                            "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.png")) == ["c00000-s00-16.png", "c00000-s01-16.png"]
    fig = tmp_path / "fig.png"
    r = runner.invoke(app, ["attend", "a red circle", "-c", str(toy_runs["two"]), "-o", str(fig), "--device", "cpu"])
    assert r.exit_code == 1
    assert "--arch toy (this test) has no word attention" in " ".join(r.output.split()) and not fig.exists()


def test_arch_options_are_checked_before_any_run(toy, shapes_h5, damsm_path, tmp_path) -> None:
    runs = tmp_path / "runs"
    base = ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "toy", *TINY, "--runs", str(runs)]
    for option, message in [("gp_weight=-1", "--arch-option gp_weight must be >= 0, got -1.0"),
                            ("gp_weight=big", "--arch-option gp_weight=big: expected float"),
                            ("depth=3", "--arch-option depth: unknown option (the options of --arch toy: gp_weight"),
                            ("gp_weight", "expected KEY=VALUE")]:
        r = CliRunner().invoke(app, [*base, "--arch-option", option])
        assert r.exit_code == 1 and message in " ".join(r.output.split()), r.output
    r = CliRunner().invoke(app, [*base, "--captioner", str(damsm_path)])
    assert r.exit_code == 1 and "--captioner (captioner) is not used by --arch toy" in " ".join(r.output.split())
    r = CliRunner().invoke(app, [*base, "--arch-option", "help"])
    assert r.exit_code == 0 and "gp_weight (weight of the matching-aware gradient penalty)" in r.output
    assert not runs.exists()


def test_named_preset_and_noise_truncation(toy) -> None:
    cfg = new_train_config("toy-shapes")
    assert (cfg.generator.arch, cfg.preset, cfg.batch_size, cfg.generator.stages) == ("toy", "toy-shapes", 16, 1)
    from attngan_cli.apps.sample import item_noise

    z, _ = item_noise(0, 0, 0, 4096, 4, truncation=1.5)
    assert float(z.abs().max()) <= 1.5
    assert torch.equal(item_noise(3, 1, 2, 64, 4)[0], item_noise(3, 1, 2, 64, 4, truncation=0.0)[0])
    assert "toy" in arch_names()


def test_stage_is_a_deprecated_alias_of_the_stackgan_option(shapes_h5, damsm_path, tmp_path) -> None:
    runs = tmp_path / "runs"
    r = CliRunner().invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "stackgan", "--stage", "1",
                                 "--max-steps", "1", "--ngf", "8", "--ndf", "8", *TINY, "--runs", str(runs)])
    assert r.exit_code == 0, r.output
    assert "--stage is deprecated: use --arch-option stage=1" in " ".join(r.output.split())
    cfg = json.loads((next(runs.iterdir()) / "config.json").read_text())
    assert cfg["generator"]["stages"] == 1 and cfg["arch_options"] == {}  # stage sets generator.stages
    r = CliRunner().invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "stackgan", "--arch-option",
                                 "stage=1", "--stages", "1", *TINY, "--runs", str(runs)])
    assert r.exit_code == 1 and "give one of them" in r.output


# ------------------------------------------------------------------------------------------ the registry
def test_the_registry_imports_no_architecture_until_asked() -> None:
    code = (
        "import sys\n"
        "import attngan_cli.archs.registry as r\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('attngan_cli.archs.') and m not in "
        "('attngan_cli.archs.registry', 'attngan_cli.archs.base'))\n"
        "print(loaded(), 'torch' in sys.modules, r.arch_names())\n"
        "r.get_arch('stackgan++')\n"
        "print('attngan_cli.archs.stackgan' in sys.modules, 'attngan_cli.archs.stackganpp' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.splitlines()
    assert out[0] == "[] False ['attngan', 'dfgan', 'mirrorgan', 'stackgan', 'stackgan++']"
    assert out[1] == "False True"


def test_register_arch_refuses_a_taken_name_and_a_bad_target(toy) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_arch(Architecture(**{**TOY.__dict__, "summary": "another"}))
    with pytest.raises(ValueError, match="module:ATTRIBUTE"):
        register_arch("toy2", "tests.no_colon")
    register_arch(TOY)  # the same one again is fine
