"""Front plots: Table 7's labels placed without overlapping; each y axis and legend entry says what it shows."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from refiner_nas.results.collect import collect  # noqa: E402
from refiner_nas.results.pareto import leaderboard_front, parse_front_objectives  # noqa: E402
from refiner_nas.results.plots import front_figure, front_plot_data, place_labels  # noqa: E402
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


def test_two_accuracy_axes_say_which_is_which(tmp_path, make_study, tiny_config) -> None:
    make_study("a", [(tiny_config(embed_dim=8), 60.0, {}), (tiny_config(), 80.0, {})])
    stored = collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame
    result = leaderboard_front(stored, parse_front_objectives("top1:max,params:min"))
    figure = front_figure(front_plot_data(result))
    proxy_axes, reported_axes = figure.axes
    assert proxy_axes.get_ylabel() == "proxy top-1 (%) on digits, 2 epochs"
    assert reported_axes.get_ylabel() == "reported ImageNet top-1 (%), Refiner paper Table 7"
    assert proxy_axes.yaxis.get_label_position() == "left" and reported_axes.yaxis.get_label_position() == "right"
    assert [text.get_text() for text in proxy_axes.get_legend().get_texts()] == [
        "candidates, left axis", "Pareto front, left axis", "reported (Table 7, not measured here, right axis)"]
    # Each axis label takes the colour of the points read on it.
    front_colour = proxy_axes.collections[1].get_facecolor()[0]
    assert tuple(matplotlib.colors.to_rgba(proxy_axes.yaxis.label.get_color())) == tuple(front_colour)
    reported_colour = reported_axes.collections[0].get_facecolor()[0]
    assert tuple(matplotlib.colors.to_rgba(reported_axes.yaxis.label.get_color())) == tuple(reported_colour)
    alone = front_plot_data(result, reported=False)  # one axis: no axis notes
    assert alone.legend[:2] == ("candidates", "Pareto front") and len(front_figure(alone).axes) == 1
