from __future__ import annotations

import pytest
import torch

from refiner_nas.refiner_space import build_model
from refiner_nas.refiner_space.analysis import block_features, feature_evolution, linear_cka
from refiner_nas.refiner_space.analysis.features import reduce_tokens


@pytest.fixture
def model(tiny) -> torch.nn.Module:
    return build_model(tiny(attention="refiner")).eval()


def manual_features(model, images):
    """The token features, computed by running the model's parts by hand."""
    x = model.patch_embed(images)
    x = torch.cat([model.cls_token.expand(len(x), -1, -1), x], dim=1) + model.pos_embed
    inputs, outputs, incoming = x, [], None
    for block in model.blocks:
        x, incoming = block(x, incoming)
        outputs.append(x)
    return inputs, outputs, model.norm(x)


@torch.no_grad()
def test_block_features_are_the_embedding_each_block_and_the_final_norm(model) -> None:
    images = torch.randn(4, 3, 16, 16)
    features = block_features(model, images)
    inputs, outputs, final = manual_features(model, images)
    torch.testing.assert_close(features.inputs, inputs)
    assert len(features.blocks) == 3
    for got, expected in zip(features.blocks, outputs, strict=True):
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(features.output, final)
    torch.testing.assert_close(features.output, model.forward_features(images))
    assert all(not block._forward_hooks and not block._forward_pre_hooks for block in model.blocks)


@torch.no_grad()
def test_feature_evolution_is_cka_to_the_output_over_cka_of_the_input(model) -> None:
    batches = [torch.randn(5, 3, 16, 16) for _ in range(3)]
    evolution = feature_evolution(model, batches)
    expected = []
    for images in batches:
        inputs, outputs, final = manual_features(model, images)
        base = linear_cka(inputs.flatten(1), final.flatten(1))
        expected.append([linear_cka(f.flatten(1), final.flatten(1)) / base for f in outputs])
    expected = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(evolution.normalised, expected)
    table = evolution.to_frame()
    assert table["block"].tolist() == [0, 1, 2]
    assert table["f_norm"].tolist() == pytest.approx(expected.mean(0).tolist())
    assert table["f_norm_std"].tolist() == pytest.approx(expected.std(0).tolist())
    assert set(table["batches"]) == {3} and set(table["images_per_batch"]) == {5}


@torch.no_grad()
def test_blocks_that_change_nothing_give_one_everywhere(tiny) -> None:
    model = build_model(tiny()).eval()
    for block in model.blocks:  # zero residual branches: every block returns its input
        for layer in (block.attn.proj, block.mlp.fc2):
            layer.weight.zero_()
            layer.bias.zero_()
    evolution = feature_evolution(model, [torch.randn(6, 3, 16, 16)])
    assert evolution.normalised.flatten().tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-9)
    assert float(evolution.input_to_output[0]) < 1.0  # the final norm still changes the features


def test_token_reductions() -> None:
    features = torch.randn(4, 17, 16)
    assert reduce_tokens(features, "flatten").shape == (4, 17 * 16)
    torch.testing.assert_close(reduce_tokens(features, "mean"), features.mean(1))
    with pytest.raises(ValueError, match="tokens='max'"):
        reduce_tokens(features, "max")  # type: ignore[arg-type]


def test_mean_tokens_differ_from_flattened(model) -> None:
    batches = [torch.randn(5, 3, 16, 16)]
    flat = feature_evolution(model, batches).to_output
    mean = feature_evolution(model, batches, tokens="mean").to_output
    assert not torch.allclose(flat, mean)


def test_errors_name_the_problem(model) -> None:
    with pytest.raises(ValueError, match="no batches"):
        feature_evolution(model, [])
    with pytest.raises(ValueError, match="batch 0: CKA needs at least 3 examples"):
        feature_evolution(model, [torch.randn(2, 3, 16, 16)])
    with pytest.raises(ValueError, match="no `blocks` list"):
        block_features(torch.nn.Linear(2, 2), torch.randn(1, 2))
