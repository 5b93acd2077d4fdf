"""`attngan import dmgan`: the official DM-GAN modules' outputs reproduced (tests/fixtures/dmgan_official),
the key layout of the released bird generator, the spectral-norm key mapping, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.apps.importers.attngan import detect_kind, import_official, load_state_file
from attngan_cli.apps.importers.dmgan import (
    discriminator_from_official,
    discriminator_to_official,
    import_dmgan,
)
from attngan_cli.archs.registry import build_discriminators, build_generator, new_train_config
from attngan_cli.config.schema import TextEncoderConfig, TrainConfig
from attngan_cli.config.serialize import from_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError, InputError
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import load_checkpoint

sys.path.insert(0, str(Path(__file__).parents[1]))
from official_layout import dmgan_generator_table, shapes_of  # noqa: E402

R = Path(__file__).parents[1] / "fixtures" / "dmgan_official"


def _import(tmp_path: Path, **kw):
    args = dict(generator=R / "netG.pth", text_encoder=R / "text_encoder.pth", captions=R / "captions.pickle",
                discriminators=[R / f"netD{k}.pth" for k in range(3)], preset="bird", custom=True, out=tmp_path / "imp")
    return import_dmgan(**{**args, **kw})


def _load(path: Path):
    ck = load_checkpoint(path, kind="generator")
    cfg = from_dict(TrainConfig, ck.config)
    G = build_generator(cfg.generator, init=False)
    G.load_state_dict(ck.state["generator"])
    T = TextEncoder(from_dict(TextEncoderConfig, ck.extra["damsm_config"]))
    T.load_state_dict(ck.state["text_encoder"])
    Ds = build_discriminators(cfg.generator, cfg.discriminator, init=False)
    for k, D in enumerate(Ds):
        D.load_state_dict(ck.state["discriminators"][str(k)])
    return ck, cfg, G.eval(), T.eval(), Ds.eval()


def _outputs(G, T, Ds, inputs, official_mask: bool = True) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        words, sent = T(inputs["captions"], inputs["cap_lens"])
        out = G(inputs["noise"], sent, words, inputs["captions"] == 0, ca_noise=False, official_mask=official_mask)
        im = out.images
        ours = {"words_embs": words, "sent_emb": sent, "mu": out.mu, "logvar": out.logvar, "image0": im[0],
                "image1_s4": im[1][:, :, ::4, ::4], "image2_s8": im[2][:, :, ::8, ::8],
                "image1_sum": im[1].double().sum(dim=(2, 3)), "image2_sum": im[2].double().sum(dim=(2, 3)),
                "memory0_s4": out.attn[0][:, :, ::4, ::4], "memory1_s8": out.attn[1][:, :, ::8, ::8]}
        for k, D in enumerate(Ds):
            code = D(im[k])
            ours[f"d{k}_uncond"] = torch.sigmoid(D.uncond_logits(code))
            ours[f"d{k}_cond"] = torch.sigmoid(D.cond_logits(code, sent))
    return ours


def test_official_outputs_reproduced(tmp_path: Path) -> None:
    res = _import(tmp_path)
    ck, cfg, G, T, Ds = _load(res.generator_path)
    assert cfg.generator.arch == "dmgan" and cfg.discriminator.spectral_norm
    assert (cfg.generator.stages, cfg.generator.ngf, cfg.generator.r_num, cfg.discriminator.ndf) == (3, 4, 2, 2)
    assert (cfg.generator.z_dim, cfg.generator.condition_dim, cfg.generator.embedding_dim) == (16, 8, 32)
    assert len(ck.vocab) == 50 and ck.vocab[7] == "word7"
    ref = torch.load(R / "outputs.pt")
    ours = _outputs(G, T, Ds, torch.load(R / "inputs.pt"))
    assert set(ref) == set(ours)
    for k, v in ref.items():
        if k.endswith("_sum"):  # sums over 16k / 65k pixels: float32 rounding adds up
            torch.testing.assert_close(ours[k], v, rtol=1e-5, atol=2e-3, msg=k)
        else:
            torch.testing.assert_close(ours[k], v, rtol=0, atol=1e-5, msg=k)  # measured: bit-identical on CPU
    # the memory weights sum to 1 over the caption's words and are what the later images depend on
    assert ref["memory0_s4"].sum(1).sub(1).abs().max() < 1e-5


def test_correct_padding_mask_departs_only_in_the_memory_stages(tmp_path: Path) -> None:
    res = _import(tmp_path)
    _, _, G, T, Ds = _load(res.generator_path)
    ref = torch.load(R / "outputs.pt")
    inputs = torch.load(R / "inputs.pt")
    fixed = _outputs(G, T, Ds, inputs, official_mask=False)
    torch.testing.assert_close(fixed["image0"], ref["image0"], rtol=0, atol=1e-6)
    assert (fixed["memory0_s4"] - ref["memory0_s4"]).abs().max() > 1e-3  # the official mask is mis-indexed
    lengths = inputs["cap_lens"]
    for b, n in enumerate(lengths.tolist()):  # no weight on padding words with the correct mask
        assert fixed["memory0_s4"][b, n:].abs().sum().item() == 0.0
    assert ref["memory0_s4"][2, 5:].abs().sum().item() > 0  # the official one puts some there


def test_discriminator_key_mapping_round_trip() -> None:
    official = load_state_file(R / "netD2.pth")
    ours = discriminator_from_official(official)
    assert "img_code_s16.0.parametrizations.weight.original" in ours and "img_code_s16.0.bias" in ours
    assert "UNCOND_DNET.outlogits.0.weight" in ours  # the logit convs have no spectral norm
    back = discriminator_to_official(ours)
    assert set(back) == set(official) and all(torch.equal(back[k], official[k]) for k in official)
    cfg = new_train_config("bird", {"generator.arch": "dmgan", "discriminator.ndf": 2,
                                      "generator.embedding_dim": 32, "discriminator.embedding_dim": 32})
    D = build_discriminators(cfg.generator, cfg.discriminator, init=False)[2]
    assert set(discriminator_to_official(D.state_dict())) == set(official)


def test_released_bird_generator_layout() -> None:
    """Every key and shape of the released bird_DMGAN.pth (GF_DIM 64, R_NUM 2, 3 stages, 256-d text)."""
    cfg = new_train_config("bird", {"generator.arch": "dmgan"})
    G = build_generator(cfg.generator, init=False)
    table = dmgan_generator_table(ngf=64, r_num=2, stages=3, nef=256, z_dim=100, c_dim=100)
    assert shapes_of(G.state_dict()) == dict(table) and len(table) == len(shapes_of(G.state_dict()))
    # the table is the official one: it matches the fixture made by the official modules at ngf 4
    official = shapes_of(load_state_file(R / "netG.pth"))
    assert official == dict(dmgan_generator_table(ngf=4, r_num=2, stages=3, nef=32, z_dim=16, c_dim=8))
    coco = new_train_config("coco", {"generator.arch": "dmgan"})
    assert (coco.generator.r_num, coco.words, coco.batch_size, coco.lambda_damsm) == (3, 12, 16, 50.0)


def test_kinds_and_wrong_files(tmp_path: Path) -> None:
    assert detect_kind(load_state_file(R / "netG.pth")) == "dmgan_generator"
    assert detect_kind(load_state_file(R / "netD0.pth")) == "dmgan_discriminator"
    with pytest.raises(CheckpointError, match=r"--generator .*text_encoder.pth is an official DAMSM text encoder"):
        _import(tmp_path, generator=R / "text_encoder.pth")
    with pytest.raises(CheckpointError, match=r"official DM-GAN generator.*`attngan import dmgan`"):
        import_official(generator=R / "netG.pth", text_encoder=R / "text_encoder.pth",
                        captions=R / "captions.pickle", preset="bird", custom=True, out=tmp_path / "x")
    with pytest.raises(ConfigMismatchError, match=r"released CUB birds DM-GAN \(bird_DMGAN.pth\) uses 5,450"):
        _import(tmp_path, custom=False)
    with pytest.raises(ConfigMismatchError, match=r"--discriminators got 2 files but the generator has 3 stages"):
        _import(tmp_path, discriminators=[R / "netD0.pth", R / "netD1.pth"])
    with pytest.raises(ConfigMismatchError, match=r"file 1 .*netD1.pth is a discriminator for 128 px images"):
        _import(tmp_path, discriminators=[R / f"netD{k}.pth" for k in (1, 0, 2)])
    with pytest.raises(InputError, match="--preset shapes has no official DM-GAN release"):
        _import(tmp_path, preset="shapes", custom=False)


def test_wrong_vocabulary_named(tmp_path: Path) -> None:
    words = tmp_path / "words.json"
    words.write_text('["<end>", "a", "b"]')
    with pytest.raises(ConfigMismatchError, match=r"vocabulary of 50 words, but --captions .*words.json has 3 words"):
        _import(tmp_path, captions=words)


def test_cli(tmp_path: Path) -> None:
    from attngan_cli.cli.app import app

    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["import", "dmgan", "-g", str(R / "netG.pth"), "-t", str(R / "text_encoder.pth"),
                                 "--captions", str(R / "captions.pickle"), "--custom", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert '"arch": "dmgan"' in r.output and (out / "generator.pt").exists() and (out / "damsm.pt").exists()
    samples = tmp_path / "samples"
    r = CliRunner().invoke(app, ["sample", "word3 word7 word9", "-c", str(out / "generator.pt"), "-o", str(samples),
                                 "--which", "last", "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    assert [p.name for p in samples.glob("*.png")] == ["c00000-s00-256.png"]
    fig = tmp_path / "fig.png"
    r = CliRunner().invoke(app, ["attend", "word3 word7 word9", "-c", str(out / "generator.pt"), "-o", str(fig),
                                 "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    assert fig.is_file() and '"maps": "memory addressing"' in fig.with_suffix(".json").read_text()
