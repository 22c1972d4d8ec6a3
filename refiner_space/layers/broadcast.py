"""Context broadcasting (docs/models.md#context-broadcasting): uniform attention added for free, without parameters."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ContextBroadcast(nn.Module):
    """CB(x) = 0.5 · x + 0.5 · mean over tokens(x) [· w], w a per-channel vector when ``dim_scaled``.

    The mean runs over all N tokens of a (B, N, D) tensor, the class token included.
    """

    def __init__(self, dim: int, *, dim_scaled: bool = False) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim)) if dim_scaled else None

    def forward(self, x: Tensor) -> Tensor:
        context = x.mean(dim=1, keepdim=True)
        if self.scale is not None:
            context = context * self.scale
        return 0.5 * x + 0.5 * context
