"""Triton kernels for the two refiner chains at inference on CUDA: one pass over the maps each.

Both kernels read a tile of map positions (all heads) and write the refined tile; nothing expanded ever
reaches device memory. A k×k neighbourhood is read as k² shifted loads of the input tile (served from
cache): the released chain recomputes the 1×1 expansion at each of the k² taps (k² small matrix
products instead of a round trip of the (B, r·H, N, N) tensor), the folded paper chain is k² (H × H)
products. Matrix products run in ``tf32x3`` (three TF32 products, float32 accuracy), so the kernels
match the PyTorch paths to float32 rounding in float32 and to one bf16 rounding in bf16.

Importing this module needs Triton; :mod:`refiner_space.layers.fused` imports it only on CUDA.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from refiner_space.layers.chunks import FoldedChain

BLOCK = 64  # map positions per program: (64 × 16) tiles keep a program's registers small


@triton.jit
def _shifted_tile(base, heads, head_ok, pos, row, col, dy, dx, height, width):
    """Every head's values at the positions ``(row + dy, col + dx)`` as a (BLOCK, HEADS) float32 tile,
    zero outside the map, and the mask of the positions inside."""
    pixels = height * width
    shifted_row = row + dy
    shifted_col = col + dx
    inside = (pos < pixels) & (shifted_row >= 0) & (shifted_row < height)
    inside = inside & (shifted_col >= 0) & (shifted_col < width)
    pointers = base + heads[None, :] * pixels + (shifted_row * width + shifted_col)[:, None]
    tile = tl.load(pointers, mask=inside[:, None] & head_ok[None, :], other=0.0)
    return tile.to(tl.float32), inside


@triton.jit
def _released_chain_kernel(
    maps, out, expand_weight, expand_bias, depthwise_weight, depthwise_bias, reduce_weight, reduce_bias,
    identity_scale, num_heads, num_channels, height, width,
    KERNEL: tl.constexpr, HEADS: tl.constexpr, CHANNELS: tl.constexpr, BLOCK: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    pixels = height * width
    pos = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    offset = tl.program_id(1).to(tl.int64) * num_heads * pixels
    row = pos // width
    col = pos % width
    heads = tl.arange(0, HEADS)
    channels = tl.arange(0, CHANNELS)
    head_ok = heads < num_heads
    channel_ok = channels < num_channels
    # (C, H) expansion read as its (HEADS, CHANNELS) transpose, zero-padded to the tile sizes.
    expand = tl.load(expand_weight + channels[None, :] * num_heads + heads[:, None],
                     mask=head_ok[:, None] & channel_ok[None, :], other=0.0)  # fmt: skip
    expand_shift = tl.load(expand_bias + channels, mask=channel_ok, other=0.0)
    local = tl.full((BLOCK, CHANNELS), 0.0, tl.float32)
    for tap in tl.static_range(KERNEL * KERNEL):
        dy, dx = tap // KERNEL - KERNEL // 2, tap % KERNEL - KERNEL // 2
        tile, inside = _shifted_tile(maps + offset, heads, head_ok, pos, row, col, dy, dx, height, width)
        expanded = tl.dot(tile, expand, input_precision=PRECISION) + expand_shift[None, :]
        # The depthwise convolution pads the expanded maps with zeros, not with ReLU6(bias).
        expanded = tl.where(inside[:, None], tl.minimum(tl.maximum(expanded, 0.0), 6.0), 0.0)
        tap_weight = tl.load(depthwise_weight + channels * (KERNEL * KERNEL) + tap, mask=channel_ok, other=0.0)
        local += expanded * tap_weight[None, :]
    local += tl.load(depthwise_bias + channels, mask=channel_ok, other=0.0)[None, :]
    local = tl.minimum(tl.maximum(local, 0.0), 6.0)
    reduce = tl.load(reduce_weight + heads[None, :] * num_channels + channels[:, None],
                     mask=channel_ok[:, None] & head_ok[None, :], other=0.0)  # fmt: skip
    refined = tl.dot(local, reduce, input_precision=PRECISION)
    refined += tl.load(reduce_bias + heads, mask=head_ok, other=0.0)[None, :]
    centre, _ = _shifted_tile(maps + offset, heads, head_ok, pos, row, col, 0, 0, height, width)
    refined += centre * tl.load(identity_scale + heads, mask=head_ok, other=0.0)[None, :]
    pointers = out + offset + heads[None, :] * pixels + pos[:, None]
    tl.store(pointers, refined.to(out.dtype.element_ty), mask=(pos < pixels)[:, None] & head_ok[None, :])


@triton.jit
def _dense_conv_kernel(
    maps, out, weight, num_heads, height, width,
    KERNEL: tl.constexpr, HEADS: tl.constexpr, BLOCK: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pixels = height * width
    pos = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    offset = tl.program_id(1).to(tl.int64) * num_heads * pixels
    row = pos // width
    col = pos % width
    heads = tl.arange(0, HEADS)
    head_ok = heads < num_heads
    taps: tl.constexpr = KERNEL * KERNEL
    refined = tl.full((BLOCK, HEADS), 0.0, tl.float32)
    for tap in tl.static_range(taps):
        dy, dx = tap // KERNEL - KERNEL // 2, tap % KERNEL - KERNEL // 2
        tile, _ = _shifted_tile(maps + offset, heads, head_ok, pos, row, col, dy, dx, height, width)
        # weight[o, i, tap] of the (H, H, k, k) kernel, read as an (in, out) matrix.
        mixing = tl.load(weight + heads[None, :] * (num_heads * taps) + heads[:, None] * taps + tap,
                         mask=head_ok[:, None] & head_ok[None, :], other=0.0)  # fmt: skip
        refined += tl.dot(tile, mixing, input_precision=PRECISION)
    pointers = out + offset + heads[None, :] * pixels + pos[:, None]
    tl.store(pointers, refined.to(out.dtype.element_ty), mask=(pos < pixels)[:, None] & head_ok[None, :])


def _tile_width(size: int) -> int:
    """A matrix-product dimension: a power of two, at least 16."""
    return max(16, triton.next_power_of_2(size))


def _launch_shape(maps: Tensor) -> tuple[int, int]:
    batch, _, height, width = maps.shape
    return triton.cdiv(height * width, BLOCK), batch


def released_chain(maps: Tensor, chain: FoldedChain) -> Tensor:
    """The released-code inference chain (:class:`FoldedChain`) on contiguous (B, H, N, M) maps, computed in
    float32 and returned in the maps' dtype."""
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    weights = [t.detach().float().contiguous() for t in chain]
    channels, _, kernel, _ = chain.depthwise_weight.shape
    heads, height, width = maps.shape[1:]
    _released_chain_kernel[_launch_shape(maps)](
        maps, out, *weights, heads, channels, height, width,
        KERNEL=kernel, HEADS=_tile_width(heads), CHANNELS=_tile_width(channels), BLOCK=BLOCK,
        PRECISION="tf32x3",
    )  # fmt: skip
    return out


def dense_conv(maps: Tensor, kernel: Tensor) -> Tensor:
    """``F.conv2d(maps, kernel, padding=k // 2)`` for an (H, H, k, k) kernel on (B, H, N, M) maps, computed
    in float32 and returned in the maps' dtype."""
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    heads, height, width = maps.shape[1:]
    _dense_conv_kernel[_launch_shape(maps)](
        maps, out, kernel.detach().float().contiguous(), heads, height, width,
        KERNEL=kernel.shape[-1], HEADS=_tile_width(heads), BLOCK=BLOCK, PRECISION="tf32x3",
    )  # fmt: skip
    return out
