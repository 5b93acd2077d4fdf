"""The jobs' optimiser (train/optim.py): Adam with the fused kernel, and resuming keeps it fused."""

from __future__ import annotations

import torch

from attngan_cli.training.optim import adam, load_optimizer_state


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*shape, generator=g)) for shape in ((7, 5), (5,), (3, 4, 2))]


def _steps(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()


def test_adam_is_fused_on_a_cpu_and_computes_adam() -> None:
    fused_params, plain_params = _params(0), _params(0)
    fused = adam(fused_params, 2e-4, (0.5, 0.999))
    plain = torch.optim.Adam(plain_params, lr=2e-4, betas=(0.5, 0.999), foreach=False)
    assert fused.param_groups[0]["fused"] is True
    _steps(fused, fused_params, 5, seed=1)
    _steps(plain, plain_params, 5, seed=1)
    for a, b, start in zip(fused_params, plain_params, _params(0), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        assert (a - start).abs().max() > 1e-4  # the weights moved


def test_a_saved_plain_adam_resumes_fused_and_continues_it() -> None:
    """A checkpoint written by an unfused Adam (older runs, another machine) resumes fused: the saved
    state's flags would otherwise come back with it."""
    params, cont = _params(2), _params(2)
    plain = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999), foreach=False)
    plain_cont = torch.optim.Adam(cont, lr=1e-3, betas=(0.5, 0.999), foreach=False)
    _steps(plain, params, 3, seed=3)
    _steps(plain_cont, cont, 3, seed=3)
    saved = plain.state_dict()
    assert saved["param_groups"][0]["fused"] is None

    resumed = adam(params, 1e-3, (0.5, 0.999))
    load_optimizer_state(resumed, saved)
    assert resumed.param_groups[0]["fused"] is True and resumed.param_groups[0]["betas"] == (0.5, 0.999)
    _steps(resumed, params, 2, seed=4)
    _steps(plain_cont, cont, 2, seed=4)  # the uninterrupted optimiser
    for a, b in zip(params, cont, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert int(resumed.state[params[0]]["step"]) == 5
