"""GAN loss objects and the EMA against independent computations on hand-made numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attngan_cli.archs.attngan.loss import DiscriminatorLoss, GeneratorLoss
from attngan_cli.config.schema import DAMSMConfig
from attngan_cli.losses.adversarial import (
    bce_logits,
    encode_images,
    kl_loss,
    mismatched,
)
from attngan_cli.training.ema import EMA


def _bce(xs: list[float], label: int) -> float:
    """-mean(log sigmoid(x)) for label 1, -mean(log(1 - sigmoid(x))) for label 0, in plain floats."""
    out = []
    for x in xs:
        p = 1.0 / (1.0 + math.exp(-x))
        out.append(-math.log(p) if label == 1 else -math.log(1.0 - p))
    return sum(out) / len(out)


LOGITS = {
    "real_uncond": [2.0, -1.0, 0.5],
    "real_cond": [1.5, 0.0, -0.3],
    "fake_uncond": [-2.0, 0.7, 0.1],
    "fake_cond": [0.2, -0.4, 3.0],
    "wrong_cond": [1.0, -1.2, 0.0],
}


@pytest.mark.parametrize("mismatch", [True, False])
def test_discriminator_loss_on_hand_made_logits(mismatch):
    logits = {k: torch.tensor(v) for k, v in LOGITS.items()}
    terms = DiscriminatorLoss(mismatch=mismatch).from_logits(logits)
    real = (_bce(LOGITS["real_uncond"], 1) + _bce(LOGITS["real_cond"], 1)) / 2
    if mismatch:
        fake = (_bce(LOGITS["fake_uncond"], 0) + _bce(LOGITS["fake_cond"], 0) + _bce(LOGITS["wrong_cond"], 0)) / 3
        assert terms.wrong_cond is not None
    else:
        fake = (_bce(LOGITS["fake_uncond"], 0) + _bce(LOGITS["fake_cond"], 0)) / 2
        assert terms.wrong_cond is None
    assert float(terms.total) == pytest.approx(real + fake, rel=1e-6)


def test_bce_is_stable_for_large_logits():
    x = torch.tensor([200.0, -200.0], dtype=torch.bfloat16)
    assert float(bce_logits(x[:1], 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(bce_logits(x[1:], 1.0)) == pytest.approx(200.0, rel=1e-3)
    assert torch.isfinite(bce_logits(x, 0.0))
    assert bce_logits(x, 1.0).dtype == torch.float32


def test_kl_matches_formula():
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.1, -0.2], [0.3, 0.0]])
    ref = 0.0
    for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist(), strict=True):
        ref += -0.5 * (1 + lv - m * m - math.exp(lv))
    assert float(kl_loss(mu, logvar)) == pytest.approx(ref / 4, rel=1e-6)
    assert float(kl_loss(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0


class StubD(nn.Module):
    """code = per-image mean; uncond logit = a * code; cond logit = a * code + <sent, w>; records sentences."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.sents: list[torch.Tensor] = []

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))

    def uncond_logits(self, code):
        return self.a * code

    def cond_logits(self, code, sent):
        self.sents.append(sent.detach().clone())
        return self.a * code + sent.sum(1)


def test_mismatched_pairs_are_next_sentence():
    sent = torch.arange(4.0)[:, None].repeat(1, 3)  # row i = i
    assert mismatched(sent)[:, 0].tolist() == [1.0, 2.0, 3.0, 0.0]
    D = StubD(1.0)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    DiscriminatorLoss(mismatch=True)(D, real, fake, sent)
    assert len(D.sents) == 3  # real, fake, wrong
    assert D.sents[2][:, 0].tolist() == [1.0, 2.0, 3.0, 0.0]
    D.sents.clear()
    DiscriminatorLoss(mismatch=False)(D, real, fake, sent)
    assert len(D.sents) == 2


def test_discriminator_loss_detaches_fakes():
    D = StubD(1.0)
    fake = torch.randn(3, 3, 4, 4, requires_grad=True)
    DiscriminatorLoss()(D, torch.randn(3, 3, 4, 4), fake, torch.randn(3, 2)).total.backward()
    assert fake.grad is None and D.a.grad is not None


def test_generator_loss_adversarial_and_kl():
    Ds = [StubD(1.0), StubD(-2.0)]
    fakes = [torch.randn(3, 3, 4, 4), torch.randn(3, 3, 8, 8)]
    sent = torch.randn(3, 2)
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    terms = GeneratorLoss(lambda_damsm=0.0, kl_weight=2.0)(Ds, fakes, mu, logvar, None, sent, None, None)
    ref = 0.0
    for D, f in zip(Ds, fakes, strict=True):
        code = f.mean(dim=(1, 2, 3))
        a = float(D.a.detach())
        ref += _bce((a * code).tolist(), 1) + _bce((a * code + sent.sum(1)).tolist(), 1)
    ref += 2.0 * float(kl_loss(mu, logvar))
    assert float(terms.total.detach()) == pytest.approx(ref, rel=1e-5)
    assert terms.w_loss is None and terms.s_loss is None
    assert set(terms.logs()) == {"g_adv0", "g_adv1", "kl"}


def test_generator_loss_damsm_term_uses_last_stage_and_lambda():
    from attngan_cli.config.schema import ImageEncoderConfig
    from attngan_cli.losses.damsm import sentence_loss, words_loss
    from attngan_cli.networks.image_encoder import ImageEncoder

    torch.manual_seed(0)
    enc = ImageEncoder(ImageEncoderConfig(backbone="compact", image_size=32, width=8, embedding_dim=16)).eval()
    enc.requires_grad_(False)
    B, T = 4, 5
    fakes = [torch.randn(B, 3, 8, 8), torch.randn(B, 3, 16, 16, requires_grad=True)]
    words, sent = torch.randn(B, 16, T), torch.randn(B, 16)
    lengths, cls = torch.tensor([5, 3, 4, 2]), torch.tensor([0, 1, 0, 2])
    cfg = DAMSMConfig()
    loss = GeneratorLoss(lambda_damsm=5.0, kl_weight=0.0, damsm=cfg, image_encoder=enc)
    terms = loss([StubD(1.0), StubD(1.0)], fakes, torch.zeros(B, 3), torch.zeros(B, 3), words, sent, lengths, cls)
    with torch.no_grad():
        regions, glob = enc(fakes[1])
    w1, w2, _ = words_loss(regions, words, lengths, cls, cfg.gamma1, cfg.gamma2, cfg.gamma3)
    s1, s2 = sentence_loss(glob, sent, cls, cfg.gamma3)
    assert float(terms.w_loss.detach()) == pytest.approx(float(w1 + w2), rel=1e-5)
    assert float(terms.s_loss.detach()) == pytest.approx(float(s1 + s2), rel=1e-5)
    adv = sum(float(a.detach()) for a in terms.adv)
    assert float(terms.total.detach()) == pytest.approx(adv + 5.0 * float(w1 + w2 + s1 + s2), rel=1e-5)
    terms.total.backward()
    assert fakes[1].grad is not None and fakes[1].grad.abs().sum() > 0  # DAMSM gradient reaches the image
    with pytest.raises(ValueError):
        GeneratorLoss(lambda_damsm=1.0)


class NoGradBackbone(nn.Module):
    """Mimics the inception encoder's API: forward cuts gradients, the two halves do not."""

    frozen_backbone = True

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 4)

    def backbone_features(self, x):
        return x, x.mean(dim=(2, 3))

    def project(self, local, pooled):
        return local, self.proj(pooled)

    def forward(self, x):
        with torch.no_grad():
            local, pooled = self.backbone_features(x)
        return self.project(local, pooled)


def test_encode_images_keeps_gradient_through_frozen_backbone():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    regions, glob = encode_images(NoGradBackbone(), x)
    (regions.sum() + glob.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.slow
def test_damsm_gradient_passes_frozen_inception_backbone():
    """The inception encoder's forward runs its backbone under no_grad; encode_images must not."""
    from attngan_cli.config.schema import ImageEncoderConfig
    from attngan_cli.networks.image_encoder import ImageEncoder

    enc = ImageEncoder(ImageEncoderConfig(backbone="inception-v3", image_size=75)).eval()
    enc.requires_grad_(False)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    regions, glob = encode_images(enc, x)
    (regions.square().mean() + glob.square().mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ema_update_math_and_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9)
    before = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model(torch.randn(5, 3))  # moves the BN running stats
    ema.update(model)
    for b, p_ema, p in zip(before, ema.module.parameters(), model.parameters(), strict=True):
        assert torch.allclose(p_ema, 0.9 * b + 0.1 * p.detach())
        assert not p_ema.requires_grad
    assert torch.equal(ema.module[1].running_mean, model[1].running_mean)
    assert torch.equal(ema.module[1].num_batches_tracked, model[1].num_batches_tracked)
    assert not ema.module.training


def test_ema_warmup_decay():
    ema = EMA(nn.Linear(2, 2), decay=0.999)
    assert ema.decay_at(None) == 0.999
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(90) == pytest.approx(0.91)
    assert ema.decay_at(100_000) == 0.999
    model = nn.Linear(2, 2)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=0)  # decay 0.1: the average jumps most of the way
    assert torch.allclose(ema.module.weight, 0.1 * (model.weight - 1.0) + 0.9 * model.weight)
