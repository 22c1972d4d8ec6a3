"""The released-code refiner's eval path (BatchNorms folded, rows in strips) against its explicit chain."""

from __future__ import annotations

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
