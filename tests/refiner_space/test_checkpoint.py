from __future__ import annotations

import pytest
import torch

from refiner_nas.refiner_space import (
    CheckpointMismatchError,
    ModelConfig,
    build_model,
    load_released_checkpoint,
)

# The released code's key layout (docs/models.md#the-released-code-variant), written out apart from the loader.
OURS_TO_RELEASED = {
    "attn.refine.expand.": "attn.DLA.conv_exp.",
    "attn.refine.bn1.": "attn.DLA.bn1.",
    "attn.refine.dla.": "attn.DLA.depth_sep_conv.",
    "attn.refine.bn2.": "attn.DLA.bn2.",
    "attn.refine.reduce.": "attn.DLA.conv_pro.",
    "attn.refine.bn3.": "attn.DLA.bn3.",
    "attn.refine.adapt_bn.": "attn.adapt_bn.",
}
CONFIG = ModelConfig(img_size=32, patch_size=16, depth=4, embed_dim=24, num_heads=3, num_classes=5,
                     attention="refiner_official", stem="conv4", mlp_ratio=3.0, aux_head=True)


def released_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in model.state_dict().items():
        for ours, released in OURS_TO_RELEASED.items():
            key = key.replace(ours, released)
        state[key] = value.clone()
    return state


def test_released_layout_is_the_one_in_the_spec() -> None:
    keys = set(released_state_dict(build_model(CONFIG)))
    expected_shapes = {
        "blocks.0.attn.qkv.weight": (72, 24),
        "blocks.1.attn.qkv.weight": (24, 24),
        "blocks.1.attn.DLA.conv_exp.weight": (9, 3, 1, 1),
        "blocks.1.attn.DLA.depth_sep_conv.weight": (9, 1, 3, 3),
        "blocks.1.attn.DLA.conv_pro.weight": (3, 9, 1, 1),
        "blocks.1.mlp.scale_channel": (24,),
        "patch_embed.proj.weight": (24, 128, 8, 8),
    }
    state = released_state_dict(build_model(CONFIG))
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape
    for key in ("cls_token", "pos_embed", "patch_embed.conv1.weight", "patch_embed.bn3.num_batches_tracked",
                "blocks.1.attn.adapt_bn.running_var", "blocks.1.attn.DLA.bn3.weight", "norm.bias",
                "head.weight", "aux_head.bias"):
        assert key in keys
    assert not any("DLA" in key for key in keys if key.startswith("blocks.0."))


def test_released_checkpoint_loads_strictly_and_reproduces_the_outputs() -> None:
    source = build_model(CONFIG).eval()
    with torch.no_grad():
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
    target = load_released_checkpoint(build_model(CONFIG).eval(), released_state_dict(source))
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(target(images), source(images))
    wrapped = {"model": released_state_dict(source)}
    load_released_checkpoint(build_model(CONFIG), wrapped)


def test_mismatches_are_reported_by_name_and_nothing_is_loaded() -> None:
    state = released_state_dict(build_model(CONFIG))
    del state["blocks.1.attn.DLA.bn2.running_var"]
    state["blocks.1.attn.extra_gate"] = torch.zeros(3)
    state["blocks.2.attn.qkv.weight"] = torch.zeros(70, 24)
    target = build_model(CONFIG)
    before = target.blocks[0].attn.qkv.weight.clone()
    with pytest.raises(CheckpointMismatchError) as error:
        load_released_checkpoint(target, state)
    message = str(error.value)
    assert "missing keys: blocks.1.attn.refine.bn2.running_var" in message
    assert "unexpected keys: blocks.1.attn.extra_gate" in message
    assert "shape mismatches: blocks.2.attn.qkv.weight (checkpoint (70, 24), model (72, 24))" in message
    assert torch.equal(target.blocks[0].attn.qkv.weight, before)


def test_released_checkpoint_at_another_resolution_resamples_the_position_embedding() -> None:
    state = released_state_dict(build_model(CONFIG))
    target = load_released_checkpoint(build_model(CONFIG.replace(img_size=64)), state)
    assert target.pos_embed.shape == (1, 17, 24)


def test_released_checkpoints_only_load_into_the_released_variant() -> None:
    with pytest.raises(CheckpointMismatchError, match="attention='refiner_official'"):
        load_released_checkpoint(build_model(ModelConfig(img_size=32, patch_size=16)), {})
