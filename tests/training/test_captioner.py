"""MirrorGAN's STREAM captioner: the model's shapes and gradients, corpus BLEU-4 against hand-computed
values, overfitting a tiny set, and `attngan pretrain --model captioner` (stats, resume, errors)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.cli import app
from attngan_cli.config.captioner import CaptionerConfig
from attngan_cli.config.presets import make_caption_pretrain_config
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.evaluation.bleu import corpus_bleu
from attngan_cli.networks.captioner import Captioner, caption_targets
from attngan_cli.storage.checkpoints import load_checkpoint

runner = CliRunner()


def tiny_captioner(vocab_size: int = 20, seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    return Captioner(CaptionerConfig(vocab_size=vocab_size, backbone="compact", image_size=32, width=4,
                                     embed_dim=16, hidden_dim=16))


# ------------------------------------------------------------------------------------------ model
def test_caption_targets_add_end_and_mask_padding():
    caps = torch.tensor([[5, 6, 7], [8, 9, 0]])
    targets, mask = caption_targets(caps, torch.tensor([3, 2]), end_target=True)
    assert targets.tolist() == [[5, 6, 7, 0], [8, 9, 0, 0]]
    assert mask.tolist() == [[True, True, True, True], [True, True, True, False]]


def test_caption_targets_without_end_count_the_words_only():
    caps = torch.tensor([[5, 6, 7], [8, 9, 0]])
    targets, mask = caption_targets(caps, torch.tensor([3, 2]), end_target=False)
    assert targets.tolist() == [[5, 6, 7, 0], [8, 9, 0, 0]]
    assert mask.tolist() == [[True, True, True, False], [True, True, False, False]]


def test_captioner_shapes_and_gradients_reach_the_image(one_thread):
    m = tiny_captioner()
    images = torch.rand(3, 3, 32, 32, requires_grad=True) * 2 - 1
    images.retain_grad()
    caps = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])
    lens = torch.tensor([3, 2, 4])
    assert m(images, caps).shape == (3, 5, 20)  # T + 1 steps, V words
    loss, acc = m.caption_loss(images, caps, lens, end_target=True)
    assert loss.ndim == 0 and 0.0 <= float(acc) <= 1.0
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    for name in ("embed.weight", "lstm.weight_ih_l0", "out.weight", "bn.weight"):
        assert dict(m.named_parameters())[name].grad.abs().sum() > 0, name


def test_captioner_loss_ignores_padding_steps(one_thread):
    m = tiny_captioner().eval()
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    short = m.caption_loss(images, torch.tensor([[1, 2, 0, 0]]), torch.tensor([2]), end_target=True)[0]
    longer_pad = m.caption_loss(images, torch.tensor([[1, 2, 0, 0, 0, 0]]), torch.tensor([2]), end_target=True)[0]
    assert torch.allclose(short, longer_pad, atol=1e-6)


def test_greedy_stops_at_end_and_respects_max_words(one_thread):
    m = tiny_captioner().eval()
    with torch.no_grad():  # make <end> win at every step but the first two
        m.out.bias.zero_()
    out = m.greedy(torch.rand(2, 3, 32, 32) * 2 - 1, max_words=3)
    assert len(out) == 2 and all(len(r) <= 3 and 0 not in r for r in out)


# ------------------------------------------------------------------------------------------ BLEU
def test_bleu4_perfect_match_is_one():
    hyp = "a red circle on the left".split()
    assert corpus_bleu([[hyp]], [hyp]) == pytest.approx(1.0)


def test_bleu4_hand_computed_with_clipping_and_brevity_penalty():
    # hypothesis 7 words: "the the cat sat on the mat"; references of 6 and 8 words
    hyp = "the the cat sat on the mat".split()
    refs = ["the cat sat on the mat".split(), "there is a cat sitting on the mat".split()]
    # unigrams: the x3 clipped to 2 (ref 1 has 2), cat, sat, on, mat -> 6/7
    # bigrams: the-the (0), the-cat 1, cat-sat 1, sat-on 1, on-the 1, the-mat 1 -> 5/6
    # trigrams: the-the-cat 0, the-cat-sat 1, cat-sat-on 1, sat-on-the 1, on-the-mat 1 -> 4/5
    # 4-grams: the-the-cat-sat 0, the-cat-sat-on 1, cat-sat-on-the 1, sat-on-the-mat 1 -> 3/4
    # closest reference length to 7: 6 and 8 tie at 1 -> the shorter, 6; c = 7 > r = 6: BP = 1
    expected = math.exp((math.log(6 / 7) + math.log(5 / 6) + math.log(4 / 5) + math.log(3 / 4)) / 4)
    assert corpus_bleu([refs], [hyp]) == pytest.approx(expected, rel=1e-12)


def test_bleu4_corpus_level_sums_counts_and_brevity_penalty():
    hyps = ["a b c d".split(), "x y".split()]
    refs = [["a b c d e".split()], ["x y z".split()]]
    # p1 = 6/6, p2 = (3 + 1)/(3 + 1), p3 = 2/2, p4 = 1/1; c = 6, r = 5 + 3 = 8: BP = exp(1 - 8/6)
    assert corpus_bleu(refs, hyps) == pytest.approx(math.exp(1 - 8 / 6), rel=1e-12)
    assert corpus_bleu([["a b c d".split()]], ["d c b a".split()]) == 0.0  # no 2-gram match, no smoothing


# ------------------------------------------------------------------------------------------ training
def test_captioner_overfits_a_tiny_set(shapes_h5, one_thread):
    from attngan_cli.data.dataset import TextImageDataset

    ds = TextImageDataset(shapes_h5, split="train", image_sizes=(32,), words=12, augment=False, caption_index=0)
    items = [ds[i] for i in range(8)]
    x = torch.stack([it["images"][0] for it in items])
    caps = torch.stack([torch.as_tensor(it["caption"]) for it in items])
    lens = torch.tensor([int(it["length"]) for it in items])
    m = tiny_captioner(len(ds.vocab))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss, _acc = m.caption_loss(x, caps, lens, end_target=True)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    loss, acc = m.caption_loss(x, caps, lens, end_target=True)
    assert float(loss.detach()) < 0.1 * first and float(acc) > 0.95
    decoded = m.greedy(x, 12)
    exact = sum(d == c[: int(n)].tolist() for d, c, n in zip(decoded, caps, lens, strict=True))
    assert exact >= 6  # the captions read back word for word


def _pretrain(data, runs, *extra):
    res = runner.invoke(app, ["pretrain", str(data), "--model", "captioner", "--batch-size", "16", "--runs", str(runs),
                              "--device", "cpu", "--quiet", "--no-tensorboard", *extra])
    return res


def test_pretrain_captioner_cli_logs_and_resumes_exactly(shapes_h5, tmp_path, one_thread):
    from attngan_cli.archs.stream import load_captioner

    runs = tmp_path / "runs"
    res = _pretrain(shapes_h5, runs, "--epochs", "2", "--snapshot-every", "1", "--seed", "5")
    assert res.exit_code == 0, res.output
    run = sorted(runs.iterdir())[0]
    assert run.name.endswith("-captioner")
    stats = read_jsonl(run / "stats.jsonl")
    assert [r["epoch"] for r in stats] == [1, 2]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "bleu4"):
        assert all(isinstance(r[key], float) for r in stats), key
    bundle = load_captioner(run)
    assert bundle.config.model.backbone == "compact" and bundle.vocab.words[0] == "<end>"
    assert not any(p.requires_grad for p in bundle.captioner.parameters())

    # the finished run resumed without a larger --epochs: refused before a run directory exists
    res = runner.invoke(app, ["pretrain", str(shapes_h5), "--model", "captioner", "--resume", str(run),
                              "--runs", str(tmp_path / "runs2")])
    assert res.exit_code == 1 and "finished run" in res.output and "--epochs N larger than 2" in res.output, res.output
    res = runner.invoke(app, ["pretrain", str(shapes_h5), "--model", "captioner", "--resume", str(run), "--epochs", "3",
                              "--seed", "6", "--runs", str(tmp_path / "runs2")])
    assert res.exit_code == 1 and "--seed (seed) is 5" in res.output, res.output
    assert not (tmp_path / "runs2").exists()

    # resume from the epoch-1 checkpoint with no flags: the run's own batch, seed and epochs; the same
    # epoch 2 and final weights as the uninterrupted run
    res = runner.invoke(app, ["pretrain", str(shapes_h5), "--model", "captioner", "--resume",
                              str(run / "checkpoint-1.pt"), "--runs", str(tmp_path / "runs2"), "--quiet"])
    assert res.exit_code == 0, res.output
    run2 = sorted((tmp_path / "runs2").iterdir())[0]
    cfg2 = json.loads((run2 / "config.json").read_text())
    assert (cfg2["batch_size"], cfg2["seed"], cfg2["epochs"]) == (16, 5, 2)
    resumed = read_jsonl(run2 / "stats.jsonl")
    assert [r["epoch"] for r in resumed] == [2]
    assert resumed[-1]["train_loss"] == pytest.approx(stats[-1]["train_loss"], rel=1e-6)
    assert resumed[-1]["bleu4"] == pytest.approx(stats[-1]["bleu4"], abs=1e-9)
    full, part = load_checkpoint(run / "final.pt", kind="captioner"), load_checkpoint(run2 / "final.pt", kind="captioner")
    for k, v in full.state["captioner"].items():
        assert torch.equal(v, part.state["captioner"][k]), k


def test_pretrain_captioner_refuses_damsm_options(shapes_h5, tmp_path):
    res = _pretrain(shapes_h5, tmp_path / "runs", "--group-by", "none")
    assert res.exit_code == 1 and "--group-by" in res.output and "captioner" in res.output
    assert not (tmp_path / "runs").exists()
    res = _pretrain(shapes_h5, tmp_path / "runs", "--image-encoder", "inception-v3")
    assert res.exit_code == 1 and "inception" in res.output.lower()
    assert not (tmp_path / "runs").exists()


def test_caption_pretrain_config_ranges():
    from attngan_cli.core.errors import AttnGANError

    with pytest.raises(AttnGANError, match="model.hidden_dim"):
        make_caption_pretrain_config("shapes", {"model.hidden_dim": 0})
    with pytest.raises(AttnGANError, match=r"^lr must be > 0, got 0\.0"):
        make_caption_pretrain_config("shapes", {"lr": 0.0})
    cfg = make_caption_pretrain_config("shapes", {"model.backbone": "inception-v3"})
    assert cfg.model.image_size == 299


def test_captioner_checkpoint_round_trips(tmp_path, one_thread):
    from _mirror_fixtures import tiny_caption_config

    from attngan_cli.archs.stream import load_captioner
    from attngan_cli.config.captioner import CAPTIONER_KIND
    from attngan_cli.config.serialize import to_dict
    from attngan_cli.core.errors import CheckpointError
    from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

    words = ["<end>", "a", "red", "circle", "on", "white"]
    cfg = tiny_caption_config(words)
    torch.manual_seed(1)
    model = Captioner(cfg.model)
    with torch.no_grad():  # BatchNorm statistics that are not the defaults
        model.bn.running_mean.normal_(0, 0.3)
    model.eval()
    path = save_checkpoint(Checkpoint(kind=CAPTIONER_KIND, config=to_dict(cfg), vocab=words,
                                      state={"captioner": model.state_dict()}), tmp_path / "c.pt")
    bundle = load_captioner(path)
    images, caps = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([[1, 2, 3, 0], [1, 4, 5, 3]])
    with torch.no_grad():
        assert torch.equal(bundle.captioner(images, caps), model(images, caps))
    assert bundle.config == cfg and bundle.vocab.words == words
    with pytest.raises(CheckpointError):  # a GAN-kind file is not a captioner
        save_checkpoint(Checkpoint(kind="damsm", config={}, state={}), tmp_path / "d.pt")
        load_captioner(tmp_path / "d.pt")
