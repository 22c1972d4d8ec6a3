"""Triton kernels for the two refiner chains at inference on CUDA.

The folded paper chain is one pass: a program reads a tile of map positions (all heads) as k² shifted
loads (served from cache) and does k² (H × H) products. The released chain is two passes: ReLU6(E·A + e)
of every position written once as float32 rows padded to a power-of-two width, then the depthwise k×k
convolution read from those rows, ReLU6, the reduction and the residual. Measured on an H200 (batch 64 of
Refined-ViT-S's maps): 1.39 ms in bf16 and 1.50 ms in float32; recomputing the expansion at each of the
k² taps in one pass took 1.36 and 1.95 ms, unpadded rows (masked, unaligned loads) 2.77 ms.

Products keep float32 accuracy on the tensor cores: maps in bf16 are exact in bf16, so their products
are two bf16 products with the weight split in high and low halves; other products are three TF32 ones
(``tf32x3``). The kernels match the PyTorch paths to float32 rounding in float32 and to one bf16
rounding in bf16.

Importing this module needs Triton; ``refiner_nas.refiner_space.layers.fused`` imports it only on CUDA.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from refiner_nas.refiner_space.layers.chunks import FoldedChain

# Map positions per program, measured on an H200 at batch 64 of Refined-ViT-S's maps: 64 for the released
# chain (32: 1.2–1.3× slower, 128: 1.5–1.6×), 128 for the dense convolution (64: 6 % slower).
RELEASED_BLOCK = 64
DENSE_BLOCK = 128


@triton.jit
def _shifted_tile(base, columns, column_ok, column_stride, row_stride, pos, row, col, dy, dx, height, width):
    """The (BLOCK, COLUMNS) float32 tile of the positions ``(row + dy, col + dx)``, zero outside the map,
    and the mask of the positions inside; position p, column j is at ``base + p·row_stride + j·column_stride``."""
    shifted_row = row + dy
    shifted_col = col + dx
    inside = (pos < height * width) & (shifted_row >= 0) & (shifted_row < height)
    inside = inside & (shifted_col >= 0) & (shifted_col < width)
    pointers = base + columns[None, :] * column_stride + ((shifted_row * width + shifted_col) * row_stride)[:, None]
    tile = tl.load(pointers, mask=inside[:, None] & column_ok[None, :], other=0.0)
    return tile.to(tl.float32), inside


@triton.jit
def _positions(width, BLOCK: tl.constexpr):
    """This program's image, its BLOCK map positions (row-major), and their rows and columns."""
    pos = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    return tl.program_id(1).to(tl.int64), pos, pos // width, pos % width


@triton.jit
def _product(tile, weight, TILE_IS_BF16: tl.constexpr):
    """``tile @ weight`` to float32 accuracy on the tensor cores. A tile of bf16 maps is exact in bf16: two
    bf16 products with the weight split in high and low halves. Else three TF32 products."""
    if TILE_IS_BF16:
        high = weight.to(tl.bfloat16)
        low = (weight - high.to(tl.float32)).to(tl.bfloat16)
        exact = tile.to(tl.bfloat16)
        product = tl.dot(exact, high) + tl.dot(exact, low)
    else:
        product = tl.dot(tile, weight, input_precision="tf32x3")
    return product


@triton.jit
def _clip6(x):
    return tl.minimum(tl.maximum(x, 0.0), 6.0)


@triton.jit
def _expand_kernel(
    maps, expanded, expand_weight, expand_bias, num_heads, num_channels, pixels,
    HEADS: tl.constexpr, CHANNELS: tl.constexpr, BLOCK: tl.constexpr, MAPS_BF16: tl.constexpr,
):  # fmt: skip
    """ReLU6(E·A + e) of every position, written as (B, N·M, C) rows."""
    image, pos, _, _ = _positions(pixels, BLOCK)
    heads = tl.arange(0, HEADS)
    channels = tl.arange(0, CHANNELS)
    head_ok = heads < num_heads
    channel_ok = channels < num_channels
    inside = pos < pixels
    pointers = maps + image * num_heads * pixels + heads[None, :] * pixels + pos[:, None]
    tile = tl.load(pointers, mask=inside[:, None] & head_ok[None, :], other=0.0).to(tl.float32)
    # (C, H) expansion read as its (HEADS, CHANNELS) transpose, zero-padded to the tile sizes.
    expand = tl.load(expand_weight + channels[None, :] * num_heads + heads[:, None],
                     mask=head_ok[:, None] & channel_ok[None, :], other=0.0)  # fmt: skip
    shift = tl.load(expand_bias + channels, mask=channel_ok, other=0.0)
    rows = _clip6(_product(tile, expand, MAPS_BF16) + shift[None, :])  # zero in the padding channels
    pointers = expanded + image * pixels * CHANNELS + pos[:, None] * CHANNELS + channels[None, :]
    tl.store(pointers, rows, mask=inside[:, None])


@triton.jit
def _local_reduce_kernel(
    maps, expanded, out, depthwise_weight, depthwise_bias, reduce_weight, reduce_bias, identity_scale,
    num_heads, num_channels, height, width,
    KERNEL: tl.constexpr, HEADS: tl.constexpr, CHANNELS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """ReLU6(DW(expanded) + d), reduced by R, plus r and the scaled maps."""
    pixels = height * width
    image, pos, row, col = _positions(width, BLOCK)
    heads = tl.arange(0, HEADS)
    channels = tl.arange(0, CHANNELS)
    head_ok = heads < num_heads
    channel_ok = channels < num_channels
    rows = expanded + image * pixels * CHANNELS
    local = tl.full((BLOCK, CHANNELS), 0.0, tl.float32)
    for tap in tl.static_range(KERNEL * KERNEL):
        dy, dx = tap // KERNEL - KERNEL // 2, tap % KERNEL - KERNEL // 2
        # Masked loads are the depthwise convolution's zero padding of the expanded maps.
        tile, _ = _shifted_tile(rows, channels, channels >= 0, 1, CHANNELS, pos, row, col, dy, dx, height, width)
        tap_weight = tl.load(depthwise_weight + channels * (KERNEL * KERNEL) + tap, mask=channel_ok, other=0.0)
        local += tile * tap_weight[None, :]
    local = _clip6(local + tl.load(depthwise_bias + channels, mask=channel_ok, other=0.0)[None, :])
    reduce = tl.load(reduce_weight + heads[None, :] * num_channels + channels[:, None],
                     mask=channel_ok[:, None] & head_ok[None, :], other=0.0)  # fmt: skip
    refined = tl.dot(local, reduce, input_precision="tf32x3")
    refined += tl.load(reduce_bias + heads, mask=head_ok, other=0.0)[None, :]
    base = maps + image * num_heads * pixels
    centre, inside = _shifted_tile(base, heads, head_ok, pixels, 1, pos, row, col, 0, 0, height, width)
    refined += centre * tl.load(identity_scale + heads, mask=head_ok, other=0.0)[None, :]
    pointers = out + image * num_heads * pixels + heads[None, :] * pixels + pos[:, None]
    tl.store(pointers, refined.to(out.dtype.element_ty), mask=inside[:, None] & head_ok[None, :])


@triton.jit
def _dense_conv_kernel(
    maps, out, weight, num_heads, height, width,
    KERNEL: tl.constexpr, HEADS: tl.constexpr, BLOCK: tl.constexpr, MAPS_BF16: tl.constexpr,
):  # fmt: skip
    pixels = height * width
    image, pos, row, col = _positions(width, BLOCK)
    heads = tl.arange(0, HEADS)
    head_ok = heads < num_heads
    base = maps + image * num_heads * pixels
    taps: tl.constexpr = KERNEL * KERNEL
    refined = tl.full((BLOCK, HEADS), 0.0, tl.float32)
    for tap in tl.static_range(taps):
        dy, dx = tap // KERNEL - KERNEL // 2, tap % KERNEL - KERNEL // 2
        tile, _ = _shifted_tile(base, heads, head_ok, pixels, 1, pos, row, col, dy, dx, height, width)
        # weight[o, i, tap] of the (H, H, k, k) kernel, read as an (in, out) matrix.
        mixing = tl.load(weight + heads[None, :] * (num_heads * taps) + heads[:, None] * taps + tap,
                         mask=head_ok[:, None] & head_ok[None, :], other=0.0)  # fmt: skip
        refined += _product(tile, mixing, MAPS_BF16)
    pointers = out + image * num_heads * pixels + heads[None, :] * pixels + pos[:, None]
    tl.store(pointers, refined.to(out.dtype.element_ty), mask=(pos < pixels)[:, None] & head_ok[None, :])


def _tile_width(size: int) -> int:
    """A matrix-product dimension: a power of two, at least 16."""
    return max(16, triton.next_power_of_2(size))


def _grid(maps: Tensor, block: int) -> tuple[int, int]:
    batch, _, height, width = maps.shape
    return triton.cdiv(height * width, block), batch


def released_chain(maps: Tensor, chain: FoldedChain) -> Tensor:
    """The released-code inference chain (``FoldedChain``) on (B, H, N, M) maps, computed in float32
    and returned in the maps' dtype."""
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    expand_weight, expand_bias, depthwise_weight, *rest = (t.detach().float().contiguous() for t in chain)
    channels, _, kernel, _ = chain.depthwise_weight.shape
    batch, heads, height, width = maps.shape
    tiles = {"HEADS": _tile_width(heads), "CHANNELS": _tile_width(channels), "BLOCK": RELEASED_BLOCK}
    grid = _grid(maps, RELEASED_BLOCK)
    expanded = maps.new_empty((batch, height * width, tiles["CHANNELS"]), dtype=torch.float32)
    _expand_kernel[grid](maps, expanded, expand_weight, expand_bias, heads, channels, height * width, **tiles,
                         MAPS_BF16=maps.dtype == torch.bfloat16)  # fmt: skip
    _local_reduce_kernel[grid](maps, expanded, out, depthwise_weight, *rest, heads, channels, height, width,
                               KERNEL=kernel, **tiles)  # fmt: skip
    return out


def dense_conv(maps: Tensor, kernel: Tensor) -> Tensor:
    """``F.conv2d(maps, kernel, padding=k // 2)`` for an (H, H, k, k) kernel on (B, H, N, M) maps, computed
    in float32 and returned in the maps' dtype."""
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    heads, height, width = maps.shape[1:]
    _dense_conv_kernel[_grid(maps, DENSE_BLOCK)](
        maps, out, kernel.detach().float().contiguous(), heads, height, width,
        KERNEL=kernel.shape[-1], HEADS=_tile_width(heads), BLOCK=DENSE_BLOCK, MAPS_BF16=maps.dtype == torch.bfloat16,
    )  # fmt: skip
    return out
