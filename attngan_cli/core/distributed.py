"""Rank awareness and scale-out with PyTorch's own engine: ``torchrun`` launches the processes and sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_from_env` joins them with ``torch.distributed`` (NCCL on
GPUs, gloo on CPUs); the models are wrapped in ``DistributedDataParallel`` (:func:`wrap_ddp`).

Conventions every job follows under torchrun:

* ``--batch-size`` is the total per step, as in the paper: every rank takes its slice of each global
  batch (:func:`shard`), so the ranks read disjoint samples and the sample order is the one-process order;
* losses that need the whole batch (the DAMSM matching losses and their negatives, the mismatched
  sentences of the discriminator) gather it across ranks (:func:`gather_cat`, differentiable for the
  local part), so a distributed step computes the one-process loss at the same total batch;
* only rank 0 writes files and shows progress (:func:`is_main_process`); decisions to stop (Ctrl-C,
  SIGTERM, a time budget, an abort) are agreed by all ranks (:func:`agree`) so no rank waits forever.

Without torchrun every function here is a no-op and no process group is made. The module imports torch lazily: run listing stays torch-free.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from attngan_cli.core.errors import InputError
from attngan_cli.core.ranks import is_distributed, is_main_process, local_rank, rank, rank_seed, world_size

# the rank helpers of core.ranks are part of this module's interface
__all__ = ["is_distributed", "is_main_process", "local_rank", "rank", "rank_seed", "world_size"]



def init_from_env(device: str = "auto") -> None:
    """Join the torchrun process group once (idempotent; nothing to do in a single process). NCCL when
    ``device`` resolves to CUDA (this process then uses GPU ``LOCAL_RANK``), gloo otherwise."""
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    from attngan_cli.core.device import resolve_device  # with torch: this module imports without it

    if dist.is_initialized():
        return
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if cuda else "gloo")


def environment(device: Any, batch_size: int, grad_accum: int = 1) -> dict[str, Any]:
    """How a run runs, for its run directory and checkpoints: the processes (``world_size``, ``backend``:
    None in one process), the batch (``batch_size`` the total per step, ``per_process_batch`` each rank's
    share, ``grad_accum`` micro-batches per step), the versions (torch, CUDA) and each rank's device (its
    GPU's name on CUDA). Every rank must call it (the device names are gathered)."""
    import platform

    import torch

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{device.type} ({platform.processor() or platform.machine() or 'unknown'})"
    world = world_size()
    return {
        "world_size": world,
        "backend": _dist().get_backend() if is_distributed() else None,
        "batch_size": batch_size,
        "per_process_batch": batch_size // world,
        "grad_accum": grad_accum,
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_names": all_gather_object(name),
    }


def _dist():
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call attngan_cli.core.distributed.init_from_env first")
    return dist


def _comm_device():
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if _dist().get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        _dist().barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a run directory's path, ...)."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a single process: ``[obj]``)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    _dist().all_gather_object(out, obj)
    return out


def gather_object(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0 (None on the other ranks; ``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * world_size() if is_main_process() else None
    _dist().gather_object(obj, out, dst=0)
    return out


def agree(*flags: int) -> list[int]:
    """The maximum of each flag over all ranks: a decision every rank takes at the same step."""
    if not is_distributed():
        return list(flags)
    import torch

    t = torch.tensor(flags, dtype=torch.int64, device=_comm_device())
    _dist().all_reduce(t, op=_dist().ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


def mean_over_ranks(values: dict[str, Any]) -> dict[str, Any]:
    """Each scalar tensor averaged over the ranks (the logged losses of a step), in one collective."""
    if not is_distributed() or not values:
        return values
    import torch

    keys = list(values)
    t = torch.stack([values[k].detach().float().reshape(()) for k in keys]).to(_comm_device())
    _dist().all_reduce(t)
    t = t / world_size()
    return {k: t[i] for i, k in enumerate(keys)}


def gather_cat(x: Any) -> Any:
    """Every rank's ``x`` concatenated along dim 0 in rank order: (B_local, ...) -> (B_local * W, ...).
    Differentiable: the gradient of a loss of the result reaches each rank's own part (summed over the
    ranks that computed it: with DDP's averaging, the one-process gradient of that loss)."""
    if not is_distributed():
        return x

    dev = x.device
    x = x.to(_comm_device())
    out = _gather_cat_function().apply(x) if x.requires_grad else _gather(x)
    return out.to(dev)


def _gather(x: Any) -> Any:
    import torch

    parts = [torch.empty_like(x) for _ in range(world_size())]
    _dist().all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@functools.cache
def _gather_cat_function() -> Any:
    """The autograd function, made on first use (this module imports torch lazily)."""
    import torch

    class GatherCat(torch.autograd.Function):
        """all_gather + cat; backward: the gradient of every rank's copy of the result, summed (all_reduce),
        then this rank's rows."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            return _gather(x)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous()
            _dist().all_reduce(grad)
            return shard(grad)

    return GatherCat


def shard(batch: Any) -> Any:
    """This rank's contiguous rows of a global batch: a list of sample indices, or a gathered
    (B_local * W, ...) tensor (the batch divides evenly: see :func:`check_batch`)."""
    if not is_distributed():
        return batch
    n = len(batch) // world_size()
    return batch[rank() * n:(rank() + 1) * n]


def no_sync_until_last(k: int, K: int, *modules: Any) -> contextlib.AbstractContextManager:
    """For micro-batch k of K: DDP's ``no_sync`` on each module (also through ``torch.compile``) while
    k < K - 1, so gradients add up locally and the last micro-batch averages them over the ranks; nothing
    to do in one process or for the last micro-batch."""
    stack = contextlib.ExitStack()
    if k < K - 1:
        for module in modules:
            ddp = getattr(module, "_orig_mod", module)
            if hasattr(ddp, "no_sync"):
                stack.enter_context(ddp.no_sync())
    return stack


def check_batch(batch_size: int, grad_accum: int = 1, flag: str = "--batch-size") -> None:
    """The total batch must split evenly over the ranks and the ``--grad-accum`` micro-batches, at least 2
    images each (BatchNorm and the mismatched pairs need a batch)."""
    parts = world_size() * grad_accum
    if parts > 1 and (batch_size % parts or batch_size // parts < 2):
        over = []
        if world_size() > 1:
            over.append(f"{world_size()} processes")
        if grad_accum > 1:
            over.append(f"--grad-accum {grad_accum} micro-batches")
        raise InputError(f"{flag} {batch_size} is the total; it must split evenly over {' x '.join(over)} into at "
                         f"least 2 images each (e.g. {flag} {max(2, -(-batch_size // parts)) * parts})")


def wrap_ddp(module: Any, device: Any, find_unused_parameters: bool = False) -> Any:
    """``module`` in DistributedDataParallel under torchrun (its parameters broadcast from rank 0 now and
    gradients averaged at each backward); the module itself in a single process. ``find_unused_parameters``:
    for a module whose loss leaves some trainable parameters out (DDP then finds them at each step)."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else local_rank()] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def destroy() -> None:
    if is_distributed():
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


_PEER_GONE = ("connection reset", "connection closed", "closed by peer", "broken pipe", "connection refused",
              "communicator was aborted")


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another torchrun process died (gloo's "Connection
    reset by peer" / "Connection closed by peer", NCCL's aborted communicator); False outside torchrun."""
    if not is_distributed() or not isinstance(exc, RuntimeError):  # DistBackendError is a RuntimeError
        return False
    text = str(exc).lower()
    return any(words in text for words in _PEER_GONE)
