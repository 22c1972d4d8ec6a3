from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from refiner_nas.refiner_space import attention_maps, build_model
from refiner_nas.refiner_space.analysis import attention_density, map_sources, row_entropy


def test_row_entropy_of_known_distributions() -> None:
    maps = torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0]])
    assert row_entropy(maps).tolist() == pytest.approx([math.log(4), 0.0, 1.5 * math.log(2)])


def test_rows_are_renormalised_before_the_entropy() -> None:
    rows = torch.rand(3, 5, 7)
    torch.testing.assert_close(row_entropy(2.5 * rows), row_entropy(rows / rows.sum(-1, keepdim=True)))


def test_negative_maps_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative maps; use the raw"):
        row_entropy(torch.tensor([[0.7, 0.5, -0.2]]))


@torch.no_grad()
def test_constant_logits_give_uniform_attention_share_one(tiny) -> None:
    model = build_model(tiny()).eval()
    for block in model.blocks:  # zero query and key projections: every logit is 0
        block.attn.qkv.weight[: 2 * 16].zero_()
        block.attn.qkv.bias[: 2 * 16].zero_()
    table = attention_density(model, [torch.randn(3, 3, 16, 16)]).to_frame()
    assert table["share"].tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    assert table["entropy"].tolist() == pytest.approx([math.log(17)] * 3)
    assert set(table["keys"]) == {17} and set(table["images"]) == {3}


def entropy_by_hand(raw: np.ndarray) -> np.ndarray:
    """Per-head mean over images and queries of -Σ p log p, rows normalised to sum 1."""
    p = raw / raw.sum(-1, keepdims=True)
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(-1).mean(axis=(0, 2))


@torch.no_grad()
def test_released_variant_matches_a_hand_computation_and_marks_reused_blocks(tiny) -> None:
    model = build_model(tiny(attention="refiner_official", stem="conv4", depth=4)).eval()
    batches = [torch.randn(3, 3, 16, 16), torch.randn(2, 3, 16, 16)]
    density = attention_density(model, batches)
    assert density.map_from == [0, 0, 2, 2]
    per_batch = []
    for images in batches:
        _, maps = attention_maps(model, images)
        per_batch.append([entropy_by_hand(maps[b].raw.double().numpy()) * len(images) for b in (0, 2)])
    expected = {b: (per_batch[0][i] + per_batch[1][i]) / 5 for i, b in enumerate((0, 2))}
    np.testing.assert_allclose(density.entropy[0].numpy(), expected[0], rtol=1e-10)
    np.testing.assert_allclose(density.entropy[2].numpy(), expected[2], rtol=1e-10)
    # block 2's map (softmax plus a scaled earlier map) has rows summing above 1: renormalised
    _, maps = attention_maps(model, batches[0])
    assert float(maps[2].raw.sum(-1).min()) > 1.0
    table = density.to_frame()
    assert table["reused"].tolist() == [False, True, False, True]
    assert table.loc[1, "entropy"] == table.loc[0, "entropy"] and table.loc[3, "share"] == table.loc[2, "share"]
    assert (table["share"] <= 1.0).all()


def test_map_sources_follow_the_sharing_span(tiny) -> None:
    assert map_sources(build_model(tiny(depth=5, share_span=2))) == [0, 0, 2, 2, 4]
    assert map_sources(build_model(tiny(depth=3))) == [0, 1, 2]


def test_no_batches_is_an_error(tiny) -> None:
    with pytest.raises(ValueError, match="no batches"):
        attention_density(build_model(tiny()).eval(), [])
