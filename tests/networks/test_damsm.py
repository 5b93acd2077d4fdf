"""DAMSM encoders, losses, retrieval metrics and the checkpoint round trip."""

from __future__ import annotations

import math

import pytest
import torch

from attngan_cli.config.schema import DAMSMConfig, ImageEncoderConfig, PretrainConfig, TextEncoderConfig
from attngan_cli.core.errors import CheckpointError, InputError
from attngan_cli.evaluation.retrieval import r_precision, r_precision_hits, top1_retrieval
from attngan_cli.losses.damsm import DAMSMLoss, sentence_loss, words_loss
from attngan_cli.networks.image_encoder import INCEPTION_LAYERS, ImageEncoder, load_inception_weights
from attngan_cli.networks.text_encoder import TextEncoder


def _caps(B=5, T=7, V=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, T + 1, (B,), generator=g)
    lens[0] = T
    caps = torch.randint(1, V, (B, T), generator=g)
    caps[torch.arange(T)[None] >= lens[:, None]] = 0
    return caps, lens


# ------------------------------------------------------------------------------------ text encoder
def test_text_encoder_shapes_padding_and_order():
    torch.manual_seed(0)
    enc = TextEncoder(TextEncoderConfig(vocab_size=30)).eval()
    caps, lens = _caps()
    lens[0] = 5  # no caption fills T: words_emb must still be padded to T
    caps[0, 5:] = 0
    w, s = enc(caps, lens)
    assert w.shape == (5, 256, 7) and s.shape == (5, 256)
    for i, n in enumerate(lens.tolist()):
        assert torch.all(w[i, :, n:] == 0)
        assert w[i, :, :n].abs().sum(0).min() > 0
    perm = torch.tensor([3, 0, 4, 2, 1])
    w2, s2 = enc(caps[perm], lens[perm])
    torch.testing.assert_close(w2, w[perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s2, s[perm], rtol=1e-5, atol=1e-6)
    # one caption alone equals its row in the batch (no dependence on the other items)
    w1, s1 = enc(caps[2:3], lens[2:3])
    torch.testing.assert_close(s1[0], s[2], rtol=1e-5, atol=1e-6)
    names = set(enc.state_dict())
    assert {"encoder.weight", "rnn.weight_ih_l0", "rnn.bias_hh_l0_reverse"} <= names


def test_text_encoder_reproduces_official(official_reference):
    sd = torch.load(official_reference / "text_encoder.pth", map_location="cpu", weights_only=False)
    inp = torch.load(official_reference / "inputs.pt", map_location="cpu", weights_only=False)
    out = torch.load(official_reference / "outputs.pt", map_location="cpu", weights_only=False)
    enc = TextEncoder(TextEncoderConfig(vocab_size=sd["encoder.weight"].shape[0]))
    enc.load_state_dict(sd)
    enc.eval()
    with torch.no_grad():
        w, s = enc(inp["captions"], torch.as_tensor(inp["cap_lens"]))
    torch.testing.assert_close(w, out["words_embs"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s, out["sent_emb"], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------- image encoder
def test_compact_encoder_shapes():
    enc = ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=64, width=8))
    r, g = enc(torch.rand(3, 3, 64, 64) * 2 - 1)
    assert r.shape == (3, 256, 8, 8) and g.shape == (3, 256)
    r, g = enc(torch.rand(2, 3, 80, 80) * 2 - 1)  # other sizes are resized to image_size
    assert r.shape == (2, 256, 8, 8)
    assert all(p.requires_grad for p in enc.parameters())


def test_compact_encoder_versions():
    from attngan_cli.core.errors import AttnGANError
    from attngan_cli.networks.image_encoder import _coordinates

    xy = _coordinates(torch.zeros(2, 3, 4, 5))  # (B, 2, H, W)
    assert xy.shape == (2, 2, 4, 5)
    assert torch.equal(xy[0, 0, 0], torch.linspace(-1, 1, 5)) and torch.equal(xy[0, 1, :, 0], torch.linspace(-1, 1, 4))
    v2 = ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=32, width=4))
    v1 = ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=32, width=4, compact_version=1))
    assert v2.features[0][0].in_channels == 5 and v1.features[0][0].in_channels == 3
    assert v2.emb_cnn_code.in_features == 32 * 2 * 2 and v1.emb_cnn_code.in_features == 32
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for enc in (v1, v2):
        r, g = enc(x)
        assert r.shape == (2, 256, 4, 4) and g.shape == (2, 256)
    # the coordinate channels reach both features: without their weights both outputs change
    v2.eval()
    with torch.no_grad():
        r1, g1 = v2(x)
        v2.features[0][0].weight[:, 3:] = 0
        r2, g2 = v2(x)
    assert not torch.allclose(r1, r2) and not torch.allclose(g1, g2)
    with pytest.raises(AttnGANError, match="multiple of 16"):
        ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=40, width=4))
    with pytest.raises(AttnGANError, match="compact_version"):
        ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=32, width=4, compact_version=3))


def test_compact_checkpoint_of_version_0_1_loads_as_version_1():
    from attngan_cli.config.serialize import to_dict
    from attngan_cli.inference.pipeline import damsm_config as config_from_checkpoint

    cfg = to_dict(PretrainConfig(image=ImageEncoderConfig(backbone="compact", image_size=32, width=4)))
    assert config_from_checkpoint(cfg).image.compact_version == 2
    del cfg["image"]["compact_version"]  # a config written before the field existed (format_version 1)
    assert config_from_checkpoint(cfg).image.compact_version == 1


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    from torchvision.models import inception_v3

    torch.manual_seed(1)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("inc") / "inception_v3_google-test.pth"
    torch.save(net.state_dict(), path)  # the same keys as torchvision's released file (incl. AuxLogits, fc)
    return path, net.state_dict()


def test_inception_weights_load_and_freeze(inception_file):
    path, sd = inception_file
    enc = ImageEncoder(ImageEncoderConfig(backbone="inception-v3", image_size=139))
    load_inception_weights(enc, path)
    for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_6e.branch7x7dbl_5.bn.running_var", "Mixed_7c.branch_pool.conv.weight"):
        assert torch.equal(enc.state_dict()[k], sd[k])
    assert not any(k.startswith(("AuxLogits", "fc.")) for k in enc.state_dict())
    for name in INCEPTION_LAYERS:
        assert not any(p.requires_grad for p in getattr(enc, name).parameters())
    enc.train()
    assert not enc.Mixed_6e.training and enc.emb_features.training  # frozen BN statistics stay fixed
    before = enc.Mixed_6e.branch1x1.bn.running_mean.clone()
    r, g = enc(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert torch.equal(before, enc.Mixed_6e.branch1x1.bn.running_mean)
    assert r.shape[:2] == (2, 256) and g.shape == (2, 256)


def test_inception_weights_errors(tmp_path, inception_file):
    enc = ImageEncoder(ImageEncoderConfig(backbone="inception-v3"))
    missing = tmp_path / "nope.pth"
    with pytest.raises(InputError, match="nope.pth"):
        load_inception_weights(enc, missing)
    with pytest.raises(InputError, match="--inception-weights"):
        load_inception_weights(enc, None)
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3), "fc.weight": torch.zeros(2)}, wrong)
    with pytest.raises(InputError, match="resnet.pth.*not a torchvision Inception-v3"):
        load_inception_weights(enc, wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(InputError, match="garbage.pth"):
        load_inception_weights(enc, garbage)
    path, sd = inception_file
    bad = dict(sd)
    bad["Mixed_6e.branch1x1.conv.weight"] = torch.zeros(1, 1, 1, 1)
    shaped = tmp_path / "shape.pth"
    torch.save(bad, shaped)
    with pytest.raises(InputError, match="Mixed_6e.branch1x1.conv.weight"):
        load_inception_weights(enc, shaped)


# ------------------------------------------------------------------------------------------ losses
def _slow_words_sims(regions, words, lens, g1, g2):
    """An explicit loop over (image, caption, word, region) in float64, straight from eqs. 7-10."""
    B, D, h, w = regions.shape
    R = h * w
    v = regions.double().reshape(B, D, R)
    e = words.double()
    sims = torch.zeros(B, B, dtype=torch.float64)
    for i in range(B):
        for j in range(B):
            n = int(lens[j])
            s = [[float(v[i, :, r] @ e[j, :, t]) for t in range(n)] for r in range(R)]  # eq. 7
            sbar = []
            for r in range(R):  # eq. 8: softmax over the words of caption j, per region
                z = sum(math.exp(x) for x in s[r])
                sbar.append([math.exp(x) / z for x in s[r]])
            total = 0.0
            for t in range(n):
                z = sum(math.exp(g1 * sbar[r][t]) for r in range(R))
                alpha = [math.exp(g1 * sbar[r][t]) / z for r in range(R)]  # eq. 9
                c = sum(alpha[r] * v[i, :, r] for r in range(R))
                cos = float(c @ e[j, :, t]) / (float(c.norm()) * float(e[j, :, t].norm()))
                total += math.exp(g2 * cos)
            sims[i, j] = math.log(total)  # eq. 10
    return sims


def _slow_ce(scores, mask):
    """Cross entropy with labels arange(B), masked entries excluded, both directions, averaged."""
    B = len(scores)
    l1 = l2 = 0.0
    for i in range(B):
        row = [scores[i][j] for j in range(B) if not mask[i][j]]
        col = [scores[j][i] for j in range(B) if not mask[j][i]]
        l1 += -scores[i][i] + math.log(sum(math.exp(x) for x in row))
        l2 += -scores[i][i] + math.log(sum(math.exp(x) for x in col))
    return l1 / B, l2 / B


@pytest.mark.parametrize("h,w", [(2, 3), (2, 1)])  # R = D (explicit context path) and R < D (Gram path)
def test_losses_match_explicit_computation(h, w):
    torch.manual_seed(3)
    B, D, T = 4, 6, 4
    regions = torch.randn(B, D, h, w)
    words = torch.randn(B, D, T)
    lens = torch.tensor([4, 2, 3, 1])
    words[1, :, 2:] = 0
    words[2, :, 3:] = 5.0  # garbage beyond the length must be ignored
    cls = torch.tensor([7, 3, 7, 1])  # items 0 and 2 share a class: pairs (0,2), (2,0) masked
    mask = [[bool(cls[i] == cls[j]) and i != j for j in range(B)] for i in range(B)]
    g1, g2, g3 = 4.0, 5.0, 10.0
    w1, w2, maps = words_loss(regions, words, lens, cls, g1, g2, g3)
    sims = _slow_words_sims(regions, words, lens, g1, g2)
    e1, e2 = _slow_ce((g3 * sims).tolist(), mask)
    assert w1.item() == pytest.approx(e1, rel=1e-4) and w2.item() == pytest.approx(e2, rel=1e-4)
    assert [tuple(m.shape) for m in maps] == [(1, n, h, w) for n in lens.tolist()]
    for m in maps:
        torch.testing.assert_close(m.sum(dim=(2, 3)), torch.ones(1, m.shape[1]))
    # without class ids nothing is masked: a different value
    w1n, _, _ = words_loss(regions, words, lens, None, g1, g2, g3)
    e1n, _ = _slow_ce((g3 * sims).tolist(), [[False] * B for _ in range(B)])
    assert w1n.item() == pytest.approx(e1n, rel=1e-4) and abs(e1n - e1) > 1e-3

    img, sent = torch.randn(B, D), torch.randn(B, D)
    s1, s2 = sentence_loss(img, sent, cls, g3)
    cos = [[float(img[i] @ sent[j] / (img[i].norm() * sent[j].norm())) for j in range(B)] for i in range(B)]
    f1, f2 = _slow_ce([[g3 * c for c in row] for row in cos], mask)
    assert s1.item() == pytest.approx(f1, rel=1e-5) and s2.item() == pytest.approx(f2, rel=1e-5)


def test_matched_lower_than_shuffled():
    torch.manual_seed(0)
    B, D = 6, 16
    regions = torch.randn(B, D, 3, 3)
    # words aligned with one region of their own image (plus noise): matched pairs are similar
    words = torch.stack([regions[i].reshape(D, 9)[:, [0, 4, 8]] for i in range(B)]) + 0.1 * torch.randn(B, D, 3)
    glob = regions.mean(dim=(2, 3))
    lens, cls = torch.full((B,), 3), torch.arange(B)
    loss = DAMSMLoss(DAMSMConfig())
    matched = loss(regions, glob, words, glob + 0.1 * torch.randn(B, D), lens, cls).total
    perm = torch.roll(torch.arange(B), 1)
    shuffled = loss(regions, glob, words[perm], glob[perm], lens, cls).total
    assert matched < shuffled - 1.0


def _grad_check(img_enc, images):
    text = TextEncoder(TextEncoderConfig(vocab_size=30))
    caps, lens = _caps(B=images.shape[0])
    regions, glob = img_enc(images)
    w, s = text(caps, lens)
    terms = DAMSMLoss()(regions, glob, w, s, lens, torch.arange(images.shape[0]))
    terms.total.backward()
    for name, p in list(text.named_parameters()) + list(img_enc.named_parameters()):
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_gradients_compact():
    torch.manual_seed(0)
    enc = ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=32, width=4)).train()
    _grad_check(enc, torch.rand(4, 3, 32, 32) * 2 - 1)


def test_gradients_inception_reach_only_trainable(inception_file):
    torch.manual_seed(0)
    enc = ImageEncoder(ImageEncoderConfig(backbone="inception-v3", image_size=139))
    load_inception_weights(enc, inception_file[0])
    enc.train()
    _grad_check(enc, torch.rand(3, 3, 64, 64) * 2 - 1)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"emb_features.weight", "emb_cnn_code.weight", "emb_cnn_code.bias"}


# ---------------------------------------------------------------------------------------- metrics
def test_retrieval_metrics():
    img = torch.eye(4)
    txt = torch.eye(4)
    assert top1_retrieval(img, txt) == (1.0, 1.0)
    assert top1_retrieval(img, txt[[1, 0, 2, 3]]) == (0.5, 0.5)
    wrong = torch.stack([txt[[j for j in range(4) if j != i]] for i in range(4)])  # (4, 3, 4)
    hits = r_precision_hits(img, txt, wrong)
    assert hits.tolist() == [True] * 4
    hits = r_precision_hits(img, txt[[1, 0, 2, 3]], wrong)
    assert hits.tolist() == [False, False, True, True]
    mean, std = r_precision(torch.tensor([True, False] * 10), folds=10)
    assert mean == 0.5 and std == 0.0
    mean, std = r_precision(torch.tensor([True] * 10 + [False] * 10), folds=2)
    assert mean == 0.5 and std == 0.5


# ------------------------------------------------------------------------------- save/load round trip
def test_damsm_checkpoint_round_trip(tmp_path):
    from attngan_cli.config.serialize import to_dict
    from attngan_cli.inference.pipeline import load_damsm
    from attngan_cli.storage.checkpoints import Checkpoint, save_checkpoint

    cfg = PretrainConfig(text=TextEncoderConfig(vocab_size=30),
                         image=ImageEncoderConfig(backbone="compact", image_size=32, width=4))
    torch.manual_seed(0)
    text, image = TextEncoder(cfg.text), ImageEncoder(cfg.image)
    words = ["<end>"] + [f"w{i}" for i in range(29)]
    run = tmp_path / "00000-x-pretrain"
    save_checkpoint(Checkpoint(kind="damsm", config=to_dict(cfg), vocab=words,
                               state={"text_encoder": text.state_dict(), "image_encoder": image.state_dict()},
                               epoch=3), run / "checkpoint-3.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_damsm(tmp_path / "missing")
    b = load_damsm(run)  # a run dir without final.pt resolves to its latest checkpoint
    assert b.path == run / "checkpoint-3.pt"
    save_checkpoint(Checkpoint(kind="damsm", config=to_dict(cfg), vocab=words,
                               state={"text_encoder": text.state_dict(), "image_encoder": image.state_dict()}),
                    run / "final.pt")
    b = load_damsm(run)
    assert b.path == run / "final.pt" and b.vocab.words == words and b.config.image.backbone == "compact"
    assert not b.text_encoder.training and not b.image_encoder.training
    assert not any(p.requires_grad for p in b.text_encoder.parameters())
    text.eval()
    image.eval()
    caps, lens = _caps(V=30)
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for a, c in zip(text(caps, lens), b.text_encoder(caps, lens), strict=True):
            assert torch.equal(a, c)
        for a, c in zip(image(x), b.image_encoder(x), strict=True):
            assert torch.equal(a, c)
    save_checkpoint(Checkpoint(kind="gan", config={}, state={}), tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="'damsm'"):
        load_damsm(tmp_path / "gan.pt")
