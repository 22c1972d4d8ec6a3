"""The counter: agreement with torch's FlopCounterMode, refusal of uncounted operators, breakdown, cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from refiner_nas.refiner_space import NAMED_CONFIGS, ModelConfig, build_model, named_config, set_refiner_fold
from refiner_nas.refiner_space.costs import (
    CachedCountError,
    CostCache,
    Costs,
    UncountedOperatorError,
    count_costs,
    count_model,
)
from refiner_nas.refiner_space.layers.attention import Attention

SMALL = {"depth": 2, "embed_dim": 48, "num_heads": 4, "img_size": 64, "num_classes": 10}
VARIANTS = [
    {},
    {"attention": "talking_heads"},
    {"attention": "refiner", "dla_constraint": "spatial"},
    {"attention": "refiner", "dla_constraint": "rowcol", "kernel_size": 5},
    {"attention": "refiner", "attention_reduction": False},
    {"attention": "refiner", "share_span": 2},
    {"attention": "refiner_official", "stem": "conv4"},
    {"context_broadcast": "mlp_end", "broadcast_dim_scaled": True},
    {"class_token": False},
    {"aux_head": True},
]


def explicit_attention(model: nn.Module) -> nn.Module:
    """The model with every fused attention computed on its explicit path (the same function:
    ``test_fused_and_explicit_vanilla_attention_agree``). Which fused kernels FlopCounterMode counts
    changes between torch versions (2.14 counts no CPU scaled-dot-product attention); the explicit
    path is two plain matrix products it always counts."""
    for module in model.modules():
        if isinstance(module, Attention):
            module.fused = False
    return model


def flop_counter_macs(model: nn.Module, config: ModelConfig) -> float:
    """torch's count (2 FLOPs per multiply-add of products and convolutions) in MACs, on the explicit
    attention path."""
    images = torch.zeros(1, config.in_chans, *config.img_hw)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        explicit_attention(model).eval()(images)
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("fields", VARIANTS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "vanilla")
def test_small_variants_agree_with_flop_counter_mode(fields: dict[str, object]) -> None:
    config = ModelConfig(**SMALL, **fields)
    assert count_costs(config).macs == pytest.approx(flop_counter_macs(build_model(config), config), rel=1e-3)


@pytest.mark.parametrize("fields", [{}, {"context_broadcast": "attn_end"}, {"class_token": False}],
                         ids=["vanilla", "cb", "no-cls"])
def test_fused_attention_is_counted_like_its_explicit_path(fields: dict[str, object]) -> None:
    """What lets the cross-check above run on the explicit path: our count of the fused model equals
    our count of the explicit one, attention products included (2 · depth · N² · D MACs)."""
    config = ModelConfig(**SMALL, **fields)
    fused = build_model(config)
    assert all(block.attn.fused for block in fused.blocks)
    fused_costs = count_model(fused, config.img_hw)
    explicit_costs = count_model(explicit_attention(build_model(config)), config.img_hw)
    assert fused_costs.macs == explicit_costs.macs
    attention_products = {p.part: p.macs for p in fused_costs.parts}["attention products"]
    assert attention_products == config.depth * 2 * config.num_tokens**2 * config.embed_dim


@pytest.mark.parametrize("constraint", ["none", "spatial", "rowcol"])
def test_folded_refiners_agree_with_flop_counter_mode(constraint: str) -> None:
    config = ModelConfig(**SMALL, attention="refiner", dla_constraint=constraint, expansion_ratio=6)
    model = build_model(config)
    set_refiner_fold(model, True)
    folded = count_costs(config, refiner_fold=True)
    assert folded.macs == pytest.approx(flop_counter_macs(model, config), rel=1e-3)
    assert folded.macs < count_costs(config).macs  # r = 6 > H·k²/(2H + k²): the fold is cheaper


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NAMED_CONFIGS))
def test_every_registered_model_agrees_with_flop_counter_mode_within_one_percent(name: str) -> None:
    config = named_config(name)
    assert count_costs(config).macs == pytest.approx(flop_counter_macs(build_model(config), config), rel=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "spec_fvcore"), [("refined_vit_s", 6.82e9), ("refined_vit_m", 13.57e9), ("refined_vit_l", 19.28e9)]
)
def test_plain_fvcore_count_of_released_models_matches_spec(name: str, spec_fvcore: float) -> None:
    costs = count_costs(named_config(name))
    assert costs.fvcore_flops == pytest.approx(spec_fvcore, rel=1e-3)
    # Products and convolutions only: below fvcore's count, which adds its norm estimates.
    assert 0.98 * costs.fvcore_flops < costs.macs < costs.fvcore_flops


class _Cumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).cumsum(dim=-1)


class _ReluSum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).sum()


def test_an_operator_without_a_rule_is_refused_by_name() -> None:
    with pytest.raises(UncountedOperatorError, match=r"aten::cumsum \(1×\)"):
        count_costs(_Cumsum(), img_size=8)


def test_operators_plain_fvcore_skips_are_counted() -> None:
    costs = count_model(_ReluSum(), (8, 8))
    assert costs.elementwise_flops == 2 * 3 * 8 * 8  # relu: 1 per output element; sum: 1 per input element
    assert costs.fvcore_flops == 0 and costs.macs == 0


def test_breakdown_adds_up_and_names_the_refiner() -> None:
    costs = count_costs(ModelConfig(**SMALL, attention="refiner", aux_head=True))
    assert sum(p.params for p in costs.parts) == costs.params
    assert sum(p.macs for p in costs.parts) == costs.macs
    assert sum(p.elementwise_flops for p in costs.parts) == costs.elementwise_flops
    parts = {p.part for p in costs.parts}
    assert {"stem", "qkv projection", "attention products", "refiner", "mlp", "norms", "head"} <= parts
    assert costs.zero_cost_ops["aten::transpose"] > 0


def test_costs_round_trip_through_a_dict() -> None:
    costs = count_costs(ModelConfig(**SMALL))
    assert Costs.from_dict(costs.to_dict()) == costs
    assert costs.flops == 2 * costs.macs + costs.elementwise_flops == costs.product_flops + costs.elementwise_flops


def test_the_cache_counts_each_architecture_and_input_size_once() -> None:
    cache = CostCache()
    config = ModelConfig(**SMALL)
    first = count_costs(config, cache=cache)
    assert count_costs(config, cache=cache) is first
    assert count_costs(ModelConfig.from_dict(config.to_dict()), cache=cache) is first  # equal, built anew
    bigger = count_costs(config, img_size=96, cache=cache)
    folded_config = config.replace(attention="refiner")
    count_costs(folded_config, cache=cache)
    count_costs(folded_config, refiner_fold=True, cache=cache)
    assert cache.counted == 4 and len(cache) == 4
    assert bigger.img_size == (96, 96) and bigger.macs > first.macs


def test_a_failed_count_is_kept_and_raised_again_without_recounting() -> None:
    cache = CostCache()
    calls = []

    def failing() -> Costs:
        calls.append(1)
        raise UncountedOperatorError("aten::cumsum has no rule")

    config = ModelConfig(**SMALL)
    with pytest.raises(UncountedOperatorError):
        cache.get_or_count(config, False, failing)
    with pytest.raises(CachedCountError, match="aten::cumsum has no rule"):
        cache.get_or_count(config, False, failing)
    assert len(calls) == 1


def test_a_cache_file_is_shared_between_processes(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "costs.jsonl"
    config = ModelConfig(**SMALL)
    writer, reader = CostCache(path=path), CostCache(path=path)
    counted = count_costs(config, cache=writer)
    assert count_costs(config, cache=reader) == counted
    assert reader.counted == 0
    path.write_text(path.read_text() + '{"schema_version": 99, "key": "x"}\nnot json\n')
    assert len(CostCache(path=path)._entries) == 0  # nothing read until the first lookup
    assert count_costs(config, cache=CostCache(path=path)) == counted


def test_bad_inputs_are_named() -> None:
    with pytest.raises(TypeError, match="ModelConfig or an nn.Module"):
        count_costs("refined_vit_s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="img_size is needed"):
        count_costs(nn.Linear(2, 2))


@pytest.mark.parametrize(
    ("equation", "shapes", "expected"),
    [
        ("ij,jk->ik", [(2, 3), (3, 5)], (30, 0)),
        ("ij,jk", [(2, 3), (3, 5)], (30, 0)),  # implicit output
        ("i,i", [(7,), (7,)], (7, 0)),  # dot product
        ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)], (120, 0)),
        ("ij,ij->ij", [(2, 3), (2, 3)], (0, 6)),  # sums nothing: element-wise products
        ("oh,hab,hi->oiab", [(4, 12), (12, 3, 3), (12, 4)], (4 * 12 * 9 * 4, 4 * 12 * 9)),
        ("ij->ji", [(2, 3)], (0, 0)),
    ],
)
def test_einsum_costs(equation: str, shapes: list[tuple[int, ...]], expected: tuple[int, int]) -> None:
    from refiner_nas.refiner_space.costs._ops import einsum_costs

    assert einsum_costs(equation, shapes) == expected


def test_a_persisted_cache_is_keyed_by_the_counter_version(tmp_path) -> None:
    from refiner_nas.refiner_space.costs import counter_version

    config = ModelConfig(img_size=16, in_chans=1, num_classes=10, patch_size=4, depth=1, embed_dim=8, num_heads=2)
    path = tmp_path / "costs.jsonl"
    version = counter_version()
    assert len(version) == 12 and version == counter_version()
    first = CostCache()
    first.persist(path, version)
    counted = count_costs(config, cache=first)
    assert first.counted == 1 and version in path.read_text()
    again = CostCache()
    again.persist(path, version)
    assert count_costs(config, cache=again) == counted and again.counted == 0  # read from disk, not recounted
    other = CostCache()
    other.persist(path, "another")
    count_costs(config, cache=other)
    assert other.counted == 1  # a changed counter never reads an old count
