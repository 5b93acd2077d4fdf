"""DM-GAN in the toolkit (``--arch dmgan``): the dynamic memory against a hand computation, the
discriminators' spectral norm, the presets, exact resume, bf16, and every command (train, sample, attend
with the memory addressing weights, eval, runs, plot). Tiny sizes throughout. ``--spectral-norm`` for
AttnGAN's discriminators (AttnGAN++) is tested here too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from _sample_fixtures import tiny_train_settings
from typer.testing import CliRunner

from attngan_cli.archs.registry import (
    arch_names,
    build_discriminators,
    build_generator,
    get_arch,
    new_train_config,
)
from attngan_cli.cli import app
from attngan_cli.config.presets import make_train_config
from attngan_cli.core.errors import ConfigMismatchError, InputError
from attngan_cli.storage.checkpoints import load_checkpoint
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.gan import train_gan

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def tiny_cfg(arch: str = "dmgan", stages: int = 3, **over):
    return make_train_config("shapes", {"generator.arch": arch, "generator.stages": stages, "generator.base_size": 8,
                                        "generator.ngf": 4, "generator.r_num": 1, "generator.z_dim": 8,
                                        "generator.condition_dim": 6, "generator.embedding_dim": 16,
                                        "discriminator.ndf": 4, "discriminator.embedding_dim": 16, **over})


def _inputs(B: int = 2, T: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 3:] = True
    return torch.randn(B, 8, generator=g), torch.randn(B, 16, generator=g), torch.randn(B, 16, T, generator=g), mask


class Recorder:
    def __init__(self) -> None:
        self.losses: dict[int, dict[str, float]] = {}

    def __call__(self, info) -> None:
        self.losses[info.step] = dict(info.losses)


# ------------------------------------------------------------------------------------------ the memory
def test_registered_with_memory():
    assert "dmgan" in arch_names()
    arch = get_arch("dmgan")
    assert arch.memory and arch.word_attention and not arch.sentence_attention and "DM-GAN" in arch.paper


def test_memory_stage_matches_a_hand_computation():
    """Writing gate, memory slots, key addressing with the padding masked, value reading and the response
    gate of the paper's equations 3-9, computed here word by word and pixel by pixel."""
    from attngan_cli.archs.dmgan.generator import MemoryStage

    torch.manual_seed(0)
    ngf, D, T, B, s = 3, 4, 4, 2, 2
    st = MemoryStage(ngf, D, r_num=0).eval()
    with torch.no_grad():
        for p in st.parameters():
            p.normal_(0, 0.5)
    h, words = torch.randn(B, ngf, s, s), torch.randn(B, D, T)
    mask = torch.tensor([[False, False, True, True], [False, False, False, False]])
    memory = st.write(h, words)
    out, attn = st.read(h, memory, mask)
    relu, sig = torch.relu, torch.sigmoid
    for b in range(B):
        r = h[b].mean(dim=(1, 2))  # (ngf,)
        for t in range(T):
            w = words[b, :, t]
            g = sig(st.A.weight[0] @ w + st.B.weight[0] @ r)
            m = relu(st.M_w[0].weight[:, :, 0] @ w + st.M_w[0].bias) * g + \
                relu(st.M_r[0].weight[:, :, 0] @ r + st.M_r[0].bias) * (1 - g)
            torch.testing.assert_close(memory[b, :, t], m)
        keys = relu(st.key[0].weight[:, :, 0] @ memory[b] + st.key[0].bias[:, None])  # (ngf, T)
        values = relu(st.value[0].weight[:, :, 0] @ memory[b] + st.value[0].bias[:, None])
        n = int((~mask[b]).sum())
        for i in range(s):
            for j in range(s):
                scores = h[b, :, i, j] @ keys[:, :n]
                a = torch.softmax(scores, dim=0)
                torch.testing.assert_close(attn[b, :n, i, j], a)
                assert float(attn[b, n:, i, j].detach().abs().sum()) == 0.0  # padding words are never addressed
                torch.testing.assert_close(out[b, :, i, j], values[:, :n] @ a)
    gate = st.response_gate(torch.cat((h, out), dim=1))
    y, a2 = st(h, words, mask)
    expected = st.upsample(torch.cat([h * (1 - gate) + out * gate] * 2, dim=1))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(a2, attn)


def test_generator_shapes_maps_and_gradients():
    cfg = tiny_cfg()
    G = build_generator(cfg.generator).train()
    z, sent, words, mask = _inputs(B=4)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 3:] = True
    out = G(z, sent, words, mask)
    assert [tuple(x.shape) for x in out.images] == [(4, 3, 8, 8), (4, 3, 16, 16), (4, 3, 32, 32)]
    assert [tuple(a.shape) for a in out.attn] == [(4, 5, 8, 8), (4, 5, 16, 16)]
    for a in out.attn:  # per pixel a distribution over the words
        torch.testing.assert_close(a.sum(dim=1), torch.ones(4, a.shape[2], a.shape[3]))
    assert float(out.attn[0][0, 3:].detach().abs().sum()) == 0.0
    out.images[-1].square().mean().backward()
    params = dict(G.named_parameters())
    for stage in ("h_net2", "h_net3"):
        for name in ("A.weight", "B.weight", "M_w.0.weight", "M_r.0.weight", "key.0.weight", "value.0.weight",
                     "response_gate.0.weight"):
            assert params[f"{stage}.{name}"].grad is not None and float(params[f"{stage}.{name}"].grad.abs().sum()) > 0


def test_the_mean_image_feature_is_detached():
    """The official NEXT_STAGE_G detaches the mean image feature of the writing gate and M_r: a loss on
    the memory slots alone reaches no earlier layer."""
    G = build_generator(tiny_cfg().generator).train()
    z, sent, words, mask = _inputs()
    c, _, _ = G.ca_net(sent)
    h = G.h_net1(z, c)
    G.h_net2.write(h, words).sum().backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in G.h_net1.parameters())
    assert float(G.h_net2.M_r[0].weight.grad.abs().sum()) > 0


# ------------------------------------------------------------------------------------------ discriminators
def test_discriminators_have_spectral_norm_biases_and_no_batchnorm():
    Ds = build_discriminators(*(lambda c: (c.generator, c.discriminator))(tiny_cfg(**{"discriminator.spectral_norm": True})))
    for D in Ds:
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
        for name, m in D.named_modules():
            if isinstance(m, torch.nn.Conv2d):
                assert m.bias is not None, name
                assert torch.nn.utils.parametrize.is_parametrized(m) == ("outlogits" not in name), name
    D = Ds[0].train()
    x = torch.randn(3, 3, 8, 8)
    conv = D.img_code_s16[0]
    w = conv.weight  # the normalised weight: largest singular value ~1 after a few power iterations
    for _ in range(30):
        D(x)
    assert abs(float(torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)) - 1.0) < 1e-2
    assert w.shape == conv.parametrizations.weight.original.shape


def test_attngan_spectral_norm_flag_builds_tises_discriminators(tmp_path):
    """--spectral-norm on AttnGAN (TISE's AttnGAN++, whose layers.py has DM-GAN's blocks): the same
    discriminators as DM-GAN's; off by default; DM-GAN with --no-spectral-norm gets AttnGAN's."""
    from attngan_cli.archs.attngan.discriminators import Discriminator, SpectralNormDiscriminator

    plain = tiny_cfg("attngan")
    sn = tiny_cfg("attngan", **{"discriminator.spectral_norm": True})
    assert plain.discriminator.spectral_norm is False  # off by default
    D_plain = build_discriminators(plain.generator, plain.discriminator)
    D_sn = build_discriminators(sn.generator, sn.discriminator)
    assert all(type(D) is Discriminator for D in D_plain)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in D_plain.modules())
    assert all(type(D) is SpectralNormDiscriminator for D in D_sn)
    dm = build_discriminators(*(lambda c: (c.generator, c.discriminator))(
        tiny_cfg(**{"discriminator.spectral_norm": True})))
    assert {k: v.shape for k, v in dm.state_dict().items()} == {k: v.shape for k, v in D_sn.state_dict().items()}
    dm_plain = build_discriminators(*(lambda c: (c.generator, c.discriminator))(tiny_cfg()))
    assert all(type(D) is Discriminator for D in dm_plain)
    # a config written before the field existed loads with it off (format-1 checkpoints)
    from attngan_cli.config.schema import TrainConfig
    from attngan_cli.config.serialize import from_dict, to_dict

    old = to_dict(plain)
    del old["discriminator"]["spectral_norm"]
    assert from_dict(TrainConfig, old).discriminator.spectral_norm is False


# ------------------------------------------------------------------------------------------ presets
def test_official_presets():
    bird = new_train_config("bird", {"generator.arch": "dmgan"})
    assert (bird.batch_size, bird.epochs, bird.generator.ngf, bird.discriminator.ndf, bird.generator.r_num,
            bird.lambda_damsm, bird.words) == (10, 800, 64, 32, 2, 5.0, 18)
    assert (bird.lr_g, bird.lr_d, tuple(bird.betas), bird.discriminator.spectral_norm) == (2e-4, 2e-4, (0.5, 0.999), True)
    coco = new_train_config("coco", {"generator.arch": "dmgan"})
    assert (coco.batch_size, coco.epochs, coco.generator.ngf, coco.discriminator.ndf, coco.generator.r_num,
            coco.lambda_damsm, coco.words) == (16, 200, 64, 32, 3, 50.0, 12)
    shapes = new_train_config("shapes", {"generator.arch": "dmgan"})
    assert shapes.discriminator.spectral_norm and shapes.generator.ngf == new_train_config("shapes").generator.ngf


# ------------------------------------------------------------------------------------------ training
def test_train_resumes_exactly(shapes_h5, damsm_path, tmp_path):
    over = {"generator.arch": "dmgan", "max_steps": 6}
    settings = tiny_train_settings(shapes_h5, damsm_path, **over)
    assert settings.config.discriminator.spectral_norm
    full = Recorder()
    final_a = train_gan(settings, RunDir.create(tmp_path, "a", "train"), callbacks=[full])
    assert sorted(full.losses) == list(range(1, 7))
    run_a = final_a.parent
    ck = load_checkpoint(run_a / "checkpoint-1.pt", kind="gan")
    assert any(".parametrizations.weight.0._u" in k for k in ck.state["discriminators"]["0"])
    rec = Recorder()
    final_b = train_gan(tiny_train_settings(shapes_h5, damsm_path, resume=run_a / "checkpoint-1.pt", **over),
                        RunDir.create(tmp_path, "b", "train"), callbacks=[rec])
    assert sorted(rec.losses) == [5, 6]
    for s in rec.losses:
        assert rec.losses[s] == full.losses[s], s
    a, b = load_checkpoint(final_a), load_checkpoint(final_b)
    for part in ("generator_ema", "generator"):
        for k in a.state[part]:
            assert torch.equal(a.state[part][k], b.state[part][k]), k
    for k, v in a.state["discriminators"]["1"].items():  # the spectral norms' u, v too
        assert torch.equal(v, b.state["discriminators"]["1"][k]), k
    # the EMA generator is not the trained one
    assert any(not torch.equal(a.state["generator"][k], a.state["generator_ema"][k]) for k in a.state["generator"]
               if a.state["generator"][k].is_floating_point())
    # a resumed run keeps its discriminators
    with pytest.raises(ConfigMismatchError, match="discriminator.spectral_norm"):
        tiny_train_settings(shapes_h5, damsm_path, resume=final_a, **{**over, "max_steps": 8,
                                                                     "discriminator.spectral_norm": False})


def test_bf16_channels_last_step(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, max_steps=2, precision="bf16", channels_last=True,
                                   **{"generator.arch": "dmgan"})
    rec = Recorder()
    train_gan(settings, RunDir.create(tmp_path, "bf", "train"), callbacks=[rec])
    assert sorted(rec.losses) == [1, 2]
    assert all(math.isfinite(v) for r in rec.losses.values() for v in r.values())


# ------------------------------------------------------------------------------------------ the CLI
TINY = ["--max-steps", "2", "--batch-size", "16", "--ngf", "8", "--ndf", "8", "--stages", "2", "--sample-every", "0",
        "--quiet", "--no-tensorboard", "--device", "cpu"]


@pytest.fixture(scope="module")
def dmgan_run(shapes_h5, damsm_path, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("dmgan_runs")
    r = CliRunner().invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "dmgan", *TINY,
                                 "--runs", str(runs)])
    assert r.exit_code == 0, r.output
    return Path(r.output.strip().splitlines()[-1]).parent


def test_cli_train_sample_eval_runs_plot(dmgan_run, shapes_h5, tmp_path):
    cfg = load_checkpoint(dmgan_run / "final.pt").config
    assert cfg["generator"]["arch"] == "dmgan" and cfg["discriminator"]["spectral_norm"] is True
    out = tmp_path / "samples"
    r = runner.invoke(app, ["sample", "a red circle on a white background", "-c", str(dmgan_run), "-o", str(out),
                            "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.png")) == ["c00000-s00-16.png", "c00000-s00-32.png"]
    r = runner.invoke(app, ["eval", "-m", "rprecision,attributes", "-c", str(dmgan_run / "final.pt"), "--data",
                            str(shapes_h5), "-n", "16", "--device", "cpu", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert '"rprecision"' in r.output and '"attributes"' in r.output
    r = runner.invoke(app, ["runs", str(dmgan_run.parent)])
    assert r.exit_code == 0 and dmgan_run.name in r.output, r.output
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    r = runner.invoke(app, ["plot", str(dmgan_run), "-o", str(png)])
    assert r.exit_code == 0 and png.is_file(), r.output


def test_attend_draws_the_memory_addressing_weights(dmgan_run, tmp_path):
    import numpy as np
    from PIL import Image

    from attngan_cli.apps.sample import caption_batch, encode_caption, item_noise
    from attngan_cli.inference.pipeline import generate, load_generator
    from attngan_cli.viz.attention import attention_figure

    out = tmp_path / "fig.png"
    text = "a red circle on a white background"
    r = runner.invoke(app, ["attend", text, "-c", str(dmgan_run), "-o", str(out), "--top", "3", "--word-maps",
                            "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["maps"] == "memory addressing"
    assert [a["stage"] for a in rec["attention"]] == [2] and rec["attention"][0]["regions"] == [16, 16]
    npz = np.load(tmp_path / "fig_maps" / "maps.npz")
    n = len(rec["words"])
    assert npz["attn1"].shape == (n, 16, 16)
    np.testing.assert_allclose(npz["attn1"].sum(axis=0), np.ones((16, 16)), atol=1e-5)  # per pixel over the words
    # the figure is the memory weights drawn as word attention, labelled "memory"
    bundle = load_generator(dmgan_run)
    cap = encode_caption(bundle.vocab, text, "c")
    z, eps = item_noise(0, 0, 0, bundle.config.generator.z_dim, bundle.config.generator.condition_dim)
    g = generate(bundle, *caption_batch([cap]), z[None], eps[None])
    stages = [im[0] for im in g.images]
    maps = [a[0, : len(cap.ids)] for a in g.attn]
    np.testing.assert_allclose(maps[0].numpy(), npz["attn1"], atol=1e-6)
    memory = attention_figure(stages, maps, cap.words, top=3, caption=" ".join(cap.words), kind="memory").image
    attention = attention_figure(stages, maps, cap.words, top=3, caption=" ".join(cap.words)).image
    drawn = np.asarray(Image.open(out))
    assert np.array_equal(drawn, np.asarray(memory)) and not np.array_equal(drawn, np.asarray(attention))


def test_train_flag_spectral_norm(shapes_h5, damsm_path, tmp_path):
    r = runner.invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--spectral-norm", *TINY,
                            "--max-steps", "1", "--runs", str(tmp_path)])
    assert r.exit_code == 0, r.output
    ck = load_checkpoint(Path(r.output.strip().splitlines()[-1]))
    assert ck.config["generator"]["arch"] == "attngan" and ck.config["discriminator"]["spectral_norm"] is True
    r = runner.invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "dmgan", "--no-spectral-norm",
                            *TINY, "--max-steps", "1", "--runs", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(Path(r.output.strip().splitlines()[-1])).config["discriminator"]["spectral_norm"] is False
    r = runner.invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--arch", "stackgan", "--arch-option",
                            "stage=1", "--spectral-norm", *TINY[:8], *TINY[10:], "--runs", str(tmp_path)])
    assert r.exit_code != 0 and "--spectral-norm" in r.output and "stackgan" in r.output


def test_stackgan_refuses_spectral_norm_in_the_library(shapes_h5, damsm_path):
    with pytest.raises(InputError, match=r"--spectral-norm .* not used by --arch stackgan"):
        tiny_train_settings(shapes_h5, damsm_path, **{"generator.arch": "stackgan", "discriminator.spectral_norm": True,
                                                       "generator.stages": 1})
