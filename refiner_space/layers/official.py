"""Attention of the released Refiner code (docs/models.md#the-released-code-variant): compute blocks and map-sharing
blocks.

A compute block adds the map it received (scaled by d^-1/2) to its own softmax map and passes its map on
unrefined; a share block refines the map it received with a BatchNorm'd expand/depthwise/reduce chain,
weights only its own V with the refined map, and passes the unrefined map on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from refiner_nas.refiner_space.layers.attention import MapAttention, mix_heads
from refiner_nas.refiner_space.layers.chunks import FoldedChain
from refiner_nas.refiner_space.layers.fused import refine_released
from refiner_nas.refiner_space.layers.training_chain import pays_off, refine_with_batch_statistics


class OfficialComputeAttention(MapAttention):
    """softmax(q kᵀ) + d^-1/2 · incoming map, with q and k each scaled by d^-1/4."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, incoming_map: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        quarter_scale = self.head_dim**-0.25
        attn = ((q * quarter_scale) @ (k * quarter_scale).transpose(-2, -1)).softmax(dim=-1)
        if incoming_map is not None:
            attn = attn + self.head_dim**-0.5 * incoming_map
        self._record(attn, attn)
        out = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(out)), attn


class OfficialMapRefiner(nn.Module):
    """Ã = d^-1/2 · BN_adapt(A + BN3(PW2(ReLU6(BN2(DW(ReLU6(BN1(PW1(A))))))))).

    In eval mode without autograd every BatchNorm is folded into the convolution before it (recomputed
    from the modules at each call, so nothing goes stale and ``.train()`` needs no undo) and the chain runs
    in one Triton kernel on CUDA, else a few images at a time, channels last (``.fused``). In training with autograd,
    on maps large enough, it runs the same way with a hand-written backward
    (``refiner_nas.refiner_space.layers.training_chain``).
    In eval mode with gradients and under the cost counters' tracing ``explicit`` runs.
    Parameters, buffers and state_dict keys are the released code's in every path.
    """

    def __init__(self, num_heads: int, *, head_dim: int, expansion_ratio: int = 3, kernel_size: int = 3) -> None:
        super().__init__()
        expanded = expansion_ratio * num_heads
        self.scale = head_dim**-0.5
        self.expand = nn.Conv2d(num_heads, expanded, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(expanded)
        self.dla = nn.Conv2d(expanded, expanded, kernel_size, padding=kernel_size // 2, groups=expanded, bias=False)
        self.bn2 = nn.BatchNorm2d(expanded)
        self.reduce = nn.Conv2d(expanded, num_heads, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(num_heads)
        self.adapt_bn = nn.BatchNorm2d(num_heads)
        self.act = nn.ReLU6()

    def forward(self, maps: Tensor) -> Tensor:
        if torch.jit.is_tracing():
            return self.explicit(maps)
        if self.training:
            fast = torch.is_grad_enabled() and pays_off(maps, self)
            return refine_with_batch_statistics(maps, self) if fast else self.explicit(maps)
        return self.explicit(maps) if torch.is_grad_enabled() else refine_released(maps, self.folded_chain())

    def explicit(self, maps: Tensor) -> Tensor:
        """The chain step by step, BatchNorms as modules (batch statistics in training)."""
        expanded = self.act(self.bn1(mix_heads(maps, self.expand)))
        branch = self.bn3(mix_heads(self.act(self.bn2(self.dla(expanded))), self.reduce))
        return self.scale * self.adapt_bn(maps + branch)

    def folded_chain(self) -> FoldedChain:
        """The chain's weights with every BatchNorm folded in, from the running statistics."""
        gain1, shift1 = _affine(self.bn1)
        gain2, shift2 = _affine(self.bn2)
        gain3, shift3 = _affine(self.bn3)
        # BN_adapt(A + B) = g·A + g·B + c: g and c scale and shift the reduce output, g scales A.
        gain, shift = _affine(self.adapt_bn)
        out_gain = self.scale * gain
        return FoldedChain(
            expand_weight=self.expand.weight[:, :, 0, 0] * gain1[:, None],
            expand_bias=shift1,
            depthwise_weight=self.dla.weight * gain2[:, None, None, None],
            depthwise_bias=shift2,
            reduce_weight=self.reduce.weight[:, :, 0, 0] * (gain3 * out_gain)[:, None],
            reduce_bias=out_gain * shift3 + self.scale * shift,
            identity_scale=out_gain,
        )


def _affine(norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``gain · x + shift``."""
    gain = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return gain, norm.bias - norm.running_mean * gain


class OfficialShareAttention(MapAttention):
    """Refines the incoming map, weights this block's own V with it, and passes the unrefined map on."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        expansion_ratio: int = 3,
        kernel_size: int = 3,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim, bias=qkv_bias)
        self.refine = OfficialMapRefiner(
            num_heads, head_dim=self.head_dim, expansion_ratio=expansion_ratio, kernel_size=kernel_size
        )
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, incoming_map: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if incoming_map is None:
            raise RuntimeError("a sharing block received no attention map from the block before")
        batch, tokens, dim = x.shape
        v = self.qkv(x).view(batch, tokens, self.num_heads, self.head_dim).transpose(1, 2)
        refined = self.refine(incoming_map)
        self._record(incoming_map, refined)
        out = (refined @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(out)), incoming_map
