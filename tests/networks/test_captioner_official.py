"""MirrorGAN's STREAM captioner against the official code (qiaott/MirrorGAN at deb220f, yunjey/pytorch-tutorial
at 0500d3d): the parameter counts of the official configuration, the re-description loss against the
official ``pack_padded_sequence`` + cross-entropy, the pretraining's targets against yunjey's, and
captioner checkpoints saved before the unused region projection was dropped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence
from typer.testing import CliRunner

from attngan_cli.archs.stream import StreamLoss, load_captioner
from attngan_cli.cli import app
from attngan_cli.config.captioner import CaptionerConfig
from attngan_cli.config.presets import make_caption_pretrain_config
from attngan_cli.config.schema import TrainConfig
from attngan_cli.core.errors import AttnGANError
from attngan_cli.data.shapes import make_shapes
from attngan_cli.networks.captioner import UNUSED_LEGACY_KEYS, Captioner
from attngan_cli.networks.image_encoder import ImageEncoder
from attngan_cli.storage.checkpoints import load_checkpoint
from attngan_cli.training.captioner import CaptionLossStep, without_legacy_adam_entry
from attngan_cli.training.optim import adam, load_optimizer_state
from attngan_cli.training.resolve import saved_train_config

FORMAT1 = Path(__file__).resolve().parents[1] / "fixtures" / "format1"

# Counted on the official modules built from their sources (a harness outside this repository):
# MirrorGAN trainer.py:78 builds CAPTION_RNN(cfg.CAP.embed_size, cfg.CAP.hidden_size * 2, n_words, 1) with
# train_bird.yml's embed_size 256 and hidden_size 256 (so 512); yunjey's DecoderRNN(256, 512, V, 1) has
# the same parameters. The trainable head of CAPTION_CNN / EncoderCNN is Linear(2048, 256) + BatchNorm1d(256).
OFFICIAL_DECODER = {5450: 5_768_010, 57: 1_620_793}  # vocabulary size -> embed + LSTM + linear
OFFICIAL_DECODER_HIDDEN_256 = {5450: 3_322_186}  # what this project built before (half the LSTM width)
OFFICIAL_IMAGE_HEAD = 525_056
UNUSED_REGION_CONV = 196_608  # the 1x1 conv 768 -> 256 the captioner carried and never read


def _decoder_parameters(m: Captioner) -> int:
    return sum(p.numel() for mod in (m.embed, m.lstm, m.out) for p in mod.parameters())


@pytest.mark.parametrize("preset", ["bird", "coco"])
@pytest.mark.parametrize("vocab", sorted(OFFICIAL_DECODER))
def test_captioner_presets_have_the_official_parameter_counts(preset, vocab):
    cfg = make_caption_pretrain_config(preset, {}).model
    m = Captioner(CaptionerConfig(**{**cfg.__dict__, "vocab_size": vocab}))
    assert _decoder_parameters(m) == OFFICIAL_DECODER[vocab]
    trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert trainable - _decoder_parameters(m) == OFFICIAL_IMAGE_HEAD  # no region conv beside the head
    assert not any("emb_features" in k for k in m.state_dict())
    with_regions = ImageEncoder(cfg.image_config())  # the DAMSM's encoder, with the region projection
    assert sum(p.numel() for p in with_regions.parameters() if p.requires_grad) == \
        sum(p.numel() for p in m.encoder.parameters() if p.requires_grad) + UNUSED_REGION_CONV
    assert OFFICIAL_DECODER[5450] - OFFICIAL_DECODER_HIDDEN_256[5450] == 2_445_824


def _tiny(seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    return Captioner(CaptionerConfig(vocab_size=23, backbone="compact", image_size=32, width=4, embed_dim=16,
                                     hidden_dim=24))


def _fixed_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    lengths = torch.tensor([5, 7, 2, 4])  # unsorted, as batches come here
    captions = torch.randint(1, 23, (4, 7), generator=g)
    captions[torch.arange(7)[None, :] >= lengths[:, None]] = 0  # 0 = <end> pads
    return images, captions, lengths


def _official_packed_loss(m: Captioner, images: torch.Tensor, captions: torch.Tensor,
                          lengths: torch.Tensor) -> torch.Tensor:
    """MirrorGAN's generator_loss (miscc/losses.py) with CAPTION_RNN.forward (model.py), batch sorted by
    length as its prepare_data does: targets pack_padded_sequence(captions, cap_lens), inputs the image
    feature then the words, packed with the same lengths; nn.CrossEntropyLoss (mean over the tokens)."""
    order = torch.argsort(lengths, descending=True)
    images, captions, lengths = images[order], captions[order], lengths[order]
    features = m.image_features(images)  # (B, E)
    embeddings = torch.cat((features.unsqueeze(1), m.embed(captions)), 1)  # (B, T + 1, E)
    packed = pack_padded_sequence(embeddings, lengths.tolist(), batch_first=True)
    hiddens, _ = m.lstm(packed)
    outputs = m.out(hiddens[0])  # (sum of lengths, V)
    target = pack_padded_sequence(captions, lengths.tolist(), batch_first=True)[0]
    return F.cross_entropy(outputs, target)


def test_stream_loss_is_the_official_packed_cross_entropy(one_thread):
    m = _tiny().eval()
    images, captions, lengths = _fixed_batch()
    with torch.no_grad():
        want = _official_packed_loss(m, images, captions, lengths)
        got = StreamLoss(m)(images, captions, lengths)
        with_end = StreamLoss(m, end_target=True)(images, captions, lengths)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert abs(float(with_end) - float(want)) > 1e-3  # the extra <end> target moves it: the check can fail


def test_new_runs_score_the_words_and_old_runs_keep_their_end_target():
    assert TrainConfig().stream_end_target is False
    assert saved_train_config({"captioner": "x.pt"})["stream_end_target"] is True
    assert saved_train_config({"stream_end_target": False})["stream_end_target"] is False


def test_pretraining_targets_are_yunjeys_without_start(one_thread):
    """yunjey's train.py: captions <start> w1..wL <end>, lengths L + 2, targets pack_padded_sequence of
    them. Here (no <start> in AttnGAN's vocabulary) the captions w1..wL <end> with lengths L + 1."""
    m = _tiny().eval()
    images, captions, lengths = _fixed_batch()
    with_end = torch.cat((captions, captions.new_zeros(4, 1)), dim=1)  # the <end> (0) after each caption
    with torch.no_grad():
        want = _official_packed_loss(m, images, with_end, lengths + 1)
        got, _acc = CaptionLossStep(m)(images, captions, lengths)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_every_trainable_captioner_parameter_reaches_the_loss(one_thread):
    m = _tiny()
    images, captions, lengths = _fixed_batch()
    loss, _acc = m.caption_loss(images, captions, lengths, end_target=True)
    loss.backward()
    unused = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    with pytest.raises(AttnGANError, match="without region features"):
        m.encoder(images)


def test_an_old_captioner_loads_with_its_width_and_without_the_unused_conv():
    saved = load_checkpoint(FORMAT1 / "captioner.pt").state["captioner"]
    assert set(UNUSED_LEGACY_KEYS) <= set(saved)
    bundle = load_captioner(FORMAT1 / "captioner.pt")
    assert bundle.config.model.hidden_dim == 8  # recorded in the file, not the new default
    own = bundle.captioner.state_dict()
    assert set(own) == set(saved) - set(UNUSED_LEGACY_KEYS)
    assert all(torch.equal(own[k], saved[k]) for k in own)


def test_an_old_captioners_adam_state_loads_without_the_unused_conv():
    ckpt = load_checkpoint(FORMAT1 / "captioner.pt")
    model = Captioner(CaptionerConfig(**ckpt.config["model"]))
    opt = adam([p for p in model.parameters() if p.requires_grad], 1e-3, (0.9, 0.999))
    saved = ckpt.optim["adam"]
    load_optimizer_state(opt, without_legacy_adam_entry(model, saved))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    old_names = names[:names.index("encoder.emb_cnn_code.weight")] + ["encoder.emb_features.weight"] + \
        names[names.index("encoder.emb_cnn_code.weight"):]
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(opt.state[p]["exp_avg"], saved["state"][old_names.index(name)]["exp_avg"])


def test_an_old_captioner_pretraining_resumes(tmp_path, one_thread):
    shutil.copy(FORMAT1 / "captioner.pt", tmp_path / "captioner.pt")
    make_shapes(tmp_path / "shapes.h5", n_train=24, n_test=8, image_size=76, seed=0)  # the data it was made on
    result = CliRunner().invoke(app, ["pretrain", str(tmp_path / "shapes.h5"), "--model", "captioner", "--resume",
                                      str(tmp_path / "captioner.pt"), "--epochs", "2", "--runs",
                                      str(tmp_path / "runs"), "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    state = load_checkpoint(run / "final.pt").state["captioner"]
    assert not set(UNUSED_LEGACY_KEYS) & set(state) and state["lstm.weight_hh_l0"].shape == (32, 8)
