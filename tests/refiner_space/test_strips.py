"""The released-code refiner's eval path (BatchNorms folded, rows in strips) against its explicit chain."""

from __future__ import annotations

import copy

import pytest
import torch

from refiner_space.layers import OfficialMapRefiner
from refiner_space.layers.strips import refine_in_strips


def randomised(refiner: OfficialMapRefiner) -> OfficialMapRefiner:
    with torch.no_grad():
        for parameter in refiner.parameters():
            parameter.normal_(0.0, 0.5)
        for module in refiner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return refiner.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("rows", [1, 2, 7, 40])
def test_strips_equal_the_explicit_chain(kernel: int, rows: int) -> None:
    refiner = randomised(OfficialMapRefiner(4, head_dim=8, expansion_ratio=3, kernel_size=kernel))
    maps = torch.rand(3, 4, 23, 23).softmax(-1)
    explicit = refiner.explicit(maps)
    with torch.no_grad():
        stripped = refine_in_strips(maps, refiner.folded_chain(), rows=rows)
    assert relative_error(stripped, explicit) < 1e-5


def test_eval_without_autograd_takes_the_strips_and_training_the_explicit_chain() -> None:
    refiner = randomised(OfficialMapRefiner(3, head_dim=8))
    maps = torch.rand(2, 3, 17, 17).softmax(-1)
    with torch.inference_mode():
        fast = refiner(maps)
    assert relative_error(fast, refiner.explicit(maps)) < 1e-5
    assert refiner(maps).requires_grad  # autograd on: the explicit chain, gradients reach every weight
    refiner.train()
    trained = refiner(maps)
    trained.sum().backward()
    assert all(p.grad is not None for p in refiner.parameters())
    with torch.no_grad():
        assert relative_error(refiner(maps), fast) > 1e-3  # batch statistics, not the running ones


@pytest.mark.parametrize("momentum", [0.1, None])
def test_training_chain_equals_the_explicit_chain_with_gradients_and_running_statistics(
    momentum: float | None,
) -> None:
    fast = randomised(OfficialMapRefiner(4, head_dim=8)).train()
    for module in fast.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = momentum
    plain = copy.deepcopy(fast)
    maps = torch.rand(3, 4, 19, 19).softmax(-1)
    upstream = torch.randn(3, 4, 19, 19)
    results = []
    for refiner, run in ((fast, fast.differentiable), (plain, plain.explicit)):
        inputs = maps.clone().requires_grad_()
        for _ in range(2):  # twice: the running statistics compound
            out = run(inputs)
        out.backward(upstream)
        grads = torch.cat([p.grad.flatten() for p in refiner.parameters()])
        results.append((out, inputs.grad, grads, refiner.state_dict()))
    (out, maps_grad, grads, state), (ref_out, ref_maps_grad, ref_grads, ref_state) = results
    assert relative_error(out, ref_out) < 1e-5
    assert relative_error(maps_grad, ref_maps_grad) < 1e-5
    assert relative_error(grads, ref_grads) < 1e-5
    for key, value in ref_state.items():
        assert relative_error(state[key].float(), value.float()) < 1e-5, key
