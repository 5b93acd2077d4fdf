"""The job skeleton (attngan_cli.training.job) on a toy job that runs in milliseconds: the order of its
steps (shared seed, build, rank seed, resume, config, start), the config written once, an exact resume
(position, weights, optimiser and RNG), and the checks of the three jobs raised once, by the resolvers,
before any run directory exists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import attngan_cli.training.captioner as captioner_job
import attngan_cli.training.damsm as damsm_job
import attngan_cli.training.gan as gan_job
import attngan_cli.training.job as job_module
from attngan_cli.config.serialize import to_dict
from attngan_cli.core.device import rng_state, seed_everything
from attngan_cli.core.errors import AttnGANError, ConfigMismatchError, InputError, TrainingAborted
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint
from attngan_cli.storage.rundirs import RunDir
from attngan_cli.training import resolve
from attngan_cli.training.job import Built, JobContext, LoopOptions, Started, run_job
from attngan_cli.training.loop import LoopState, cpu_state, epoch_batches

N, BATCH = 24, 4  # 6 steps per epoch


@dataclass
class ToyConfig:
    device: str = "cpu"
    seed: int = 11
    precision: str = "fp32"
    epochs: int = 2
    max_minutes: float = 0.0
    snapshot_every: int = 1
    tensorboard: bool = False


@dataclass(frozen=True)
class ToySettings:
    config: ToyConfig
    resume: Checkpoint | None = None


class ToyTask:
    """Least squares with SGD; each step draws from the global RNG (as dropout and crops do)."""

    label, unit, batch_size, steps_per_epoch = "toy", "step", BATCH, N // BATCH

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
        g = torch.Generator().manual_seed(123)
        self.x, self.y = torch.randn(N, 3, generator=g), torch.randn(N, generator=g)
        self.models, self.opt, self.seed = model, opt, seed

    def start_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int, skip: int):
        for idx in epoch_batches(N, BATCH, self.seed, epoch)[skip:]:
            yield torch.tensor(idx)

    def step(self, batch, state):
        noise = 0.01 * torch.randn(len(batch))  # the global RNG
        loss = ((self.models(self.x[batch]).squeeze(1) - self.y[batch] - noise) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def end_epoch(self, state, complete):
        return {}

    def checkpoint(self, state):
        return Checkpoint(kind="toy", config={}, state={"model": cpu_state(self.models)},
                          optim={"sgd": self.opt.state_dict()}, step=state.step, epoch=state.epoch, rng=rng_state(),
                          extra={"batch_in_epoch": state.batch_in_epoch})


class ToyJob:
    """A job's own part, recording what the skeleton hands it and when."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.events: list[str] = []
        self.context: JobContext | None = None
        self.initial: dict[str, torch.Tensor] = {}
        self.loaded: Checkpoint | None = None
        self.rng_at_start: torch.Tensor | None = None

    def build(self, job: JobContext) -> Built:
        self.events.append("build" + ("+config" if self.run.file("config.json").exists() else ""))
        self.context = job
        model = torch.nn.Linear(3, 1)
        self.initial = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def load(ckpt: Checkpoint) -> None:
            self.events.append("load")
            self.loaded = ckpt
            model.load_state_dict(ckpt.state["model"])
            opt.load_state_dict(ckpt.optim["sgd"])

        def start() -> Started:
            self.events.append("start" + ("+config" if self.run.file("config.json").exists() else ""))
            self.rng_at_start = torch.get_rng_state()
            return Started(ToyTask(model, opt, ToyConfig.seed),
                           close=lambda: self.events.append("close"))

        return Built(load, start)


class Losses:
    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def __call__(self, info) -> None:
        self.losses[info.step] = info.losses["loss"]


def _run(tmp_path: Path, name: str, settings: ToySettings, **kwargs) -> tuple[ToyJob, Path | None]:
    run = RunDir.create(tmp_path, name, "toy")
    job = ToyJob(run)
    return job, run_job(settings, run, job.build, options=LoopOptions(), **kwargs)


def test_the_steps_come_in_order_and_the_config_is_written_once(tmp_path, monkeypatch):
    writes: list[dict] = []
    real = RunDir.write_config

    def counting(self, config):
        writes.append(config)
        return real(self, config)

    monkeypatch.setattr(RunDir, "write_config", counting)
    cfg = ToyConfig(epochs=1)
    job, final = _run(tmp_path, "a", ToySettings(cfg))
    assert job.events == ["build", "start+config", "close"]  # no load: a new run
    assert writes == [to_dict(cfg)]
    assert json.loads((final.parent / "config.json").read_text()) == to_dict(cfg)
    assert job.context.state == LoopState() and job.context.resume is None
    assert job.context.device == torch.device("cpu")
    # the job built its model from the shared seed, and started from the rank's seed (rank 0: the same)
    seed_everything(cfg.seed)
    fresh = torch.nn.Linear(3, 1).state_dict()
    assert all(torch.equal(job.initial[k], v) for k, v in fresh.items())
    seed_everything(cfg.seed)
    assert torch.equal(job.rng_at_start, torch.get_rng_state())


def test_resume_restores_position_weights_optimiser_and_rng(tmp_path):
    cfg = ToyConfig()
    full = Losses()
    _, final_a = _run(tmp_path, "a", ToySettings(cfg), callbacks=[full])
    assert sorted(full.losses) == list(range(1, 13))
    part = Losses()
    with pytest.raises(TrainingAborted, match="step 8"):
        _run(tmp_path, "b", ToySettings(cfg), callbacks=[part], abort=lambda: max(part.losses) >= 8)
    interrupted = load_checkpoint(next(tmp_path.glob("*-b-toy")) / "interrupted.pt", kind="toy")
    rest = Losses()
    job, final_c = _run(tmp_path, "c", ToySettings(cfg, interrupted), callbacks=[rest])
    assert job.events == ["build", "load", "start+config", "close"]
    assert job.loaded is interrupted
    assert job.context.state == LoopState(8, 1, 2) and job.context.resume is interrupted
    assert torch.equal(job.rng_at_start, interrupted.rng["torch"])  # this rank's RNG, as saved
    assert sorted(rest.losses) == [9, 10, 11, 12]
    for s in rest.losses:
        assert rest.losses[s] == full.losses[s], s
    a, c = load_checkpoint(final_a, kind="toy"), load_checkpoint(final_c, kind="toy")
    assert all(torch.equal(v, c.state["model"][k]) for k, v in a.state["model"].items())
    assert [r["step"] for r in read_jsonl(final_c.parent / "stats.jsonl")] == [12]


def test_the_jobs_leave_the_checks_to_the_resolvers():
    """What the resolvers check, the jobs and the skeleton do not check again: they hold none of the
    checking functions."""
    checks = ("check_batch", "check_vocab", "check_checkpoint_config", "settle_precision", "inception_weights_file",
              "load_resume", "check_encoders", "check_resume", "check_captioner_resume",
              "resolve_caption_pretrain")
    for module in (job_module, gan_job, damsm_job, captioner_job):
        held = [name for name in checks if hasattr(module, name)]
        assert not held, (module.__name__, held)


# --------------------------------------------------------------------------------------------------
# Each check: raised by the resolver, before any run directory
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_image(tmp_path_factory) -> Path:
    from attngan_cli.data.shapes import make_shapes

    return make_shapes(tmp_path_factory.mktemp("one") / "one.h5", n_train=1, n_test=2, seed=0)


def _gan_cases(shapes_h5: Path, damsm_path: Path, tmp_path: Path):
    from _sample_fixtures import make_damsm

    from attngan_cli.data.h5 import read_vocab

    words = list(read_vocab(shapes_h5).words)
    other = make_damsm(tmp_path / "other.pt", words[:1] + sorted(words[1:], reverse=True))
    e = damsm_path
    return [
        ({"encoders": e, "overrides": {"batch_size": 1}}, InputError, "--batch-size must be at least 2"),
        ({"encoders": e, "overrides": {"batch_size": 80}}, InputError, "larger than the 64 training images"),
        ({"encoders": e, "overrides": {"precision": "fp16", "device": "cpu"}}, AttnGANError, "fp16 needs a CUDA"),
        ({"encoders": other}, ConfigMismatchError, "first difference at index 1"),
        ({"encoders": e, "overrides": {"generator.embedding_dim": 128}}, ConfigMismatchError, "embed to 256"),
        ({}, InputError, "--encoders"),
    ]


def test_each_gan_check_is_the_resolvers(shapes_h5, damsm_path, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for kwargs, error, message in _gan_cases(shapes_h5, damsm_path, tmp_path):
        with pytest.raises(error, match=message):
            resolve.resolve_train(shapes_h5, **kwargs)
        assert not runs.exists()
    monkeypatch.setenv("WORLD_SIZE", "3")  # torchrun's processes: the batch must split over them
    with pytest.raises(InputError, match="3 processes"):
        resolve.resolve_train(shapes_h5, encoders=damsm_path, overrides={"batch_size": 16})


def test_each_pretrain_check_is_the_resolvers(shapes_h5, one_image, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="the train split has 1 images; DAMSM needs at least 2"):
        resolve.resolve_pretrain(one_image)
    with pytest.raises(InputError, match="the train split has 1 images; the captioner needs at least 2"):
        resolve.resolve_caption_pretrain(one_image)
    with pytest.raises(InputError, match="cannot be combined"):
        resolve.resolve_pretrain(shapes_h5, overrides={"image.backbone": "inception-v3", "cache_features": True,
                                                       "group_by": ["color"]})
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match="--cache-features runs in one process"):
        resolve.resolve_pretrain(shapes_h5, overrides={"image.backbone": "inception-v3", "cache_features": True})
    with pytest.raises(InputError, match="2 processes"):
        resolve.resolve_caption_pretrain(shapes_h5, overrides={"batch_size": 3})
    assert not (tmp_path / "runs").exists()


def test_cached_features_set_eval_batchnorm_in_the_settings(shapes_h5, tmp_path):
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"")
    settings = resolve.resolve_pretrain(shapes_h5, overrides={"image.backbone": "inception-v3", "cache_features": True,
                                                              "image.frozen_bn": "train"}, inception_weights=weights)
    assert settings.config.image.frozen_bn == "eval" and settings.inception_weights == weights


@pytest.mark.parametrize("where", ["build", "start"])
def test_a_run_dying_before_its_loop_leaves_an_end_line(tmp_path, where):
    """A damaged dataset found while the job builds or starts (its run directory exists): stats.jsonl ends
    with a line saying why, so `attngan runs` shows the run as failed (issue 31, item 10)."""
    from attngan_cli.apps.runs_summary import run_info

    run = RunDir.create(tmp_path, "bad", "toy")
    job = ToyJob(run)

    def build(ctx: JobContext) -> Built:
        if where == "build":
            raise InputError("bad.h5: caption chunk 0 is damaged")
        built = job.build(ctx)

        def start() -> Started:
            raise InputError("bad.h5: image chunk 2 is damaged")

        return Built(built.load, start)

    with pytest.raises(InputError):
        run_job(ToySettings(ToyConfig()), run, build, options=LoopOptions())
    what = "caption chunk 0" if where == "build" else "image chunk 2"
    assert read_jsonl(run.file("stats.jsonl")) == [{"step": 0, "epoch": 0, "end": f"error: bad.h5: {what} is damaged"}]
    info = run_info(run.path)
    assert (info.status, info.end) == ("failed", f"error: bad.h5: {what} is damaged")
