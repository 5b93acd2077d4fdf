"""Generator, attention and discriminators: shapes, masking, gradients, init, official key layout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from attngan_cli.archs.attngan.discriminators import Discriminator, make_discriminators
from attngan_cli.archs.attngan.generator import Generator
from attngan_cli.archs.registry import image_sizes
from attngan_cli.config.presets import make_train_config
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig
from attngan_cli.networks.attention import WordAttention
from attngan_cli.networks.blocks import init_weights

sys.path.insert(0, str(Path(__file__).parents[1]))
from official_layout import discriminator_table, generator_table, shapes_of  # noqa: E402

EMB = 32  # small text feature size for speed


def _text(B: int, T: int, lengths: list[int], emb: int = EMB, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    words = torch.randn(B, emb, T, generator=g)
    lens = torch.tensor(lengths)
    mask = torch.arange(T)[None, :] >= lens[:, None]  # (B, T) True = padding
    words = words.masked_fill(mask[:, None, :], 0.0)
    sent = torch.randn(B, emb, generator=g)
    return words, sent, mask


@pytest.mark.parametrize("stages,base", [(1, 8), (2, 8), (3, 16), (4, 8)])
def test_generator_shapes_per_stage(stages: int, base: int) -> None:
    torch.manual_seed(0)
    cfg = GeneratorConfig(stages=stages, base_size=base, ngf=4, r_num=1, z_dim=10, condition_dim=6, embedding_dim=EMB)
    G = Generator(cfg)
    B, T = 3, 7
    words, sent, mask = _text(B, T, [7, 4, 1])
    out = G(torch.randn(B, 10), sent, words, mask)
    assert [tuple(x.shape) for x in out.images] == [(B, 3, s, s) for s in image_sizes(cfg)]
    assert [tuple(a.shape) for a in out.attn] == [(B, T, s, s) for s in image_sizes(cfg)[:-1]]
    assert out.mu.shape == out.logvar.shape == (B, 6)
    for img in out.images:
        assert img.min() >= -1 and img.max() <= 1
    Ds = make_discriminators(cfg, DiscriminatorConfig(ndf=2, embedding_dim=EMB))
    assert len(Ds) == stages
    for D, img in zip(Ds, out.images, strict=True):
        code = D(img)
        assert code.shape == (B, 16, 4, 4)
        assert D.uncond_logits(code).shape == (B,)
        assert D.cond_logits(code, sent).shape == (B,)


def test_512px_stage_and_discriminator() -> None:
    """A 4th attention stage at the official base size gives 512 px; its D has one more down level."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(stages=4, base_size=64, ngf=2, r_num=1, z_dim=8, condition_dim=4, embedding_dim=EMB)
    G = Generator(cfg).eval()
    words, sent, mask = _text(1, 5, [3])
    with torch.no_grad():
        out = G(torch.randn(1, 8), sent, words, mask)
    assert out.images[-1].shape == (1, 3, 512, 512)
    assert out.attn[-1].shape == (1, 5, 256, 256)
    D = Discriminator(DiscriminatorConfig(ndf=2, embedding_dim=EMB), 512, 64).eval()
    names = [n for n, _ in D.named_children()]
    assert names[:6] == ["img_code_s16", "img_code_s32", "img_code_s64", "img_code_s128", "img_code_s128_1", "img_code_s128_2"]
    with torch.no_grad():
        assert D(out.images[-1]).shape == (1, 16, 4, 4)


def test_first_stage_channels_follow_base_size() -> None:
    """log2(base/4) up-blocks from ngf * 2**n_up channels: 16ngf at base 64 (official), 4ngf at base 16."""
    for base, n_up in [(64, 4), (16, 2), (8, 1)]:
        G = Generator(GeneratorConfig(stages=1, base_size=base, ngf=4, z_dim=10, condition_dim=6, embedding_dim=EMB))
        assert G.h_net1.fc[0].out_features == 4 * 2**n_up * 16 * 2
        assert [n for n, _ in G.h_net1.named_children()] == ["fc"] + [f"upsample{i}" for i in range(1, n_up + 1)]


def test_attention_sums_to_one_over_real_words() -> None:
    torch.manual_seed(0)
    att = WordAttention(6, EMB)
    words, _, mask = _text(3, 9, [9, 5, 1])
    h = torch.randn(3, 6, 4, 5)
    context, attn = att(h, words, mask)
    assert context.shape == (3, 6, 4, 5) and attn.shape == (3, 9, 4, 5)
    torch.testing.assert_close(attn.sum(1), torch.ones(3, 4, 5))
    assert (attn.masked_select(mask[:, :, None, None]) == 0).all()  # padding words get no attention
    assert (attn[1, :5] > 0).all() and (attn[2, 0] == 1).all()
    # the context is the attention-weighted sum of the projected words
    proj = att.conv_context(words.unsqueeze(3)).squeeze(3)  # (B, 6, T)
    manual = torch.einsum("bdt,bthw->bdhw", proj, attn)
    torch.testing.assert_close(context, manual)
    # the official mis-indexed mask differs once captions have different lengths
    _, attn_off = att(h, words, mask, official_mask=True)
    assert not torch.allclose(attn_off, attn)
    torch.testing.assert_close(attn_off.sum(1), torch.ones(3, 4, 5))


def test_conditioning_augmentation_noise_switch() -> None:
    torch.manual_seed(0)
    cfg = GeneratorConfig(stages=2, base_size=8, ngf=4, r_num=1, z_dim=10, condition_dim=6, embedding_dim=EMB)
    G = Generator(cfg).eval()
    words, sent, mask = _text(2, 4, [4, 2])
    z = torch.randn(2, 10)
    with torch.no_grad():
        a = G(z, sent, words, mask, ca_noise=False)
        b = G(z, sent, words, mask, ca_noise=False)
        c = G(z, sent, words, mask, ca_noise=True)
        c_mu, mu, _ = G.ca_net(sent, noise=False)
    torch.testing.assert_close(a.images[-1], b.images[-1])
    torch.testing.assert_close(c_mu, mu)
    assert not torch.allclose(a.images[-1], c.images[-1])
    torch.testing.assert_close(a.mu, c.mu)


def test_gradients_reach_generator_and_discriminators() -> None:
    torch.manual_seed(0)
    cfg = GeneratorConfig(stages=3, base_size=8, ngf=4, r_num=1, z_dim=10, condition_dim=6, embedding_dim=EMB)
    G = Generator(cfg)
    Ds = make_discriminators(cfg, DiscriminatorConfig(ndf=2, embedding_dim=EMB))
    words, sent, mask = _text(4, 5, [5, 3, 2, 1])
    out = G(torch.randn(4, 10), sent, words, mask)
    loss = out.mu.pow(2).mean() + out.logvar.pow(2).mean()
    for D, img in zip(Ds, out.images, strict=True):
        code = D(img)
        loss = loss + D.uncond_logits(code).mean() + D.cond_logits(code, sent).mean()
    loss.backward()
    for name, p in list(G.named_parameters()) + list(Ds.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_official_init() -> None:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(stages=2, base_size=16, ngf=8, r_num=1, embedding_dim=EMB))
    init_weights(G)
    w = G.h_net2.residual[0].block[0].weight.flatten(1)  # (64, 144): orthogonal rows
    torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-4, rtol=0)
    fc = G.ca_net.fc
    torch.testing.assert_close(fc.weight.T @ fc.weight, torch.eye(EMB), atol=1e-4, rtol=0)  # (400, 32): orthonormal columns
    assert (fc.bias == 0).all()
    bn = G.h_net1.fc[1]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and 0.01 < bn.weight.std().item() < 0.03
    assert (bn.bias == 0).all()


def test_official_key_layout_bird() -> None:
    """Our modules at the bird preset have exactly the official G_NET / D_NET64/128/256 keys and shapes."""
    cfg = make_train_config("bird")
    with torch.device("meta"):  # shapes only: no memory, no init
        G = Generator(cfg.generator, init=False)
    assert shapes_of(G.state_dict()) == dict(generator_table(ngf=32, r_num=2, stages=3))
    assert list(shapes_of(G.state_dict())) == [k for k, _ in generator_table(ngf=32, r_num=2, stages=3)]
    for size in (64, 128, 256):
        with torch.device("meta"):
            D = Discriminator(cfg.discriminator, size, 64, init=False)
        assert shapes_of(D.state_dict()) == dict(discriminator_table(ndf=64, image_size=size)), size


def test_official_key_layout_coco_generator() -> None:
    cfg = make_train_config("coco")
    with torch.device("meta"):
        G = Generator(cfg.generator, init=False)
    assert shapes_of(G.state_dict()) == dict(generator_table(ngf=48, r_num=3, stages=3))


def test_bad_sizes_rejected() -> None:
    from attngan_cli.core.errors import AttnGANError

    with pytest.raises(AttnGANError, match="stages"):
        Generator(GeneratorConfig(stages=5))
    with pytest.raises(AttnGANError, match="base_size"):
        Generator(GeneratorConfig(base_size=48))
    with pytest.raises(AttnGANError, match="power of two"):
        Discriminator(DiscriminatorConfig(), 96, 64)
