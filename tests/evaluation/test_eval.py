"""`attngan eval` end to end on a tiny random generator, tiny DAMSM and random Inception weights."""

from __future__ import annotations

import json
from pathlib import Path

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
from attngan_cli.core.fileio import atomic_write_json, read_jsonl
from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 10-test-image shapes file, a DAMSM checkpoint, a generator in a run dir, random Inception weights."""
    from attngan_cli.archs.attngan.generator import Generator
    from attngan_cli.data.h5 import read_info
    from attngan_cli.data.shapes import make_shapes
    from attngan_cli.evaluation.features import INCEPTION_FILE, write_random_inception_weights
    from attngan_cli.networks.image_encoder import ImageEncoder
    from attngan_cli.networks.text_encoder import TextEncoder

    root = tmp_path_factory.mktemp("eval")
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
    gen = Generator(cfg.generator)
    save_checkpoint(Checkpoint(kind="generator", config=to_dict(cfg), vocab=words,
                               state={"generator": gen.state_dict(), "text_encoder": text.state_dict()},
                               extra={"damsm_config": to_dict(text_cfg), "damsm_path": str(damsm)}),
                    run / "final.pt")
    inception = write_random_inception_weights(root / INCEPTION_FILE)
    return {"root": root, "data": data, "run": run, "damsm": damsm, "inception": inception}


def _cheap_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Stands in for fid.frechet_distance (checked in test_metrics.py), whose matrix square root of
    2048 x 2048 takes 10-60 s on this 2-core machine: here only the plumbing is under test."""
    assert mu1.shape == mu2.shape == (2048,) and sigma1.shape == sigma2.shape == (2048, 2048)
    d = mu1 - mu2
    return float(d @ d + abs(sigma1 - sigma2).sum())


@pytest.mark.parametrize("exact_sqrtm", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_eval_all_metrics_end_to_end(setup, tmp_path, monkeypatch, exact_sqrtm):
    if not exact_sqrtm:
        monkeypatch.setattr("attngan_cli.evaluation.fid.frechet_distance", _cheap_frechet)
    out_dir = tmp_path / "images"
    args = ["eval", "-c", str(setup["run"]), "--data", str(setup["data"]), "--metric", "rprecision,is",
            "-m", "fid,attributes", "--num-samples", "10", "--batch-size", "4", "--inception-weights",
            str(setup["inception"]), "--save-images", str(out_dir), "--json", "--device", "cpu", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    m = rec["metrics"]
    assert set(m) == {"rprecision", "is", "fid", "attributes"}
    assert 0.0 <= m["rprecision"]["mean"] <= 1.0 and m["rprecision"]["std"] >= 0.0
    assert m["is"]["mean"] >= 1.0 - 1e-9
    assert m["fid"]["fid"] > 0.0 and m["fid"]["real_images"] == 10
    a = m["attributes"]
    assert {"bg_color", "color", "shape", "position", "mean"} <= set(a)
    assert {f"{k}_n" for k in ("bg_color", "color", "shape", "position", "size")} <= set(a)
    assert a["color_n"] == 10 and 0 <= a["size_n"] <= 10 and ("size" in a) == (a["size_n"] > 0)
    assert rec["num_samples"] == 10 and rec["image_size"] == 32
    # a line in the run's metrics.jsonl
    lines = read_jsonl(setup["run"] / "metrics.jsonl")
    assert lines[-1]["metrics"] == m and lines[-1]["checkpoint"].endswith("final.pt")
    # images and their index
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 10 and pngs[0].name == "000000.png"
    index = read_jsonl(out_dir / "index.jsonl")
    assert len(index) == 10 and index[0]["file"] == "000000.png" and index[0]["caption"]
    # the real FID statistics are cached beside the dataset
    caches = list(Path(setup["data"]).parent.glob("shapes.fid-*.npz"))
    assert len(caches) == 1
    assert rec["data"] == str(setup["data"])


def test_eval_is_reproducible_and_batch_size_free_without_inception(setup, tmp_path):
    """z, the caption words, the conditioning-augmentation noise and the mismatched captions are drawn
    per image up front: the same seed gives the same numbers and the same images at any batch size."""
    import numpy as np
    from PIL import Image

    from attngan_cli.evaluation.evaluate import EvalOptions, evaluate

    opts = dict(metrics=["rprecision", "attributes"], num_samples=10, device="cpu", log_to_run=False)
    a = evaluate(setup["run"] / "final.pt", setup["data"], EvalOptions(**opts, batch_size=3, save_images=tmp_path / "b3"))
    b = evaluate(setup["run"] / "final.pt", setup["data"], EvalOptions(**opts, batch_size=3))
    assert a.metrics == b.metrics  # same seed: same plan, z, captions and CA noise
    assert a.num_samples == 10 and a.metrics_file is None
    c = evaluate(setup["run"], setup["data"], EvalOptions(**opts, batch_size=10, save_images=tmp_path / "b10"))
    assert set(c.metrics) == {"rprecision", "attributes"} and c.metrics == a.metrics
    assert 0 <= c.metrics["attributes"]["mean"] <= 1
    pix = {b: np.stack([np.asarray(Image.open(f)) for f in sorted((tmp_path / f"b{b}").glob("*.png"))]) for b in (3, 10)}
    assert pix[3].shape == pix[10].shape and len(pix[3]) == 10
    assert np.array_equal(pix[3], pix[10])
    assert read_jsonl(tmp_path / "b3" / "index.jsonl") == read_jsonl(tmp_path / "b10" / "index.jsonl")


def test_rprecision_scores_each_image_against_the_caption_it_was_generated_from(setup, tmp_path, monkeypatch):
    """The wiring of plan, generation and R-precision, with oracle DAMSM encoders: a caption's sentence
    vector is a fixed random vector of its words, and the image encoder returns the vector of the words
    the image was generated from (the patched ``generate`` stamps each image with its number). R-precision
    is then exactly 1 if and only if every image is scored against the caption it was generated from (and
    mismatched captions that differ from it); ``--save-images``' index.jsonl names that same caption."""
    import zlib

    from attngan_cli.evaluation import evaluate as ev
    from attngan_cli.inference.pipeline import Generated

    D = 16
    words_of: list[tuple[int, ...]] = []  # per generated image, in order: the words it was generated from

    def vec(words: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(D, generator=torch.Generator().manual_seed(zlib.crc32(repr(words).encode())))

    class OracleText(torch.nn.Module):
        def forward(self, captions, lengths):
            sent = torch.stack([vec(tuple(c[: int(n)].tolist())) for c, n in zip(captions, lengths, strict=True)])
            return torch.zeros(len(captions), D, captions.shape[1]), sent

    class OracleImage(torch.nn.Module):
        def forward(self, images):
            ids = images[:, 0, 0, 0].mul(1000).round().long().tolist()
            return torch.zeros(len(images), D, 2, 2), torch.stack([vec(words_of[i]) for i in ids])

    def generate(bundle, token_ids, lengths, z, eps=None, precision="fp32"):
        out = real_generate(bundle, token_ids, lengths, z, eps, precision)
        images = torch.zeros_like(out.images[-1])
        for j, (c, n) in enumerate(zip(token_ids, lengths, strict=True)):
            images[j, 0, 0, 0] = len(words_of) / 1000
            words_of.append(tuple(c[: int(n)].tolist()))
        return Generated([*out.images[:-1], images], out.attn)

    def load_damsm(path, device="cpu"):
        real = real_load_damsm(path, device)
        return ev.DAMSMBundle(OracleText(), OracleImage(), real.vocab, real.config, real.path)

    real_generate, real_load_damsm = ev.generate, ev.load_damsm
    monkeypatch.setattr(ev, "generate", generate)
    monkeypatch.setattr(ev, "load_damsm", load_damsm)
    opts = ev.EvalOptions(metrics=["rprecision"], num_samples=30, batch_size=7, device="cpu", log_to_run=False,
                          save_images=tmp_path / "img")
    res = ev.evaluate(setup["run"] / "final.pt", setup["data"], opts)
    assert len(words_of) == 30
    assert res.metrics["rprecision"] == {"mean": 1.0, "std": 0.0}
    # the index names the caption each image was generated from; the plan used more than one caption per image
    from attngan_cli.data.h5 import read_info

    vocab = list(read_info(setup["data"]).vocab.words)
    index = read_jsonl(tmp_path / "img" / "index.jsonl")
    assert [r["caption"] for r in index] == [" ".join(vocab[t] for t in w) for w in words_of]
    assert len(set(words_of)) > 10  # 10 test images, 5 captions each
def test_real_fid_statistics_are_cached_by_data_and_extractor(setup, tmp_path):
    import shutil

    import numpy as np

    from attngan_cli.core.progress import NullProgress
    from attngan_cli.data.dataset import TextImageDataset
    from attngan_cli.evaluation.evaluate import EvalContext, EvalOptions, make_plan

    data = tmp_path / "copy.h5"
    shutil.copy(setup["data"], data)
    calls = []

    class Ext:  # stands in for InceptionFeatures: counts the images it sees
        def __init__(self, key):
            self.key = key

        def __call__(self, images_uint8):
            calls.append(images_uint8.shape[0])
            x = images_uint8.float().flatten(1)[:, :8]
            return {"pool": x, "logits": x}

    def ctx(key):
        ds = TextImageDataset(data, split="test", image_sizes=(32,), words=12, augment=False, caption_index=0)
        plan = make_plan(ds.class_ids, np.ones((len(ds), 5), int), 4, seed=0)
        return EvalContext(options=EvalOptions(metrics=["fid"], batch_size=3), device=torch.device("cpu"), data=data,
                           dataset=ds, image_size=32, num_samples=4, plan=plan, progress=NullProgress(),
                           inception=Ext(key))

    s1 = ctx("ext-a").real_fid_stats()
    assert sum(calls) == 10 and s1.n == 10
    c1 = ctx("ext-a")
    s2 = c1.real_fid_stats()  # from the cache: the extractor is not called
    assert sum(calls) == 10 and np.allclose(s2.cov, s1.cov) and c1.fid_cache.name.startswith("copy.fid-")
    ctx("ext-b").real_fid_stats()  # another extractor: recomputed, its own cache file
    assert sum(calls) == 20 and len(list(tmp_path.glob("copy.fid-*.npz"))) == 2


def test_eval_errors_are_clear(setup, tmp_path):
    base = ["eval", "-c", str(setup["run"]), "--data", str(setup["data"]), "--device", "cpu", "-n", "10"]
    res = runner.invoke(app, [*base, "--metric", "is,fdi"])
    assert res.exit_code == 1 and "unknown metric 'fdi'" in res.output and "rprecision" in res.output
    res = runner.invoke(app, [*base, "--metric", "fid"])
    assert res.exit_code == 1 and "pt_inception-2015-12-05-6726825d.pth" in res.output
    res = runner.invoke(app, [*base, "--metric", "fid", "--inception-weights", str(tmp_path / "missing.pth")])
    assert res.exit_code == 1 and "missing.pth does not exist" in res.output
    res = runner.invoke(app, [*base, "--metric", "rprecision", "--encoders", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "nowhere" in res.output


def test_eval_prints_its_results_when_the_run_directory_cannot_take_them(setup, tmp_path):
    """metrics.jsonl that cannot be appended to (here a folder of that name; a read-only run directory as a
    normal user) costs nothing computed: the results are printed, then a warning names the file."""
    import shutil

    run = tmp_path / "00001-shapes-train"
    shutil.copytree(setup["run"], run)
    (run / "metrics.jsonl").unlink(missing_ok=True)  # written by the tests before
    (run / "metrics.jsonl").mkdir()
    res = runner.invoke(app, ["eval", "-c", str(run), "--data", str(setup["data"]), "--device", "cpu", "-n", "10",
                              "--metric", "rprecision", "--encoders", str(setup["damsm"]), "--json"])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "rprecision" in flat and "could not append the results to" in flat and "metrics.jsonl" in flat
    record = json.loads(res.stdout[res.stdout.index("{"):])
    assert 0.0 <= record["metrics"]["rprecision"]["mean"] <= 1.0


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_every_score_carries_its_manifest(setup, tmp_path, monkeypatch):
    """The --json result and the metrics.jsonl line name the protocol, the settings, every file with its
    sha256, the checkpoint, seed, sample count and versions; R-precision with the DAMSM that trained the
    generator is flagged (TISE's caveat) and said in a warning line, with another DAMSM it is not."""
    from attngan_cli import __version__
    from attngan_cli.networks.text_encoder import TextEncoder

    monkeypatch.setattr("attngan_cli.evaluation.fid.frechet_distance", _cheap_frechet)
    run = setup["run"]
    res = runner.invoke(app, ["eval", "-c", str(run), "--data", str(setup["data"]), "-m", "rprecision,fid", "-n", "10",
                              "--inception-weights", str(setup["inception"]), "--json", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    man = rec["manifest"]
    assert man["protocol"] == "attngan" and man["metrics"] == ["rprecision", "fid"]
    assert man["checkpoint"] == {"path": str((run / "final.pt").resolve()), "sha256": _sha(run / "final.pt"),
                                 "step": None, "epoch": None}
    files = man["files"]
    assert set(files) == {"checkpoint", "data", "inception", "damsm"}
    for role, path in (("checkpoint", run / "final.pt"), ("data", setup["data"]), ("inception", setup["inception"]),
                       ("damsm", setup["damsm"])):
        assert files[role] == {"path": str(Path(path).resolve()), "sha256": _sha(path), "bytes": Path(path).stat().st_size}
    s = man["settings"]
    assert (s["num_samples"], s["split"], s["image_size"], s["captions_per_image"], s["rp_wrong"], s["rp_folds"]) == (
        10, "test", 32, 1, 99, 10)
    assert s["truncation"] == 0.0 and s["truncation_rule"] == "arch" and s["fid_reference"] == "test"
    assert "TF-Inception" in s["fid_reference_protocol"]
    assert (man["seed"], man["num_samples"]) == (0, 10)
    assert man["versions"] == {"attngan": __version__, "torch": torch.__version__}
    assert man["rprecision_same_damsm"] is True and "TISE" in man["warnings"][0]
    assert "TISE" in " ".join(res.stderr.split())  # the printed warning line
    assert read_jsonl(run / "metrics.jsonl")[-1]["manifest"] == man

    # R-precision with another DAMSM (other weights): no caveat
    from attngan_cli.storage.checkpoints import load_checkpoint

    ck = load_checkpoint(setup["damsm"])
    torch.manual_seed(7)
    ck.state["text_encoder"] = TextEncoder(TextEncoderConfig(vocab_size=len(ck.vocab), word_dim=16, words=12)).state_dict()
    other = save_checkpoint(ck, tmp_path / "other-damsm.pt")
    res = runner.invoke(app, ["eval", "-c", str(run), "--data", str(setup["data"]), "-m", "rprecision", "-n", "10",
                              "--encoders", str(other), "--json", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    man = json.loads(res.stdout)["manifest"]
    assert man["rprecision_same_damsm"] is False and man["warnings"] == [] and "TISE" not in res.stderr
    assert man["files"]["damsm"]["sha256"] == _sha(other)
