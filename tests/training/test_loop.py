"""The training loop scaffold shared by `pretrain` and `train`, on a toy task that runs in milliseconds:
exact resume mid-epoch, a real SIGINT, the abort poll, the non-finite stop, periodic checkpoints and
pruning, and a stats line from every run that ends."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attngan_cli.core.device import rng_state, set_rng_state
from attngan_cli.core.errors import InputError, OutputError, Terminated, TrainingAborted
from attngan_cli.core.fileio import read_jsonl
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint
from attngan_cli.storage.rundirs import SAVE_FAILED, RunDir, resolve_checkpoint
from attngan_cli.training.loop import (
    FINISHED,
    INTERRUPTED,
    TIME_BUDGET,
    Callback,
    Loop,
    LoopState,
    PruneCheckpoints,
    StatsLog,
    cpu_state,
    epoch_batches,
)

N, BATCH = 24, 4  # 6 steps per epoch


class ToyTask:
    """Least squares with SGD; each step also draws from the global RNG (as dropout and augmentation do),
    so an exact resume needs the RNG states in the checkpoint."""

    label, unit, batch_size, steps_per_epoch = "toy", "step", BATCH, N // BATCH

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(123)
        self.x, self.y = torch.randn(N, 3, generator=g), torch.randn(N, generator=g)
        torch.manual_seed(seed)
        self.models = torch.nn.Linear(3, 1)
        self.opt = torch.optim.SGD(self.models.parameters(), lr=0.1, momentum=0.9)
        self.seed = seed
        self.epochs_ended: list[tuple[int, bool]] = []
        self.inside_step: dict[int, object] = {}  # step number -> a function run in the middle of that step

    def start_epoch(self, epoch: int) -> None:
        pass

    def batches(self, epoch: int, skip: int):
        for idx in epoch_batches(N, BATCH, self.seed, epoch)[skip:]:
            yield torch.tensor(idx)

    def step(self, batch, state):
        noise = 0.01 * torch.randn(len(batch))  # global RNG
        loss = ((self.models(self.x[batch]).squeeze(1) - self.y[batch] - noise) ** 2).mean()
        if state.step + 1 in self.inside_step:
            self.inside_step[state.step + 1]()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def end_epoch(self, state, complete):
        self.epochs_ended.append((state.epoch, complete))
        return {"weight_norm": float(self.models.weight.detach().norm())}

    def checkpoint(self, state):
        return Checkpoint(kind="toy", config={}, state={"model": cpu_state(self.models)},
                          optim={"sgd": self.opt.state_dict()}, step=state.step, epoch=state.epoch, rng=rng_state(),
                          extra={"batch_in_epoch": state.batch_in_epoch})

    def restore(self, path) -> LoopState:
        ck = load_checkpoint(path, kind="toy")
        self.models.load_state_dict(ck.state["model"])
        self.opt.load_state_dict(ck.optim["sgd"])
        set_rng_state(ck.rng)
        return LoopState(ck.step, ck.epoch, ck.extra["batch_in_epoch"])


class Recorder(Callback):
    def __init__(self, at_step=None) -> None:
        self.losses: dict[int, float] = {}
        self.at_step = at_step or {}
        self.reason = None

    def on_step(self, loop, info):
        self.losses[info.step] = info.losses["loss"]
        if info.step in self.at_step:
            self.at_step[info.step](loop, info)

    def on_end(self, loop, reason):
        self.reason = reason


def run_toy(tmp_path, name, *, state=None, task=None, callbacks=(), **kw):
    task = task or ToyTask()
    run = RunDir.create(tmp_path, name, "toy")
    rec = Recorder(kw.pop("at_step", None))
    opts = {"epochs": 3, "snapshot_every": 1, **kw}
    try:
        Loop(task, run, state or LoopState(), callbacks=[StatsLog(every=4), rec, *callbacks], **opts).run_loop()
    except (KeyboardInterrupt, TrainingAborted) as e:
        rec.error = e
    return run, rec, task


def test_resume_mid_epoch_repeats_the_uninterrupted_run(tmp_path):
    _, full, _ = run_toy(tmp_path, "full")
    assert sorted(full.losses) == list(range(1, 19)) and full.reason == FINISHED
    # stop after step 8 (mid-epoch 2) through the abort poll, then resume from the run directory
    steps = []
    run, part, _ = run_toy(tmp_path, "part", abort=lambda: len(steps) >= 8,
                           callbacks=[type("S", (Callback,), {"on_step": lambda self, lp, i: steps.append(i.step)})()])
    assert isinstance(part.error, TrainingAborted) and "step 8" in str(part.error)
    path = resolve_checkpoint(run.path, for_resume=True)
    assert path.name == "interrupted.pt"
    task = ToyTask()
    state = task.restore(path)
    assert (state.step, state.epoch, state.batch_in_epoch) == (8, 1, 2)
    _, rest, _ = run_toy(tmp_path, "rest", state=state, task=task)
    assert sorted(rest.losses) == list(range(9, 19))
    for s in rest.losses:
        assert rest.losses[s] == full.losses[s], s


def sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_a_real_sigint_saves_a_resumable_checkpoint(tmp_path):
    """A Ctrl-C in the middle of a step lets the step finish, then writes interrupted.pt and re-raises
    KeyboardInterrupt (without the loop's handler, the step would be cut short and nothing saved)."""
    _, full, _ = run_toy(tmp_path, "full")
    task = ToyTask()
    task.inside_step[5] = sigint
    run, rec, _ = run_toy(tmp_path, "sig", task=task)
    assert isinstance(rec.error, KeyboardInterrupt) and rec.reason == INTERRUPTED
    assert sorted(rec.losses) == [1, 2, 3, 4, 5]  # the loop stopped at the step where the signal came
    ck = load_checkpoint(run.file("interrupted.pt"), kind="toy")
    assert (ck.step, ck.extra["batch_in_epoch"]) == (5, 5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    task = ToyTask()
    _, rest, _ = run_toy(tmp_path, "rest", state=task.restore(run.file("interrupted.pt")), task=task)
    assert [rest.losses[s] for s in range(6, 19)] == [full.losses[s] for s in range(6, 19)]


def test_non_finite_loss_stops_and_names_the_last_good_checkpoint(tmp_path):
    def poison(loop, info):
        with torch.no_grad():
            loop.task.models.weight.fill_(float("nan"))

    run, rec, _ = run_toy(tmp_path, "nan", at_step={13: poison}, callbacks=[PruneCheckpoints(1)])
    assert isinstance(rec.error, TrainingAborted)
    assert "non-finite loss at step 14" in str(rec.error) and "checkpoint-2.pt" in str(rec.error)
    assert not run.file("final.pt").exists() and not run.file("interrupted.pt").exists()
    ck = load_checkpoint(run.file("checkpoint-2.pt"), kind="toy")
    assert ck.step == 12 and torch.isfinite(ck.state["model"]["weight"]).all()
    assert not run.file("checkpoint-1.pt").exists()  # pruned


def test_periodic_checkpoints_pruned_and_final(tmp_path):
    run, rec, task = run_toy(tmp_path, "p", epochs=4, callbacks=[PruneCheckpoints(2)])
    names = sorted(p.name for p in run.path.glob("*.pt"))
    assert names == ["checkpoint-2.pt", "checkpoint-3.pt", "final.pt"]  # none after the last epoch
    assert load_checkpoint(run.file("final.pt"), kind="toy").epoch == 4
    assert task.epochs_ended == [(0, True), (1, True), (2, True), (3, True)]


@pytest.mark.parametrize("how", ["max_steps", "time", "sigint"])
def test_every_run_that_ends_writes_a_stats_line(tmp_path, how):
    """Runs ending before the first logging step (every 4 steps here) still leave stats.jsonl."""
    kw = {"max_steps": 2} if how == "max_steps" else {}
    if how == "time":
        kw["max_minutes"] = 1e-9  # the budget is spent after the first step, whatever the machine's speed
    task = ToyTask()
    if how == "sigint":
        task.inside_step[1] = sigint
    run, rec, task = run_toy(tmp_path, how, task=task, **kw)
    stats = read_jsonl(run.file("stats.jsonl"))
    assert stats[-1]["end"] == {"max_steps": FINISHED, "time": TIME_BUDGET, "sigint": INTERRUPTED}[how]
    assert stats[-1]["step"] == (2 if how == "max_steps" else 1) and stats[-1]["loss"] > 0
    if how == "time":  # the part of the epoch done is evaluated, and the run can continue from final.pt
        assert task.epochs_ended == [(0, False)]
        assert load_checkpoint(run.file("final.pt"), kind="toy").extra["batch_in_epoch"] == 1


_SIGTERM_CHILD = """
import json, os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import test_loop as t
task = t.ToyTask()
task.inside_step[3] = lambda: os.kill(os.getpid(), signal.SIGTERM)
run, rec, _ = t.run_toy(Path(sys.argv[2]), "term", task=task)
print(json.dumps({"error": type(getattr(rec, "error", None)).__name__, "reason": rec.reason, "run": str(run.path),
                  "sigterm_default_again": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}))
"""


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
    """A scheduler's SIGTERM mid-step: the step finishes, interrupted.pt is written, Terminated (a
    KeyboardInterrupt, exit 143 in the CLI) is raised and SIGTERM's default action is back. The signal is
    sent in a child process: without the loop's handler it kills that child, not the test session."""
    child = subprocess.run([sys.executable, "-c", _SIGTERM_CHILD, str(Path(__file__).parent), str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, (f"the SIGTERM killed the training process (exit {child.returncode}): "
                                   f"no handler saved a checkpoint\n{child.stderr[-2000:]}")
    got = json.loads(child.stdout.strip().splitlines()[-1])
    assert got["error"] == Terminated.__name__ and got["reason"] == INTERRUPTED
    assert load_checkpoint(Path(got["run"]) / "interrupted.pt", kind="toy").step == 3
    assert got["sigterm_default_again"]


@pytest.mark.parametrize("failing", ["checkpoint-2.pt", "final.pt", "interrupted.pt"])
def test_a_failed_save_ends_in_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, failing):
    """A full disk while a checkpoint is written (issue 31, item 8): one line naming the file and the free
    space, the end line says "save failed", the last good checkpoint and nothing half-written is left."""
    real = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if Path(getattr(f, "name", f)).name.startswith(f".{failing}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    kw = {"abort": lambda: True} if failing == "interrupted.pt" else {}
    with pytest.raises(OutputError) as e:
        run_toy(tmp_path, "full", **kw)
    run = RunDir(next(tmp_path.iterdir()))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"cannot write {run.file(failing)}: no space left on device ("), msg
    assert f"free on {run.path})" in msg, msg
    stats = read_jsonl(run.file("stats.jsonl"))
    assert stats[-1]["end"] == SAVE_FAILED
    assert not any(p.name.endswith(".tmp") for p in run.path.iterdir())
    assert not run.file(failing).exists()
    if failing == "final.pt":  # the periodic checkpoints of the epochs before stay, and are named
        assert f"the last good checkpoint {run.file('checkpoint-2.pt')} is intact" in msg
        assert load_checkpoint(run.file("checkpoint-2.pt"), kind="toy").step == 12
    elif failing == "checkpoint-2.pt":
        assert f"the last good checkpoint {run.file('checkpoint-1.pt')} is intact" in msg
        assert stats[-1]["step"] == 12
    else:
        assert "no checkpoint had been written yet" in msg


def test_an_error_in_a_step_leaves_an_end_line_saying_why(tmp_path):
    """A run dying of an error after its directory exists (a damaged chunk of the data) says why in its
    last stats.jsonl line (issue 31, item 10)."""
    task = ToyTask()

    def damaged():
        raise InputError("data.h5: image 5 is damaged\nsecond line")

    task.inside_step[5] = damaged
    with pytest.raises(InputError):
        run_toy(tmp_path, "bad", task=task)
    run = RunDir(next(tmp_path.iterdir()))
    last = read_jsonl(run.file("stats.jsonl"))[-1]
    assert (last["step"], last["end"]) == (4, "error: data.h5: image 5 is damaged")
