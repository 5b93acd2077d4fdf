"""Scale-out with torchrun / DistributedDataParallel, on 2 CPU processes with gloo (no GPU needed):
disjoint shards in the one-process sample order, identical parameters on every rank, the distributed
DAMSM loss equal to the one-process loss at the same total batch, only rank 0 writing, checkpoints that
resume across world sizes, and distributed eval / sample equal to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _ddp_workers import damsm_batch, damsm_gradients, damsm_worker, launch, train_worker
from _sample_fixtures import tiny_train_config

from attngan_cli.config.serialize import to_dict
from attngan_cli.core.distributed import check_batch, shard
from attngan_cli.core.errors import InputError
from attngan_cli.storage.checkpoints import load_checkpoint

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _ranks(out: Path, world: int = 2) -> list[dict]:
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _env(rank: int, world: int) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1"}


def test_a_global_batch_splits_into_disjoint_equal_shards(monkeypatch) -> None:
    batch = list(range(10, 22))
    parts = []
    for r in range(3):
        monkeypatch.setattr(os, "environ", {**os.environ, **_env(r, 3)})
        parts.append(shard(batch))
    assert parts == [batch[0:4], batch[4:8], batch[8:12]]
    monkeypatch.setattr(os, "environ", {**os.environ, **_env(0, 4)})
    with pytest.raises(InputError, match="--batch-size 10 is the total; it must split evenly over 4 processes"):
        check_batch(10)
    with pytest.raises(InputError, match="at least 2 images each"):
        check_batch(4)
    with pytest.raises(InputError, match="over 4 processes x --grad-accum 2 micro-batches"):
        check_batch(8, grad_accum=2)
    check_batch(8)
    check_batch(16, grad_accum=2)


def test_distributed_damsm_loss_and_gradients_equal_one_process(damsm_path, tmp_path) -> None:
    launch(damsm_worker, 2, str(damsm_path), str(tmp_path))
    single = damsm_gradients(str(damsm_path), damsm_batch(), wrap=False)
    for r, got in enumerate(_ranks(tmp_path)):
        torch.testing.assert_close(got["loss"], single["loss"], rtol=1e-5, atol=1e-5, msg=f"rank {r} loss")
        assert got["terms"] == pytest.approx(single["terms"], rel=1e-5, abs=1e-5)
        torch.testing.assert_close(got["g_w"], single["g_w"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["g_s"], single["g_s"], rtol=1e-5, atol=1e-5)
        assert set(got["grads"]) == set(single["grads"]) and got["grads"]
        for k, g in single["grads"].items():
            torch.testing.assert_close(got["grads"][k], g, rtol=1e-4, atol=1e-6, msg=f"rank {r} gradient of {k}")


@pytest.fixture(scope="module")
def runs(shapes_h5, damsm_path, tmp_path_factory) -> dict[str, object]:
    """One-process reference run of 7 steps; a 2-rank run of 3 steps (A); A resumed in one process to
    step 5 (B); B resumed on 2 ranks to step 7 (C). Batch 8 in total (4 per rank), 8 steps per epoch."""
    root = tmp_path_factory.mktemp("ddp")
    cfg = to_dict(tiny_train_config(shapes_h5, damsm_path, batch_size=8, epochs=2, snapshot_every=0, max_steps=7))
    out = {name: root / name for name in ("ref", "A", "B", "C")}
    for p in out.values():
        p.mkdir()
    train_worker(cfg, str(root / "runs-ref"), str(out["ref"]))
    launch(train_worker, 2, {**cfg, "max_steps": 3}, str(root / "runs-A"), str(out["A"]))
    a = _ranks(out["A"])
    train_worker({**cfg, "max_steps": 5}, str(root / "runs-B"), str(out["B"]), a[0]["run"])
    b = torch.load(out["B"] / "rank0.pt", weights_only=False)
    launch(train_worker, 2, {**cfg, "max_steps": 7}, str(root / "runs-C"), str(out["C"]), b["run"])
    return {"ref": torch.load(out["ref"] / "rank0.pt", weights_only=False), "A": a, "B": b, "C": _ranks(out["C"]),
            "root": root}


def test_ranks_read_disjoint_shards_of_the_one_process_batches(runs) -> None:
    ref = runs["ref"]["seen"]
    for name, steps in (("A", slice(0, 3)), ("C", slice(5, 7))):
        r0, r1 = (r["seen"] for r in runs[name])
        assert len(r0) == len(r1) == steps.stop - steps.start
        for s, (a, b, whole) in enumerate(zip(r0, r1, ref[steps], strict=True)):
            assert len(a) == len(b) == 4 and not set(a) & set(b), (name, s)
            assert a + b == whole, f"run {name} step {steps.start + s}: the ranks' shards are not the one-process batch"


def test_parameters_are_identical_on_every_rank(runs) -> None:
    for name in ("A", "C"):
        p0, p1 = (r["params"] for r in runs[name])
        assert set(p0) == set(p1) and any(k.startswith("D1.") for k in p0)
        different = [k for k in p0 if not torch.equal(p0[k], p1[k])]
        assert not different, f"run {name}: parameters differ across ranks: {different[:5]}"


def test_only_rank_0_writes_and_the_checkpoint_holds_every_rank_rng(runs) -> None:
    root = runs["root"]
    made = sorted(p.name for p in (root / "runs-A").iterdir())
    assert made == ["00000-shapes-train"], made
    run = root / "runs-A" / made[0]
    lines = (run / "stats.jsonl").read_text().splitlines()
    assert lines and len(lines) == len(set(lines)), "stats.jsonl has a record twice: more than one rank wrote"
    assert [json.loads(x)["step"] for x in lines][-1] == 3
    assert {p.name for p in run.iterdir()} >= {"config.json", "final.pt", "stats.jsonl", "samples-captions.txt"}
    ckpt = load_checkpoint(run / "final.pt")
    assert ckpt.step == 3 and len(ckpt.extra["rank_rng"]) == 2
    assert not torch.equal(ckpt.extra["rank_rng"][0]["torch"], ckpt.extra["rank_rng"][1]["torch"])


def test_checkpoints_resume_across_world_sizes(runs) -> None:
    ref = runs["ref"]["seen"]
    assert runs["B"]["seen"] == ref[3:5], "one process resuming a 2-rank checkpoint lost the sample order"
    c_run = Path(runs["C"][0]["run"])
    assert load_checkpoint(c_run / "final.pt").step == 7


def test_every_rank_draws_its_own_noise_and_resumes_its_own_rng(tmp_path) -> None:
    """Under torchrun each rank draws its own noise (dropout, crops, z): not rank 0's. A run stopped
    at step 3 and resumed on 2 ranks continues each rank's own draws, as the run that was not stopped."""
    from _ddp_workers import noise_worker

    out = {name: tmp_path / name for name in ("full", "part", "rest")}
    for p in out.values():
        p.mkdir()
    launch(noise_worker, 2, str(tmp_path / "runs-full"), str(out["full"]), 6)
    launch(noise_worker, 2, str(tmp_path / "runs-part"), str(out["part"]), 3)
    part = _ranks(out["part"])
    launch(noise_worker, 2, str(tmp_path / "runs-rest"), str(out["rest"]), 6, part[0]["final"])
    full, rest = _ranks(out["full"]), _ranks(out["rest"])
    assert sorted(full[0]["drawn"]) == [1, 2, 3, 4, 5, 6] and sorted(rest[1]["drawn"]) == [4, 5, 6]
    for s in range(1, 7):
        assert not torch.equal(full[0]["drawn"][s], full[1]["drawn"][s]), f"step {s}: rank 1 drew rank 0's noise"
    for r in range(2):
        for s in (1, 2, 3):
            assert torch.equal(part[r]["drawn"][s], full[r]["drawn"][s]), (r, s)
        for s in (4, 5, 6):
            assert torch.equal(rest[r]["drawn"][s], full[r]["drawn"][s]), \
                f"rank {r} step {s}: the resume did not restore this rank's own RNG state"


def test_a_killed_rank_ends_the_others_with_one_line(tmp_path) -> None:
    """A torchrun process SIGKILLed mid-run (the OOM killer): the survivor's collective fails, and it
    ends with one line naming what happened and how to resume, not gloo's "Connection reset by peer"."""
    from _ddp_workers import launch_survivors, noise_worker

    codes = launch_survivors(noise_worker, 2, str(tmp_path / "runs"), str(tmp_path), 12, None, 8)
    assert codes[1] == -9 and codes[0] == 0, codes
    got = torch.load(tmp_path / "rank0.pt", weights_only=False)
    assert "error" in got, "rank 0 finished although rank 1 died"
    run = got["run"]
    assert got["error"] == ("TrainingAborted: another torchrun process of this run died (after step 8); this one "
                            f"stops too; resume it from its last checkpoint: attngan train --resume {run}"), got["error"]
    assert load_checkpoint(Path(run) / "checkpoint-1.pt").step == 6


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_eval_and_sample_under_torchrun_equal_one_process(runs, shapes_h5, tmp_path) -> None:
    ckpt = str(Path(runs["A"][0]["run"]) / "final.pt")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "attngan_cli"]
    one = [sys.executable, "-m", "attngan_cli"]
    ev = ["eval", "-m", "rprecision,attributes", "-c", ckpt, "--data", str(shapes_h5), "-n", "40", "--batch-size", "8",
          "--json", "--device", "cpu", "-q"]
    results = []
    for launcher in (one, torchrun):
        p = _run(launcher + ev, tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        results.append(json.loads(p.stdout[p.stdout.index("{"):]))
    assert results[0]["metrics"] == results[1]["metrics"]
    assert results[0]["metrics"]["rprecision"]["mean"] >= 0

    caps = tmp_path / "caps.txt"
    caps.write_text("a red circle\na blue square at the top\na small green triangle\n")
    for launcher, out in ((one, "one"), (torchrun, "two")):
        p = _run(launcher + ["sample", "--captions-file", str(caps), "-c", ckpt, "-o", out, "-n", "2", "--grid",
                             "--device", "cpu", "-q"], tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
    files = sorted(f.name for f in (tmp_path / "one").iterdir())
    assert files == sorted(f.name for f in (tmp_path / "two").iterdir()) and len(files) == 3 * 2 * 2 + 3 + 1
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_pretrain_grad_accum_adds_up_the_micro_batch_gradients(damsm_path) -> None:
    """--grad-accum 2: one Adam step on the mean of the two micro-batches' gradients (each micro-batch's
    own negatives)."""
    from dataclasses import replace

    from attngan_cli.inference.pipeline import load_damsm
    from attngan_cli.losses.damsm import DAMSMLoss
    from attngan_cli.training.damsm import Encoders, PretrainTask, damsm_terms
    from attngan_cli.training.loop import LoopState

    batch = damsm_batch()
    bundle = load_damsm(damsm_path, "cpu")
    text, image = bundle.text_encoder.requires_grad_(True).eval(), bundle.image_encoder.requires_grad_(True).eval()
    cfg = replace(bundle.config, grad_accum=2, grad_clip=1e9)
    params = [*text.parameters(), *image.parameters()]
    expected = [torch.zeros_like(p) for p in params]
    for rows in (slice(0, 4), slice(4, 8)):
        part = {k: ([v[0][rows]] if k == "images" else v[rows]) for k, v in batch.items()}
        loss = damsm_terms(part, text, image, DAMSMLoss(cfg.damsm), cfg, torch.device("cpu"), False).total
        for e, g in zip(expected, torch.autograd.grad(loss, params, allow_unused=True), strict=True):
            if g is not None:
                e += g / 2
    opt = torch.optim.SGD(params, lr=0.0)  # lr 0: the step leaves the weights, the gradients stay to compare
    class EightItems(list):
        vocab = bundle.vocab

    task = PretrainTask(cfg, Encoders(text, image), opt, EightItems([None] * 8), None, torch.device("cpu"), 8, None, None)
    task.step(batch, LoopState())
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad if p.grad is not None else torch.zeros_like(p), e, rtol=1e-4, atol=1e-7)


def test_pretrain_on_two_ranks(shapes_h5, tmp_path) -> None:
    """Grouped DAMSM batches (the shapes preset groups by colours) split into disjoint shards in the
    one-process order; the encoders end identical on both ranks; rank 0 alone writes."""
    from _ddp_workers import pretrain_worker

    over = {"epochs": 1, "batch_size": 16, "device": "cpu", "image.image_size": 32, "image.width": 8,
            "tensorboard": False}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    pretrain_worker(str(shapes_h5), over, str(tmp_path / "runs-one"), str(tmp_path / "one"))
    launch(pretrain_worker, 2, str(shapes_h5), over, str(tmp_path / "runs-two"), str(tmp_path / "two"))
    one = torch.load(tmp_path / "one" / "rank0.pt", weights_only=False)
    r0, r1 = _ranks(tmp_path / "two")
    assert len(one["seen"]) == len(r0["seen"]) == len(r1["seen"]) == 4
    for a, b, whole in zip(r0["seen"], r1["seen"], one["seen"], strict=True):
        assert len(a) == len(b) == 8 and not set(a) & set(b) and a + b == whole
    different = [k for k in r0["params"] if not torch.equal(r0["params"][k], r1["params"][k])]
    assert r0["params"] and not different, different[:5]
    assert sorted(p.name for p in (tmp_path / "runs-two").iterdir()) == ["00000-shapes-pretrain"]
    lines = (Path(r0["run"]) / "stats.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "train_loss" in json.loads(lines[0])


def test_sync_bn_on_cpus_is_a_clear_error(shapes_h5, damsm_path, monkeypatch) -> None:
    import attngan_cli.training.gan as gan
    from attngan_cli.core.errors import AttnGANError
    from attngan_cli.inference.pipeline import load_damsm

    cfg = tiny_train_config(shapes_h5, damsm_path, sync_bn=True)
    monkeypatch.setattr(gan, "is_distributed", lambda: True)
    with pytest.raises(AttnGANError, match="--sync-bn needs CUDA devices"):
        gan.build_models(cfg, torch.device("cpu"), load_damsm(damsm_path).text_encoder, None)


def test_captioner_pretrain_on_two_ranks(shapes_h5, tmp_path) -> None:
    """MirrorGAN's STREAM captioner under torchrun: disjoint shards, identical weights, one run directory."""
    from _ddp_workers import captioner_worker

    over = {"epochs": 1, "batch_size": 16, "device": "cpu", "tensorboard": False}
    launch(captioner_worker, 2, str(shapes_h5), over, str(tmp_path / "runs"), str(tmp_path))
    r0, r1 = _ranks(tmp_path)
    assert len(r0["seen"]) == len(r1["seen"]) == 4
    for a, b in zip(r0["seen"], r1["seen"], strict=True):
        assert len(a) == len(b) == 8 and not set(a) & set(b)
    different = [k for k in r0["params"] if not torch.equal(r0["params"][k], r1["params"][k])]
    assert r0["params"] and not different, different[:5]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["00000-shapes-captioner"]
    # how it ran: in environment.json, every checkpoint and `attngan runs`
    run = tmp_path / "runs" / "00000-shapes-captioner"
    env = json.loads((run / "environment.json").read_text())
    assert {k: env[k] for k in ("world_size", "backend", "batch_size", "per_process_batch", "grad_accum", "device")} \
        == {"world_size": 2, "backend": "gloo", "batch_size": 16, "per_process_batch": 8, "grad_accum": 1, "device": "cpu"}
    assert env["torch"] == torch.__version__ and env["cuda"] == torch.version.cuda
    assert len(env["device_names"]) == 2 and all(n.startswith("cpu") for n in env["device_names"])
    assert load_checkpoint(run / "final.pt").extra["environment"] == env
    from attngan_cli.apps.runs_summary import run_info, where_text

    info = run_info(run)
    assert info.world_size == 2 and where_text(info) == f"2 x {env['device_names'][0]}"


@pytest.mark.parametrize("arch", ["stackgan++", "mirrorgan", "dmgan"])
def test_other_architectures_train_on_two_ranks(arch, shapes_h5, damsm_path, tmp_path) -> None:
    """Every registered architecture's step runs in DDP: 2 steps on 2 ranks leave identical weights (DM-GAN:
    with its spectral-norm discriminators, whose power-iteration vectors are buffers)."""
    sn = {"discriminator.spectral_norm": True} if arch == "dmgan" else {}
    cfg = to_dict(tiny_train_config(shapes_h5, damsm_path, batch_size=8, snapshot_every=0, max_steps=2,
                                    **{"generator.arch": arch, **sn}))
    launch(train_worker, 2, cfg, str(tmp_path / "runs"), str(tmp_path))
    r0, r1 = _ranks(tmp_path)
    assert len(r0["seen"]) == 2 and not set(r0["seen"][0]) & set(r1["seen"][0])
    different = [k for k in r0["params"] if not torch.equal(r0["params"][k], r1["params"][k])]
    assert r0["params"] and not different, different[:5]
    assert load_checkpoint(Path(r0["run"]) / "final.pt").config["generator"]["arch"] == arch


def test_dfgan_with_its_gradient_penalty_trains_on_two_ranks(shapes_h5, damsm_path, tmp_path) -> None:
    """DF-GAN's matching-aware gradient penalty (double backward inside the discriminator's DDP forward)
    under 2 ranks: 2 steps leave identical weights on both, and the penalty was on."""
    cfg = to_dict(tiny_train_config(shapes_h5, damsm_path, batch_size=8, snapshot_every=0, max_steps=2, **{
        "generator.arch": "dfgan", "generator.stages": 1, "generator.base_size": 32, "generator.ngf": 4,
        "discriminator.ndf": 4, "lambda_damsm": 0.0, "ema_decay": 0.0, "betas": (0.0, 0.9)}))
    launch(train_worker, 2, cfg, str(tmp_path / "runs"), str(tmp_path))
    r0, r1 = _ranks(tmp_path)
    assert len(r0["seen"]) == 2 and not set(r0["seen"][0]) & set(r1["seen"][0])
    different = [k for k in r0["params"] if not torch.equal(r0["params"][k], r1["params"][k])]
    assert r0["params"] and not different, different[:5]
    assert any(k.startswith("D0.blocks.") and k.endswith(".gain") for k in r0["params"])
    stats = [json.loads(line) for line in (Path(r0["run"]) / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["d0_gp"] > 0
def test_evaluation_during_training_on_two_ranks(shapes_h5, damsm_path, tmp_path) -> None:
    """--eval-every under torchrun: every rank generates a share, rank 0 scores, both ranks get the same
    scores (and so take the same best.pt decision: no rank is left waiting), only rank 0 writes, and the
    scores equal attngan eval of the same weights in one process."""
    from attngan_cli.evaluation.evaluate import EvalOptions, evaluate

    cfg = to_dict(tiny_train_config(shapes_h5, damsm_path, batch_size=8, epochs=1, snapshot_every=0, max_steps=3,
                                    **{"evaluation.every": 3, "evaluation.samples": 20, "evaluation.batch_size": 4,
                                       "evaluation.metrics": ["rprecision", "attributes"], "tensorboard": False}))
    launch(train_worker, 2, cfg, str(tmp_path / "runs"), str(tmp_path))
    r0, r1 = _ranks(tmp_path)
    assert [s for s, _ in r0["evals"]] == [3] and r0["evals"] == r1["evals"]
    run = Path(r0["run"])
    evals = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines() if "eval/rprecision" in x]
    assert len(evals) == 1 and evals[0]["step"] == 3
    assert load_checkpoint(run / "best.pt").step == 3 and json.loads((run / "best.json").read_text())["step"] == 3
    one = evaluate(run / "final.pt", shapes_h5, EvalOptions(metrics=["rprecision", "attributes"], num_samples=20,
                                                            batch_size=4, device="cpu", log_to_run=False))
    assert one.metrics == r0["evals"][0][1] and one.metrics["attributes"]["color_n"] == 20
