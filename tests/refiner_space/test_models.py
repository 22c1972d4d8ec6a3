from __future__ import annotations

import itertools

import pytest
import timm
import torch
from timm.layers import resample_abs_pos_embed

from refiner_nas.refiner_space import ModelConfig, attention_maps, build_model
from refiner_nas.refiner_space.layers import Attention, ContextBroadcast

TINY = {"img_size": 32, "patch_size": 8, "depth": 4, "embed_dim": 24, "num_heads": 3, "num_classes": 5}

VARIANTS = {
    "vanilla": {},
    "talking_heads": {"attention": "talking_heads"},
    "refiner": {"attention": "refiner", "expansion_ratio": 2},
    "refiner_spatial": {"attention": "refiner", "dla_constraint": "spatial", "kernel_size": 3},
    "refiner_rowcol_no_reduction": {"attention": "refiner", "dla_constraint": "rowcol", "attention_reduction": False},
    "refiner_shared": {"attention": "refiner", "share_span": 2},
    "vanilla_shared": {"share_span": 3},
    "official": {"attention": "refiner_official", "stem": "conv4", "aux_head": True},
    "cb_mlp_scaled": {"context_broadcast": "mlp_end", "broadcast_dim_scaled": True},
    "cb_attn_end": {"attention": "refiner", "context_broadcast": "attn_end"},
    "cb_block_end_no_cls": {"context_broadcast": "block_end", "class_token": False},
}


def tiny(**fields) -> ModelConfig:
    return ModelConfig(**{**TINY, **fields})


# The spatial constraint needs a square grid: its non-square case is an error tested in test_config.
SHAPE_CASES = [
    (variant, size)
    for variant, size in itertools.product(VARIANTS, [32, 48, (32, 48)])
    if not (variant == "refiner_spatial" and isinstance(size, tuple))
]


@pytest.mark.parametrize(("variant", "img_size"), SHAPE_CASES)
def test_every_variant_gives_logits_at_several_resolutions(variant: str, img_size) -> None:
    fields = VARIANTS[variant]
    model = build_model(tiny(img_size=img_size, **fields)).eval()
    height, width = (img_size, img_size) if isinstance(img_size, int) else img_size
    images = torch.randn(2, 3, height, width)
    tokens = model.forward_features(images)
    expected_tokens = (height // 8) * (width // 8) + int(model.config.class_token)
    assert tokens.shape == (2, expected_tokens, 24)
    assert model.forward_head(tokens, pre_logits=True).shape == (2, 24)
    assert model(images).shape == (2, 5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant: str) -> None:
    model = build_model(tiny(**VARIANTS[variant])).train()
    with torch.no_grad():  # the released MLP scale starts at 1e-5: lift it so no gradient underflows
        for name, parameter in model.named_parameters():
            if name.endswith("scale_channel"):
                parameter.fill_(1.0)
    model(torch.randn(2, 3, 32, 32)).square().sum().backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_fused_and_explicit_vanilla_attention_agree() -> None:
    fused = build_model(tiny()).eval()
    assert all(block.attn.fused for block in fused.blocks)
    explicit = build_model(tiny()).eval()
    explicit.load_state_dict(fused.state_dict())
    for block in explicit.blocks:
        block.attn.fused = False
    images = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(fused(images), explicit(images), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["vanilla", "talking_heads", "refiner"])
def test_share_span_reuses_maps_without_computing_queries_or_keys(variant: str) -> None:
    model = build_model(tiny(depth=5, share_span=2, **VARIANTS[variant])).eval()
    attentions = [block.attn for block in model.blocks]
    assert [a.computes_map for a in attentions] == [True, False, True, False, True]
    for attention in attentions:
        query_key = 2 * 24 if attention.computes_map else 0
        assert attention.qkv.out_features == query_key + attention.value_dim
    queries_computed = []
    for attention in attentions:
        attention.qkv.register_forward_hook(lambda m, i, out: queries_computed.append(out.shape[-1]))
    _, maps = attention_maps(model, torch.randn(2, 3, 32, 32))
    assert queries_computed == [72, 24, 72, 24, 72]
    for computing, reusing in [(0, 1), (2, 3)]:
        assert maps[reusing].raw is None
        assert torch.equal(maps[reusing].refined, maps[computing].refined)
    assert not torch.equal(maps[2].refined, maps[0].refined)


def test_attention_maps_leave_the_output_unchanged_and_rows_are_distributions() -> None:
    for fields in (VARIANTS["vanilla"], VARIANTS["refiner"], VARIANTS["official"]):
        model = build_model(tiny(**fields)).eval()
        images = torch.randn(2, 3, 32, 32)
        output, maps = attention_maps(model, images)
        torch.testing.assert_close(output, model(images), rtol=1e-5, atol=1e-6)
        assert len(maps) == 4
        assert maps[0].raw.shape == (2, 3, 17, 17)
        torch.testing.assert_close(maps[0].raw.sum(-1), torch.ones(2, 3, 17))
    refiner_maps = attention_maps(build_model(tiny(**VARIANTS["refiner"])).eval(), images)[1]
    assert not torch.allclose(refiner_maps[0].raw, refiner_maps[0].refined)
    assert all(not getattr(m, "keep_maps", False) for m in model.modules())


def test_context_broadcast_matches_its_formula_and_adds_no_parameters() -> None:
    x = torch.randn(2, 7, 24)
    torch.testing.assert_close(ContextBroadcast(24)(x), 0.5 * x + 0.5 * x.mean(dim=1, keepdim=True))
    scaled = ContextBroadcast(24, dim_scaled=True)
    with torch.no_grad():
        scaled.scale.copy_(torch.linspace(0, 2, 24))
    torch.testing.assert_close(scaled(x), 0.5 * x + 0.5 * x.mean(dim=1, keepdim=True) * scaled.scale)
    count = lambda cfg: sum(p.numel() for p in build_model(cfg).parameters())  # noqa: E731
    assert count(tiny(context_broadcast="mlp_end")) == count(tiny())
    assert count(tiny(context_broadcast="mlp_end", broadcast_dim_scaled=True)) == count(tiny()) + 4 * 24


def test_context_broadcast_at_mlp_end_changes_the_block_as_specified() -> None:
    plain = build_model(tiny(depth=1)).eval()
    broadcast = build_model(tiny(depth=1, context_broadcast="mlp_end")).eval()
    broadcast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 17, 24)
    block = plain.blocks[0]
    attn_out, _ = block.attn(block.norm1(x))
    after_attn = x + attn_out
    mlp_out = block.mlp(block.norm2(after_attn))
    expected = after_attn + 0.5 * mlp_out + 0.5 * mlp_out.mean(dim=1, keepdim=True)
    torch.testing.assert_close(broadcast.blocks[0](x)[0], expected)


def test_named_models_build_through_timm_with_overrides() -> None:
    model = timm.create_model("vit_16b_384", depth=2, img_size=64, num_classes=7)
    assert model.config.depth == 2 and model.config.embed_dim == 384
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert timm.create_model("refined_vit_s", depth=2, img_size=64).config.attention == "refiner_official"
    with pytest.raises(ValueError, match="no pretrained weights are hosted"):
        timm.create_model("refined_vit_s", pretrained=True)
    with pytest.raises(ValueError, match="num_heads=5 does not divide"):
        timm.create_model("vit_16b_384", num_heads=5)
    assert {"refined_vit_s", "refined_vit_m", "refined_vit_l", "refined_vit_base", "vit_16b_384"} <= set(
        timm.list_models("*vit*")
    )


def test_loading_weights_from_another_resolution_resamples_the_position_embedding() -> None:
    small = build_model(tiny(img_size=32))
    large = build_model(tiny(img_size=64))
    large.load_state_dict(small.state_dict())
    expected = resample_abs_pos_embed(small.pos_embed.detach(), new_size=[8, 8], num_prefix_tokens=1)
    torch.testing.assert_close(large.pos_embed.detach(), expected)
    torch.testing.assert_close(large.pos_embed[:, 0], small.pos_embed[:, 0])
    assert large(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def closed_form_params(c: ModelConfig) -> int:
    """Parameters of a patch-stem paper-variant model, written out from the architecture."""
    D, H, C, P = c.embed_dim, c.num_heads, c.num_classes, c.patch_size
    hidden = int(D * c.mlp_ratio)
    rH = (c.expansion_ratio or 1) * H
    value_dim = D if c.attention != "refiner" or c.attention_reduction else rH * D // H
    total = P * P * c.in_chans * D + D + c.num_tokens * D + D * int(c.class_token)
    for index in range(c.depth):
        computing = index % c.share_span == 0
        qkv_out = (2 * D if computing else 0) + value_dim
        total += 4 * D + D * qkv_out + qkv_out * int(c.qkv_bias) + value_dim * D + D
        total += D * hidden + hidden + hidden * D + D
        total += D * int(c.broadcast_dim_scaled)
        if computing and c.attention == "talking_heads":
            total += 2 * H * H
        if computing and c.attention == "refiner":
            kernel = 2 * c.kernel_size if c.dla_constraint == "rowcol" else c.kernel_size**2
            total += rH * H + rH * kernel + (H * rH if c.attention_reduction else 0)
    return total + 2 * D + D * C + C


GRID = [
    dict(zip(("attention", "depth", "heads_width", "share_span", "extra"), combo, strict=True))
    for combo in itertools.product(
        ["vanilla", "talking_heads", "refiner"],
        [1, 3],
        [(2, 16), (4, 32)],
        [1, 2],
        [{}, {"qkv_bias": False, "mlp_ratio": 3.0, "class_token": False}, {"broadcast_dim_scaled": True}],
    )
]


@pytest.mark.parametrize("refiner_fields", [{}, {"expansion_ratio": 4, "kernel_size": 5, "dla_constraint": "rowcol"},
                                            {"attention_reduction": False, "expansion_ratio": 2}])
def test_parameter_counts_equal_the_closed_form(refiner_fields: dict) -> None:
    for point in GRID:
        heads, width = point["heads_width"]
        fields = {**point["extra"]}
        if fields.pop("broadcast_dim_scaled", False):
            fields.update(context_broadcast="block_end", broadcast_dim_scaled=True)
        if point["attention"] == "refiner":
            fields.update(refiner_fields)
        config = ModelConfig(
            img_size=16, patch_size=4, in_chans=3, num_classes=10, depth=point["depth"], embed_dim=width,
            num_heads=heads, attention=point["attention"], share_span=point["share_span"], **fields,
        )
        counted = sum(p.numel() for p in build_model(config).parameters())
        assert counted == closed_form_params(config), config.to_dict()


def test_reusing_block_without_an_incoming_map_fails_clearly() -> None:
    attention = Attention(24, 3, computes_map=False)
    with pytest.raises(RuntimeError, match="received no map"):
        attention(torch.randn(1, 5, 24), None)
