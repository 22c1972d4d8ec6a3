"""The released-code refiner chain with its BatchNorms folded, computed one image and strip of map rows
at a time.

Every step of the chain is at most k rows wide, so a strip of output rows needs only the expanded maps of
those rows and a halo of k // 2 rows either side. One image's strip of expanded maps (3H × rows × N)
stays in cache between the expansion, the depthwise convolution and the reduction, where the whole-batch
chain writes and re-reads tensors of tens of MB per step and, above glibc's 32 MiB mmap threshold, pays
a page fault per 4 KiB of every fresh allocation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# A whole 224-px image per strip (36 × 197² floats ≈ 5.6 MB, inside a 32 MiB L3). On 1 thread 32-row strips
# (≈ 1 MB, L2-sized) ran no faster; on 2 contended threads they ran 2.6× slower: every op is a parallel
# region, and more, smaller ops wait more often for a descheduled thread.
STRIP_ROWS = 200


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


def refine_in_strips(maps: Tensor, chain: FoldedChain, *, rows: int = STRIP_ROWS) -> Tensor:
    """Apply ``chain`` to (B, H, N, M) maps one image and ``rows`` output rows at a time.

    Equal to the whole-tensor chain up to float rounding; meant for inference (no autograd savings).
    """
    batch, heads, height, width = maps.shape
    channels, _, kernel, _ = chain.depthwise_weight.shape
    halo = kernel // 2
    maps = maps.contiguous()
    out = torch.empty_like(maps)
    flat_maps, flat_out = maps.view(batch, heads, -1), out.view(batch, heads, -1)
    expand_bias, reduce_bias = chain.expand_bias[:, None], chain.reduce_bias[:, None]
    identity = chain.identity_scale[:, None]
    for image in range(batch):
        for top in range(0, height, rows):
            bottom = min(top + rows, height)
            # Expanded rows [low, high): the strip and its halo; outside the map the conv pads zeros.
            low, high = max(top - halo, 0), min(bottom + halo, height)
            expanded = torch.addmm(expand_bias, chain.expand_weight, flat_maps[image, :, low * width : high * width])
            local = F.conv2d(
                expanded.clamp_(0.0, 6.0).view(1, channels, high - low, width),
                chain.depthwise_weight,
                chain.depthwise_bias,
                padding=halo,
                groups=channels,
            )
            # Conv output row j is centred on expanded row low + j; halo rows inside the map are dropped.
            local = local[0, :, top - low : bottom - low].clamp_(0.0, 6.0).reshape(channels, -1)
            strip = flat_maps[image, :, top * width : bottom * width]
            reduced = torch.addmm(reduce_bias, chain.reduce_weight, local).addcmul_(strip, identity)
            flat_out[image, :, top * width : bottom * width].copy_(reduced)
    return out
