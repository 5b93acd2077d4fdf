"""GAN training loop: gradients, exact resume, NaN stop, mismatch errors, checkpoints, the CLI.

Tiny sizes throughout (2 stages of 16 and 32 px, ngf = ndf = 8, 4 steps per epoch on the 64-image
shapes fixture, random compact DAMSM encoders) so the whole file runs in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _sample_fixtures import make_damsm, tiny_train_config, tiny_train_settings
from typer.testing import CliRunner

from attngan_cli.archs.attngan.loss import AttnGANLoss, DiscriminatorLoss, GeneratorLoss
from attngan_cli.core.errors import ConfigMismatchError, TrainingAborted
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.inference.pipeline import GeneratorBundle, embed_captions, load_generator
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training.gan import build_models, open_datasets, train_gan, train_step

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


tiny_cfg = tiny_train_config


class Recorder:
    def __init__(self) -> None:
        self.losses: dict[int, dict[str, float]] = {}

    def __call__(self, info) -> None:
        self.losses[info.step] = dict(info.losses)


def test_gradients_reach_generator_and_discriminators(shapes_h5, damsm_path):
    from attngan_cli.inference.pipeline import load_damsm

    cfg = tiny_cfg(shapes_h5, damsm_path)
    damsm = load_damsm(damsm_path)
    train_ds, _ = open_datasets(cfg)
    m = build_models(cfg, torch.device("cpu"), damsm.text_encoder, damsm.image_encoder)
    batch = torch.utils.data.default_collate([train_ds[i] for i in range(cfg.batch_size)])
    g0 = [p.detach().clone() for p in m.G.parameters()]
    logs = train_step(m, batch, cfg, torch.device("cpu"), AttnGANLoss(DiscriminatorLoss(), GeneratorLoss(
        cfg.lambda_damsm, cfg.kl_weight, cfg.damsm, damsm.image_encoder)))
    assert {"d0", "d1", "d", "g", "g_adv0", "g_adv1", "kl", "w_loss", "s_loss"} <= set(logs)
    for name, p in m.G.named_parameters():
        assert p.grad is not None, name
    for i, D in enumerate(m.Ds):
        for name, p in D.named_parameters():
            assert p.grad is not None and p.requires_grad, f"D{i}.{name}"
        assert sum(float(p.grad.abs().sum()) for p in D.parameters()) > 0
    assert sum(float(p.grad.abs().sum()) for p in m.G.parameters()) > 0
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.G.parameters(), strict=True))  # G moved
    assert all(p.grad is None for p in damsm.text_encoder.parameters())  # encoders stay frozen
    assert all(p.grad is None for p in damsm.image_encoder.parameters())
    # the DAMSM term alone reaches G's last stage (through the frozen image encoder)
    m.G.zero_grad(set_to_none=True)
    words_emb, sent_emb, mask = embed_captions(damsm.text_encoder, batch["caption"], batch["length"])
    out = m.G(torch.randn(cfg.batch_size, 100), sent_emb, words_emb, mask)
    w, s = GeneratorLoss(1.0, 0.0, cfg.damsm, damsm.image_encoder).damsm_terms(
        out.images[-1], words_emb, sent_emb, batch["length"], batch["class_id"])
    (w + s).backward()
    assert float(m.G.img_net2.img[0].weight.grad.abs().sum()) > 0


def test_resume_is_exact_at_epoch_and_mid_epoch(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path)
    full = Recorder()
    final_a = train_gan(settings, RunDir.create(tmp_path, "a", "train"), callbacks=[full])
    assert sorted(full.losses) == list(range(1, 9))
    run_a = final_a.parent
    assert (run_a / "checkpoint-1.pt").is_file() and not (run_a / "checkpoint-2.pt").exists()
    ck = load_checkpoint(run_a / "checkpoint-1.pt", kind="gan")
    assert (ck.step, ck.epoch) == (4, 1)
    assert set(ck.state) == {"generator", "generator_ema", "discriminators"}
    assert set(ck.state["discriminators"]) == {"0", "1"}
    assert {"damsm_text_encoder", "damsm_config", "damsm_path"} <= set(ck.extra)

    # resume from the epoch-1 checkpoint: steps 5..8 repeat exactly
    rec = Recorder()
    final_b = train_gan(tiny_train_settings(shapes_h5, damsm_path, resume=run_a / "checkpoint-1.pt"),
                        RunDir.create(tmp_path, "b", "train"), callbacks=[rec])
    assert sorted(rec.losses) == [5, 6, 7, 8]
    for s in rec.losses:
        assert rec.losses[s] == full.losses[s], s
    a, b = load_checkpoint(final_a), load_checkpoint(final_b)
    for k in a.state["generator_ema"]:
        assert torch.equal(a.state["generator_ema"][k], b.state["generator_ema"][k]), k

    # stop mid-epoch (after step 6) through `abort`, then resume from the run directory
    rec_c = Recorder()
    with pytest.raises(TrainingAborted, match="step 6"):
        train_gan(settings, RunDir.create(tmp_path, "c", "train"), callbacks=[rec_c],
                  abort=lambda: max(rec_c.losses, default=0) >= 6)
    run_c = next(tmp_path.glob("*-c-train"))
    assert (run_c / "interrupted.pt").is_file() and not (run_c / "final.pt").exists()
    rec_d = Recorder()
    train_gan(tiny_train_settings(shapes_h5, damsm_path, resume=run_c), RunDir.create(tmp_path, "d", "train"),
              callbacks=[rec_d])
    assert sorted(rec_d.losses) == [7, 8]
    for s in rec_d.losses:
        assert rec_d.losses[s] == full.losses[s], s


def test_keyboard_interrupt_saves_checkpoint(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, epochs=1)

    def interrupt(info):
        if info.step == 2:
            raise KeyboardInterrupt

    run = RunDir.create(tmp_path, "k", "train")
    with pytest.raises(KeyboardInterrupt):
        train_gan(settings, run, callbacks=[interrupt])
    ck = load_checkpoint(run.file("interrupted.pt"), kind="gan")
    assert ck.step == 2 and ck.extra["batch_in_epoch"] == 2


def test_a_real_ctrl_c_mid_step_finishes_the_step_and_resumes_exactly(shapes_h5, damsm_path, tmp_path):
    """A real SIGINT arriving inside step 3 (from G's forward): the step finishes, interrupted.pt holds
    step 3, KeyboardInterrupt propagates, Python's handler is back; resuming from the run directory gives
    the uninterrupted run's losses for steps 4-6 and its final weights, to the bit."""
    import os
    import signal

    settings = tiny_train_settings(shapes_h5, damsm_path, max_steps=6)  # 4 steps per epoch: the resumed part crosses an epoch
    full = Recorder()
    final_a = train_gan(settings, RunDir.create(tmp_path, "a", "train"), callbacks=[full])

    def ctrl_c_inside_next_step(info):
        def hook(module, args):
            handle.remove()
            os.kill(os.getpid(), signal.SIGINT)

        handle = info.models.G.register_forward_pre_hook(hook)

    rec = Recorder()
    run = RunDir.create(tmp_path, "sig", "train")
    with pytest.raises(KeyboardInterrupt):
        train_gan(settings, run, callbacks=[rec, lambda info: info.step == 2 and ctrl_c_inside_next_step(info)])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sorted(rec.losses) == [1, 2, 3]  # step 3 was finished, no step 4 started
    assert rec.losses[3] == full.losses[3]
    ck = load_checkpoint(run.file("interrupted.pt"), kind="gan")
    assert (ck.step, ck.epoch, ck.extra["batch_in_epoch"]) == (3, 0, 3)
    assert read_jsonl(run.file("stats.jsonl"))[-1]["end"] == "interrupted"

    rest = Recorder()
    final_c = train_gan(tiny_train_settings(shapes_h5, damsm_path, resume=run.path, max_steps=6),
                        RunDir.create(tmp_path, "c", "train"), callbacks=[rest])
    assert sorted(rest.losses) == [4, 5, 6]
    for s in rest.losses:
        assert rest.losses[s] == full.losses[s], s
    a, c = load_checkpoint(final_a), load_checkpoint(final_c)
    for part in ("generator", "generator_ema"):
        for k, v in a.state[part].items():
            assert torch.equal(v, c.state[part][k]), (part, k)
    for d, state in a.state["discriminators"].items():
        for k, v in state.items():
            assert torch.equal(v, c.state["discriminators"][d][k]), (d, k)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, epochs=3, keep_last=1)

    def poison(info):
        if info.step == 9:
            with torch.no_grad():
                next(info.models.G.parameters()).fill_(float("nan"))

    run = RunDir.create(tmp_path, "n", "train")
    with pytest.raises(TrainingAborted, match=r"non-finite loss at step 10.*checkpoint-2\.pt"):
        train_gan(settings, run, callbacks=[poison])
    assert not run.file("final.pt").exists()
    assert not run.file("checkpoint-1.pt").exists()  # pruned: --keep-last 1
    ck = load_checkpoint(run.file("checkpoint-2.pt"), kind="gan")
    assert ck.step == 8
    assert all(torch.isfinite(v).all() for v in ck.state["generator"].values() if v.is_floating_point())


def test_encoders_of_another_vocabulary_fail_before_training(shapes_h5, damsm_path, tmp_path):
    from attngan_cli.data.h5 import read_vocab

    words = list(read_vocab(shapes_h5).words)
    other = words[:1] + sorted(words[1:], reverse=True)
    bad = make_damsm(tmp_path / "other.pt", other)
    run = RunDir.create(tmp_path / "runs", "m", "train")
    with pytest.raises(ConfigMismatchError, match="vocabulary.*other.pt.*first difference at index 1"):
        train_gan(tiny_train_settings(shapes_h5, bad), run)
    assert not list(run.path.glob("*.pt"))
    bigger = make_damsm(tmp_path / "bigger.pt", words + ["zebra"])
    with pytest.raises(ConfigMismatchError, match=f"{len(words) + 1} words there, {len(words)} in"):
        train_gan(tiny_train_settings(shapes_h5, bigger), run)
    # a resumed run must keep the architecture
    final = train_gan(tiny_train_settings(shapes_h5, damsm_path, max_steps=1),
                      RunDir.create(tmp_path / "runs", "ok", "train"))
    with pytest.raises(ConfigMismatchError, match="generator.ngf"):
        train_gan(tiny_train_settings(shapes_h5, damsm_path, resume=final, **{"generator.ngf": 16}), run)


def test_load_generator_gan_and_imported(shapes_h5, damsm_path, tmp_path):
    final = train_gan(tiny_train_settings(shapes_h5, damsm_path, max_steps=2, lambda_damsm=0.0),
                      RunDir.create(tmp_path, "g", "train"))
    bundle = load_generator(final.parent)  # run directory -> final.pt, EMA weights
    assert isinstance(bundle, GeneratorBundle) and bundle.path == final
    assert not bundle.generator.training and not any(p.requires_grad for p in bundle.generator.parameters())
    ck = load_checkpoint(final)
    for k, v in bundle.generator.state_dict().items():
        assert torch.equal(v, ck.state["generator_ema"][k]), k
    live = load_generator(final, ema=False)
    assert torch.equal(live.generator.state_dict()["ca_net.fc.weight"], ck.state["generator"]["ca_net.fc.weight"])
    ids, lens = bundle.vocab.encode_batch(["a red circle on a white background"])
    with torch.no_grad():
        w, s = bundle.text_encoder(ids, lens)
        out = bundle.generator(torch.randn(1, 100), s, w, ids == 0)
    assert [x.shape[-1] for x in out.images] == [16, 32]

    # kind "generator" (as `attngan import` writes): state generator + text_encoder, no text config
    imported = Checkpoint(kind="generator", config=ck.config, vocab=ck.vocab,
                          state={"generator": ck.state["generator_ema"], "text_encoder": ck.extra["damsm_text_encoder"]})
    p = save_checkpoint(imported, tmp_path / "G.pt")
    b2 = load_generator(p)
    assert b2.text_encoder.cfg.vocab_size == len(ck.vocab) and b2.text_encoder.cfg.embedding_dim == 256


def test_cli_train_and_resume(shapes_h5, damsm_path, tmp_path):
    from attngan_cli.cli import app

    runner = CliRunner()
    args = ["train", str(shapes_h5), "--encoders", str(damsm_path), "--preset", "shapes", "--stages", "1",
            "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--max-steps", "3", "--sample-every", "2",
            "--runs", str(tmp_path), "--device", "cpu", "--quiet", "--no-mismatch", "--lambda", "0"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    final = Path(r.stdout.strip().splitlines()[-1])
    assert final.name == "final.pt" and final.is_file()
    run = final.parent
    cfg = load_checkpoint(final).config
    assert (cfg["generator"]["stages"], cfg["mismatch"], cfg["lambda_damsm"], cfg["max_steps"]) == (1, False, 0.0, 3)
    stats = read_jsonl(run / "stats.jsonl")
    assert stats[-1]["step"] == 3 and math.isfinite(stats[-1]["d"]) and "wrong" not in str(stats[-1])
    assert (run / "samples-000000.png").is_file() and (run / "samples-000002.png").is_file()
    assert (run / "samples-000003.png").is_file() and (run / "config.json").is_file()

    r2 = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "5", "--runs", str(tmp_path), "--quiet"])
    assert r2.exit_code == 0, r2.output
    final2 = Path(r2.stdout.strip().splitlines()[-1])
    assert final2.parent != run and load_checkpoint(final2).step == 5

    bad = runner.invoke(app, ["train", str(shapes_h5), "--runs", str(tmp_path)])
    assert bad.exit_code == 1 and "--encoders" in bad.output
    bad = runner.invoke(app, ["train", str(shapes_h5), "--encoders", str(damsm_path), "--precision", "fp16",
                              "--device", "cpu", "--runs", str(tmp_path)])
    assert bad.exit_code == 1 and "fp16" in bad.output


def test_max_minutes_ends_with_final_checkpoint(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, max_minutes=1e-6, lambda_damsm=0.0)
    final = train_gan(settings, RunDir.create(tmp_path, "t", "train"))
    assert load_checkpoint(final).step == 1


def test_bf16_channels_last_step(shapes_h5, damsm_path, tmp_path):
    settings = tiny_train_settings(shapes_h5, damsm_path, max_steps=2, precision="bf16", channels_last=True)
    rec = Recorder()
    final = train_gan(settings, RunDir.create(tmp_path, "bf", "train"), callbacks=[rec])
    assert sorted(rec.losses) == [1, 2]
    assert all(math.isfinite(v) for r in rec.losses.values() for v in r.values())
    ck = load_checkpoint(final)
    assert all(v.dtype in (torch.float32, torch.int64) for v in ck.state["generator"].values())


def test_a_failing_torch_compile_falls_back_to_eager(shapes_h5, damsm_path, tmp_path, monkeypatch, caplog):
    """Where torch.compile fails (no C++ compiler, an op it lacks: it shows at the first call), training
    says so once and goes on with the same modules, eagerly."""
    tried: list[str] = []

    def broken_compile(module, *args, **kwargs):
        def run(*a, **k):
            tried.append(type(module).__name__)
            raise RuntimeError("backend='inductor' raised: no working C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    settings = tiny_train_settings(shapes_h5, damsm_path, max_steps=3, compile=True, lambda_damsm=0.0)
    rec = Recorder()
    with caplog.at_level("WARNING", logger="attngan_cli"):
        final = train_gan(settings, RunDir.create(tmp_path, "c", "train"), callbacks=[rec])
    assert tried == ["Generator"]  # G's compiled forward came first, and only once
    assert caplog.text.count("torch.compile failed (RuntimeError: backend='inductor' raised") == 1
    assert sorted(rec.losses) == [1, 2, 3] and load_checkpoint(final).step == 3
    assert all(math.isfinite(v) for r in rec.losses.values() for v in r.values())


def _step_gradients(shapes_h5, damsm_path, grad_accum: int) -> dict[str, torch.Tensor]:
    """The gradients of G and every D in one step (the optimisers record instead of stepping), with
    BatchNorm in eval mode and no DAMSM term, where every loss is a mean of per-sample terms."""
    from attngan_cli.inference.pipeline import load_damsm

    cfg = tiny_cfg(shapes_h5, damsm_path, lambda_damsm=0.0, grad_accum=grad_accum)
    damsm = load_damsm(damsm_path)
    train_ds, _ = open_datasets(cfg)
    torch.manual_seed(0)
    m = build_models(cfg, torch.device("cpu"), damsm.text_encoder, None)
    m.G.eval()
    m.Ds.eval()
    grads: dict[str, torch.Tensor] = {}

    def recorder(prefix: str, module: torch.nn.Module):
        def step(*args, **kwargs):
            grads.update({f"{prefix}.{k}": p.grad.clone() for k, p in module.named_parameters()})
        return step

    m.opt_g.step = recorder("G", m.G)
    for i, (opt, D) in enumerate(zip(m.opt_ds, m.Ds, strict=True)):
        opt.step = recorder(f"D{i}", D)
    batch = torch.utils.data.default_collate([train_ds[i] for i in range(cfg.batch_size)])
    torch.manual_seed(1)
    train_step(m, batch, cfg, torch.device("cpu"), AttnGANLoss(DiscriminatorLoss(), GeneratorLoss(0.0, cfg.kl_weight)))
    return grads


def test_grad_accum_adds_up_to_the_whole_batch_gradient(shapes_h5, damsm_path):
    whole = _step_gradients(shapes_h5, damsm_path, 1)
    accumulated = _step_gradients(shapes_h5, damsm_path, 4)
    assert set(whole) == set(accumulated) and any(k.startswith("D1.") for k in whole)
    for k, g in whole.items():
        torch.testing.assert_close(accumulated[k], g, rtol=1e-4, atol=1e-6, msg=f"gradient of {k}")


def test_resume_refuses_another_text_encoder(shapes_h5, damsm_path, tmp_path):
    from attngan_cli.config.serialize import to_dict
    from attngan_cli.data.h5 import read_vocab
    from attngan_cli.inference.pipeline import load_damsm
    from attngan_cli.training.resolve import check_resume

    cfg = tiny_cfg(shapes_h5, damsm_path)
    words = list(read_vocab(shapes_h5).words)
    trained_with = load_damsm(damsm_path).text_encoder
    ckpt = Checkpoint(kind="gan", config=to_dict(cfg), vocab=words, state={}, path=tmp_path / "final.pt",
                      extra={"damsm_text_encoder": trained_with.state_dict(), "damsm_path": str(damsm_path)})
    check_resume(ckpt, cfg, words, trained_with.state_dict())  # the same encoder: accepted
    other = load_damsm(make_damsm(tmp_path / "other.pt", words, seed=1)).text_encoder
    with pytest.raises(ConfigMismatchError, match="differs from the one checkpoint"):
        check_resume(ckpt, cfg, words, other.state_dict())
