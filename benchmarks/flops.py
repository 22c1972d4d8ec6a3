"""Parameters and multiply-accumulates of any model of the family, counted with fvcore."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from refiner_space import ModelConfig, RefinedViT, build_model


@dataclass(frozen=True)
class Costs:
    """Parameters and multiply-accumulates (MACs) of one forward pass of one image."""

    params: int
    macs: int

    @property
    def flops(self) -> int:
        """Floating-point operations: two per multiply-accumulate."""
        return 2 * self.macs


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    # Fused attention: q kᵀ and A v, each B·H·N·N·d multiply-accumulates. fvcore counts it as zero.
    q_shape = inputs[0].type().sizes()
    v_shape = inputs[2].type().sizes()
    keys = inputs[1].type().sizes()[-2]
    return prod(q_shape[:-1]) * keys * q_shape[-1] + prod(q_shape[:-1]) * keys * v_shape[-1]


def count_costs(model: nn.Module | ModelConfig) -> Costs:
    """Count parameters and MACs of ``model`` (or of the model a configuration builds) on one image
    of its configured size."""
    if isinstance(model, ModelConfig):
        model = build_model(model)
    if not isinstance(model, RefinedViT):
        raise TypeError(f"count_costs takes a RefinedViT or a ModelConfig, not {type(model).__name__}")
    height, width = model.config.img_hw
    images = torch.zeros(1, model.config.in_chans, height, width)
    was_training = model.training
    model.eval()
    try:
        analysis = FlopCountAnalysis(model, images)
        analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with warnings.catch_warnings():
            # fvcore traces with torch.jit, which warns about its own deprecation.
            warnings.simplefilter("ignore", FutureWarning)
            macs = int(analysis.total())
    finally:
        model.train(was_training)
    return Costs(params=sum(p.numel() for p in model.parameters()), macs=macs)
