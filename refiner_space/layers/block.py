"""The pre-norm transformer block shared by every variant, and the released code's scaled MLP."""

from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from refiner_nas.refiner_space.config import BroadcastPlacement
from refiner_nas.refiner_space.layers.broadcast import ContextBroadcast


class ScaledMlp(Mlp):
    """timm's Mlp followed by a learnable per-channel scale (the released code's ``scale_channel``)."""

    def __init__(self, in_features: int, hidden_features: int, *, drop: float = 0.0, init_scale: float = 1e-5) -> None:
        super().__init__(in_features, hidden_features, drop=drop)
        self.scale_channel = nn.Parameter(torch.full((in_features,), init_scale))

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(self.norm(x)) * self.scale_channel)


class Block(nn.Module):
    """x += DropPath(attn(LN(c·x)))/c; x += DropPath(mlp(LN(c·x)))/c, with context broadcasting where
    ``broadcast`` says. ``residual_scale`` c is 1 for the paper models and 0.5 in the released code.

    ``forward(x, incoming_map) -> (x, outgoing_map)`` threads attention maps between sharing blocks.
    """

    def __init__(
        self,
        dim: int,
        *,
        attn: nn.Module,
        mlp: nn.Module,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        residual_scale: float = 1.0,
        broadcast: BroadcastPlacement = "off",
        broadcast_dim_scaled: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = mlp
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.residual_scale = residual_scale
        self.broadcast_at = broadcast
        self.broadcast = (
            ContextBroadcast(dim, dim_scaled=broadcast_dim_scaled) if broadcast != "off" else None
        )

    def forward(self, x: Tensor, incoming_map: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        attn_out, outgoing_map = self.attn(self.norm1(self._scaled(x)), incoming_map)
        x = self._add_residual(x, self._broadcast_at("attn_end", attn_out))
        mlp_out = self.mlp(self.norm2(self._scaled(x)))
        x = self._add_residual(x, self._broadcast_at("mlp_end", mlp_out))
        return self._broadcast_at("block_end", x), outgoing_map

    def _scaled(self, x: Tensor) -> Tensor:
        return x if self.residual_scale == 1 else x * self.residual_scale

    def _add_residual(self, x: Tensor, branch: Tensor) -> Tensor:
        branch = self.drop_path(branch)
        return x + (branch if self.residual_scale == 1 else branch / self.residual_scale)

    def _broadcast_at(self, place: BroadcastPlacement, x: Tensor) -> Tensor:
        return self.broadcast(x) if self.broadcast is not None and self.broadcast_at == place else x
