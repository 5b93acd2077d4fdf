"""The safety promises of README, tested as properties (issue 21): a checkpoint save that dies half-way
leaves the previous file intact; no file a user hands to attngan runs pickled code when it is read; the
DAMSM loss reaches the generator through the real Inception-v3 image encoder.

Each test here was checked against a planted one-line bug (see the issue): it fails on the bug.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attngan_cli.config.presets import make_train_config
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.errors import AttnGANError, CheckpointError, InputError
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint, save_checkpoint

runner = CliRunner()


def _ckpt(step: int = 7) -> Checkpoint:
    return Checkpoint(kind="gan", config=to_dict(make_train_config("shapes")), vocab=["<end>", "red", "circle"],
                      state={"generator": {"w": torch.arange(6.0).reshape(2, 3) + step}}, step=step)


# --------------------------------------------------------------------------------------------------
# Atomic checkpoint saves
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_a_save_that_dies_half_way_leaves_the_old_checkpoint_intact(tmp_path: Path, monkeypatch, error) -> None:
    """The fake ``torch.save`` writes part of a file to the path it is given, then fails (a full disk, a
    Ctrl-C): the previous checkpoint must still be there, byte for byte, and no temporary file is left."""
    path = save_checkpoint(_ckpt(step=7), tmp_path / "a.pt")
    before = path.read_bytes()
    written = []

    def dies_half_way(obj, f, *args, **kwargs):  # ``f``: a path or an open file
        if hasattr(f, "write"):
            f.write(b"PK\x03\x04 half a checkpoint")
            f.flush()
        else:
            Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        written.append(Path(getattr(f, "name", f)))
        raise error("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(error):
        save_checkpoint(_ckpt(step=8), path)
    monkeypatch.undo()
    assert written, "save_checkpoint did not call torch.save"
    assert path.read_bytes() == before
    back = load_checkpoint(path, kind="gan")
    assert back.step == 7 and torch.equal(back.state["generator"]["w"], _ckpt(step=7).state["generator"]["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]
    # and a save that succeeds replaces it
    save_checkpoint(_ckpt(step=8), path)
    assert load_checkpoint(path).step == 8 and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


# --------------------------------------------------------------------------------------------------
# Safe loading: no pickled code runs
# --------------------------------------------------------------------------------------------------
class _Touch:
    """Pickles as "call pathlib.Path.touch(target)": loading it with weights_only=False creates ``target``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def _evil(path: Path, target: Path, payload: dict | None = None) -> Path:
    """``payload`` (default: a valid attngan checkpoint of kind "gan") with a code-running object inside."""
    payload = dict(payload if payload is not None else _ckpt().to_payload())
    payload["extra"] = {"note": _Touch(target)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def _check_really_evil(path: Path, target: Path) -> None:
    """The file does run code when loaded unsafely (so the tests below test something)."""
    torch.load(path, map_location="cpu", weights_only=False)
    assert target.exists()
    target.unlink()


@pytest.fixture()
def evil(tmp_path: Path) -> dict[str, Path]:
    target = tmp_path / "pwned"
    files = {
        "gan": _evil(tmp_path / "gan.pt", target),
        "damsm": _evil(tmp_path / "damsm.pt", target, {**_ckpt().to_payload(), "kind": "damsm"}),
        "run": tmp_path / "00000-x-train",
        "state": _evil(tmp_path / "state.pth", target, {"encoder.weight": torch.zeros(2, 2)}),
    }
    _evil(files["run"] / "final.pt", target)
    _check_really_evil(files["gan"], target)
    files["target"] = target
    return files


def test_checkpoint_loaders_refuse_pickled_code(evil: dict[str, Path]) -> None:
    from attngan_cli.inference.pipeline import load_damsm, load_generator

    target = evil["target"]
    with pytest.raises(CheckpointError, match="gan.pt"):
        load_checkpoint(evil["gan"])
    with pytest.raises(CheckpointError):
        load_generator(evil["gan"])
    with pytest.raises(CheckpointError):
        load_generator(evil["run"])  # a run directory -> its final.pt
    with pytest.raises(CheckpointError):
        load_damsm(evil["damsm"])
    assert not target.exists()


def test_resuming_from_a_file_with_pickled_code_is_refused(evil: dict[str, Path], shapes_h5: Path) -> None:
    from attngan_cli.training.resolve import resolve_pretrain, resolve_train

    with pytest.raises(CheckpointError):
        resolve_train(shapes_h5, encoders=evil["damsm"], preset="shapes", resume=evil["run"])
    with pytest.raises(CheckpointError):
        resolve_pretrain(shapes_h5, preset="shapes", resume=evil["damsm"])
    assert not evil["target"].exists()


@pytest.mark.parametrize("command", ["sample", "attend", "eval", "train", "pretrain"])
def test_cli_refuses_pickled_code(evil: dict[str, Path], shapes_h5: Path, tmp_path: Path, command: str) -> None:
    from attngan_cli.cli import app

    gan, damsm = str(evil["gan"]), str(evil["damsm"])
    args = {
        "sample": ["sample", "a red circle", "-c", gan, "--out", str(tmp_path / "s"), "--device", "cpu"],
        "attend": ["attend", "a red circle", "-c", gan, "--out", str(tmp_path / "a.png"), "--device", "cpu"],
        "eval": ["eval", "-m", "rprecision", "-c", gan, "--data", str(shapes_h5), "--device", "cpu", "-n", "2"],
        "train": ["train", "--resume", str(evil["run"]), "--runs", str(tmp_path / "runs"), "--device", "cpu"],
        "pretrain": ["pretrain", str(shapes_h5), "--resume", damsm, "--runs", str(tmp_path / "runs"),
                     "--device", "cpu"],
    }[command]
    named = {"train": "final.pt", "pretrain": "damsm.pt"}.get(command, "gan.pt")
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and named in res.output, res.output
    assert "Traceback" not in res.output
    assert not evil["target"].exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_weight_files_refuse_pickled_code(evil: dict[str, Path]) -> None:
    """Official .pth files (`attngan import official`), torchvision Inception-v3 weights (pretrain) and the
    TF-Inception weights of IS/FID are read as tensors only, too."""
    from attngan_cli.apps.importers.attngan import load_state_file
    from attngan_cli.config.schema import ImageEncoderConfig
    from attngan_cli.evaluation.features import check_inception_weights
    from attngan_cli.networks.image_encoder import ImageEncoder, load_inception_weights

    state, target = evil["state"], evil["target"]
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_state_file(state, role="--generator")
    assert not target.exists(), "official .pth"
    with pytest.raises(InputError):
        load_inception_weights(ImageEncoder(ImageEncoderConfig(backbone="inception-v3", image_size=75)), state)
    assert not target.exists(), "--inception-weights of pretrain"
    with pytest.raises(InputError):
        check_inception_weights(state)
    assert not target.exists(), "--inception-weights of eval"


def test_the_evil_file_is_refused_for_the_right_reason(evil: dict[str, Path], tmp_path: Path) -> None:
    """The same payload without the code-running object loads: the refusal above is about the pickle."""
    clean = tmp_path / "clean.pt"
    torch.save(_ckpt().to_payload(), clean)
    assert load_checkpoint(clean, kind="gan").step == 7
    with pytest.raises(AttnGANError):
        load_checkpoint(evil["gan"], kind="gan")


# --------------------------------------------------------------------------------------------------
# The GAN's DAMSM loss through the real Inception-v3 image encoder
# --------------------------------------------------------------------------------------------------
def test_damsm_loss_reaches_the_generator_through_inception_v3() -> None:
    """The inception-v3 encoder's forward runs its frozen layers under no_grad (right for pretraining);
    the GAN's DAMSM term must still send a gradient to G's last image and G's last stage. Random weights,
    the smallest input Inception-v3 takes (75 px), a tiny generator."""
    from attngan_cli.archs.attngan.generator import Generator
    from attngan_cli.archs.attngan.loss import GeneratorLoss
    from attngan_cli.config.schema import DAMSMConfig, GeneratorConfig, ImageEncoderConfig
    from attngan_cli.networks.image_encoder import ImageEncoder

    torch.manual_seed(0)
    D, T, B = 16, 5, 2
    enc = ImageEncoder(ImageEncoderConfig(backbone="inception-v3", image_size=75, embedding_dim=D))
    enc.eval().requires_grad_(False)  # frozen, as the loaded DAMSM bundle is
    G = Generator(GeneratorConfig(stages=2, base_size=16, ngf=4, r_num=1, z_dim=8, condition_dim=6, embedding_dim=D))
    words_emb, sent_emb = torch.randn(B, D, T), torch.randn(B, D)
    lengths = torch.tensor([T, T - 2])
    mask = torch.arange(T)[None, :] >= lengths[:, None]
    out = G(torch.randn(B, 8), sent_emb, words_emb, mask)
    image = out.images[-1]  # (B, 3, 32, 32)
    image.retain_grad()
    w, s = GeneratorLoss(1.0, 0.0, DAMSMConfig(), enc).damsm_terms(image, words_emb, sent_emb, lengths,
                                                                   torch.tensor([0, 1]))
    (w + s).backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
    last = list(G.img_net2.parameters())  # the head of the last stage
    assert last and all(p.grad is not None for p in last) and sum(float(p.grad.abs().sum()) for p in last) > 0
    assert all(p.grad is None for p in enc.parameters())  # the encoder stays frozen
