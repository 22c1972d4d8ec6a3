"""Attention maps of every block, for analysis, without changing the forward output."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from refiner_nas.refiner_space.layers import AttentionMaps, MapAttention


@torch.no_grad()
def attention_maps(model: nn.Module, images: Tensor) -> tuple[Tensor, list[AttentionMaps | None]]:
    """Run ``model`` on ``images`` and return its output and, per block in order, the maps before
    (``raw``) and after (``refined``) refinement, each (B, heads, N, N)."""
    layers = [m for m in model.modules() if isinstance(m, MapAttention)]
    for layer in layers:
        layer.keep_maps, layer.last_maps = True, None
    try:
        output = model(images)
        maps = [layer.last_maps for layer in layers]
    finally:
        for layer in layers:
            layer.keep_maps, layer.last_maps = False, None
    return output, maps
