"""The baselines (StackGAN++ ``--arch stackgan++``, StackGAN ``--arch stackgan``): their modules' shapes and
gradients, the colour-consistency term, the conditional-only losses, the per-architecture presets, the
StackGAN Stage-II schedule and its refusals, and every architecture through train, sample, eval and attend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.archs.attngan.generator import GeneratorOutput
from attngan_cli.archs.attngan.loss import AttnGANLoss, DiscriminatorLoss, GeneratorLoss
from attngan_cli.archs.base import TextBatch
from attngan_cli.archs.registry import (
    build_discriminators,
    build_generator,
    get_arch,
    image_sizes,
)
from attngan_cli.archs.stackgan.loss import StackGANDiscriminatorLoss, StackGANGeneratorLoss
from attngan_cli.archs.stackgan.networks import (
    CondDiscriminator,
    StackGANGenerator,
    StageI,
    StageII,
)
from attngan_cli.archs.stackganpp import ColorTerm, CondStage, StackGANppGenerator
from attngan_cli.cli import app
from attngan_cli.config.presets import get_preset, make_train_config, preset_names
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig, TrainConfig
from attngan_cli.config.serialize import from_dict
from attngan_cli.core.errors import AttnGANError, ConfigMismatchError, InputError
from attngan_cli.losses.adversarial import bce_logits
from attngan_cli.losses.color import color_consistency, color_stats
from attngan_cli.storage.checkpoints import load_checkpoint
from attngan_cli.training.resolve import resolve_train

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

EMB = 12


def _gcfg(arch: str, stages: int, base: int = 8, ngf: int = 8) -> GeneratorConfig:
    return GeneratorConfig(arch=arch, stages=stages, base_size=base, ngf=ngf, r_num=1, z_dim=10, condition_dim=6,
                           embedding_dim=EMB)


def _text(B: int = 3, T: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, EMB, T, generator=g), torch.randn(B, EMB, generator=g), torch.zeros(B, T, dtype=torch.bool)


def _grads(module: torch.nn.Module) -> list[str]:
    """Names of parameters without a non-zero gradient."""
    return [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]


# --------------------------------------------------------------------------------------------------
# Modules: shapes and gradients
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("stages", "base"), [(1, 8), (2, 8), (3, 16), (4, 8)])
def test_stackganpp_generator_shapes_and_gradients(stages: int, base: int) -> None:
    torch.manual_seed(0)
    cfg = _gcfg("stackgan++", stages, base)
    G = build_generator(cfg)
    assert isinstance(G, StackGANppGenerator)
    words, sent, mask = _text()
    sent.requires_grad_(True)
    out = G(torch.randn(3, 10), sent, words, mask)
    assert [tuple(x.shape) for x in out.images] == [(3, 3, s, s) for s in image_sizes(cfg)]
    assert image_sizes(cfg) == [base * 2**i for i in range(stages)]
    assert out.attn == []
    assert out.mu.shape == out.logvar.shape == (3, 6)
    sum(x.sum() for x in out.images).backward()
    assert _grads(G) == []  # every parameter is used
    assert sent.grad is not None and sent.grad.abs().sum() > 0
    # the channels halve at every stage after the first (official G_NET)
    if stages >= 3:
        assert G.img_net2.img[0].in_channels == 4 and G.img_net3.img[0].in_channels == 2


def test_stackganpp_every_stage_is_conditioned_on_the_sentence() -> None:
    """c enters every later stage: changing only c (same z, same first-stage input) changes stage 2's image
    beyond what stage 1 explains; the word features are not used at all."""
    torch.manual_seed(0)
    G = build_generator(_gcfg("stackgan++", 2)).eval()
    stage = G.h_net2
    h = torch.randn(2, 8, 8, 8)
    c1, c2 = torch.randn(2, 6), torch.randn(2, 6)
    assert not torch.allclose(stage(h, c1), stage(h, c2))
    words, sent, mask = _text(2)
    z = torch.randn(2, 10)
    a = G(z, sent, words, mask, ca_noise=False).images
    b = G(z, sent, torch.randn_like(words), mask, ca_noise=False).images
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_cond_stage_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    stage = CondStage(8, 6, r_num=2)
    h = torch.randn(2, 8, 4, 4, requires_grad=True)
    c = torch.randn(2, 6, requires_grad=True)
    out = stage(h, c)
    assert out.shape == (2, 4, 8, 8)
    out.sum().backward()
    assert _grads(stage) == [] and h.grad.abs().sum() > 0 and c.grad.abs().sum() > 0


@pytest.mark.parametrize("base", [8, 16, 64])
def test_stackgan_stage_modules_shapes_and_gradients(base: int) -> None:
    torch.manual_seed(0)
    cfg = _gcfg("stackgan", 2, base, ngf=4)
    s1, s2 = StageI(cfg), StageII(cfg)
    sent = torch.randn(2, EMB, requires_grad=True)
    low, mu, logvar = s1(torch.randn(2, 10), sent, True)
    assert low.shape == (2, 3, base, base) and mu.shape == logvar.shape == (2, 6)
    high, mu2, _ = s2(low, sent, True)
    assert high.shape == (2, 3, 4 * base, 4 * base) and mu2.shape == (2, 6)
    (high.sum() + low.sum()).backward()
    assert _grads(s1) == [] and _grads(s2) == []
    assert image_sizes(cfg) == [base, 4 * base]


def test_stackgan_stage_two_freezes_stage_one() -> None:
    """In a 2-stage StackGAN, Stage-I gets no gradient and stays in eval mode, whatever train() says."""
    torch.manual_seed(0)
    G = build_generator(_gcfg("stackgan", 2))
    assert isinstance(G, StackGANGenerator)
    G.train()
    assert G.training and G.stage2.training and not G.stage1.training
    assert not any(p.requires_grad for p in G.stage1.parameters())
    words, sent, mask = _text()
    out = G(torch.randn(3, 10), sent, words, mask)
    assert [tuple(x.shape) for x in out.images] == [(3, 3, 8, 8), (3, 3, 32, 32)]
    out.images[-1].sum().backward()
    assert _grads(G.stage2) == []
    assert all(p.grad is None for p in G.stage1.parameters())
    one = build_generator(_gcfg("stackgan", 1))
    assert [tuple(x.shape) for x in one(torch.randn(3, 10), sent, words, mask).images] == [(3, 3, 8, 8)]
    with pytest.raises(AttnGANError, match="must be 1 or 2"):
        build_generator(_gcfg("stackgan", 3))


def test_stackgan_discriminators_are_conditional_only() -> None:
    torch.manual_seed(0)
    dcfg = DiscriminatorConfig(ndf=4, embedding_dim=EMB)
    for stages, size in ((1, 16), (2, 64)):
        Ds = build_discriminators(_gcfg("stackgan", stages, 16), dcfg)
        assert len(Ds) == 1 and isinstance(Ds[0], CondDiscriminator) and Ds[0].image_size == size
    D = Ds[0]
    assert not D.unconditional and not hasattr(D, "UNCOND_DNET")
    x = torch.randn(3, 3, 64, 64, requires_grad=True)
    sent = torch.randn(3, EMB)
    logits = D.cond_logits(D(x), sent)
    assert logits.shape == (3,)
    logits.sum().backward()
    assert _grads(D) == [] and x.grad.abs().sum() > 0
    assert D.compress[0].weight.shape == (6, EMB)  # the text embedding is compressed to condition_dim
    with pytest.raises(AttnGANError, match="no unconditional head"):
        D.uncond_logits(D(x))
    # StackGAN++ keeps AttnGAN's joint discriminators, one per stage
    pp = build_discriminators(_gcfg("stackgan++", 3), dcfg)
    assert len(pp) == 3 and all(getattr(d, "unconditional", True) for d in pp)


def test_registry_knows_the_baselines() -> None:
    assert not get_arch("stackgan++").word_attention and not get_arch("stackgan").word_attention
    assert get_arch("attngan").word_attention


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------
def test_color_consistency_zero_for_identical_statistics() -> None:
    torch.manual_seed(0)
    small = torch.rand(2, 3, 8, 8) * 2 - 1
    same_stats = torch.nn.functional.interpolate(small, scale_factor=2, mode="nearest")  # every pixel 4 times
    permuted = small.flatten(2)[:, :, torch.randperm(64)].view(2, 3, 8, 8)  # same pixels, other places
    assert color_consistency([small, same_stats]).item() == pytest.approx(0.0, abs=1e-10)
    assert color_consistency([small, permuted, same_stats]).item() == pytest.approx(0.0, abs=1e-10)
    assert color_consistency([small]).item() == 0.0


def test_color_consistency_positive_and_weighted() -> None:
    torch.manual_seed(0)
    small = torch.rand(2, 3, 8, 8) * 2 - 1
    shifted = (small + 0.3).repeat_interleave(2, 2).repeat_interleave(2, 3)  # other mean, same covariance
    scaled = (small * 2).repeat_interleave(2, 2).repeat_interleave(2, 3)  # same-ish mean, other covariance
    mu_s, cov_s = color_stats(small)
    assert color_consistency([small, shifted]).item() == pytest.approx(0.09, rel=1e-4)  # weight 1 x 0.3^2
    _, cov_l = color_stats(scaled)
    mu_l, _ = color_stats(scaled)
    expected = ((mu_l - mu_s) ** 2).mean() + 5 * ((cov_l - cov_s) ** 2).mean()
    assert color_consistency([small, scaled]).item() == pytest.approx(expected.item(), rel=1e-5)
    assert ((cov_l - cov_s) ** 2).mean() > 0
    # the larger stage moves towards the (detached) smaller one
    big = scaled.clone().requires_grad_(True)
    low = small.clone().requires_grad_(True)
    color_consistency([low, big]).backward()
    assert low.grad is None and big.grad.abs().sum() > 0


def test_generator_loss_adds_weighted_color_term() -> None:
    torch.manual_seed(0)
    Ds = build_discriminators(_gcfg("stackgan++", 2), DiscriminatorConfig(ndf=2, embedding_dim=EMB))
    fakes = [torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16) * 0.1]
    mu, logvar, sent = torch.zeros(2, 6), torch.zeros(2, 6), torch.randn(2, EMB)
    out, text = GeneratorOutput(fakes, [], mu, logvar), TextBatch(None, sent, None, None, None, None, None)
    plain = AttnGANLoss(DiscriminatorLoss(), GeneratorLoss(0.0)).generator(Ds, out, text)
    with_color = AttnGANLoss(DiscriminatorLoss(), GeneratorLoss(0.0), [ColorTerm(3.0)]).generator(Ds, out, text)
    cc = color_consistency(fakes)
    assert cc > 0
    assert with_color.total.item() == pytest.approx(plain.total.item() + 3.0 * cc.item(), rel=1e-5)
    assert with_color.logs["color"].item() == pytest.approx(cc.item())
    assert "color" not in plain.logs


class _FixedD(torch.nn.Module):
    """A discriminator stub whose conditional logit is the mean pixel + 10 * the sentence's first value."""

    unconditional = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))

    def cond_logits(self, code: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        return code + 10 * sent[:, 0]


def test_conditional_only_losses_are_stackgans() -> None:
    """D: cond real + (cond fake + cond mismatched) / 2 (cond real + cond fake without mismatch); G: the
    conditional term alone; the Ds judge the last stages when there are fewer Ds than images."""
    torch.manual_seed(0)
    D = _FixedD()
    real, fake = torch.rand(4, 3, 8, 8), -torch.rand(4, 3, 8, 8)
    sent = torch.randn(4, EMB)
    r = bce_logits(D.cond_logits(D(real), sent), 1.0)
    f = bce_logits(D.cond_logits(D(fake), sent), 0.0)
    w = bce_logits(D.cond_logits(D(real), torch.roll(sent, -1, 0)), 0.0)
    terms = StackGANDiscriminatorLoss(mismatch=True)(D, real, fake, sent)
    assert terms.real_uncond is None and terms.fake_uncond is None
    assert terms.total.item() == pytest.approx((r + (f + w) / 2).item(), rel=1e-6)
    assert StackGANDiscriminatorLoss(mismatch=False)(D, real, fake, sent).total.item() == pytest.approx((r + f).item(), rel=1e-6)
    small = torch.rand(4, 3, 4, 4)
    g = StackGANGeneratorLoss(0.0, kl_weight=0.0)([D], [small, fake], torch.zeros(4, 6), torch.zeros(4, 6), None, sent,
                                                  None, None)
    assert len(g.adv) == 1
    assert g.total.item() == pytest.approx(bce_logits(D.cond_logits(D(fake), sent), 1.0).item(), rel=1e-6)


# --------------------------------------------------------------------------------------------------
# Presets and settings
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", [a for a in ("stackgan++", "stackgan") if get_arch(a).presets])
def test_arch_presets_build_for_every_preset(arch: str) -> None:
    for preset in [n for n in preset_names() if get_preset(n).chosen_by_data]:  # the dataset presets
        over = get_arch(arch).presets.get(preset, {})
        assert over, f"{arch} has no settings for preset {preset}"
        cfg = make_train_config(preset, {"generator.arch": arch, **over})
        assert cfg.lambda_damsm == 0.0 and cfg.kl_weight == 2.0
        build_generator(GeneratorConfig(**{**cfg.generator.__dict__, "ngf": 8, "condition_dim": 4, "z_dim": 4,
                                           "embedding_dim": 8, "base_size": 8}))


def test_published_bird_settings() -> None:
    pp = make_train_config("bird", {"generator.arch": "stackgan++", **get_arch("stackgan++").presets["bird"]})
    assert (pp.batch_size, pp.lr_g, pp.lr_d, pp.generator.ngf, pp.discriminator.ndf, pp.generator.condition_dim,
            pp.generator.r_num, pp.generator.stages) == (24, 2e-4, 2e-4, 64, 64, 128, 2, 3)
    sg = make_train_config("bird", {"generator.arch": "stackgan", **get_arch("stackgan").presets["bird"]})
    assert (sg.batch_size, sg.generator.stages, sg.generator.r_num, sg.generator.condition_dim) == (64, 1, 4, 128)
    assert image_sizes(sg.generator) == [64]


def test_resolve_train_applies_arch_settings_under_the_flags(shapes_h5, damsm_path) -> None:
    cfg = resolve_train(shapes_h5, encoders=damsm_path, overrides={"generator.arch": "stackgan++"}).config
    assert (cfg.generator.ngf, cfg.lambda_damsm, cfg.kl_weight, cfg.lr_g) == (32, 0.0, 2.0, 4e-3)
    cfg = resolve_train(shapes_h5, encoders=damsm_path, overrides={"generator.arch": "stackgan++", "lambda_damsm": 5.0,
                                                                   "generator.ngf": 8}).config
    assert (cfg.lambda_damsm, cfg.generator.ngf) == (5.0, 8)
    assert resolve_train(shapes_h5, encoders=damsm_path).config.lambda_damsm == 5.0  # attngan: the preset alone
    with pytest.raises(ConfigMismatchError, match="unknown architecture 'stackgan3'"):
        resolve_train(shapes_h5, encoders=damsm_path, overrides={"generator.arch": "stackgan3"})
    with pytest.raises(AttnGANError, match=r"^color_consistency must be >= 0"):
        resolve_train(shapes_h5, encoders=damsm_path, overrides={"color_consistency": -1.0})


def test_old_configs_without_the_new_fields_load() -> None:
    data = {k: v for k, v in json.loads(json.dumps(TrainConfig().__dict__, default=lambda o: o.__dict__)).items()
            if k not in ("color_consistency", "init")}
    cfg = from_dict(TrainConfig, data)
    assert cfg.color_consistency == 0.0 and cfg.init == "" and cfg.generator.arch == "attngan"


# --------------------------------------------------------------------------------------------------
# Through the CLI: every architecture trains, samples, evaluates; StackGAN's schedule
# --------------------------------------------------------------------------------------------------
TINY = ["--max-steps", "2", "--batch-size", "16", "--ngf", "8", "--ndf", "8", "--sample-every", "0", "--quiet",
        "--no-tensorboard", "--device", "cpu"]


def _train(runs: Path, *args: str) -> Path:
    r = CliRunner().invoke(app, ["train", *args, *TINY, "--runs", str(runs)])
    assert r.exit_code == 0, r.output
    return Path(r.output.strip().splitlines()[-1]).parent


@pytest.fixture(scope="module")
def baseline_runs(shapes_h5, damsm_path, tmp_path_factory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("baseline_runs")
    data, enc = str(shapes_h5), str(damsm_path)
    out = {"attngan": _train(runs, data, "-e", enc, "--stages", "2"),
           "stackgan++": _train(runs, data, "-e", enc, "--arch", "stackgan++", "--lambda", "5",
                                "--color-consistency", "1"),
           "stage1": _train(runs, data, "-e", enc, "--arch", "stackgan", "--stage", "1")}
    out["stage2"] = _train(runs, data, "--arch", "stackgan", "--stage", "2", "--init", str(out["stage1"]))
    out["runs"] = runs
    return out


@pytest.mark.parametrize(("run", "sizes"), [("attngan", [16, 32]), ("stackgan++", [16, 32, 64]), ("stage1", [16]),
                                            ("stage2", [16, 64])])
def test_every_architecture_samples_and_evaluates_through_the_cli(baseline_runs, shapes_h5, tmp_path, run, sizes) -> None:
    ckpt = baseline_runs[run] / "final.pt"
    runner = CliRunner()
    out = tmp_path / "samples"
    r = runner.invoke(app, ["sample", "a red circle on a white background", "-c", str(ckpt), "-o", str(out),
                            "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"c00000-s00-{s}.png" for s in sizes)
    r = runner.invoke(app, ["eval", "-m", "rprecision,attributes", "-c", str(ckpt), "--data", str(shapes_h5),
                            "-n", "16", "--device", "cpu", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert '"rprecision"' in r.output and '"attributes"' in r.output


@pytest.mark.parametrize("run", ["stackgan++", "stage2"])
def test_attend_says_there_is_no_word_attention(baseline_runs, tmp_path, run) -> None:
    fig = tmp_path / "fig.png"
    r = CliRunner().invoke(app, ["attend", "a red circle", "-c", str(baseline_runs[run]), "-o", str(fig),
                                 "--device", "cpu"])
    assert r.exit_code == 1
    assert "has no word attention" in r.output and "attngan sample" in r.output
    assert not fig.exists()


def test_stage_two_starts_from_the_frozen_stage_one(baseline_runs) -> None:
    """Stage-II's checkpoint holds Stage-I's weights exactly as the finished Stage-I run's generator left
    them (copied at the start, unchanged by training), so `sample -c STAGE2` needs nothing else. StackGAN
    keeps no EMA (ema_decay 0): Stage-I's "EMA" is its generator."""
    one = load_checkpoint(baseline_runs["stage1"] / "final.pt")
    two = load_checkpoint(baseline_runs["stage2"] / "final.pt")
    assert two.config["init"] == str((baseline_runs["stage1"] / "final.pt").resolve())
    assert two.config["encoders"] == one.config["encoders"]  # Stage-I's encoders by default
    ref = one.state["generator"]
    assert all(torch.equal(one.state["generator_ema"][k], v) for k, v in ref.items())
    for key in ("generator", "generator_ema"):
        stage1 = {k: v for k, v in two.state[key].items() if k.startswith("stage1.")}
        assert stage1.keys() == ref.keys()
        assert all(torch.equal(stage1[k], ref[k]) for k in ref), key
    assert any(k.startswith("stage2.") for k in two.state["generator"])
    assert list(two.state["discriminators"]) == ["0"]


def _refused(runs: Path, *args: str) -> str:
    before = sorted(runs.iterdir())
    r = CliRunner().invoke(app, ["train", *args, *TINY, "--runs", str(runs)])
    assert r.exit_code == 1, r.output
    assert sorted(runs.iterdir()) == before  # refused before any run directory exists
    return " ".join(r.output.split())


def test_stage_two_refuses_what_is_not_a_finished_stage_one(baseline_runs, shapes_h5, damsm_path, tmp_path) -> None:
    runs, data = baseline_runs["runs"], str(shapes_h5)
    two = ["--arch", "stackgan", "--stage", "2"]
    assert "pass --init STAGE1_RUN" in _refused(runs, data, "-e", str(damsm_path), *two)
    msg = _refused(runs, data, *two, "--init", str(baseline_runs["stackgan++"]))
    assert "a stackgan++ run with 3 stage(s), not a StackGAN Stage-I" in msg
    msg = _refused(runs, data, *two, "--init", str(baseline_runs["stage2"]))
    assert "a stackgan run with 2 stage(s), not a StackGAN Stage-I" in msg
    # an unfinished run: no final.pt
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint-1.pt").write_bytes((baseline_runs["stage1"] / "final.pt").read_bytes())
    assert "the run is not finished (no final.pt)" in _refused(runs, data, *two, "--init", str(unfinished))
    assert "not the final.pt of a finished Stage-I run" in _refused(runs, data, *two, "--init",
                                                                   str(unfinished / "checkpoint-1.pt"))
    # Stage-I's weight shapes
    assert "Stage-I has --ngf 8 but this run gives it 16" in " ".join(
        CliRunner().invoke(app, ["train", data, *two, "--init", str(baseline_runs["stage1"]), *TINY[:4],
                                 "--ngf", "16", "--runs", str(runs), "--quiet"]).output.split())
    # --stage and --init elsewhere
    assert "--stage is for --arch stackgan" in _refused(runs, data, "-e", str(damsm_path), "--arch", "stackgan++",
                                                        "--stage", "2")
    assert "--init is for --arch stackgan --stage 2" in _refused(runs, data, "-e", str(damsm_path), "--arch", "stackgan",
                                                                "--stage", "1", "--init", str(baseline_runs["stage1"]))


def test_stage_two_refuses_another_dataset(baseline_runs, damsm_path, tmp_path) -> None:
    from attngan_cli.data.shapes import make_shapes

    other = make_shapes(tmp_path / "other.h5", n_train=48, n_test=16, image_size=76, seed=1)
    msg = _refused(baseline_runs["runs"], str(other), "--arch", "stackgan", "--stage", "2", "--init",
                   str(baseline_runs["stage1"]))
    assert "a different dataset than" in msg and "other.h5" in msg


def test_stage_two_refuses_other_encoders(baseline_runs, shapes_h5, tmp_path) -> None:
    from _sample_fixtures import make_damsm

    from attngan_cli.data.h5 import read_vocab

    other = make_damsm(tmp_path / "other-damsm.pt", list(read_vocab(shapes_h5).words), seed=7)
    msg = _refused(baseline_runs["runs"], str(shapes_h5), "-e", str(other), "--arch", "stackgan", "--stage", "2",
                   "--init", str(baseline_runs["stage1"]))
    assert "Stage-I was trained with another DAMSM text encoder" in msg


def test_stage_option_errors() -> None:
    from attngan_cli.cli.commands.train import check_stage_options

    check_stage_options("stackgan", 1, None, None, None)
    with pytest.raises(InputError, match="not both"):
        check_stage_options("stackgan", 1, 2, None, None)
    with pytest.raises(InputError, match="must be 1"):
        check_stage_options("stackgan", 3, None, None, None)
    with pytest.raises(InputError, match="keeps its stage"):
        check_stage_options("stackgan", 2, None, None, Path("run"))


def test_color_consistency_flag_reaches_training(baseline_runs) -> None:
    run = baseline_runs["stackgan++"]
    assert json.loads((run / "config.json").read_text())["color_consistency"] == 1.0
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line.strip()]
    assert any(r.get("color", 0) > 0 for r in records)
    plain = [json.loads(line) for line in (baseline_runs["attngan"] / "stats.jsonl").read_text().splitlines()]
    assert not any("color" in r for r in plain)
