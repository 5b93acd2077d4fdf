"""`attngan import official`: reproduction of the official outputs, key mapping, safe reading, errors."""

from __future__ import annotations

import pickle
import struct
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from attngan_cli.apps.importers.attngan import (
    detect_kind,
    import_official,
    infer_generator_config,
    load_state_file,
    read_captions_pickle,
    to_official,
)
from attngan_cli.archs.attngan.discriminators import make_discriminators
from attngan_cli.archs.attngan.generator import Generator
from attngan_cli.config.schema import TextEncoderConfig, TrainConfig
from attngan_cli.config.serialize import from_dict
from attngan_cli.core.errors import CheckpointError, ConfigMismatchError, InputError
from attngan_cli.networks.text_encoder import TextEncoder
from attngan_cli.storage.checkpoints import load_checkpoint

sys.path.insert(0, str(Path(__file__).parents[1]))
from official_layout import discriminator_table, generator_table, text_encoder_table  # noqa: E402


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-12)).item()


def load_imported(gen_path: Path):
    ck = load_checkpoint(gen_path, kind="generator")
    cfg = from_dict(TrainConfig, ck.config)
    G = Generator(cfg.generator, init=False)
    G.load_state_dict(ck.state["generator"])
    T = TextEncoder(from_dict(TextEncoderConfig, ck.extra["damsm_config"]))
    T.load_state_dict(ck.state["text_encoder"])
    Ds = None
    if "discriminators" in ck.state:
        Ds = make_discriminators(cfg.generator, cfg.discriminator, init=False)
        for k, D in enumerate(Ds):
            D.load_state_dict(ck.state["discriminators"][str(k)])
        Ds.eval()
    return ck, cfg, G.eval(), T.eval(), Ds


# --------------------------------------------------------------------------------------------------
# The official reference (../shared/official_reference)
# --------------------------------------------------------------------------------------------------
def test_reference_outputs_reproduced(official_reference: Path, tmp_path: Path) -> None:
    R = official_reference
    res = import_official(
        generator=R / "netG.pth", text_encoder=R / "text_encoder.pth", captions=R / "captions.pickle",
        discriminators=[R / f"netD{k}.pth" for k in range(3)], preset="bird", custom=True, out=tmp_path / "imp",
    )
    ck, cfg, G, T, Ds = load_imported(res.generator_path)
    assert (cfg.generator.stages, cfg.generator.ngf, cfg.generator.r_num, cfg.discriminator.ndf) == (3, 8, 2, 16)
    assert len(ck.vocab) == 500 and ck.vocab[0] == "<end>" and ck.vocab[7] == "word7"
    inputs, ref = torch.load(R / "inputs.pt"), torch.load(R / "outputs.pt")
    captions, lengths = inputs["captions"], inputs["cap_lens"]
    with torch.no_grad():
        words, sent = T(captions, lengths)
        mask = captions == 0
        out = G(inputs["noise"], sent, words, mask, ca_noise=False, official_mask=True)
        ours = {"words_embs": words, "sent_emb": sent, "mu": out.mu, "logvar": out.logvar}
        ours.update({f"image{k}": x for k, x in enumerate(out.images)})
        ours.update({f"attention{k}": a for k, a in enumerate(out.attn)})
        for k, D in enumerate(Ds):
            code = D(out.images[k])
            ours[f"d{k}_uncond"] = torch.sigmoid(D.uncond_logits(code))
            ours[f"d{k}_cond"] = torch.sigmoid(D.cond_logits(code, sent))
    assert set(ref) <= set(ours)
    errors = {k: rel_err(ours[k], ref[k]) for k in ref}
    assert all(e < 5e-6 for e in errors.values()), errors  # measured: 8.7e-7 at most (image2), float32 rounding
    # the text encoder in damsm.pt is the same
    dck = load_checkpoint(res.damsm_path, kind="damsm")
    for k, v in dck.state["text_encoder"].items():
        torch.testing.assert_close(v, ck.state["text_encoder"][k], rtol=0, atol=0)
    # with correct padding masks the attention differs only where the official code mis-masks
    with torch.no_grad():
        fixed = G(inputs["noise"], sent, words, mask, ca_noise=False)
    assert rel_err(fixed.attn[0], ref["attention0"]) > 1e-2
    torch.testing.assert_close(fixed.images[0], ref["image0"], rtol=1e-5, atol=1e-6)  # measured: 4.5e-8 at most


def test_reference_files_read_safely(official_reference: Path) -> None:
    state = load_state_file(official_reference / "text_encoder.pth")  # old non-zip format
    assert detect_kind(state) == "text_encoder"
    words = read_captions_pickle(official_reference / "captions.pickle")
    assert len(words) == 500 and words[:2] == ["<end>", "word1"]


def test_real_cub_captions_pickle(cub_root: Path) -> None:
    """The released birds captions.pickle (Python 2) through the restricted unpickler."""
    words = read_captions_pickle(cub_root / "captions.pickle")
    assert len(words) == 5450 and words[0] == "<end>" and all(isinstance(w, str) for w in words)


# --------------------------------------------------------------------------------------------------
# Official-layout files made here from the key/shape tables (no ../shared needed)
# --------------------------------------------------------------------------------------------------
NGF, NDF, R_NUM, VOCAB, WORD_DIM = 2, 2, 1, 12, 6


def _state_from_table(table, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in table:
        t = torch.randn(shape, generator=g) * 0.3
        if key.endswith("running_var"):
            t = t.abs() + 0.5
        out[key] = t
    return out


def _py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2 writes it: ``str`` as SHORT_BINSTRING bytes (decoded with latin1)."""
    out = bytearray()

    def emit(o) -> None:
        if isinstance(o, list):
            out.extend(b"](")
            for x in o:
                emit(x)
            out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, int):
            out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, str):
            b = o.encode("latin1")
            out.extend(b"U" + bytes([len(b)]) + b)
        else:
            raise TypeError(o)

    out.extend(b"\x80\x02")
    emit(obj)
    out.extend(b".")
    return bytes(out)


def _captions(words: list[str]) -> list:
    return [[[1, 2, 3]], [[2, 1]], dict(enumerate(words)), {w: i for i, w in enumerate(words)}]


@pytest.fixture
def official_files(tmp_path: Path) -> dict:
    """A 2-stage official-layout generator, text encoder, D64 and D128 and captions.pickle, saved like the
    released files (old torch format, no num_batches_tracked, Python 2 pickle)."""
    files = {}
    tables = {
        "netG": generator_table(ngf=NGF, r_num=R_NUM, stages=2),
        "text": text_encoder_table(VOCAB, word_dim=WORD_DIM),
        "netD0": discriminator_table(NDF, 64),
        "netD1": discriminator_table(NDF, 128),
    }
    states = {}
    for i, (name, table) in enumerate(tables.items()):
        states[name] = _state_from_table(table, seed=i)
        files[name] = tmp_path / f"{name}.pth"
        torch.save(states[name], files[name], _use_new_zipfile_serialization=False)
    words = ["<end>"] + [f"w{i}" for i in range(1, VOCAB - 1)] + ["caf\xe9"]
    files["captions"] = tmp_path / "captions.pickle"
    files["captions"].write_bytes(_py2_pickle(_captions(words)))
    return {"files": files, "states": states, "words": words, "tmp": tmp_path}


def _run(f: dict, **kw):
    files = f["files"]
    args = dict(generator=files["netG"], text_encoder=files["text"], captions=files["captions"], preset="bird",
                custom=True, out=f["tmp"] / "out", discriminators=[files["netD0"], files["netD1"]])
    args.update(kw)
    return import_official(**args)


def test_import_maps_official_layout(official_files: dict) -> None:
    res = _run(official_files)
    ck, cfg, G, T, Ds = load_imported(res.generator_path)
    g = cfg.generator
    assert (g.stages, g.base_size, g.ngf, g.r_num, g.z_dim, g.condition_dim) == (2, 64, NGF, R_NUM, 100, 100)
    assert cfg.discriminator.ndf == NDF and cfg.preset == "bird" and cfg.words == 18
    assert ck.vocab == official_files["words"] and ck.vocab[-1] == "caf\xe9"
    assert ck.extra["damsm_config"]["vocab_size"] == VOCAB and ck.extra["damsm_config"]["word_dim"] == WORD_DIM
    # every official tensor landed under the same name, BN counters added
    states = official_files["states"]
    for name, ours in [("netG", ck.state["generator"]), ("text", ck.state["text_encoder"]),
                       ("netD0", ck.state["discriminators"]["0"]), ("netD1", ck.state["discriminators"]["1"])]:
        assert set(to_official(ours)) == set(states[name]), name
        for k, v in states[name].items():
            assert torch.equal(ours[k], v), (name, k)
        assert all(ours[k].item() == 0 for k in ours if k.endswith("num_batches_tracked"))
    # and the model computes with them as the official modules would: CA net and unconditional D head
    sent = torch.randn(3, 256)
    x = F.glu(F.linear(sent, states["netG"]["ca_net.fc.weight"], states["netG"]["ca_net.fc.bias"]), dim=1)
    c, mu, logvar = G.ca_net(sent, noise=False)
    torch.testing.assert_close(mu, x[:, :100])
    torch.testing.assert_close(logvar, x[:, 100:])
    torch.testing.assert_close(c, mu)
    code = torch.randn(3, 8 * NDF, 4, 4)
    w, b = states["netD1"]["UNCOND_DNET.outlogits.0.weight"], states["netD1"]["UNCOND_DNET.outlogits.0.bias"]
    torch.testing.assert_close(Ds[1].uncond_logits(code), (code * w).sum((1, 2, 3)) + b)
    with torch.no_grad():
        words, sent = T(torch.tensor([[1, 2, 0]]), torch.tensor([2]))
        out = G(torch.randn(1, 100), sent, words, torch.tensor([[False, False, True]]), ca_noise=False)
    assert [tuple(i.shape) for i in out.images] == [(1, 3, 64, 64), (1, 3, 128, 128)]
    # the DAMSM checkpoint
    dck = load_checkpoint(res.damsm_path, kind="damsm")
    assert set(dck.state) == {"text_encoder"} and dck.config["text"]["vocab_size"] == VOCAB
    assert dck.vocab == ck.vocab


def test_module_prefix_and_zip_format(official_files: dict, tmp_path: Path) -> None:
    state = {"module." + k: v for k, v in official_files["states"]["netG"].items()}
    torch.save(state, tmp_path / "g_zip.pth")
    loaded = load_state_file(tmp_path / "g_zip.pth")
    assert detect_kind(loaded) == "generator"
    cfg = infer_generator_config(loaded)
    assert (cfg.stages, cfg.ngf, cfg.r_num, cfg.base_size) == (2, NGF, R_NUM, 64)


# ---- errors -------------------------------------------------------------------------------------
def _text_encoder_file(path: Path, vocab: int) -> Path:
    torch.save(_state_from_table(text_encoder_table(vocab, word_dim=2), seed=5), path)
    return path


def _captions_file(path: Path, n: int) -> Path:
    path.write_bytes(pickle.dumps(_captions(["<end>"] + [f"x{i}" for i in range(1, n)]), protocol=2))
    return path


def test_wrong_vocabulary_named(official_files: dict, tmp_path: Path) -> None:
    """A COCO-sized text encoder with the birds' captions.pickle: the message names both datasets."""
    t = _text_encoder_file(tmp_path / "coco_text.pth", 27297)
    c = _captions_file(tmp_path / "bird_captions.pickle", 5450)
    with pytest.raises(ConfigMismatchError) as e:
        _run(official_files, text_encoder=t, captions=c)
    msg = str(e.value)
    assert "27,297 words" in msg and "MS-COCO" in msg and "5,450 words" in msg and "CUB birds" in msg
    assert not (official_files["tmp"] / "out" / "generator.pt").exists()


def test_wrong_preset_named(official_files: dict, tmp_path: Path) -> None:
    t = _text_encoder_file(tmp_path / "coco_text.pth", 27297)
    c = _captions_file(tmp_path / "coco_captions.pickle", 27297)
    with pytest.raises(ConfigMismatchError, match="--preset coco"):
        _run(official_files, text_encoder=t, captions=c, preset="bird")


def test_nonstandard_sizes_need_custom(official_files: dict, tmp_path: Path) -> None:
    t = _text_encoder_file(tmp_path / "bird_text.pth", 5450)
    c = _captions_file(tmp_path / "bird_captions.pickle", 5450)
    with pytest.raises(ConfigMismatchError, match=r"ngf 2 \(preset: 32\).*--custom"):
        _run(official_files, text_encoder=t, captions=c, custom=False)
    with pytest.raises(ConfigMismatchError, match="--custom"):
        _run(official_files, custom=False)  # 12-word vocabulary


def test_encoder_passed_as_generator(official_files: dict) -> None:
    files = official_files["files"]
    with pytest.raises(CheckpointError, match=r"text encoder.*not an official AttnGAN generator.*--text-encoder"):
        _run(official_files, generator=files["text"], text_encoder=files["netG"])
    with pytest.raises(CheckpointError, match="discriminator.*--discriminators"):
        _run(official_files, generator=files["netD0"])


def test_discriminator_order_and_count(official_files: dict) -> None:
    files = official_files["files"]
    with pytest.raises(ConfigMismatchError, match="128 px.*stage 1 makes 64 px.*order"):
        _run(official_files, discriminators=[files["netD1"], files["netD0"]])
    with pytest.raises(ConfigMismatchError, match="got 1 files.*2 stages"):
        _run(official_files, discriminators=[files["netD0"]])


def test_generator_encoder_feature_size_mismatch(official_files: dict, tmp_path: Path) -> None:
    state = _state_from_table(text_encoder_table(VOCAB, word_dim=2, nhidden=64), seed=3)  # 128-d features
    torch.save(state, tmp_path / "t128.pth")
    with pytest.raises(ConfigMismatchError, match="256-d.*128-d"):
        _run(official_files, text_encoder=tmp_path / "t128.pth")


def test_pickled_objects_are_not_executed(official_files: dict, tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a whole module, not a state dict
    with pytest.raises(CheckpointError, match=r"pickled Python objects.*Linear.*state_dict"):
        _run(official_files, generator=tmp_path / "module.pth")
    marker = tmp_path / "pwned"
    evil = b"\x80\x02cos\nsystem\nX" + bytes([len(f"touch {marker}")]) + b"\x00\x00\x00" + f"touch {marker}".encode() + b"\x85R."
    (tmp_path / "evil.pickle").write_bytes(evil)
    with pytest.raises(InputError, match="os.system is not allowed"):
        read_captions_pickle(tmp_path / "evil.pickle")
    assert not marker.exists()


@pytest.mark.parametrize("raw", [
    b"",  # EOFError
    b"\x80\x02(t",  # truncated: UnpicklingError
    b"\x80\x02X\x01\x00\x00\x00\x85.",  # a string that is not UTF-8: UnicodeDecodeError
    b"\x80\x02K\x01K\x02a.",  # APPEND to an int: AttributeError
    b"\x80\x02}]K\x01s.",  # a list as a dict key: TypeError
])
def test_malformed_captions_pickle_is_an_input_error(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "bad.pickle").write_bytes(raw)
    with pytest.raises(InputError, match=r"bad\.pickle"):
        read_captions_pickle(tmp_path / "bad.pickle")


def test_existing_output_needs_overwrite(official_files: dict) -> None:
    _run(official_files, discriminators=())
    with pytest.raises(InputError, match="--overwrite"):
        _run(official_files, discriminators=())
    res = _run(official_files, discriminators=(), overwrite=True)
    assert "discriminators" not in load_checkpoint(res.generator_path).state


def test_cli(official_files: dict) -> None:
    from attngan_cli.cli import app

    files, out = official_files["files"], official_files["tmp"] / "cli"
    runner = CliRunner()
    base = ["import", "official", "-g", str(files["netG"]), "-t", str(files["text"]), "--captions",
            str(files["captions"]), "--out", str(out)]
    r = runner.invoke(app, [*base, "--discriminators", str(files["netD0"]), str(files["netD1"]), "--custom", "-q"])
    assert r.exit_code == 0, r.output
    assert str(out / "generator.pt") in r.stdout and (out / "damsm.pt").exists()
    assert len(load_checkpoint(out / "generator.pt").state["discriminators"]) == 2
    r = runner.invoke(app, [*base, "--overwrite"])  # no --custom: a 12-word vocabulary is not the bird one
    assert r.exit_code == 1 and "--custom" in r.output and "Traceback" not in r.output


def test_image_encoder_imported(official_files: dict, tmp_path: Path) -> None:
    """An official CNN_ENCODER file (torchvision Inception-v3 layer names, no BN counters, old format) goes
    into damsm.pt with the frozen Inception layers, so no separate Inception file is needed."""
    from torchvision.models import inception_v3

    from attngan_cli.inference.pipeline import load_damsm

    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    layers = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Mixed_5b",
              "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
              "Mixed_7b", "Mixed_7c")
    state = {k: v for k, v in net.state_dict().items()
             if k.split(".")[0] in layers and not k.endswith("num_batches_tracked")}
    state["emb_features.weight"] = torch.randn(256, 768, 1, 1)
    state["emb_cnn_code.weight"] = torch.randn(256, 2048)
    state["emb_cnn_code.bias"] = torch.randn(256)
    torch.save(state, tmp_path / "image_encoder200.pth", _use_new_zipfile_serialization=False)
    res = _run(official_files, image_encoder=tmp_path / "image_encoder200.pth", discriminators=())
    bundle = load_damsm(res.damsm_path)
    ours = bundle.image_encoder.state_dict()
    for k, v in state.items():
        assert torch.equal(ours[k], v), k
    assert bundle.config.image.backbone == "inception-v3" and bundle.config.text.vocab_size == VOCAB
    # the official resize of 256 px images to 299 (nn.Upsample, bilinear, PyTorch 0.3: corners aligned) is
    # recorded in damsm.pt, so every user of the bundle (GAN loss, eval's R-precision) resizes that way
    assert bundle.config.image.resize_align_corners is True
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    aligned = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=True)
    assert torch.equal(bundle.image_encoder.resize(x), aligned)
    assert not torch.allclose(aligned, torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear"))
    # an image encoder passed as the text encoder is named as such
    with pytest.raises(CheckpointError, match="image encoder.*--image-encoder"):
        _run(official_files, text_encoder=tmp_path / "image_encoder200.pth", overwrite=True)
