"""The optimiser every job uses: Adam, with PyTorch's fused kernel where the device has one.

The fused kernel updates all parameters in one multi-threaded pass instead of a loop of small ops per
tensor: on a 2-core CPU, 100 M parameters (about the bird preset's G and Ds) step in 0.105 s instead of
0.226 s (``foreach`` is slower still there, 0.52 s). The numbers it computes are Adam's; only the order of
floating-point operations differs.

A saved optimiser state carries the implementation it was made with (``fused``/``foreach`` in its param
groups) and ``load_state_dict`` would put those back; :func:`load_optimizer_state` keeps the ones chosen
for this machine, so that a checkpoint written on a GPU resumes on a CPU and an older checkpoint still
resumes fused.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

FUSED_DEVICES = ("cuda", "cpu")
_IMPLEMENTATION = ("fused", "foreach")


def adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam over ``params`` (all on one device), fused when PyTorch has the kernel for that device."""
    params = list(params)
    device = params[0].device.type if params else "cpu"
    fused = device in FUSED_DEVICES and all(p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=fused or None)


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)``, keeping ``opt``'s own implementation flags (fused, foreach): they
    are put into the saved groups before loading, since they also decide where the ``step`` counters go."""
    groups = [{**saved, **{k: own.get(k) for k in _IMPLEMENTATION}}
              for saved, own in zip(state["param_groups"], opt.param_groups, strict=False)]  # a mismatch: load fails
    opt.load_state_dict({**state, "param_groups": groups + state["param_groups"][len(groups):]})
