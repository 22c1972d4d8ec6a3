"""Which attention map each block uses, and every block's maps from one forward pass."""

from __future__ import annotations

from torch import Tensor

from refiner_nas.refiner_space.builders import computes_map
from refiner_nas.refiner_space.layers import AttentionMaps
from refiner_nas.refiner_space.maps import attention_maps
from refiner_nas.refiner_space.model import RefinedViT


def map_sources(model: RefinedViT) -> list[int]:
    """For each block, the block whose attention map it uses (itself when it computes one)."""
    sources: list[int] = []
    for block in range(model.config.depth):
        sources.append(block if computes_map(model.config, block) else sources[-1])
    return sources


def block_maps(model: RefinedViT, images: Tensor) -> list[AttentionMaps]:
    """``refiner_nas.refiner_space.attention_maps`` of every block, checked to be complete."""
    _, maps = attention_maps(model, images)
    if len(maps) != model.config.depth or any(m is None for m in maps):
        raise RuntimeError(
            f"{type(model).__name__} recorded maps for {len(maps)} attention layers in {model.config.depth} blocks"
        )
    return [m for m in maps if m is not None]
