"""From a ``ModelConfig`` to the attention layer and block at each depth: one builder per variant."""

from __future__ import annotations

from collections.abc import Callable

from timm.layers import Mlp
from torch import nn

from refiner_nas.refiner_space.config import ModelConfig
from refiner_nas.refiner_space.layers import (
    Attention,
    AttentionRefiner,
    Block,
    HeadMixing,
    OfficialComputeAttention,
    OfficialShareAttention,
    ScaledMlp,
)


def computes_map(config: ModelConfig, index: int) -> bool:
    """Whether block ``index`` computes its own attention map (it reuses the previous one otherwise)."""
    return index % config.share_span == 0


def passes_map(config: ModelConfig, index: int) -> bool:
    """Whether block ``index`` hands a map to the next block (the next block reuses it)."""
    return index + 1 < config.depth and not computes_map(config, index + 1)


def _vanilla(config: ModelConfig, index: int) -> nn.Module:
    return Attention(
        config.embed_dim,
        config.num_heads,
        qkv_bias=config.qkv_bias,
        computes_map=computes_map(config, index),
        passes_map=passes_map(config, index),
        proj_drop=config.drop_rate,
    )


def _talking_heads(config: ModelConfig, index: int) -> nn.Module:
    computing = computes_map(config, index)
    heads = config.num_heads
    return Attention(
        config.embed_dim,
        heads,
        qkv_bias=config.qkv_bias,
        computes_map=computing,
        passes_map=passes_map(config, index),
        logit_mixer=HeadMixing(heads, heads) if computing else None,
        map_refiner=HeadMixing(heads, heads) if computing else None,
        proj_drop=config.drop_rate,
    )


def _refiner(config: ModelConfig, index: int) -> nn.Module:
    computing = computes_map(config, index)
    refiner = None
    if computing:
        refiner = AttentionRefiner(
            config.num_heads,
            expansion_ratio=config.expansion_ratio,
            kernel_size=config.kernel_size,
            constraint=config.dla_constraint,
            reduction=config.attention_reduction,
            token_grid=config.token_grid,
            prefix_tokens=int(config.class_token),
        )
    value_heads = config.num_heads if config.attention_reduction else config.expansion_ratio * config.num_heads
    return Attention(
        config.embed_dim,
        config.num_heads,
        qkv_bias=config.qkv_bias,
        computes_map=computing,
        passes_map=passes_map(config, index),
        map_refiner=refiner,
        value_heads=value_heads,
        proj_drop=config.drop_rate,
    )


def _refiner_official(config: ModelConfig, index: int) -> nn.Module:
    if computes_map(config, index):
        return OfficialComputeAttention(
            config.embed_dim, config.num_heads, qkv_bias=config.qkv_bias, proj_drop=config.drop_rate
        )
    return OfficialShareAttention(
        config.embed_dim,
        config.num_heads,
        qkv_bias=config.qkv_bias,
        expansion_ratio=config.expansion_ratio,
        kernel_size=config.kernel_size,
        proj_drop=config.drop_rate,
    )


ATTENTION_BUILDERS: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "vanilla": _vanilla,
    "talking_heads": _talking_heads,
    "refiner": _refiner,
    "refiner_official": _refiner_official,
}


def build_block(config: ModelConfig, index: int, drop_path: float) -> Block:
    """The block at depth ``index``; the released variant uses its scaled MLP and residual ratio 0.5."""
    hidden = int(config.embed_dim * config.mlp_ratio)
    official = config.attention == "refiner_official"
    mlp_layer = ScaledMlp if official else Mlp
    return Block(
        config.embed_dim,
        attn=ATTENTION_BUILDERS[config.attention](config, index),
        mlp=mlp_layer(config.embed_dim, hidden, drop=config.drop_rate),
        drop_path=drop_path,
        residual_scale=0.5 if official else 1.0,
        broadcast=config.context_broadcast,
        broadcast_dim_scaled=config.broadcast_dim_scaled,
    )
