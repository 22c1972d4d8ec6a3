"""Attention of chosen query tokens over the image, per block and head, before and after refinement
(the Refiner paper's Figure 5), as numbers ready to draw or tabulate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from refiner_nas.refiner_space.analysis.blockmaps import block_maps, map_sources
from refiner_nas.refiner_space.model import RefinedViT

Stage = Literal["raw", "refined"]


def parse_query(text: str, model: RefinedViT) -> int:
    """A query token: ``cls`` (the class token), ``ROW,COL`` (a patch on the token grid) or a token
    index (class token first).

    Raises:
        ValueError: unparsable text, or a token outside the model's token grid.
    """
    config = model.config
    rows, cols = config.token_grid
    prefix = int(config.class_token)
    text = text.strip()
    if text == "cls":
        if not prefix:
            raise ValueError("query 'cls': this model has no class token; give ROW,COL or a token index")
        return 0
    try:
        parts = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"query {text!r}: use 'cls', ROW,COL (a patch) or a token index") from None
    if len(parts) == 2:
        row, col = parts
        if not (0 <= row < rows and 0 <= col < cols):
            raise ValueError(f"query patch {row},{col} is outside the {rows}x{cols} token grid (counted from 0)")
        return prefix + row * cols + col
    if len(parts) != 1:
        raise ValueError(f"query {text!r}: use 'cls', ROW,COL (a patch) or a token index")
    return check_indices("query token", parts, config.num_tokens)[0]


def check_indices(kind: str, indices: Sequence[int], count: int) -> list[int]:
    """``indices`` if all lie in [0, count), else a ValueError naming the first that does not."""
    for index in indices:
        if not 0 <= index < count:
            raise ValueError(f"{kind} index {index} is out of range: the model has {count} {kind}s (0 to {count - 1})")
    return list(indices)


@dataclass(frozen=True)
class MapPanel:
    """One block's maps for one query: ``weights`` (heads, keys), one row per selected head (None where the
    block's map has fewer heads), of the ``raw`` or ``refined`` map; ``reused`` if the block reuses an
    earlier block's map."""

    block: int
    stage: Stage
    reused: bool
    weights: list[Tensor | None]


@dataclass(frozen=True)
class QueryAttention:
    """The maps of one query token of one image, in block order."""

    image: int
    query: int
    heads: list[int]
    token_grid: tuple[int, int]
    prefix_tokens: int
    panels: list[MapPanel]


def query_attention(
    model: RefinedViT,
    images: Tensor,
    *,
    image_ids: Sequence[int],
    queries: Sequence[int],
    blocks: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
) -> list[QueryAttention]:
    """For every image (labelled by ``image_ids``) and query token, the rows of its attention maps.

    Blocks whose two maps are equal (no refiner) give one ``raw`` panel; blocks that reuse a
    map without a raw one give one ``refined`` panel. ``blocks`` and ``heads`` default to all; heads range
    over the largest head count of any map (a refiner without reduction outputs expansion × heads).

    Raises:
        ValueError: block, head or query indices out of range.
    """
    config = model.config
    if len(image_ids) != len(images):
        raise ValueError(f"{len(image_ids)} image ids for {len(images)} images; give one id per image")
    blocks = check_indices("block", range(config.depth) if blocks is None else blocks, config.depth)
    for query in queries:
        check_indices("query token", [query], config.num_tokens)
    maps = block_maps(model, images)
    most_heads = max(m.refined.shape[1] for m in maps)
    heads = check_indices("head", range(config.num_heads) if heads is None else heads, most_heads)
    sources = map_sources(model)
    shown: list[tuple[int, Stage, Tensor]] = []
    for block in blocks:
        raw, refined = maps[block].raw, maps[block].refined
        if raw is not None:
            shown.append((block, "raw", raw))
        if raw is None or raw.shape != refined.shape or not torch.equal(raw, refined):
            shown.append((block, "refined", refined))
    results = []
    for position, image in enumerate(image_ids):
        for query in queries:
            panels = []
            for block, stage, tensor in shown:
                rows = tensor[position, :, query]
                weights = [rows[head] if head < len(rows) else None for head in heads]
                panels.append(MapPanel(block, stage, sources[block] != block, weights))
            results.append(QueryAttention(image, query, heads, config.token_grid, int(config.class_token), panels))
    return results


def maps_frame(results: Sequence[QueryAttention]) -> pd.DataFrame:
    """Long table: one row per (image, query, block, stage, head, key token) with the key's patch row and
    column (empty for the class token)."""
    records = []
    for result in results:
        cols = result.token_grid[1]
        for panel in result.panels:
            for head, weights in zip(result.heads, panel.weights, strict=True):
                if weights is None:
                    continue
                for key, weight in enumerate(weights.tolist()):
                    patch = key - result.prefix_tokens
                    records.append(
                        {
                            "image": result.image,
                            "query": result.query,
                            "block": panel.block,
                            "stage": panel.stage,
                            "reused": panel.reused,
                            "head": head,
                            "key": key,
                            "key_row": patch // cols if patch >= 0 else None,
                            "key_col": patch % cols if patch >= 0 else None,
                            "weight": weight,
                        }
                    )
    return pd.DataFrame.from_records(records).astype({"key_row": "Int64", "key_col": "Int64"})
