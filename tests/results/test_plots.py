"""Front plots: Table 7's labels placed without overlapping."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from refiner_nas.results.plots import place_labels  # noqa: E402
from refiner_nas.results.reference import reported_rows  # noqa: E402


def test_table7_labels_do_not_overlap() -> None:
    table = reported_rows()
    points = pd.DataFrame({"x": table["params_m"].astype(float), "y": table["full_top1"].astype(float),
                           "label": table["model"].astype(str)})
    figure, axes = plt.subplots(figsize=(9, 6), dpi=120)
    axes.scatter(points["x"], points["y"])
    axes.set_xscale("log")
    figure.tight_layout()
    placed = place_labels(axes, points)
    renderer = figure.canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in axes.texts]
    plt.close(figure)
    assert len(boxes) == placed and placed >= 0.8 * len(points)  # the rest are left out, not stacked
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
