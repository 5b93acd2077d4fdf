"""``--arch dfgan`` (DF-GAN): its networks and objective, then every command on tiny data through the CLI:
train (resume exact, bf16), sample (truncated noise, --truncation), attend (its message), eval (the
architecture's truncation, --truncation), runs and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from attngan_cli.archs.base import TextBatch
from attngan_cli.archs.dfgan import ARCH
from attngan_cli.archs.dfgan.loss import DFGANLoss, ma_gp, roll_one
from attngan_cli.archs.dfgan.networks import DFDiscriminator, DFGenerator, channels
from attngan_cli.archs.registry import get_arch, new_train_config
from attngan_cli.cli import app
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.storage.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ------------------------------------------------------------------------------------------ networks
def test_presets_follow_the_official_cfg_files() -> None:
    for preset, epochs in (("bird", 1301), ("coco", 301)):
        cfg = new_train_config(preset, {"generator.arch": "dfgan"})
        assert (cfg.batch_size, cfg.epochs, cfg.lr_g, cfg.lr_d, tuple(cfg.betas)) == (32, epochs, 1e-4, 4e-4, (0.0, 0.9))
        assert (cfg.generator.stages, cfg.generator.base_size, cfg.generator.ngf, cfg.discriminator.ndf) == (1, 256, 32, 32)
        assert (cfg.lambda_damsm, cfg.ema_decay, cfg.words) == (0.0, 0.0, 18)
    shapes = new_train_config("shapes", {"generator.arch": "dfgan"})
    assert (shapes.generator.stages, shapes.generator.base_size) == (1, 64)
    assert (get_arch("dfgan").noise_truncation, get_arch("dfgan").truncation_bound) == (0.88, 2.0)


def test_the_bird_generator_has_the_official_shape() -> None:
    """nf 32 at 256 px: six up-blocks 8nf x4, 4nf, 2nf, nf, and the official NetG's parameter count."""
    assert channels(32, 256) == [256, 256, 256, 256, 128, 64, 32]
    G = DFGenerator(GeneratorConfig(arch="dfgan", stages=1, base_size=256, ngf=32))
    assert len(G.blocks) == 6 and sum(p.numel() for p in G.parameters()) == 9_744_131
    D = DFDiscriminator(DiscriminatorConfig(ndf=32), 256)
    assert len(D.blocks) == 6 and D.features(torch.zeros(1, 3, 256, 256)).shape == (1, 256, 4, 4)


def test_every_affine_starts_as_the_identity() -> None:
    G = DFGenerator(GeneratorConfig(arch="dfgan", stages=1, base_size=16, ngf=4, embedding_dim=8))
    h = torch.randn(2, 16, 4, 4)  # 16 px: channels 16, 8, 4
    cond = torch.randn(2, 108)
    torch.testing.assert_close(G.blocks[0].fuse1.affine1(h, cond), h, rtol=0, atol=0)


def test_ma_gp_is_the_sixth_power_of_the_joint_gradient_norm() -> None:
    torch.manual_seed(0)
    w_img, w_sent = torch.randn(3 * 4 * 4), torch.randn(5)
    img = torch.randn(3, 3, 4, 4, requires_grad=True)
    sent = torch.randn(3, 5, requires_grad=True)
    score = torch.tanh(img.flatten(1) @ w_img) + (sent @ w_sent) ** 2  # (B,)
    gi = (1 - torch.tanh(img.detach().flatten(1) @ w_img) ** 2)[:, None] * w_img  # (B, 48)
    gs = 2 * (sent.detach() @ w_sent)[:, None] * w_sent  # (B, 5)
    expected = 2.0 * torch.cat((gi, gs), dim=1).norm(dim=1).pow(6).mean()
    torch.testing.assert_close(ma_gp(score, img, sent, 2.0, 6.0), expected)
    assert roll_one(torch.arange(4)).tolist() == [1, 2, 3, 0]


def _text(B: int, D: int) -> TextBatch:
    sent = torch.randn(B, D)
    return TextBatch(torch.zeros(B, D, 3), sent, None, sent.roll(1, 0), torch.ones(B, 3, dtype=torch.long),
                     torch.full((B,), 3), torch.zeros(B, dtype=torch.long))


def test_the_discriminator_loss_is_hinge_with_rolled_features_plus_the_penalty() -> None:
    torch.manual_seed(1)
    D = DFDiscriminator(DiscriminatorConfig(ndf=4, embedding_dim=8), 16)
    with torch.no_grad():
        for block in D.blocks:
            block.gain.fill_(0.5)
    real, fake, text = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), _text(4, 8)
    terms = DFGANLoss().discriminator(D, real, fake, text)
    feats = D.features(real)
    wrong_images = torch.cat((real[1:], real[:1]))  # image i + 1 with sentence i
    expected_wrong = F.relu(1 + D(wrong_images, text.sent_emb)).mean()
    torch.testing.assert_close(terms.logs["wrong"], expected_wrong.detach())
    r = F.relu(1 - D.head(feats, text.sent_emb)).mean()
    f = F.relu(1 + D(fake, text.sent_emb)).mean()
    torch.testing.assert_close(terms.total, r + (f + expected_wrong) / 2 + terms.logs["gp"])
    assert terms.logs["gp"] > 0
    no_mismatch = DFGANLoss(mismatch=False).discriminator(D, real, fake, text)
    torch.testing.assert_close(no_mismatch.total, r + f + no_mismatch.logs["gp"])


def test_the_penalty_is_float32_under_bf16_autocast() -> None:
    torch.manual_seed(2)
    D = DFDiscriminator(DiscriminatorConfig(ndf=4, embedding_dim=8), 16)
    real, fake, text = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), _text(4, 8)
    exact = DFGANLoss().discriminator(D, real, fake, text).logs["gp"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = DFGANLoss().discriminator(D, real, fake, text)
    assert terms.logs["gp"].dtype == torch.float32 and terms.total.dtype == torch.float32
    torch.testing.assert_close(terms.logs["gp"], exact, rtol=0.1, atol=1e-6)
    terms.total.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in D.parameters())


# ------------------------------------------------------------------------------------------ through the CLI
TINY = ["--ngf", "4", "--ndf", "4", "--batch-size", "16", "--sample-every", "0", "--quiet", "--no-tensorboard",
        "--device", "cpu"]


def _train(runs: Path, *args: str, precision: str = "fp32") -> Path:
    r = CliRunner().invoke(app, ["train", *args, *TINY, "--precision", precision, "--runs", str(runs)])
    assert r.exit_code == 0, r.output
    return Path(r.output.strip().splitlines()[-1]).parent


@pytest.fixture(scope="module")
def dfgan_runs(shapes_h5, damsm_path, tmp_path_factory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("dfgan_runs")
    new = [str(shapes_h5), "-e", str(damsm_path), "--arch", "dfgan"]
    two = _train(runs, *new, "--max-steps", "2")
    whole = _train(runs, *new, "--max-steps", "3")
    resumed = _train(runs, "--resume", str(two), "--max-steps", "3")
    return {"two": two, "whole": whole, "resumed": resumed, "runs": runs}


def test_dfgan_trains_with_its_objective_and_settings(dfgan_runs) -> None:
    cfg = json.loads((dfgan_runs["two"] / "config.json").read_text())
    assert cfg["generator"]["arch"] == "dfgan" and (cfg["generator"]["stages"], cfg["generator"]["base_size"]) == (1, 64)
    assert (cfg["lr_g"], cfg["lr_d"], cfg["betas"], cfg["lambda_damsm"], cfg["ema_decay"]) == (1e-4, 4e-4, [0.0, 0.9], 0.0, 0.0)
    stats = [json.loads(line) for line in (dfgan_runs["two"] / "stats.jsonl").read_text().splitlines()]
    assert {"d0_real", "d0_fake", "d0_wrong", "d0_gp", "g_adv0"} <= set(stats[-1]) and stats[-1]["d0_gp"] > 0
    ckpt = load_checkpoint(dfgan_runs["two"] / "final.pt")
    assert ckpt.step == 2 and list(ckpt.state["discriminators"]) == ["0"]
    # no moving average (the official code keeps none): the sampled weights are G's
    for name, value in ckpt.state["generator"].items():
        assert torch.equal(ckpt.state["generator_ema"][name], value), name


def test_dfgan_resumes_exactly(dfgan_runs) -> None:
    whole = torch.load(dfgan_runs["whole"] / "final.pt", weights_only=True)
    resumed = torch.load(dfgan_runs["resumed"] / "final.pt", weights_only=True)
    assert resumed["step"] == whole["step"] == 3
    for key in ("generator", "generator_ema"):
        for name, value in whole["state"][key].items():
            torch.testing.assert_close(resumed["state"][key][name], value, rtol=1e-5, atol=1e-7, msg=f"{key}.{name}")
    for name, value in whole["state"]["discriminators"]["0"].items():
        torch.testing.assert_close(resumed["state"]["discriminators"]["0"][name], value, rtol=1e-5, atol=1e-7)


def test_dfgan_trains_under_bf16_autocast(shapes_h5, damsm_path, tmp_path) -> None:
    run = _train(tmp_path, str(shapes_h5), "-e", str(damsm_path), "--arch", "dfgan", "--max-steps", "1",
                 precision="bf16")
    stats = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert stats["d0_gp"] > 0 and all(v == v for v in stats.values() if isinstance(v, float))
    ckpt = load_checkpoint(run / "final.pt")
    assert all(torch.isfinite(v).all() for v in ckpt.state["generator"].values())


def test_dfgan_refuses_what_it_does_not_use(shapes_h5, damsm_path, tmp_path) -> None:
    runs = tmp_path / "runs"
    base = ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "dfgan", *TINY, "--runs", str(runs)]
    for extra, message in [(["--lambda", "5"], "--arch dfgan has no DAMSM loss"),
                           (["--stages", "2"], "--stages (generator.stages) of --arch dfgan must be 1"),
                           (["--arch-option", "gp_power=0.5"], "--arch-option gp_power must be a number >= 1"),
                           (["--captioner", str(damsm_path)], "--captioner (captioner) is not used by --arch dfgan")]:
        r = CliRunner().invoke(app, [*base, *extra])
        assert r.exit_code == 1 and message in " ".join(r.output.split()), r.output
    assert not runs.exists()


def test_dfgan_samples_with_truncated_noise(dfgan_runs, tmp_path) -> None:
    from attngan_cli.apps.sample import item_noise

    z, _ = item_noise(0, 0, 0, 4096, 4, ARCH.noise_truncation, ARCH.truncation_bound)
    assert 0.88 * 1.9 < float(z.abs().max()) <= 0.88 * 2.0 + 1e-6  # 0.88 * N(0, 1) cut to [-2, 2]
    runner = CliRunner()
    outs = {}
    for name, extra in (("default", []), ("same", ["--truncation", "0.88"]), ("none", ["--truncation", "0"])):
        out = tmp_path / name
        r = runner.invoke(app, ["sample", "a red circle", "-c", str(dfgan_runs["two"]), "-o", str(out), "--n", "2",
                                "--device", "cpu", "--quiet", *extra])
        assert r.exit_code == 0, r.output
        assert sorted(p.name for p in out.glob("*.png")) == ["c00000-s00-64.png", "c00000-s01-64.png"]
        outs[name] = (out / "c00000-s00-64.png").read_bytes()
    assert outs["default"] == outs["same"] != outs["none"]
    r = runner.invoke(app, ["sample", "a red circle", "-c", str(dfgan_runs["two"]), "-o", str(tmp_path / "bad"),
                            "--device", "cpu", "--truncation", "-1"])
    assert r.exit_code == 1 and "--truncation must be a number >= 0" in r.output


def test_attend_on_dfgan_says_it_has_no_word_attention(dfgan_runs, tmp_path) -> None:
    fig = tmp_path / "fig.png"
    r = CliRunner().invoke(app, ["attend", "a red circle", "-c", str(dfgan_runs["two"]), "-o", str(fig), "--device", "cpu"])
    assert r.exit_code == 1 and not fig.exists()
    assert "--arch dfgan (Tao et al., CVPR 2022 (DF-GAN)) has no word attention" in " ".join(r.output.split())


def test_eval_uses_the_architecture_truncation_unless_overridden(dfgan_runs, shapes_h5, tmp_path) -> None:
    runner = CliRunner()
    images = {}
    for name, extra in (("default", []), ("same", ["--truncation", "0.88"]), ("none", ["--truncation", "0"])):
        out = tmp_path / name
        r = runner.invoke(app, ["eval", "-c", str(dfgan_runs["two"]), "--data", str(shapes_h5), "-m", "attributes",
                                "-n", "4", "--batch-size", "4", "--device", "cpu", "--quiet", "--json",
                                "--save-images", str(out), *extra])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["image_size"] == 64
        images[name] = (out / "000000.png").read_bytes()
    assert images["default"] == images["same"] != images["none"]


def test_runs_and_plot_show_dfgan_runs(dfgan_runs, tmp_path) -> None:
    r = CliRunner().invoke(app, ["runs", str(dfgan_runs["runs"]), "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert len(listed) == 3 and {run["arch"] for run in listed} == {"dfgan"}
    r = CliRunner().invoke(app, ["runs", str(dfgan_runs["runs"])])
    assert r.exit_code == 0 and "train dfgan" in r.output, r.output
    png = tmp_path / "curves.png"
    r = CliRunner().invoke(app, ["plot", str(dfgan_runs["two"]), "-o", str(png)])
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 0
