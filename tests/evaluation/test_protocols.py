"""Named evaluation protocols, torchvision-Inception FID, IS*, DM-GAN R-precision and CLIP metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config.schema import (
    GeneratorConfig,
    ImageEncoderConfig,
    PretrainConfig,
    TextEncoderConfig,
    TrainConfig,
)
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.errors import InputError
from attngan_cli.core.fileio import atomic_write_json
from attngan_cli.evaluation import protocols as P
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

runner = CliRunner()
FIXTURE = Path(__file__).parents[1] / "fixtures" / "protocols" / "official_fid.npz"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A 10-test-image shapes file, a DAMSM, a generator run, random TF-Inception, torchvision-Inception (the
    seed of the official-code fixture) and tiny CLIP weights."""
    from attngan_cli.archs.attngan.generator import Generator
    from attngan_cli.data.h5 import read_info
    from attngan_cli.data.shapes import make_shapes
    from attngan_cli.evaluation.clip import write_random_clip
    from attngan_cli.evaluation.features import INCEPTION_FILE, write_random_inception_weights
    from attngan_cli.evaluation.tv_inception import write_random_torchvision_inception
    from attngan_cli.networks.image_encoder import ImageEncoder
    from attngan_cli.networks.text_encoder import TextEncoder

    root = tmp_path_factory.mktemp("protocols")
    data = make_shapes(root / "shapes.h5", n_train=4, n_test=10, image_size=40, seed=1)
    words = list(read_info(data).vocab.words)
    torch.manual_seed(0)
    text_cfg = TextEncoderConfig(vocab_size=len(words), word_dim=16, words=12)
    pcfg = PretrainConfig(preset="shapes", text=text_cfg, image=ImageEncoderConfig(backbone="compact", image_size=32, width=4))
    damsm = root / "00000-shapes-pretrain" / "final.pt"
    text, image = TextEncoder(text_cfg), ImageEncoder(pcfg.image)
    save_checkpoint(Checkpoint(kind="damsm", config=to_dict(pcfg), vocab=words,
                               state={"text_encoder": text.state_dict(), "image_encoder": image.state_dict()}), damsm)
    cfg = TrainConfig(preset="shapes", dataset=str(data), encoders=str(damsm.parent), words=12,
                      generator=GeneratorConfig(stages=2, base_size=16, ngf=4, r_num=1))
    run = root / "00001-shapes-train"
    run.mkdir()
    atomic_write_json(run / "config.json", to_dict(cfg))
    save_checkpoint(Checkpoint(kind="generator", config=to_dict(cfg), vocab=words,
                               state={"generator": Generator(cfg.generator).state_dict(),
                                      "text_encoder": text.state_dict()},
                               extra={"damsm_config": to_dict(text_cfg), "damsm_path": str(damsm)}),
                    run / "final.pt")
    return {"root": root, "data": data, "run": run, "damsm": damsm,
            "inception": write_random_inception_weights(root / INCEPTION_FILE),
            "tv": write_random_torchvision_inception(root / "inception_v3_google-0cc3c7bd.pth", seed=7),
            "clip": write_random_clip(root / "clip", seed=0)}


def _cheap_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Stands in for fid.frechet_distance (2048 x 2048 sqrtm: 10-60 s here); only plumbing is under test."""
    d = mu1 - mu2
    return float(d @ d + abs(sigma1 - sigma2).sum())


# ------------------------------------------------------------------------------------------ protocols
def test_protocols_resolve_to_their_sources_values_and_options_override_them():
    a = P.resolve_settings(P.get_protocol("attngan"), "cub", 2933, {})
    assert a == {"num_samples": 30000, "fid_extractor": "tf-inception", "fid_preprocess": "tf-bilinear",
                 "fid_reference": "test", "reference_passes": 1, "truncation": None, "image_size": 0, "is_splits": 10,
                 "is_temperature": 1.0, "rp_wrong": 99, "rp_folds": 10, "rp_ties": "miss",
                 "rp_fold_style": "consecutive", "clip_rp_wrong": 99, "clip_rp_folds": 10}
    df = P.get_protocol("dfgan")
    cub = P.resolve_settings(df, "cub", 2933, {})
    assert cub["num_samples"] == 10 * 2912  # 10 passes, each cut to a multiple of 32 (drop_last)
    assert cub["truncation"] == 0.88 and cub["fid_extractor"] == "torchvision-inception"
    assert cub["fid_preprocess"] == "dfgan" and cub["fid_reference"] == "test-augmented"
    coco = P.resolve_settings(df, "coco", 40504, {})
    assert coco["num_samples"] == 40480 and coco["fid_reference"] == "test"  # COCO: the plain test set (#18)
    over = P.resolve_settings(df, "cub", 2933, {"num_samples": 12, "truncation": 0.0, "rp_wrong": None})
    assert over["num_samples"] == 12 and over["truncation"] == 0.0 and over["rp_wrong"] == 99
    tise = P.get_protocol("tise")
    assert P.resolve_settings(tise, "cub", 2933, {})["is_temperature"] == 0.5980541706085205
    assert P.resolve_settings(tise, "coco", 40504, {})["is_temperature"] == 0.9091363549232483
    assert P.default_metrics(tise, "coco") == ["is", "fid", "clip-rprecision"]
    assert P.default_metrics(tise, "cub") == ["is", "fid", "rprecision"]
    dm = P.resolve_settings(P.get_protocol("dmgan"), "cub", 2933, {})
    assert (dm["fid_preprocess"], dm["rp_ties"], dm["rp_fold_style"], dm["num_samples"]) == ("dmgan", "hit", "dmgan", 30000)
    with pytest.raises(InputError, match="known protocols: attngan, dfgan, dmgan, tise"):
        P.get_protocol("stylegan")
    for p in P.PROTOCOLS.values():  # every protocol names its sources
        assert p.sources and all(":" in v for v in p.sources.values())
    with pytest.raises(TypeError):
        P.PROTOCOLS["dfgan"].sources["x"] = "y"  # protocols are data, not settings to mutate


def test_truncated_noise_is_dfgans():
    """DF-GAN's code/lib/utils.py::truncated_noise: truncnorm.rvs(-2, 2, RandomState(seed)) * truncation."""
    from scipy.stats import truncnorm

    from attngan_cli.evaluation.evaluate import draw_noise

    z = draw_noise(6, 100, seed=3, truncation=0.88)
    ref = truncnorm.rvs(-2, 2, size=(6, 100), random_state=np.random.RandomState(3)).astype(np.float32) * 0.88
    assert torch.equal(z, torch.from_numpy(ref.astype(np.float32)))
    assert float(z.abs().max()) <= 2 * 0.88 + 1e-6
    assert torch.equal(draw_noise(4, 8, 0, 0.0), torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))


# ------------------------------------------------------------------------------------------ FID exactness
def _official():
    z = np.load(FIXTURE)
    return {k: z[k] for k in z.files}


def _our_features(path, preprocess, fake, real_u8):
    from attngan_cli.evaluation.tv_inception import TorchvisionInceptionFeatures

    ext = TorchvisionInceptionFeatures(path, preprocess)
    real = torch.from_numpy(real_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # as the dataset loads it
    if preprocess == "dmgan":  # generated images truncated to uint8 as saved; real ones exactly their stored bytes
        return ext(torch.from_numpy(fake))["pool"].numpy(), ext(real, quantize="round")["pool"].numpy()
    both = ext(torch.cat([torch.from_numpy(fake), real]))["pool"].numpy()
    return both[: len(fake)], both[len(fake):]


def test_torchvision_fid_features_equal_the_official_dmgan_and_dfgan_code(env):
    """The fixture holds the features DM-GAN's eval/FID (PNG files, fid_score.py's transforms, its
    InceptionV3) and DF-GAN's calculate_fid steps (its norm, its InceptionV3) computed for fixed images with
    the seeded random torchvision weights written here (see tests/fixtures/protocols/README.md)."""
    off = _official()
    state = torch.load(env["tv"], map_location="cpu", weights_only=True)
    assert float(state["fc.weight"].double().sum()) == pytest.approx(float(off["fc_sum"]), rel=1e-12)
    for pre in ("dmgan", "dfgan"):
        fake, real = _our_features(env["tv"], pre, off["fake"][:2], off["real"][:1])
        np.testing.assert_allclose(fake, off[f"{pre}_fake"][:2], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(real, off[f"{pre}_real"][:1], rtol=1e-4, atol=1e-5)
    # the two preprocessings differ (uint8 truncation + PIL resize vs float tensor resize)
    assert not np.allclose(off["dmgan_fake"], off["dfgan_fake"], rtol=1e-6, atol=0)


@pytest.mark.slow
def test_torchvision_fid_equals_the_official_fid_numbers(env):
    from attngan_cli.evaluation.fid import fid_from_features

    off = _official()
    for pre in ("dmgan", "dfgan"):
        fake, real = _our_features(env["tv"], pre, off["fake"], off["real"])
        np.testing.assert_allclose(fake, off[f"{pre}_fake"], rtol=1e-4, atol=1e-5)
        assert fid_from_features(real, fake) == pytest.approx(float(off[f"{pre}_fid"]), rel=1e-3)


def test_torchvision_weights_are_checked_with_clear_messages(env, tmp_path):
    from attngan_cli.evaluation.tv_inception import check_torchvision_inception

    with pytest.raises(InputError, match="--torchvision-inception.*inception_v3_google-0cc3c7bd.pth"):
        check_torchvision_inception(None)
    with pytest.raises(InputError, match="looks like the TF-FID file"):
        check_torchvision_inception(env["inception"])
    with pytest.raises(InputError, match="does not exist"):
        check_torchvision_inception(tmp_path / "none.pth")
    assert check_torchvision_inception(env["root"]) == env["tv"]  # a folder holding the file


# ------------------------------------------------------------------------------------------ R-precision, IS*
def test_dmgan_rprecision_follows_trainer_py():
    """trainer.py l.470-491: hit when argmax over [true, 99 wrong] is 0 (a tie is a hit: the first maximum),
    R shuffled, fold i = R[i*m:(i+1)*m-1], mean and np.std of the fold means."""
    from attngan_cli.evaluation.retrieval import r_precision_dmgan, r_precision_hits

    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    true = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    wrong = torch.tensor([[[0.0, 1.0]], [[2.0, 0.0]], [[0.0, 1.0]]])  # hit, tie, miss
    assert r_precision_hits(img, true, wrong, ties="hit").tolist() == [True, True, False]
    assert r_precision_hits(img, true, wrong, ties="miss").tolist() == [True, False, False]
    hits = (np.arange(40) % 3 == 0).astype(np.float64)
    mean, std = r_precision_dmgan(torch.from_numpy(hits), folds=4, seed=5)
    r = hits[np.random.default_rng([5, 3000]).permutation(40)]
    folds = np.array([np.average(r[i * 10:(i + 1) * 10 - 1]) for i in range(4)])  # trainer.py's slices
    assert (mean, std) == (pytest.approx(np.average(folds)), pytest.approx(np.std(folds)))


def test_is_star_divides_the_logits_by_the_temperature():
    from types import SimpleNamespace

    from attngan_cli.evaluation.inception import InceptionScoreMetric, inception_score

    logits = torch.randn(20, 7, generator=torch.Generator().manual_seed(0)) * 3
    ctx = SimpleNamespace(num_samples=20, options=SimpleNamespace(is_splits=2), settings={"is_temperature": 0.598})
    m = InceptionScoreMetric(ctx)
    m.update(SimpleNamespace(inception=lambda: {"logits": logits}))
    out = m.compute()
    ref = inception_score(logits / 0.598, splits=2)
    assert (out["mean"], out["std"]) == (pytest.approx(ref[0]), pytest.approx(ref[1]))
    assert out["temperature"] == 0.598 and out["mean"] != pytest.approx(inception_score(logits, 2)[0])


# ------------------------------------------------------------------------------------------ CLIP
def test_clipscore_equals_torchmetrics_on_the_same_weights_and_images(env, tmp_path):
    """Two folders: the tiny CLIP and the same with its image projection negated, so the mean cosine is
    positive in one and negative in the other (torchmetrics clamps the mean at 0): both must agree."""
    pytest.importorskip("torchmetrics")
    import shutil

    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    from attngan_cli.evaluation.clip import CLIPScoreMetric, load_clip

    flipped = tmp_path / "flipped"
    shutil.copytree(env["clip"], flipped)
    m = CLIPModel.from_pretrained(str(env["clip"]))
    with torch.no_grad():
        m.visual_projection.weight.neg_()
    m.save_pretrained(str(flipped))
    images = torch.randint(0, 256, (5, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    texts = ["a red square", "the blue circle at the top", "a small green triangle", "big", "yellow star on the left"]
    scores = []
    for folder in (env["clip"], flipped):
        bundle = load_clip(folder)
        tm = CLIPScore(model_name_or_path=lambda f=folder: (CLIPModel.from_pretrained(str(f)),
                                                             CLIPProcessor.from_pretrained(str(f))))
        tm.update(images, texts)
        expected = float(tm.compute())

        class Ctx:
            def clip_caption_embeddings(self, b=bundle):
                return b.text_embeddings(texts)

        class Batch:
            caption_rows = np.arange(5)

            def clip_image(self, b=bundle):
                return b.image_embeddings(images)

        metric = CLIPScoreMetric(Ctx())
        metric.update(Batch())
        out = metric.compute()
        assert out["score"] == pytest.approx(expected, rel=1e-5, abs=1e-4)
        assert out["scale"] == 100.0 and out["score"] == pytest.approx(max(100 * out["cosine"], 0.0))
        scores.append(out)
    assert scores[0]["cosine"] == pytest.approx(-scores[1]["cosine"], rel=1e-4)
    assert max(s["score"] for s in scores) > 0.1  # one of the two is not clamped


def test_clip_rprecision_is_tises_argmax_over_true_and_mismatched_captions(env):
    """TISE RP_coco.py: logits_per_image over [true] + mismatched, softmax, argmax == 0."""
    from transformers import CLIPModel, CLIPProcessor

    from attngan_cli.evaluation.clip import clip_rprecision_bins, load_clip
    from attngan_cli.evaluation.retrieval import r_precision_hits

    bundle = load_clip(env["clip"])
    texts = ["a red square", "the blue circle", "a green triangle", "big yellow star", "tiny dot", "a cross"]
    images = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    wrong_rows = np.array([[1, 2, 3], [0, 4, 5], [0, 1, 3], [5, 4, 2]])
    table = bundle.text_embeddings(texts)
    hits = r_precision_hits(bundle.image_embeddings(images), table[:4], table[torch.as_tensor(wrong_rows)], ties="hit")
    model, proc = CLIPModel.from_pretrained(str(env["clip"])), CLIPProcessor.from_pretrained(str(env["clip"]))
    ref = []
    for i in range(4):
        caps = [texts[i]] + [texts[j] for j in wrong_rows[i]]
        inp = proc(text=caps, images=[images[i]], return_tensors="pt", padding=True)
        with torch.no_grad():
            probs = model(**inp).logits_per_image.softmax(dim=-1)[0]
        ref.append(int(probs.argmax()) == 0)
    assert hits.tolist() == ref
    mean, std = clip_rprecision_bins(torch.tensor([1, 0, 1, 1, 0, 0, 1], dtype=torch.bool), bins=3, seed=0)
    assert 0 <= mean <= 1 and std >= 0


def test_clip_errors_name_the_flag(tmp_path):
    from attngan_cli.evaluation.clip import load_clip

    with pytest.raises(InputError, match="no --clip given"):
        load_clip(None)
    with pytest.raises(InputError, match="has no config.json"):
        load_clip(tmp_path)


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture()
def cheap_fid(monkeypatch):
    """The networks' cost is covered by the exactness tests: here the FID sqrtm and the torchvision network
    body are replaced by cheap stand-ins (the preprocessing still runs)."""
    from attngan_cli.evaluation import tv_inception

    monkeypatch.setattr("attngan_cli.evaluation.fid.frechet_distance", _cheap_frechet)
    monkeypatch.setattr(tv_inception.Pool3, "forward",
                        lambda self, x: torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)).flatten(1).repeat(1, 683)[:, :2048])


def _eval(env, *args):
    base = ["eval", "-c", str(env["run"]), "--data", str(env["data"]), "--device", "cpu", "--json", "--quiet",
            "--batch-size", "4"]
    res = runner.invoke(app, [*base, *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_eval_protocol_dfgan_end_to_end(env, cheap_fid):
    rec = _eval(env, "--protocol", "dfgan", "-n", "6", "--reference-passes", "2",
                "--torchvision-inception", str(env["tv"]))
    assert rec["protocol"] == "dfgan" and set(rec["metrics"]) == {"fid"}
    s = rec["settings"]
    assert s["truncation"] == 0.88 and s["fid_reference"] == "test-augmented" and s["reference_passes"] == 2
    assert s["fid_extractor"] == "torchvision-inception" and s["fid_preprocess"] == "dfgan"
    assert s["torchvision_inception_sha256"] == __import__("hashlib").sha256(env["tv"].read_bytes()).hexdigest()
    assert rec["num_samples"] == 6 and sorted(rec["overridden"]) == ["num_samples", "reference_passes"]
    assert rec["metrics"]["fid"]["real_images"] == 20  # 2 augmented copies of the 10 test images
    # without -n: the protocol's count, 10 passes over the 10 test images (fewer than a batch of 32: all kept)
    ds = P.resolve_settings(P.get_protocol("dfgan"), "shapes", 10, {})
    assert ds["num_samples"] == 100


def test_eval_protocols_dmgan_and_tise_end_to_end(env, cheap_fid):
    dm = _eval(env, "--protocol", "dmgan", "-n", "10", "--torchvision-inception", str(env["tv"]))
    assert set(dm["metrics"]) == {"rprecision", "fid"} and dm["settings"]["rp_ties"] == "hit"
    assert dm["settings"]["fid_preprocess"] == "dmgan" and dm["metrics"]["fid"]["real_images"] == 10
    small = _eval(env, "--protocol", "dmgan", "-n", "10", "-m", "fid", "--image-size", "24",
                  "--torchvision-inception", str(env["tv"]))
    assert small["image_size"] == 24 and small["settings"]["image_size"] == 24
    assert small["metrics"]["fid"]["fid"] != dm["metrics"]["fid"]["fid"]
    ti = _eval(env, "--protocol", "tise", "-n", "10", "--torchvision-inception", str(env["tv"]),
               "--inception-weights", str(env["inception"]), "-m", "is,fid,rprecision,clip-rprecision,clipscore",
               "--clip", str(env["clip"]))
    assert ti["protocol"] == "tise" and ti["metrics"]["is"]["temperature"] == pytest.approx(0.9091363549232483)
    assert set(ti["metrics"]) == {"is", "fid", "rprecision", "clip-rprecision", "clipscore"}
    s = ti["settings"]
    assert s["clipscore_scale"] == 100.0 and s["clipscore_clamp"] == "max(mean, 0)" and "patch 8" in s["clip_backbone"]
    assert len(s["clip_sha256"]) == 64 and s["clip_rp_wrong"] == 99
    assert 0 <= ti["metrics"]["clip-rprecision"]["mean"] <= 1


def test_eval_protocol_attngan_is_todays(env):
    a = _eval(env, "-m", "rprecision", "-n", "10")
    b = _eval(env, "-m", "rprecision", "-n", "10", "--protocol", "attngan")
    assert a["metrics"] == b["metrics"] and a["protocol"] == "attngan" and a["settings"]["rp_ties"] == "miss"
    assert a["settings"]["truncation"] == 0.0 and a["overridden"] == ["num_samples"]


def test_eval_protocol_errors_name_the_flag(env):
    base = ["eval", "-c", str(env["run"]), "--data", str(env["data"]), "--device", "cpu", "-n", "10"]
    res = runner.invoke(app, [*base, "--protocol", "dfgan"])
    assert res.exit_code == 1 and "--torchvision-inception" in res.output
    res = runner.invoke(app, [*base, "--protocol", "dmgn"])
    assert res.exit_code == 1 and "known protocols" in res.output
    res = runner.invoke(app, [*base, "-m", "clipscore"])
    assert res.exit_code == 1 and "--clip" in res.output
    res = runner.invoke(app, [*base, "-m", "fid", "--fid-extractor", "tf-inception", "--fid-preprocess", "dmgan"])
    assert res.exit_code == 1 and "--fid-preprocess" in res.output
    res = runner.invoke(app, [*base, "-m", "fid", "--truncation", "-1"])
    assert res.exit_code == 1 and "--truncation" in res.output


class _Node(torch.nn.Module):
    """A module of the TorchScript archive in the OpenAI CLIP test: holds parameters, runs nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _hf_to_openai(hf: dict[str, torch.Tensor], n_text: int, n_vision: int) -> dict[str, torch.Tensor]:
    """The inverse of clip_openai.openai_to_hf, written out here: OpenAI's names, packed in_proj, proj transposed."""
    o = {"logit_scale": hf["logit_scale"], "text_projection": hf["text_projection.weight"].t(),
         "visual.proj": hf["visual_projection.weight"].t(),
         "token_embedding.weight": hf["text_model.embeddings.token_embedding.weight"],
         "positional_embedding": hf["text_model.embeddings.position_embedding.weight"],
         "ln_final.weight": hf["text_model.final_layer_norm.weight"], "ln_final.bias": hf["text_model.final_layer_norm.bias"],
         "visual.class_embedding": hf["vision_model.embeddings.class_embedding"],
         "visual.conv1.weight": hf["vision_model.embeddings.patch_embedding.weight"],
         "visual.positional_embedding": hf["vision_model.embeddings.position_embedding.weight"]}
    for a, b in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for w in ("weight", "bias"):
            o[f"visual.{a}.{w}"] = hf[f"vision_model.{b}.{w}"]
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
             "attn.out_proj": "self_attn.out_proj"}
    for src, dst, n in (("transformer.resblocks.", "text_model.encoder.layers.", n_text),
                        ("visual.transformer.resblocks.", "vision_model.encoder.layers.", n_vision)):
        for i in range(n):
            for w in ("weight", "bias"):
                o[f"{src}{i}.attn.in_proj_{w}"] = torch.cat([hf[f"{dst}{i}.self_attn.{p}_proj.{w}"] for p in "qkv"])
                for a, b in names.items():
                    o[f"{src}{i}.{a}.{w}"] = hf[f"{dst}{i}.{b}.{w}"]
    return {k: v.detach().clone().half() for k, v in o.items()}  # OpenAI ships fp16 weights


def test_openai_clip_archive_is_read_without_running_it_and_maps_to_the_same_model(env, tmp_path):
    """A TorchScript archive with OpenAI's parameter names (fp16, as ViT-B-32.pt), made from the tiny HF
    CLIP, gives the same embeddings as the HF folder (to fp16 precision); a pickle that names any other
    global is refused."""
    import shutil

    from transformers import CLIPModel

    from attngan_cli.evaluation.clip import load_clip
    from attngan_cli.evaluation.clip_openai import read_torchscript_state

    hf = CLIPModel.from_pretrained(str(env["clip"]))
    openai = _hf_to_openai(hf.state_dict(), hf.config.text_config.num_hidden_layers,
                           hf.config.vision_config.num_hidden_layers)

    root = _Node()
    for name, t in openai.items():
        *path, leaf = name.split(".")
        mod = root
        for p in path:
            if not hasattr(mod, p):
                mod.add_module(p, _Node())
            mod = getattr(mod, p)
        mod.register_parameter(leaf, torch.nn.Parameter(t, requires_grad=False))
    archive = tmp_path / "ViT-tiny.pt"
    torch.jit.save(torch.jit.script(root), str(archive))
    got = read_torchscript_state(archive)
    assert set(got) == set(openai) and all(torch.equal(got[k], openai[k]) for k in openai)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(env["clip"] / f, tmp_path / f)
    a, b = load_clip(env["clip"]), load_clip(archive)
    images = torch.randint(0, 256, (3, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    texts = ["a red square", "the blue circle at the top", "green"]
    torch.testing.assert_close(b.image_embeddings(images), a.image_embeddings(images), rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(b.text_embeddings(texts), a.text_embeddings(texts), rtol=2e-2, atol=2e-3)
    assert b.settings()["clip_sha256"] == __import__("hashlib").sha256(archive.read_bytes()).hexdigest()

    import pickle
    import zipfile

    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps(__import__("os").getcwd.__self__.getcwd, protocol=2))
    with pytest.raises(InputError, match="not allowed"):
        read_torchscript_state(evil)
    with pytest.raises(InputError, match="bpe_simple_vocab_16e6.txt.gz"):
        shutil.copy(archive, tmp_path / "alone.pt")
        (tmp_path / "vocab.json").unlink()
        load_clip(tmp_path / "alone.pt")
