"""Exact counts of small models against closed-form expressions (integers, no tolerance).

Notation: D width, H heads, N tokens (patches + class token), M MLP hidden width, C classes, P patch
size, r expansion ratio, k kernel size, G the patch grid side. Conventions: refiner_space/costs/_ops.py.
"""

from __future__ import annotations

import pytest

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.costs import count_costs

D, H, C, P, MLP_RATIO, IMG = 32, 4, 10, 16, 2.0, 48
G = IMG // P  # 3x3 patches
N = G * G + 1
M = int(D * MLP_RATIO)
BASE = {"embed_dim": D, "num_heads": H, "num_classes": C, "patch_size": P, "mlp_ratio": MLP_RATIO, "img_size": IMG}


def stem_and_head() -> tuple[int, int]:
    """(MACs, element-wise FLOPs) outside the blocks: patch conv (+bias), position add, final norm, head."""
    macs = (G * G) * D * (3 * P * P) + D * C
    elementwise = (G * G) * D + N * D + 5 * N * D + C
    return macs, elementwise


def block_outside_attention() -> tuple[int, int]:
    """Per block, everything but the attention layer: two LayerNorms, MLP with biases and GELU, two
    residual adds."""
    macs = 2 * N * D * M
    elementwise = 2 * 5 * N * D + (N * M + N * M + N * D) + 2 * N * D
    return macs, elementwise


def attention(
    *, q_k: bool, value_heads: int, refiner: tuple[int, int] = (0, 0), explicit: bool = True
) -> tuple[int, int]:
    """One attention layer: projections with biases, products, softmax and scaling, map transform."""
    value_dim = value_heads * (D // H)
    qkv_out = (2 * D if q_k else 0) + value_dim
    macs = N * D * qkv_out + N * value_dim * D  # qkv and output projections
    elementwise = N * qkv_out + N * D  # their biases
    if q_k:
        macs += N * N * D  # q kᵀ
        elementwise += N * D + 5 * H * N * N  # q scaling, softmax (fused and explicit count the same)
    macs += value_heads * N * N * (D // H)  # A v
    return macs + refiner[0], elementwise + refiner[1]


def total(depth: int, attentions: list[tuple[int, int]], extra: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    macs, elementwise = stem_and_head()
    block_macs, block_elementwise = block_outside_attention()
    macs += depth * block_macs + sum(a[0] for a in attentions) + extra[0]
    elementwise += depth * block_elementwise + sum(a[1] for a in attentions) + extra[1]
    return macs, elementwise


def counted(**fields: object) -> tuple[int, int]:
    costs = count_costs(ModelConfig(**BASE, **fields), cache=None)
    return costs.macs, costs.elementwise_flops


@pytest.mark.parametrize("depth", [1, 2])
def test_vanilla(depth: int) -> None:
    assert counted(depth=depth) == total(depth, [attention(q_k=True, value_heads=H)] * depth)


def refiner_macs(r: int, k: int, constraint: str, reduction: bool = True) -> int:
    expanded = r * H
    if constraint == "none":
        local = expanded * k * k * N * N
    elif constraint == "rowcol":
        local = 2 * expanded * k * N * N
    else:  # spatial: each query's weights over the G×G key grid; the class-token column is not convolved
        local = expanded * k * k * N * (N - 1)
    return expanded * H * N * N + local + (H * expanded * N * N if reduction else 0)


@pytest.mark.parametrize("constraint", ["none", "spatial", "rowcol"])
@pytest.mark.parametrize(("r", "k"), [(1, 1), (3, 3), (2, 5)])
def test_refiner_each_constraint(constraint: str, r: int, k: int) -> None:
    layer = attention(q_k=True, value_heads=H, refiner=(refiner_macs(r, k, constraint), 0))
    fields = {"attention": "refiner", "expansion_ratio": r, "kernel_size": k, "dla_constraint": constraint}
    assert counted(depth=1, **fields) == total(1, [layer])


def test_refiner_without_reduction_projects_r_times_the_values() -> None:
    r = 3
    layer = attention(q_k=True, value_heads=r * H, refiner=(refiner_macs(r, 3, "none", reduction=False), 0))
    fields = {"attention": "refiner", "expansion_ratio": r, "attention_reduction": False}
    assert counted(depth=1, **fields) == total(1, [layer])


@pytest.mark.parametrize("variant", ["vanilla", "refiner"])
def test_shared_maps_skip_queries_keys_softmax_and_refiner(variant: str) -> None:
    refiner = (refiner_macs(3, 3, "none"), 0) if variant == "refiner" else (0, 0)
    computing = attention(q_k=True, value_heads=H, refiner=refiner)
    reusing = attention(q_k=False, value_heads=H)
    assert counted(depth=3, attention=variant, share_span=3) == total(3, [computing, reusing, reusing])


def test_folded_refiner_costs_one_dense_convolution_plus_its_kernel() -> None:
    r, k = 6, 3
    folded = count_costs(
        ModelConfig(**BASE, depth=1, attention="refiner", expansion_ratio=r, kernel_size=k),
        refiner_fold=True,
        cache=None,
    )
    refiner = next(part for part in folded.parts if part.part == "refiner")
    dense = H * H * k * k * N * N
    # K_eff = einsum("oh,hab,hi->oiab", R, K, E), left to right: R·K sums nothing (element-wise products),
    # then a contraction over h. (R @ E, which only the spatial constraint uses, is dead code here and
    # tracing drops it.)
    assert refiner.macs == dense + H * r * H * k * k * H
    assert refiner.elementwise_flops == H * r * H * k * k


@pytest.mark.parametrize("placement", ["attn_end", "mlp_end", "block_end"])
@pytest.mark.parametrize("dim_scaled", [False, True])
def test_context_broadcast(placement: str, dim_scaled: bool) -> None:
    # mean over N tokens (N·D), 0.5·x (N·D), 0.5·mean (D), add (N·D), [· scale (D)]
    broadcast = 3 * N * D + D + (D if dim_scaled else 0)
    depth = 2
    expected = total(depth, [attention(q_k=True, value_heads=H)] * depth, (0, depth * broadcast))
    assert counted(depth=depth, context_broadcast=placement, broadcast_dim_scaled=dim_scaled) == expected


def test_fused_and_explicit_vanilla_attention_count_the_same() -> None:
    from refiner_nas.refiner_space import build_model
    from refiner_nas.refiner_space.costs import count_model

    model = build_model(ModelConfig(**BASE, depth=1))
    fused = count_model(model, (IMG, IMG))
    explicit_layer = model.blocks[0].attn
    explicit_layer.fused = False
    explicit = count_model(model, (IMG, IMG))
    assert (fused.macs, fused.elementwise_flops) == (explicit.macs, explicit.elementwise_flops)
    assert fused.fvcore_flops < explicit.fvcore_flops  # plain fvcore misses the fused products
