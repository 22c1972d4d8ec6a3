"""Multi-head self-attention whose map can be transformed before it weights the values.

Vanilla, talking-heads and paper-variant Refiner attention differ only in what happens to the map, so
they share ``Attention`` and plug in a logit mixer and a map refiner. Blocks that reuse a map
(``share_span`` > 1) are built without query and key projections.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionMaps(NamedTuple):
    """The maps of one block: ``raw`` after the softmax (None in blocks that reuse a map) and
    ``refined``, the map that multiplies the values."""

    raw: Tensor | None
    refined: Tensor


class MapAttention(nn.Module):
    """Base of every attention layer here: ``forward(x, incoming_map) -> (out, outgoing_map)``.

    Setting ``keep_maps`` makes the layer store its maps in ``last_maps`` (used by
    ``refiner_nas.refiner_space.attention_maps``); the output does not change.
    """

    keep_maps: bool = False
    last_maps: AttentionMaps | None = None

    def _record(self, raw: Tensor | None, refined: Tensor) -> None:
        if self.keep_maps:
            self.last_maps = AttentionMaps(
                None if raw is None else raw.detach(), refined.detach()
            )


def mix_heads(maps: Tensor, conv: nn.Conv2d) -> Tensor:
    """Apply a 1x1 convolution over the head axis of (B, H, N, N) maps as an einsum: the same result,
    several times faster than ``conv2d`` on CPU for these shapes (no layout conversions)."""
    mixed = torch.einsum("oi,bink->bonk", conv.weight[:, :, 0, 0], maps)
    return mixed if conv.bias is None else mixed + conv.bias[:, None, None]


class HeadMixing(nn.Module):
    """A learned mixing of attention maps across heads (a 1x1 convolution over the head axis)."""

    def __init__(self, in_heads: int, out_heads: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(in_heads, out_heads, kernel_size=1, bias=False)

    def forward(self, maps: Tensor) -> Tensor:
        return mix_heads(maps, self.mix)


class Attention(MapAttention):
    """Self-attention with optional pre-softmax (``logit_mixer``) and post-softmax (``map_refiner``)
    transforms of the map.

    Args:
        computes_map: False for a block that reuses the previous block's map (only V is projected).
        passes_map: True when the next block reuses this block's map.
        value_heads: heads of V (the refiner's output heads; more than ``num_heads`` when a refiner
            expands the maps without reducing them).
        fused: use ``scaled_dot_product_attention`` when nothing needs the explicit map.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        computes_map: bool = True,
        passes_map: bool = False,
        logit_mixer: nn.Module | None = None,
        map_refiner: nn.Module | None = None,
        value_heads: int | None = None,
        proj_drop: float = 0.0,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.value_heads = value_heads or num_heads
        self.scale = self.head_dim**-0.5
        self.computes_map = computes_map
        self.passes_map = passes_map
        self.value_dim = self.value_heads * self.head_dim
        query_key_dim = 2 * dim if computes_map else 0
        self.qkv = nn.Linear(dim, query_key_dim + self.value_dim, bias=qkv_bias)
        self.logit_mixer = logit_mixer
        self.map_refiner = map_refiner
        self.proj = nn.Linear(self.value_dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused = fused and logit_mixer is None and map_refiner is None and not passes_map

    def forward(self, x: Tensor, incoming_map: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x)
        if self.computes_map:
            q, k, v = qkv.split([dim, dim, self.value_dim], dim=-1)
            q = q.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
            k = k.view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        else:
            if incoming_map is None:
                raise RuntimeError("a map-reusing attention block received no map from the block before")
            v = qkv
        v = v.view(batch, tokens, self.value_heads, self.head_dim).transpose(1, 2)

        if not self.computes_map:
            refined = incoming_map
            self._record(None, refined)
            out = refined @ v
        elif self.fused and not self.keep_maps:
            refined = None
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            logits = (q * self.scale) @ k.transpose(-2, -1)
            if self.logit_mixer is not None:
                logits = self.logit_mixer(logits)
            raw = logits.softmax(dim=-1)
            refined = raw if self.map_refiner is None else self.map_refiner(raw)
            self._record(raw, refined)
            out = refined @ v

        out = out.transpose(1, 2).reshape(batch, tokens, self.value_dim)
        out = self.proj_drop(self.proj(out))
        return out, (refined if self.passes_map else None)
