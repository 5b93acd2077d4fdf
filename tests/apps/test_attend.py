"""`attngan attend`: the figure, its JSON (real top-K of the model's maps), word maps and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _sample_fixtures import make_generator_checkpoint
from PIL import Image
from typer.testing import CliRunner

from attngan_cli.apps.sample import attend, caption_batch, encode_caption, item_noise
from attngan_cli.cli import app
from attngan_cli.core.errors import InputError
from attngan_cli.inference.pipeline import generate, load_generator
from attngan_cli.viz.attention import rank_words

runner = CliRunner()
CAPTION = "this bird is red with white and has a very short beak"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_generator_checkpoint(tmp_path_factory.mktemp("g") / "G.pt", stages=3)


def test_cli_figure_json_and_word_maps(tmp_path, ckpt) -> None:
    out = tmp_path / "fig.png"
    r = runner.invoke(app, ["attend", CAPTION, "-c", str(ckpt), "-o", str(out), "--word-maps", "--device", "cpu",
                            "-q"])
    assert r.exit_code == 0, r.output
    assert str(out) in r.stdout and str(out.with_suffix(".json")) in r.stdout
    img = Image.open(out)
    assert img.mode == "RGB" and img.size[0] > 5 * 128  # 5 word columns of at least 128 px
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["words"] == CAPTION.split()
    assert [a["stage"] for a in rec["attention"]] == [2, 3]
    assert [a["regions"] for a in rec["attention"]] == [[8, 8], [16, 16]]
    for a in rec["attention"]:
        assert len(a["top"]) == 5 and a["top"] == a["ranked"][:5]
        scores = [w["score"] for w in a["ranked"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 12
    maps = sorted((tmp_path / "fig_maps").glob("*.png"))
    assert len(maps) == 2 * 12 and Image.open(maps[0]).size == (32, 32)
    npz = np.load(tmp_path / "fig_maps" / "maps.npz")
    assert npz["attn1"].shape == (12, 8, 8) and npz["attn2"].shape == (12, 16, 16)


def test_json_is_the_real_top_k_of_the_models_maps(tmp_path, ckpt) -> None:
    bundle = load_generator(ckpt, need_vocab=True)
    res = attend(bundle, CAPTION, tmp_path / "a.png", top=3, seed=5)
    cap = encode_caption(bundle.vocab, CAPTION, "c")
    z, eps = item_noise(5, 0, 0, bundle.config.generator.z_dim, bundle.config.generator.condition_dim)
    attn = generate(bundle, *caption_batch([cap]), z[None], eps[None]).attn
    for k, a in enumerate(attn):
        a = a[0]  # (T, h, w)
        assert torch.allclose(a.sum(0), torch.ones(a.shape[1:]), atol=1e-4)  # softmax over words per region
        expect = [w.index for w in rank_words(a, cap.words)[:3]]
        kept = (a * (a >= 1 / len(cap.words))).flatten(1).sum(1)
        assert expect == kept.argsort(descending=True, stable=True)[:3].tolist()
        rec = json.loads(res.json.read_text())["attention"][k]
        assert [w["index"] for w in rec["top"]] == expect


def test_same_seed_same_figure(tmp_path, ckpt) -> None:
    bundle = load_generator(ckpt, need_vocab=True)
    a = attend(bundle, CAPTION, tmp_path / "a.png", seed=1)
    b = attend(bundle, CAPTION, tmp_path / "b.png", seed=1)
    assert np.array_equal(np.asarray(Image.open(a.figure)), np.asarray(Image.open(b.figure)))
    assert a.rankings == b.rankings


def test_bad_inputs(tmp_path, ckpt) -> None:
    bundle = load_generator(ckpt, need_vocab=True)
    with pytest.raises(InputError, match="no words"):
        attend(bundle, "!!!", tmp_path / "x.png")
    with pytest.raises(InputError, match="zebra"):
        attend(bundle, "zebra", tmp_path / "x.png")
    with pytest.raises(InputError, match=r"\.png"):
        attend(bundle, CAPTION, tmp_path / "x.jpg")
    r = runner.invoke(app, ["attend", "-c", str(ckpt)])
    assert r.exit_code == 1 and "no caption" in r.output
    one = make_generator_checkpoint(tmp_path / "G1.pt", stages=1)
    r = runner.invoke(app, ["attend", CAPTION, "-c", str(one), "-o", str(tmp_path / "y.png")])
    assert r.exit_code == 1 and "no word attention" in r.output
    assert not (tmp_path / "y.png").exists()
