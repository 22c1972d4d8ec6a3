from __future__ import annotations

import pytest
import torch

from refiner_nas.refiner_space import attention_maps, build_model
from refiner_nas.refiner_space.analysis import maps_frame, parse_query, query_attention


def test_queries_by_name_grid_position_and_index(tiny) -> None:
    model = build_model(tiny())  # 4x4 grid after the class token
    assert parse_query("cls", model) == 0
    assert parse_query("1,2", model) == 1 + 4 + 2
    assert parse_query(" 16 ", model) == 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4,0", "query patch 4,0 is outside the 4x4 token grid"),
        ("17", "query token index 17 is out of range: the model has 17 query tokens"),
        ("centre", "query 'centre': use 'cls', ROW,COL"),
        ("1,2,3", "query '1,2,3': use 'cls', ROW,COL"),
    ],
)
def test_bad_queries_are_named(tiny, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_query(text, build_model(tiny()))


def test_cls_needs_a_class_token(tiny) -> None:
    with pytest.raises(ValueError, match="no class token"):
        parse_query("cls", build_model(tiny(class_token=False)))


@torch.no_grad()
def test_paper_refiner_panels_are_the_raw_and_refined_rows(tiny) -> None:
    model = build_model(tiny(attention="refiner")).eval()
    images = torch.randn(2, 3, 16, 16)
    results = query_attention(model, images, image_ids=[7, 9], queries=[0, 6], blocks=[0, 2], heads=[1])
    assert [(r.image, r.query) for r in results] == [(7, 0), (7, 6), (9, 0), (9, 6)]
    _, maps = attention_maps(model, images)
    panels = results[3].panels
    assert [(p.block, p.stage, p.reused) for p in panels] == [
        (0, "raw", False),
        (0, "refined", False),
        (2, "raw", False),
        (2, "refined", False),
    ]
    torch.testing.assert_close(panels[1].weights[0], maps[0].refined[1, 1, 6])
    torch.testing.assert_close(panels[2].weights[0], maps[2].raw[1, 1, 6])


@torch.no_grad()
def test_unrefined_maps_appear_once_and_reused_maps_are_marked(tiny) -> None:
    vanilla = build_model(tiny(depth=4, share_span=2)).eval()
    result = query_attention(vanilla, torch.randn(1, 3, 16, 16), image_ids=[0], queries=[0])[0]
    assert [(p.block, p.stage, p.reused) for p in result.panels] == [
        (0, "raw", False),
        (1, "refined", True),
        (2, "raw", False),
        (3, "refined", True),
    ]
    released = build_model(tiny(attention="refiner_official", stem="conv4", depth=2)).eval()
    result = query_attention(released, torch.randn(1, 3, 16, 16), image_ids=[0], queries=[0])[0]
    assert [(p.block, p.stage, p.reused) for p in result.panels] == [
        (0, "raw", False),
        (1, "raw", True),
        (1, "refined", True),
    ]


@torch.no_grad()
def test_expanded_heads_without_reduction(tiny) -> None:
    model = build_model(tiny(attention="refiner", attention_reduction=False, expansion_ratio=2, depth=1)).eval()
    result = query_attention(model, torch.randn(1, 3, 16, 16), image_ids=[0], queries=[0], heads=[1, 3])[0]
    raw, refined = result.panels
    assert raw.weights[1] is None and raw.weights[0] is not None  # the softmax map has 2 heads
    assert all(w is not None for w in refined.weights)  # the refined one 4
    with pytest.raises(ValueError, match="head index 4 is out of range: the model has 4 heads"):
        query_attention(model, torch.randn(1, 3, 16, 16), image_ids=[0], queries=[0], heads=[4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blocks": [3]}, "block index 3 is out of range: the model has 3 blocks \\(0 to 2\\)"),
        ({"heads": [2]}, "head index 2 is out of range: the model has 2 heads"),
        ({"queries": [17]}, "query token index 17 is out of range"),
        ({"image_ids": [0, 1]}, "2 image ids for 1 images"),
    ],
)
def test_indices_out_of_range(tiny, kwargs, message: str) -> None:
    model = build_model(tiny()).eval()
    arguments = {"image_ids": [0], "queries": [0], **kwargs}
    with pytest.raises(ValueError, match=message):
        query_attention(model, torch.randn(1, 3, 16, 16), **arguments)


@torch.no_grad()
def test_table_has_one_row_per_plotted_weight_with_key_positions(tiny) -> None:
    model = build_model(tiny(attention="refiner", depth=2)).eval()
    results = query_attention(model, torch.randn(1, 3, 16, 16), image_ids=[5], queries=[0, 1], heads=[0, 1])
    table = maps_frame(results)
    assert len(table) == 2 * 2 * 2 * 2 * 17  # queries x blocks x stages x heads x keys
    row = table[
        (table["query"] == 1)
        & (table["block"] == 1)
        & (table["stage"] == "refined")
        & (table["head"] == 0)
        & (table["key"] == 1 + 4 + 3)
    ].iloc[0]
    assert (row["key_row"], row["key_col"], row["image"]) == (1, 3, 5)
    assert row["weight"] == pytest.approx(float(results[1].panels[3].weights[0][8]))
    assert table.loc[table["key"] == 0, "key_row"].isna().all()
