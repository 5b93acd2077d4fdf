"""`attngan import dfgan`: the imported networks reproduce the official DF-GAN modules' outputs (the
fixture tests/fixtures/dfgan_official, see its README), the optimiser states follow their parameters,
the result samples and fine-tunes, and wrong files are named."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.apps.importers.dfgan import import_dfgan, map_key
from attngan_cli.archs.base import TextBatch
from attngan_cli.archs.dfgan.loss import DFGANLoss
from attngan_cli.archs.dfgan.networks import DFDiscriminator, DFGenerator
from attngan_cli.cli import app
from attngan_cli.config.schema import TextEncoderConfig, TrainConfig
from attngan_cli.config.serialize import from_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError
from attngan_cli.data.h5 import read_vocab
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

FIXTURE = Path(__file__).parents[1] / "fixtures" / "dfgan_official"
STATE = FIXTURE / "state_epoch_007.pth"


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-12)).item()


@pytest.fixture(scope="module")
def files(shapes_h5, tmp_path_factory) -> dict[str, Path]:
    """A text encoder of the fixture's sentence size (8) over the shapes vocabulary, in the official file
    layout, and that vocabulary as the captions file."""
    root = tmp_path_factory.mktemp("dfgan_import")
    words = list(read_vocab(shapes_h5).words)
    torch.manual_seed(0)
    text = TextEncoder(TextEncoderConfig(vocab_size=len(words), word_dim=8, embedding_dim=8))
    torch.save(OrderedDict(text.state_dict()), root / "text_encoder200.pth")
    (root / "captions.json").write_text(json.dumps(words))
    return {"root": root, "text": root / "text_encoder200.pth", "captions": root / "captions.json"}


@pytest.fixture(scope="module")
def imported(files):
    res = import_dfgan(state=STATE, text_encoder=files["text"], captions=files["captions"], preset="shapes",
                       out=files["root"] / "out", custom=True)
    ck = load_checkpoint(res.checkpoint_path, kind="gan")
    cfg = from_dict(TrainConfig, ck.config)
    G = DFGenerator(cfg.generator)
    G.load_state_dict(ck.state["generator"])
    D = DFDiscriminator(cfg.discriminator, cfg.generator.base_size)
    D.load_state_dict(ck.state["discriminators"]["0"])
    return res, ck, cfg, G.eval(), D.eval()


def test_the_imported_networks_reproduce_the_official_outputs(imported) -> None:
    ref = torch.load(FIXTURE / "reference.pt", weights_only=True)
    res, ck, cfg, G, D = imported
    assert (cfg.generator.arch, cfg.generator.base_size, cfg.generator.ngf, cfg.generator.z_dim) == ("dfgan", 64, 3, 4)
    assert (cfg.discriminator.ndf, cfg.generator.embedding_dim, ck.epoch) == (3, 8, 7)
    with torch.no_grad():
        fake = G(ref["noise"], ref["sent_emb"]).images[0]
        assert rel_err(fake, ref["fake"]) < 1e-6
        for x, feats, logits in ((ref["fake"], "fake_features", "fake_logits"), (ref["real"], "real_features", "real_logits")):
            f = D.features(x)
            assert rel_err(f, ref[feats]) < 1e-6
            assert rel_err(D.head(f, ref["sent_emb"]), ref[logits].flatten()) < 1e-5  # two logits: 1.2e-6 measured


def test_the_objective_reproduces_the_official_loss_terms(imported) -> None:
    ref = torch.load(FIXTURE / "reference.pt", weights_only=True)
    *_, D = imported
    sent = ref["sent_emb"]
    text = TextBatch(torch.zeros(2, 8, 3), sent, None, sent, torch.ones(2, 3, dtype=torch.long), torch.full((2,), 3),
                     torch.zeros(2, dtype=torch.long))
    logs = DFGANLoss().discriminator(D, ref["real"], ref["fake"], text).logs
    for ours, theirs in (("real", "d_real"), ("fake", "d_fake"), ("wrong", "d_mis"), ("gp", "ma_gp")):
        assert rel_err(logs[ours], ref[theirs]) < 1e-5, ours


def test_the_optimiser_states_follow_their_parameters(imported) -> None:
    _, ck, _, G, D = imported
    official = torch.load(STATE, weights_only=True)
    off_d = official["optimizers"]["optimizer_D"]
    order = [("netD", k[len("module."):]) for k in official["model"]["netD"]] + \
            [("netC", k[len("module."):]) for k in official["model"]["netC"]]
    ours = [n for n, _ in D.named_parameters()]
    ours_d = ck.optim["d"]["0"]
    checked = 0
    for index, (net, key) in enumerate(order):
        if index not in off_d["state"]:
            continue
        mine = ours.index(map_key(net, key))
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(ours_d["state"][mine][moment], off_d["state"][index][moment]), key
        checked += 1
    assert checked == len(off_d["state"]) == len(ours_d["state"]) > 0
    assert ours_d["param_groups"][0]["lr"] == 4e-4 and tuple(ours_d["param_groups"][0]["betas"]) == (0.0, 0.9)
    assert len(ck.optim["g"]["state"]) == len(list(G.parameters()))
    for name, value in ck.state["generator"].items():  # no moving average in DF-GAN
        assert torch.equal(ck.state["generator_ema"][name], value)


def test_the_import_samples_and_fine_tunes(imported, files, shapes_h5, tmp_path) -> None:
    res, ck, *_ = imported
    runner = CliRunner()
    out = tmp_path / "samples"
    r = runner.invoke(app, ["sample", "a red circle", "-c", str(res.checkpoint_path), "-o", str(out), "--device", "cpu",
                            "--quiet"])
    assert r.exit_code == 0, r.output
    assert [p.name for p in out.glob("*.png")] == ["c00000-s00-64.png"]
    r = runner.invoke(app, ["train", str(shapes_h5), "--resume", str(res.checkpoint_path), "--max-steps", "1",
                            "--batch-size", "16", "--sample-every", "0", "--quiet", "--no-tensorboard", "--device", "cpu",
                            "--precision", "fp32", "--runs", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    tuned = load_checkpoint(Path(r.output.strip().splitlines()[-1]), kind="gan")
    assert tuned.step == 1 and tuned.config["generator"]["arch"] == "dfgan"
    steps = {float(s["step"]) for s in tuned.optim["d"]["0"]["state"].values()}
    assert steps == {3.0}  # two official Adam steps, then ours


def test_the_cli_and_the_released_layout_check(files, tmp_path) -> None:
    runner = CliRunner()
    base = ["import", "dfgan", "--state", str(STATE), "--text-encoder", str(files["text"]), "--captions",
            str(files["captions"])]
    r = runner.invoke(app, [*base, "--preset", "bird", "--out", str(tmp_path / "a")])
    assert r.exit_code == 1 and "has 57 words, but the released CUB birds DF-GAN" in " ".join(r.output.split())
    r = runner.invoke(app, [*base, "--preset", "shapes", "--custom", "--out", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["image_size"], info["ngf"], info["epoch"], info["optimizers"]) == (64, 3, 7, True)


def test_wrong_files_are_named(files, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="is not a DF-GAN training state"):
        import_dfgan(state=files["text"], text_encoder=files["text"], captions=files["captions"], preset="shapes",
                     out=tmp_path / "x", custom=True)
    official = torch.load(STATE, weights_only=True)
    bare = tmp_path / "netG.pth"
    torch.save(official["model"]["netG"], bare)
    with pytest.raises(CheckpointError, match="bare generator state dict"):
        import_dfgan(state=bare, text_encoder=files["text"], captions=files["captions"], preset="shapes",
                     out=tmp_path / "x", custom=True)
    with pytest.raises(CheckpointError, match="--text-encoder .*state_epoch_007.pth is not a state dict"):
        import_dfgan(state=STATE, text_encoder=STATE, captions=files["captions"], preset="shapes",
                     out=tmp_path / "x", custom=True)
    wrong_words = tmp_path / "words.json"
    wrong_words.write_text(json.dumps(["<end>", "a", "b"]))
    with pytest.raises(ConfigMismatchError, match="vocabulary of 57 words, but --captions"):
        import_dfgan(state=STATE, text_encoder=files["text"], captions=wrong_words, preset="shapes",
                     out=tmp_path / "x", custom=True)
    big = TextEncoder(TextEncoderConfig(vocab_size=57, word_dim=8, embedding_dim=16))
    torch.save(OrderedDict(big.state_dict()), tmp_path / "t16.pth")
    with pytest.raises(ConfigMismatchError, match="takes 8-d sentence features but the text encoder"):
        import_dfgan(state=STATE, text_encoder=tmp_path / "t16.pth", captions=files["captions"], preset="shapes",
                     out=tmp_path / "x", custom=True)
    assert not (tmp_path / "x").exists()


def test_the_official_file_given_to_sample_says_how_to_convert_it(tmp_path) -> None:
    r = CliRunner().invoke(app, ["sample", "a red circle", "-c", str(STATE), "-o", str(tmp_path / "s"), "--device", "cpu"])
    assert r.exit_code == 1
    assert "a DF-GAN training state (state_epoch_*.pth): convert it with `attngan import dfgan`" in " ".join(r.output.split())


def test_key_map() -> None:
    assert map_key("netG", "GBlocks.3.fuse2.affine0.fc_beta.linear2.bias") == "blocks.3.fuse2.affine1.beta.2.bias"
    assert map_key("netD", "DBlocks.1.conv_r.2.weight") == "blocks.1.conv2.weight"
    assert map_key("netC", "joint_conv.2.weight") == "head.conv2.weight"
    assert map_key("netG", "GBlocks.0.unknown") is None

