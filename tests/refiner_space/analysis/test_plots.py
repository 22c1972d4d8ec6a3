from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from refiner_nas.refiner_space.analysis import MapPanel, QueryAttention
from refiner_nas.refiner_space.analysis.plots import (
    attention_mosaic,
    density_figure,
    feature_evolution_figure,
    plot_density,
    plot_feature_evolution,
)


def test_mosaic_places_each_cell_on_its_own_scale_with_white_gaps() -> None:
    from matplotlib import colormaps

    weights = torch.arange(1 + 6, dtype=torch.float64)  # class token, then a 2x3 grid
    result = QueryAttention(
        image=0,
        query=0,
        heads=[0, 5],
        token_grid=(2, 3),
        prefix_tokens=1,
        panels=[
            MapPanel(block=0, stage="raw", reused=False, weights=[weights, None]),
            MapPanel(block=0, stage="refined", reused=False, weights=[-weights, 10 * weights]),
        ],
    )
    mosaic = attention_mosaic(result)
    assert mosaic.shape == (2 * 3 - 1, 2 * 4 - 1, 4)
    white = np.ones(4)
    assert (mosaic[2] == white).all() and (mosaic[:, 3] == white).all()  # the gaps
    assert (mosaic[0:2, 4:7] == white).all()  # head 5 has no raw map
    scaled = np.array([[0, 1, 2], [3, 4, 5]]) / 5
    colour = colormaps["viridis"]
    np.testing.assert_allclose(mosaic[0:2, 0:3], colour(scaled))
    np.testing.assert_allclose(mosaic[3:5, 4:7], colour(scaled))  # scale-free: 10x the weights, same picture
    np.testing.assert_allclose(mosaic[3:5, 0:3], colour(1 - scaled))  # negative maps are min-max scaled too


def _flat_curves() -> dict[str, pd.DataFrame]:
    """Two models with the same near-1 curve, as untrained models give (the figures once hid one)."""
    blocks = np.arange(4)
    return {name: pd.DataFrame({"block": blocks, "f_norm": 1 + 2e-4 * np.sin(blocks + shift), "f_norm_std": 1e-4,
                                "share": 0.99998, "reused": [False, False, True, False]})
            for name, shift in (("vit", 0.0), ("refiner", 1.0))}


def test_near_one_curves_read_as_one_without_an_offset() -> None:
    figure = feature_evolution_figure(_flat_curves())
    axes = figure.axes[0]
    figure.canvas.draw()
    assert axes.yaxis.get_offset_text().get_text() == ""  # no '+1' above the axis
    low, high = axes.get_ylim()
    assert low == 0.0 and 1.05 <= high < 1.1
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert "1.0" in labels and not any("e-" in text or "0.0002" in text for text in labels)


def test_equal_curves_of_two_models_stay_visible() -> None:
    for draw in (feature_evolution_figure, density_figure):
        axes = draw(_flat_curves()).axes[0]
        vit, refiner = (next(line for line in axes.get_lines() if line.get_label() == name)
                        for name in ("vit", "refiner"))
        assert (refiner.get_xdata() - vit.get_xdata() > 0.079).all(), draw.__name__  # side by side
        assert vit.get_linestyle() != refiner.get_linestyle() and vit.get_marker() != refiner.get_marker()
        assert [text.get_text() for text in axes.get_legend().get_texts()] == ["vit", "refiner"]


def test_figures_are_written_as_png(tmp_path: Path) -> None:
    for draw, name in ((plot_feature_evolution, "cka.png"), (plot_density, "density.png")):
        path = draw(_flat_curves(), tmp_path / name)
        assert path.read_bytes()[:4] == b"\x89PNG"
