"""Attention of the released Refiner code (SPEC §2): compute blocks and map-sharing blocks.

A compute block adds the map it received (scaled by d^-1/2) to its own softmax map and passes its map on
unrefined; a share block refines the map it received with a BatchNorm'd expand/depthwise/reduce chain,
weights only its own V with the refined map, and passes the unrefined map on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from refiner_space.layers.attention import MapAttention, mix_heads


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

    After :meth:`fold_batchnorm` (eval only) every BatchNorm lives in the convolution before it and the
    refiner computes ``a ⊙ A + PW2'(ReLU6(DW'(ReLU6(PW1'(A)))))`` with biased convolutions.
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
        self.identity_scale: Tensor | None
        self.register_buffer("identity_scale", None, persistent=False)

    @property
    def batchnorm_folded(self) -> bool:
        return self.identity_scale is not None

    def forward(self, maps: Tensor) -> Tensor:
        if self.identity_scale is not None:
            branch = mix_heads(self.act(self.dla(self.act(mix_heads(maps, self.expand)))), self.reduce)
            return torch.addcmul(branch, maps, self.identity_scale)
        expanded = self.act(self.bn1(mix_heads(maps, self.expand)))
        branch = self.bn3(mix_heads(self.act(self.bn2(self.dla(expanded))), self.reduce))
        return self.scale * self.adapt_bn(maps + branch)

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold every BatchNorm into the convolution before it; the module becomes eval-only."""
        if self.training:
            raise RuntimeError("fold BatchNorm only in eval mode (call model.eval() first)")
        if self.batchnorm_folded:
            return
        self.expand = _fused(self.expand, self.bn1)
        self.dla = _fused(self.dla, self.bn2)
        reduce = _fused(self.reduce, self.bn3)
        # BN_adapt(A + B) = g·A + g·B + c: g and c scale and shift the reduce output, g scales A.
        gain = self.adapt_bn.weight / torch.sqrt(self.adapt_bn.running_var + self.adapt_bn.eps)
        shift = self.adapt_bn.bias - self.adapt_bn.running_mean * gain
        reduce.weight.mul_((self.scale * gain)[:, None, None, None])
        reduce.bias.copy_(self.scale * (gain * reduce.bias + shift))
        self.reduce = reduce
        self.identity_scale = (self.scale * gain)[None, :, None, None].clone()
        self.bn1 = self.bn2 = self.bn3 = self.adapt_bn = None


def _fused(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        groups=conv.groups,
        bias=True,
    ).to(conv.weight.device, conv.weight.dtype)
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps, norm.weight, norm.bias
    )
    fused.weight.copy_(weight)
    fused.bias.copy_(bias)
    return fused


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
