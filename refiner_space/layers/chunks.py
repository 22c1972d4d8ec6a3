"""The released-code refiner's maps as channels-last row matrices, a few images at a time, and its
inference chain with every BatchNorm folded.

oneDNN's depthwise and 1×1 convolutions over a few maps of N×N run several times faster on channels-last
data than in PyTorch's default layout, and a (k·N·N, C) matrix makes the 1×1 convolutions plain matrix
products. Tensors of a few images stay a few MB: cache-sized, and served from the heap, where the
whole-batch chain allocates tensors of tens of MB that glibc maps fresh (above its 32 MiB threshold) and
the kernel faults in page by page.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Expanded maps per chunk: a 224-px image of Refined-ViT-S (36 × 197² floats, 5.6 MB) is one chunk; the
# small maps of a search trial are grouped, so a batch of 64 is a few chunks, not 64 sets of calls.
CHUNK_BYTES = 4 << 20


def chunk_rows(pixels: int, channels: int, element_size: int) -> int:
    """Rows per chunk: whole images, as many as fit in ``CHUNK_BYTES`` of expanded maps (at least one)."""
    return pixels * max(1, CHUNK_BYTES // (pixels * channels * element_size))


def as_rows(tensor: Tensor) -> Tensor:
    """(B, C, h, w) as a (B·h·w, C) matrix (a view when ``tensor`` is channels-last)."""
    return tensor.permute(0, 2, 3, 1).reshape(-1, tensor.shape[1])


def as_images(rows: Tensor, height: int, width: int) -> Tensor:
    """Images' (k·h·w, C) matrix as a channels-last (k, C, h, w) tensor (a view)."""
    return rows.view(-1, height, width, rows.shape[1]).permute(0, 3, 1, 2)


def as_maps(rows: Tensor, batch: int, height: int, width: int) -> Tensor:
    """A (B·h·w, C) matrix back to contiguous (B, C, h, w) maps."""
    return rows.view(batch, height, width, rows.shape[1]).permute(0, 3, 1, 2).contiguous()


class FoldedChain(NamedTuple):
    """``out = identity_scale ⊙ A + R(ReLU6(DW(ReLU6(E·A + e)) + d)) + r`` with every BatchNorm folded.

    Shapes for H maps expanded to C: ``expand_weight`` (C, H), ``expand_bias`` (C,), ``depthwise_weight``
    (C, 1, k, k), ``depthwise_bias`` (C,), ``reduce_weight`` (H, C), ``reduce_bias`` (H,),
    ``identity_scale`` (H,).
    """

    expand_weight: Tensor
    expand_bias: Tensor
    depthwise_weight: Tensor
    depthwise_bias: Tensor
    reduce_weight: Tensor
    reduce_bias: Tensor
    identity_scale: Tensor


def refine_in_chunks(maps: Tensor, chain: FoldedChain) -> Tensor:
    """Apply ``chain`` to (B, H, N, M) maps a chunk of images at a time (inference: nothing is saved).

    Equal to the whole-tensor chain up to float rounding. Computed in the wider of the maps' and the
    weights' dtypes, autocast or not (bf16 maps of an autocast model, float32 weights), returned in the maps'.
    """
    dtype = torch.promote_types(maps.dtype, chain.expand_weight.dtype)
    with torch.autocast(maps.device.type, enabled=False):
        return _refine_in_chunks(maps.to(dtype), FoldedChain(*(t.to(dtype) for t in chain))).to(maps.dtype)


def _refine_in_chunks(maps: Tensor, chain: FoldedChain) -> Tensor:
    batch, _, height, width = maps.shape
    channels, _, kernel, _ = chain.depthwise_weight.shape
    rows = as_rows(maps)
    out = torch.empty_like(rows)
    # Chunks keep the expanded maps in a CPU's cache; a GPU gains nothing from them.
    step = chunk_rows(height * width, channels, maps.element_size()) if maps.device.type == "cpu" else len(rows)
    for chunk, out_chunk in zip(rows.split(step), out.split(step), strict=True):
        expanded = torch.addmm(chain.expand_bias, chunk, chain.expand_weight.t()).clamp_(0.0, 6.0)
        local = F.conv2d(as_images(expanded, height, width), chain.depthwise_weight, chain.depthwise_bias,
                         padding=kernel // 2, groups=channels)  # fmt: skip
        torch.addmm(chain.reduce_bias, as_rows(local).clamp_(0.0, 6.0), chain.reduce_weight.t(), out=out_chunk)
        out_chunk.addcmul_(chunk, chain.identity_scale)
    return as_maps(out, batch, height, width)
