from __future__ import annotations

import numpy as np
import torch

from refiner_nas.refiner_space.analysis import MapPanel, QueryAttention
from refiner_nas.refiner_space.analysis.plots import attention_mosaic


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
