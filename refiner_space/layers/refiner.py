"""The paper's attention refiner (docs/models.md#the-paper-variant): expansion, distributed local attention, reduction.

Every step is linear in the map, so with reduction on the three weights compose into one dense k×k
convolution from H maps to H maps (``AttentionRefiner.folded_kernel``). Folding keeps the three
weights as parameters and only changes how the product is computed, so it works in training too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from refiner_nas.refiner_space.config import DlaConstraint
from refiner_nas.refiner_space.layers.attention import mix_heads
from refiner_nas.refiner_space.layers.fused import convolve_maps


class FoldError(ValueError):
    """The refiner cannot be folded in this configuration."""


class AttentionRefiner(nn.Module):
    """Refines (B, H, N, N) attention maps into (B, H, N, N), or (B, r·H, N, N) without reduction.

    Args:
        constraint: ``none`` convolves the N×N map; ``spatial`` convolves each query's weights over the
            key grid (the class-token key column is only mixed across heads); ``rowcol`` replaces the
            k×k kernel by a k×1 followed by a 1×k kernel.
        token_grid: patch-token grid, used by ``spatial``.
        prefix_tokens: tokens before the patch tokens (the class token), used by ``spatial``.
    """

    def __init__(
        self,
        num_heads: int,
        *,
        expansion_ratio: int,
        kernel_size: int,
        constraint: DlaConstraint = "none",
        reduction: bool = True,
        token_grid: tuple[int, int] = (14, 14),
        prefix_tokens: int = 1,
    ) -> None:
        super().__init__()
        expanded = expansion_ratio * num_heads
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.constraint = constraint
        self.token_grid = token_grid
        self.prefix_tokens = prefix_tokens
        self.out_heads = num_heads if reduction else expanded
        self.expand = nn.Conv2d(num_heads, expanded, 1, bias=False)
        pad = kernel_size // 2
        if constraint == "rowcol":
            self.dla = nn.Sequential(
                nn.Conv2d(expanded, expanded, (kernel_size, 1), padding=(pad, 0), groups=expanded, bias=False),
                nn.Conv2d(expanded, expanded, (1, kernel_size), padding=(0, pad), groups=expanded, bias=False),
            )
        else:
            self.dla = nn.Conv2d(expanded, expanded, kernel_size, padding=pad, groups=expanded, bias=False)
        self.reduce = nn.Conv2d(expanded, num_heads, 1, bias=False) if reduction else None
        self.folded = False

    def forward(self, maps: Tensor) -> Tensor:
        if self.folded:
            kernel = self.folded_kernel()
            return self._local(maps, lambda m: convolve_maps(m, kernel), self._mix_prefix_folded)
        maps = self._local(mix_heads(maps, self.expand), self.dla, lambda m: m)
        return maps if self.reduce is None else mix_heads(maps, self.reduce)

    def _mix_prefix_folded(self, prefix: Tensor) -> Tensor:
        # `spatial` leaves the class-token keys to the 1x1 steps alone: folded, they are mixed by R·E.
        head_mixing = self.reduce.weight[:, :, 0, 0] @ self.expand.weight[:, :, 0, 0]
        return torch.einsum("oi,bink->bonk", head_mixing, prefix)

    def set_folded(self, folded: bool) -> None:
        """Compute the refiner as one dense k×k convolution (True) or as three steps (False)."""
        if folded and self.reduce is None:
            raise FoldError(
                "cannot fold a refiner without attention reduction: its r·H expanded maps are its "
                "output, so there is no H->H convolution to fold into; set attention_reduction=True"
            )
        self.folded = folded

    def folded_kernel(self) -> Tensor:
        """K_eff[o, i, a, b] = Σ_h R[o, h] · K[h, a, b] · E[h, i], shape (H, H, k, k)."""
        if self.reduce is None:
            raise FoldError("cannot fold a refiner without attention reduction; set attention_reduction=True")
        expand = self.expand.weight[:, :, 0, 0]
        reduce = self.reduce.weight[:, :, 0, 0]
        return torch.einsum("oh,hab,hi->oiab", reduce, self.depthwise_kernel(), expand)

    def depthwise_kernel(self) -> Tensor:
        """The per-map k×k kernel of the local attention, shape (r·H, k, k)."""
        if self.constraint == "rowcol":
            column, row = self.dla[0].weight[:, 0, :, 0], self.dla[1].weight[:, 0, 0, :]
            return column[:, :, None] * row[:, None, :]
        return self.dla.weight[:, 0]

    def _local(
        self, maps: Tensor, convolve: Callable[[Tensor], Tensor], mix_prefix: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """Apply the local convolution where the constraint says; ``spatial`` only mixes the prefix keys."""
        if self.constraint != "spatial":
            return convolve(maps)
        batch, _, queries, _ = maps.shape
        rows, cols = self.token_grid
        prefix, grid = maps[..., : self.prefix_tokens], maps[..., self.prefix_tokens :]
        # Each query's weights over the keys become an image: (B·Nq, C, rows, cols).
        grid = grid.transpose(1, 2).reshape(batch * queries, -1, rows, cols)
        grid = convolve(grid)
        grid = grid.reshape(batch, queries, -1, rows * cols).transpose(1, 2)
        return torch.cat([mix_prefix(prefix), grid], dim=-1)
