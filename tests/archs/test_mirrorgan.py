"""MirrorGAN in the toolkit: the GLAM generator (``--arch mirrorgan``), the STREAM loss in GAN training,
checkpoints, the settings checks and the CLI pieces (train flags, sample --caption-back, attend's
sentence maps). Tiny sizes throughout (2 stages of 16 and 32 px, widths 4-8)."""

from __future__ import annotations

import json

import pytest
import torch
from _mirror_fixtures import make_captioner
from _sample_fixtures import tiny_train_config, tiny_train_settings
from typer.testing import CliRunner

from attngan_cli.archs.registry import arch_names, build_generator, get_arch
from attngan_cli.cli import app
from attngan_cli.config.presets import make_train_config
from attngan_cli.core.errors import ConfigMismatchError
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.data.h5 import read_vocab
from attngan_cli.storage.checkpoints import load_checkpoint
from attngan_cli.storage.rundirs import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def tiny_gcfg(arch: str = "mirrorgan", stages: int = 3):
    return make_train_config("shapes", {"generator.arch": arch, "generator.stages": stages, "generator.base_size": 8,
                                        "generator.ngf": 4, "generator.r_num": 1, "generator.z_dim": 8,
                                        "generator.condition_dim": 6, "generator.embedding_dim": 16}).generator


def _inputs(B: int = 2, T: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 3:] = True
    return torch.randn(B, 8, generator=g), torch.randn(B, 16, generator=g), torch.randn(B, 16, T, generator=g), mask


# ------------------------------------------------------------------------------------------ GLAM
def test_mirrorgan_is_registered_with_sentence_attention():
    assert "mirrorgan" in arch_names()
    arch = get_arch("mirrorgan")
    assert arch.sentence_attention and arch.word_attention and "MirrorGAN" in arch.paper


def test_sentence_attention_matches_a_hand_computation():
    """The official GLAttentionGeneral: at every region a softmax over the channels of conv1x1(h * U c)
    weighs U c (the context); the map is each region's share of the context's size, summing to 1 over
    H*W per image. Tiny known tensors: ngf 2, U c = (1, 2) and (-1, 0.5), the conv the identity."""
    import math

    from attngan_cli.archs.mirrorgan.glam import SentenceAttention

    att = SentenceAttention(ngf=2, condition_dim=1)
    with torch.no_grad():
        att.linear.weight.copy_(torch.tensor([[1.0], [2.0]]))
        att.linear.bias.zero_()
        att.conv_sentence_vis.weight.copy_(torch.eye(2)[:, :, None, None])
    c = torch.tensor([[1.0], [-0.5]])
    h = torch.tensor([[[[0.0, 1.0], [2.0, -1.0]], [[1.0, 0.0], [-1.0, 0.5]]],
                      [[[0.3, -2.0], [1.0, 0.0]], [[0.0, 0.7], [1.5, -1.0]]]])
    context, share = att(h, c)
    expected_ctx, expected_share = torch.zeros(2, 2, 2, 2), torch.zeros(2, 1, 2, 2)
    for b in range(2):
        u = [float(c[b, 0]) * 1.0, float(c[b, 0]) * 2.0]
        amount = {}
        for i in range(2):
            for j in range(2):
                e = [math.exp(float(h[b, k, i, j]) * u[k]) for k in range(2)]
                for k in range(2):
                    expected_ctx[b, k, i, j] = u[k] * e[k] / sum(e)
                amount[i, j] = sum(abs(float(expected_ctx[b, k, i, j])) for k in range(2))
        for (i, j), a in amount.items():
            expected_share[b, 0, i, j] = a / sum(amount.values())
    torch.testing.assert_close(context, expected_ctx)
    torch.testing.assert_close(share, expected_share)
    torch.testing.assert_close(share.sum(dim=(2, 3)), torch.ones(2, 1))
    assert not torch.allclose(share[0], share[1]), "the two images' maps should differ"


def test_glam_shapes_and_sentence_maps():
    G = build_generator(tiny_gcfg()).eval()
    z, sent, words, mask = _inputs()
    out = G(z, sent, words, mask, ca_noise=False)
    assert [tuple(x.shape) for x in out.images] == [(2, 3, 8, 8), (2, 3, 16, 16), (2, 3, 32, 32)]
    assert [tuple(a.shape) for a in out.attn] == [(2, 5, 8, 8), (2, 5, 16, 16)]
    assert [tuple(s.shape) for s in out.sent_attn] == [(2, 1, 8, 8), (2, 1, 16, 16)]
    for s in out.sent_attn:  # each map is a distribution over the regions
        assert torch.allclose(s.sum(dim=(2, 3)), torch.ones(2, 1), atol=1e-5) and bool((s >= 0).all())
    assert float(out.attn[0][0, 3:].detach().abs().max()) == 0.0  # padding words get no word attention
    names = set(dict(G.named_parameters()))
    assert {"h_net2.sent_att.linear.weight", "h_net2.sent_att.conv_sentence_vis.weight", "h_net2.conv.weight",
            "h_net2.att.conv_context.weight"} <= names
    # the AttnGAN generator keeps its output (no sentence maps)
    assert tuple(build_generator(tiny_gcfg("attngan"))(z, sent, words, mask).sent_attn) == ()


def test_glam_gradients_reach_both_attentions():
    G = build_generator(tiny_gcfg()).train()
    z, sent, words, mask = _inputs(B=4)
    out = G(z, sent, words, mask)
    (out.images[-1].square().mean() + out.images[1].square().mean()).backward()
    params = dict(G.named_parameters())
    for name in ("h_net2.sent_att.linear.weight", "h_net2.sent_att.conv_sentence_vis.weight",
                 "h_net3.sent_att.linear.weight", "h_net2.att.conv_context.weight", "h_net2.conv.weight",
                 "ca_net.fc.weight", "h_net1.fc.0.weight"):
        assert params[name].grad is not None and float(params[name].grad.abs().sum()) > 0, name


def test_glam_sentence_context_carries_the_sentence():
    """With the word attention's input fixed, changing only the CA vector's path through the sentence
    attention changes the images: the sentence context is used."""
    G = build_generator(tiny_gcfg()).eval()
    z, sent, words, mask = _inputs()
    a = G(z, sent, words, mask, ca_noise=False).images[-1]
    with torch.no_grad():
        for i in (2, 3):
            getattr(G, f"h_net{i}").sent_att.linear.weight.mul_(3.0)
    b = G(z, sent, words, mask, ca_noise=False).images[-1]
    assert float((a - b).abs().max().detach()) > 1e-4


# ------------------------------------------------------------------------------------------ STREAM
@pytest.fixture(scope="module")
def real_pairs(shapes_h5):
    from attngan_cli.data.dataset import TextImageDataset

    ds = TextImageDataset(shapes_h5, split="train", image_sizes=(32,), words=12, augment=False, caption_index=0)
    items = [ds[i] for i in range(8)]
    return (torch.stack([it["images"][0] for it in items]), torch.stack([torch.as_tensor(it["caption"]) for it in items]),
            torch.tensor([int(it["length"]) for it in items]))


@pytest.fixture(scope="module")
def trained_captioner(shapes_h5, real_pairs, tmp_path_factory):
    words = list(read_vocab(shapes_h5).words)
    return make_captioner(tmp_path_factory.mktemp("cap") / "captioner.pt", words, train_on=real_pairs)


@pytest.fixture(scope="module")
def random_captioner(shapes_h5, tmp_path_factory):
    return make_captioner(tmp_path_factory.mktemp("capr") / "captioner.pt", list(read_vocab(shapes_h5).words))


def test_stream_loss_falls_when_the_real_image_replaces_the_generated_one(trained_captioner, real_pairs, damsm_path):
    from attngan_cli.archs.stream import StreamLoss, load_captioner
    from attngan_cli.inference.pipeline import embed_captions, load_damsm

    images, caps, lens = real_pairs
    stream = StreamLoss(load_captioner(trained_captioner).captioner)
    damsm = load_damsm(damsm_path)
    cfg = make_train_config("shapes", {"generator.arch": "mirrorgan", "generator.stages": 2, "generator.ngf": 8})
    torch.manual_seed(0)
    G = build_generator(cfg.generator)
    words_emb, sent_emb, mask = embed_captions(damsm.text_encoder, caps, lens)
    fake = G(torch.randn(8, cfg.generator.z_dim), sent_emb, words_emb, mask).images[-1]  # (8, 3, 32, 32)
    on_fake = stream(fake, caps, lens)
    on_real = stream(images, caps, lens)
    assert float(on_real.detach()) < 0.25 * float(on_fake.detach())
    # gradients reach the generated image (and G), never the frozen captioner
    on_fake.backward()
    assert float(G.img_net2.img[0].weight.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in stream.captioner.parameters())
    stream.train()
    assert not stream.captioner.training  # BatchNorm keeps its statistics


def test_train_mirrorgan_with_stream_round_trips_and_resumes_exactly(shapes_h5, damsm_path, random_captioner, tmp_path):
    from attngan_cli.inference.pipeline import generate, load_generator
    from attngan_cli.training.gan import train_gan

    over = {"generator.arch": "mirrorgan", "captioner": str(random_captioner), "stream_weight": 20.0}
    settings = tiny_train_settings(shapes_h5, damsm_path, **over)
    cfg = settings.config
    full: dict[int, dict[str, float]] = {}
    final = train_gan(settings, RunDir.create(tmp_path, "a", "train"), callbacks=[lambda i: full.update({i.step: i.losses})])
    assert all("stream" in v and v["stream"] > 0 for v in full.values())
    stats = read_jsonl(final.parent / "stats.jsonl")
    assert "stream" in stats[0]
    ck = load_checkpoint(final, kind="gan")
    assert ck.config["generator"]["arch"] == "mirrorgan" and ck.config["captioner"] == str(random_captioner)
    assert ck.extra["captioner_path"] == str(random_captioner)
    # the checkpoint round-trips: the loaded EMA generator is the trained one, same images and maps
    bundle = load_generator(final)
    assert type(bundle.generator).__name__ == "MirrorGANGenerator"
    caps, lens = torch.tensor([[1, 2, 3, 0]]), torch.tensor([3])
    z = torch.randn(1, cfg.generator.z_dim)
    again = load_generator(final)
    a, b = generate(bundle, caps, lens, z), generate(again, caps, lens, z)
    assert torch.equal(a.images[-1], b.images[-1]) and len(a.sent_attn) == 1
    ema = {k: v for k, v in ck.state["generator_ema"].items()}
    assert all(torch.equal(ema[k], v) for k, v in bundle.generator.state_dict().items())
    # resume from epoch 1: the same losses, the stream term included
    resumed: dict[int, dict[str, float]] = {}
    train_gan(tiny_train_settings(shapes_h5, damsm_path, resume=final.parent / "checkpoint-1.pt", **over),
              RunDir.create(tmp_path, "b", "train"), callbacks=[lambda i: resumed.update({i.step: i.losses})])
    assert sorted(resumed) == [5, 6, 7, 8]
    for step in resumed:
        assert resumed[step]["stream"] == pytest.approx(full[step]["stream"], rel=1e-5)
        assert resumed[step]["g"] == pytest.approx(full[step]["g"], rel=1e-5)


def test_stream_weight_zero_trains_without_the_term(shapes_h5, damsm_path, random_captioner, tmp_path):
    from attngan_cli.training.gan import train_gan

    settings = tiny_train_settings(shapes_h5, damsm_path, **{"captioner": str(random_captioner), "stream_weight": 0.0,
                                                             "epochs": 1})
    seen: list[dict[str, float]] = []
    final = train_gan(settings, RunDir.create(tmp_path, "z", "train"), callbacks=[lambda i: seen.append(i.losses)])
    assert seen and all("stream" not in v for v in seen)
    assert load_checkpoint(final, kind="gan").extra["captioner_path"] == str(random_captioner)


# ------------------------------------------------------------------------------------------ settings and CLI
def test_resolve_train_checks_the_captioner_before_any_run(shapes_h5, damsm_path, tmp_path):
    from attngan_cli.training.resolve import resolve_train

    wrong_vocab = make_captioner(tmp_path / "other.pt", ["<end>", "a", "b"])
    with pytest.raises(ConfigMismatchError, match="vocabulary"):
        resolve_train(shapes_h5, encoders=damsm_path, captioner=wrong_vocab, overrides={"generator.stages": 2})
    words = list(read_vocab(shapes_h5).words)
    big = make_captioner(tmp_path / "big.pt", words, image_size=128)
    with pytest.raises(ConfigMismatchError, match="128 px"):
        resolve_train(shapes_h5, encoders=damsm_path, captioner=big, overrides={"generator.stages": 2})
    ok = resolve_train(shapes_h5, encoders=damsm_path, captioner=big, overrides={"generator.stages": 3})
    assert ok.config.captioner == str(big.resolve())


def _train_cli(shapes_h5, damsm_path, runs, *extra):
    return runner.invoke(app, ["train", str(shapes_h5), "-e", str(damsm_path), "--runs", str(runs), "--stages", "2",
                               "--ngf", "8", "--ndf", "8", "-b", "16", "--max-steps", "2", "--sample-every", "0",
                               "--device", "cpu", "--quiet", "--no-tensorboard", *extra])


def test_train_cli_flags(shapes_h5, damsm_path, random_captioner, tmp_path):
    runs = tmp_path / "runs"
    res = _train_cli(shapes_h5, damsm_path, runs, "--stream-weight", "5")
    assert res.exit_code == 1 and "--captioner" in res.output and not runs.exists()
    res = _train_cli(shapes_h5, damsm_path, runs, "--sentence-attention", "--arch", "attngan")
    assert res.exit_code == 1 and "--arch mirrorgan" in res.output and not runs.exists()
    res = _train_cli(shapes_h5, damsm_path, runs, "--sentence-attention", "--captioner", str(random_captioner),
                     "--stream-weight", "5")
    assert res.exit_code == 0, res.output
    cfg = json.loads((sorted(runs.iterdir())[0] / "config.json").read_text())
    assert cfg["generator"]["arch"] == "mirrorgan" and cfg["stream_weight"] == 5.0
    assert cfg["captioner"] == str(random_captioner.resolve())


# ------------------------------------------------------------------------------------------ sample and attend
@pytest.fixture(scope="module")
def mirror_run(shapes_h5, damsm_path, trained_captioner, tmp_path_factory):
    """A 4-step MirrorGAN run (GLAM + STREAM) on the shapes fixture."""
    from attngan_cli.training.gan import train_gan

    settings = tiny_train_settings(shapes_h5, damsm_path, **{"generator.arch": "mirrorgan",
                                                             "captioner": str(trained_captioner), "epochs": 1})
    return train_gan(settings, RunDir.create(tmp_path_factory.mktemp("mrun"), "m", "train")).parent


def test_sample_caption_back_prints_the_captioners_reading(mirror_run, random_captioner, tmp_path):
    """--captioner replaces the run's captioner (a random one: it reads noise images differently, where the
    run's, trained on 8 real images, says the same of every 4-step GAN image)."""
    from attngan_cli.archs.stream import caption_back, load_captioner

    out = tmp_path / "s"
    res = runner.invoke(app, ["sample", "a red circle on a white background", "-c", str(mirror_run), "-o", str(out),
                              "--n", "2", "--caption-back", "--captioner", str(random_captioner), "--device", "cpu",
                              "-q"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if "\t" in line]
    assert len(lines) == 2
    finals = sorted(out.glob("c00000-s*-32.png"))
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in finals]
    import numpy as np
    from PIL import Image

    reader = load_captioner(random_captioner)
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in finals])
    expected = reader.describe(torch.from_numpy(pixels).permute(0, 3, 1, 2) / 127.5 - 1.0)
    assert caption_back(reader, finals) == expected
    assert [line.split("\t")[1] for line in lines] == expected
    records = read_jsonl(out / "captions_back.jsonl")
    assert [r["caption_back"] for r in records] == expected


def test_caption_back_reads_real_images_from_png(trained_captioner, real_pairs, tmp_path):
    """The captioner trained on 8 real images reads their PNG files back as their captions."""
    from attngan_cli.archs.stream import caption_back, load_captioner
    from attngan_cli.viz.grid import save_png, to_uint8

    images, caps, lens = real_pairs
    paths = [save_png(arr, tmp_path / f"{i}.png") for i, arr in enumerate(to_uint8(images))]
    reader = load_captioner(trained_captioner)
    read = caption_back(reader, paths)
    truth = [reader.vocab.decode(c[: int(n)].tolist()) for c, n in zip(caps, lens, strict=True)]
    assert sum(a == b for a, b in zip(read, truth, strict=True)) >= 6


def test_sample_caption_back_needs_a_captioner(tmp_path):
    from _sample_fixtures import make_generator_checkpoint

    g = make_generator_checkpoint(tmp_path / "G.pt", stages=2)
    res = runner.invoke(app, ["sample", "a red bird", "-c", str(g), "-o", str(tmp_path / "o"), "--caption-back",
                              "--device", "cpu", "-q"])
    assert res.exit_code == 1 and "--captioner" in res.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_attend_draws_the_sentence_attention(mirror_run, tmp_path):
    import numpy as np
    from PIL import Image

    out = tmp_path / "fig.png"
    res = runner.invoke(app, ["attend", "a red circle on a white background", "-c", str(mirror_run), "-o", str(out),
                              "--top", "3", "--word-maps", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.with_suffix(".json").read_text())
    assert [s["stage"] for s in rec["sentence_attention"]] == [2]
    assert rec["sentence_attention"][0]["regions"] == [16, 16]
    assert rec["sentence_attention"][0]["peak_share"] >= rec["sentence_attention"][0]["uniform_share"]
    npz = np.load(tmp_path / "fig_maps" / "maps.npz")
    assert npz["sentence1"].shape == (16, 16) and abs(float(npz["sentence1"].sum()) - 1.0) < 1e-4
    # the figure has a last row for the sentence maps: one row more than the same maps without them
    from attngan_cli.apps.sample import caption_batch, encode_caption, item_noise
    from attngan_cli.inference.pipeline import generate, load_generator
    from attngan_cli.viz.attention import attention_figure

    bundle = load_generator(mirror_run)
    cap = encode_caption(bundle.vocab, "a red circle on a white background", "c")
    z, eps = item_noise(0, 0, 0, bundle.config.generator.z_dim, bundle.config.generator.condition_dim)
    g = generate(bundle, *caption_batch([cap]), z[None], eps[None])
    stages = [im[0] for im in g.images]
    maps = [a[0, : len(cap.ids)] for a in g.attn]
    with_s = attention_figure(stages, maps, cap.words, top=3, caption=" ".join(cap.words),
                              sentence_maps=[s[0, 0] for s in g.sent_attn]).image
    without = attention_figure(stages, maps, cap.words, top=3, caption=" ".join(cap.words)).image
    assert Image.open(out).size == with_s.size and with_s.size[1] > without.size[1]
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(with_s))


def test_mirrorgan_presets(shapes_h5, damsm_path):
    from attngan_cli.archs.registry import new_train_config
    from attngan_cli.core.errors import InputError
    from attngan_cli.training.resolve import preset_for_source, resolve_train

    bird = new_train_config("mirrorgan-bird")
    assert (bird.generator.arch, bird.stream_weight, bird.lambda_damsm, bird.batch_size, bird.epochs) == (
        "mirrorgan", 20.0, 0.0, 12, 650)
    assert (bird.generator.ngf, bird.discriminator.ndf, bird.generator.r_num, bird.words) == (32, 64, 2, 18)
    coco = new_train_config("mirrorgan-coco")
    assert (coco.generator.arch, coco.stream_weight, coco.generator.ngf, coco.words) == ("mirrorgan", 20.0, 48, 12)
    assert preset_for_source("cub") == "bird" and preset_for_source("coco") == "coco"  # never chosen by the data
    with pytest.raises(InputError, match="--captioner"):
        resolve_train(shapes_h5, encoders=damsm_path, preset="mirrorgan-bird")
    ok = resolve_train(shapes_h5, encoders=damsm_path, preset="mirrorgan-bird", overrides={"stream_weight": 0.0})
    assert ok.config.generator.arch == "mirrorgan"


def test_the_stream_term_reaches_the_generator_in_a_training_step(shapes_h5, damsm_path, random_captioner):
    from attngan_cli.archs.attngan.loss import AttnGANLoss, DiscriminatorLoss, GeneratorLoss
    from attngan_cli.archs.stream import StreamLoss, StreamTerm, load_captioner
    from attngan_cli.inference.pipeline import load_damsm
    from attngan_cli.training.gan import build_models, open_datasets, train_step

    cfg = tiny_train_config(shapes_h5, damsm_path, **{"generator.arch": "mirrorgan", "captioner": str(random_captioner),
                                                      "lambda_damsm": 0.0, "stream_weight": 20.0})
    damsm = load_damsm(damsm_path)
    train_ds, _ = open_datasets(cfg)
    batch = torch.utils.data.default_collate([train_ds[i] for i in range(cfg.batch_size)])
    grads = []
    for stream in (None, StreamLoss(load_captioner(random_captioner).captioner)):
        torch.manual_seed(0)
        m = build_models(cfg, torch.device("cpu"), damsm.text_encoder, None)
        extra = [StreamTerm(stream, cfg.stream_weight)] if stream is not None else []
        loss = AttnGANLoss(DiscriminatorLoss(), GeneratorLoss(0.0, cfg.kl_weight), extra)
        logs = train_step(m, batch, cfg, torch.device("cpu"), loss)
        assert ("stream" in logs) == (stream is not None)
        grads.append(m.G.img_net2.img[0].weight.grad.clone())
    assert float((grads[0] - grads[1]).abs().max()) > 1e-6
