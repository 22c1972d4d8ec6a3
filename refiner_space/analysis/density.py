"""Attention density per block (the Context Broadcasting paper's measure): the entropy of each query's
attention distribution, and its share of the uniform maximum log N."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from refiner_nas.refiner_space.analysis.blockmaps import block_maps, map_sources
from refiner_nas.refiner_space.model import RefinedViT


def row_entropy(maps: Tensor) -> Tensor:
    """Entropy in nats of each row of non-negative maps (..., queries, keys) -> (..., queries).

    Rows are renormalised to sum to 1 first: a no-op for softmax maps, and what turns the released
    code's compute-block maps (softmax plus a scaled earlier map, rows summing above 1) into
    distributions.

    Raises:
        ValueError: negative entries (a refined map of the paper variant is no distribution).
    """
    if bool((maps < 0).any()):
        raise ValueError("attention density needs non-negative maps; use the raw (softmax) maps, not refined ones")
    probabilities = maps / maps.sum(dim=-1, keepdim=True)
    return -torch.special.xlogy(probabilities, probabilities).sum(dim=-1)


@dataclass(frozen=True)
class AttentionDensity:
    """Per block: ``entropy`` (blocks, heads), the mean over images and queries of each head's row
    entropy; ``map_from[k]`` the block that computed the map block k uses (k itself unless it reuses
    one); ``keys`` the number of tokens each query attends over."""

    entropy: Tensor
    map_from: list[int]
    keys: int
    images: int

    def to_frame(self) -> pd.DataFrame:
        """One row per block: entropy (nats, mean over heads), its share of log(keys), and its range
        over heads."""
        mean = self.entropy.mean(dim=1)
        return pd.DataFrame(
            {
                "block": range(len(self.map_from)),
                "map_from": self.map_from,
                "reused": [source != block for block, source in enumerate(self.map_from)],
                "entropy": mean.tolist(),
                "share": (mean / math.log(self.keys)).tolist(),
                "entropy_head_min": self.entropy.amin(dim=1).tolist(),
                "entropy_head_max": self.entropy.amax(dim=1).tolist(),
                "max_entropy": math.log(self.keys),
                "keys": self.keys,
                "images": self.images,
            }
        )


def attention_density(model: RefinedViT, batches: Iterable[Tensor]) -> AttentionDensity:
    """Entropy of the raw (post-softmax, pre-refinement) maps, averaged over queries, images and, in the
    table, heads. A block that reuses a map reports the map it reuses (that of ``map_from``).

    Refined maps are not used: the paper variant's may be negative and need not sum to 1 per row.

    Raises:
        ValueError: no batches.
    """
    sources = map_sources(model)
    computing = sorted(set(sources))
    totals: dict[int, Tensor] = {}
    images, keys = 0, 0
    for batch in batches:
        maps = block_maps(model, batch)
        for block in computing:
            raw = maps[block].raw
            if raw is None:
                raise RuntimeError(f"block {block} computes its map but recorded no raw map")
            keys = raw.shape[-1]
            per_head = row_entropy(raw.double()).sum(dim=(0, 2)) / raw.shape[-2]
            totals[block] = totals.get(block, 0) + per_head
        images += len(batch)
    if not images:
        raise ValueError("no batches of images to measure attention density on; use more images")
    entropy = torch.stack([totals[source] / images for source in sources])
    return AttentionDensity(entropy=entropy, map_from=sources, keys=keys, images=images)
