"""An exponential moving average of a model's parameters (the official ``avg_param_G``, decay 0.999).

``avg = decay * avg + (1 - decay) * p`` after every generator step; buffers (BatchNorm running
statistics) are copied from the live model, since they are not trained by gradient descent. The
average lives in a separate copy of the model (``ema.module``), used for samples and saved as
``state["generator_ema"]``.

Warm-up (``update(model, step)``): the decay used at step t is ``min(decay, (1 + t) / (10 + t))`` (the
``num_updates`` rule of TensorFlow's ExponentialMovingAverage), so that the average does not stay
anchored to the random initial weights for the first few thousand steps; from step ~9000 on it is the
official constant 0.999. ``update(model)`` without a step uses the constant decay.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        if step is None:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        decay = self.decay_at(step)
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError("EMA: the model's parameter list changed")
        if ema_params:
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
