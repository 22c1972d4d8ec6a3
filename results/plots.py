"""Accuracy against size: what a front plot shows (``front_plot_data``) and two ways to draw it.

The PNG (matplotlib) and the interactive HTML (plotly) draw the same ``FrontPlotData``: every
candidate, the front highlighted and joined as a staircase, and Table 7's published models overlaid.
When the plotted accuracy is a proxy top-1 (a small dataset) the published ImageNet figures get their
own right-hand axis, so the two scales are never read as one: each axis names its dataset and takes the
colour of its points, and the legend says which axis each series is read on. The HTML page is one
self-contained file (plotly embedded, about 4.8 MB), so it opens offline and can be moved alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refiner_nas.results.pareto import ParetoResult
from refiner_nas.results.reference import reported_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

_LABELS = {
    "top1": "proxy top-1 (%)",
    "full_top1": "top-1 (%)",
    "params_m": "parameters (M)",
    "macs_g": "MACs (G)",
    "flops_g": "FLOPs (G)",
    "throughput": "throughput (images/s)",
    "latency_ms": "latency (ms)",
}
_ACCURACIES = ("full_top1", "top1")
REPORTED_LABEL = "reported ImageNet top-1 (%), Refiner paper Table 7"
PLOT_COLOURS = {"candidates": "0.65", "front": "tab:red", "reported": "tab:blue"}
_SIZES = ("params_m", "macs_g", "flops_g", "latency_ms")


@dataclass(frozen=True)
class FrontPlotData:
    """Everything a drawing needs: axis columns and labels, the points, the front, the overlay.

    ``points`` and ``front`` hold columns x, y, label, study (``front`` sorted by x); ``reported`` holds
    x, y, label for Table 7 (empty when it has no value for x); ``reported_axis`` is ``same`` when the
    published accuracy shares the y axis, ``secondary`` when it gets its own; ``x_log`` is set when the
    x values span more than two decades (tiny proxy models next to ImageNet models). ``legend`` names
    the candidates, the front and the reported points, with the axis each is read on.
    """

    x: str
    y: str
    x_label: str
    y_label: str
    title: str
    points: pd.DataFrame
    front: pd.DataFrame
    reported: pd.DataFrame
    reported_axis: str
    x_log: bool
    legend: tuple[str, str, str]
    reported_label: str = REPORTED_LABEL


def front_plot_data(result: ParetoResult, *, x: str | None = None, y: str | None = None,
                    reported: bool = True) -> FrontPlotData:
    """Choose the axes (default: the first size and the first accuracy objective) and lay out the data.

    Raises:
        ValueError: an axis column that the candidates do not record.
    """
    columns = [o.column for o in result.objectives]
    x = x or next((c for c in columns if c in _SIZES), "params_m")
    y = y or next((c for c in columns if c in _ACCURACIES), next((c for c in columns if c != x), "top1"))
    for axis, column in (("x", x), ("y", y)):
        if column not in result.candidates or result.candidates[column].isna().all():
            raise ValueError(
                f"cannot plot {column!r} on the {axis} axis: no candidate records it; choose another --{axis}"
            )

    def layout(frame: pd.DataFrame) -> pd.DataFrame:
        labels = frame["model"].fillna("").astype(str)
        trial = frame["trial"].astype("string").fillna("")
        labels = labels.where(trial == "", labels + " (" + frame["study"].fillna("").astype(str) + " #" + trial + ")")
        return pd.DataFrame({
            "x": frame[x].astype(float).to_numpy(),
            "y": frame[y].astype(float).to_numpy(),
            "label": labels.to_numpy(),
            "study": frame["study"].fillna(frame["kind"]).astype(str).to_numpy(),
        })

    points = layout(result.candidates.dropna(subset=[x, y]))
    front = layout(result.front.dropna(subset=[x, y])).sort_values("x", kind="stable").reset_index(drop=True)
    overlay = pd.DataFrame(columns=["x", "y", "label"])
    axis = "same" if y == "full_top1" else "secondary"
    if reported and x in ("params_m", "macs_g"):
        table = reported_rows()
        overlay = pd.DataFrame({"x": table[x].astype(float), "y": table["full_top1"].astype(float),
                                "label": table["model"].astype(str)})
    objectives = ", ".join(str(o) for o in result.objectives)
    title = f"Pareto front ({objectives}): {len(result.front)} of {len(result.candidates)} candidates"
    xs = pd.concat([points["x"], overlay["x"].astype(float)])
    x_log = bool((xs > 0).all() and xs.max() > 100 * xs.min())
    y_label = _LABELS.get(y, y) + _budget_text(result.candidates.dropna(subset=[x, y]), y)
    sides = ("", "", "") if axis == "same" or overlay.empty else (", left axis", ", left axis", ", right axis")
    legend = (f"candidates{sides[0]}", f"Pareto front{sides[1]}", f"reported (Table 7, not measured here{sides[2]})")
    return FrontPlotData(x, y, _LABELS.get(x, x), y_label, title, points, front, overlay, axis, x_log, legend)


def _budget_text(candidates: pd.DataFrame, y: str) -> str:
    """`` on digits, 2 epochs``: the datasets (and epochs, when one) that the plotted accuracy was measured on."""
    kinds = {"top1": "proxy", "full_top1": "full"}
    rows = candidates[candidates["kind"] == kinds[y]] if y in kinds else candidates.iloc[0:0]
    datasets = sorted(rows["dataset"].dropna().astype(str).unique())
    if not datasets:
        return ""
    epochs = rows["epochs"].dropna().unique()
    return f" on {', '.join(datasets)}" + (f", {int(epochs[0])} epochs" if len(epochs) == 1 else "")


# Label positions tried around a point, in points (x right, y up): near first, then further out.
_LABEL_OFFSETS = [(3, 2), (3, -8), (-3, 2), (-3, -8), (3, 9), (-3, 9), (3, -15), (-3, -15), (10, 16), (-10, 16),
                  (10, -22), (-10, -22)]


def place_labels(axes: Axes, points: pd.DataFrame) -> int:
    """Annotate each point (columns x, y, label) at the first offset where its label overlaps no label
    placed before, top points first; a label with no free place is left out (the HTML plot shows every
    label on hover). Returns how many labels were placed."""
    renderer = axes.figure.canvas.get_renderer()
    placed: list[Bbox] = []
    for row in points.sort_values("y", ascending=False).itertuples(index=False):
        for dx, dy in _LABEL_OFFSETS:
            text = axes.annotate(row.label, (row.x, row.y), xytext=(dx, dy), textcoords="offset points", fontsize=6,
                                 ha="left" if dx > 0 else "right")
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            text.remove()
    return len(placed)


def draw_png(data: FrontPlotData, path: Path) -> Path:
    """Draw ``data`` with matplotlib (no display needed) and save it as a PNG."""
    front_figure(data).savefig(path)
    return path


def front_figure(data: FrontPlotData) -> Figure:
    """``data`` as a matplotlib figure on the Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 6), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    colours = PLOT_COLOURS
    axes.scatter(data.points["x"], data.points["y"], s=18, color=colours["candidates"], label=data.legend[0])
    axes.step(data.front["x"], data.front["y"], where="post", color=colours["front"], linewidth=1.2)
    axes.scatter(data.front["x"], data.front["y"], s=36, color=colours["front"], zorder=3, label=data.legend[1])
    if data.x_log:
        axes.set_xscale("log")
    axes.set_xlabel(data.x_label)
    axes.set_ylabel(data.y_label)
    axes.set_title(data.title, fontsize=10)
    handles, labels = axes.get_legend_handles_labels()
    target = axes
    if not data.reported.empty:
        if data.reported_axis == "secondary":
            target = axes.twinx()
            target.set_ylabel(data.reported_label, color=colours["reported"])
            target.tick_params(axis="y", colors=colours["reported"])
            axes.yaxis.label.set_color(colours["front"])
            axes.tick_params(axis="y", colors=colours["front"])
        marks = target.scatter(data.reported["x"], data.reported["y"], marker="^", s=30, color=colours["reported"])
        handles.append(marks)
        labels.append(data.legend[2])
    axes.legend(handles, labels, loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()  # before the labels: they are placed in the final layout's coordinates
    if not data.reported.empty:
        place_labels(target, data.reported)
    return figure


def draw_html(data: FrontPlotData, path: Path) -> Path:
    """Draw ``data`` with plotly as one self-contained interactive HTML file (plotly's library embedded:
    it opens offline, and nothing is written beside it)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(go.Scatter(x=data.points["x"], y=data.points["y"], mode="markers", name=data.legend[0],
                                text=data.points["label"], marker={"color": "lightgray", "size": 7}))
    figure.add_trace(go.Scatter(x=data.front["x"], y=data.front["y"], mode="lines+markers", name=data.legend[1],
                                text=data.front["label"], line={"shape": "hv", "color": "crimson"},
                                marker={"size": 9}))
    layout: dict[str, object] = {
        "title": data.title, "xaxis": {"title": data.x_label, "type": "log" if data.x_log else "linear"},
        "yaxis": {"title": data.y_label},
        "template": "plotly_white",
    }
    if not data.reported.empty:
        secondary = data.reported_axis == "secondary"
        figure.add_trace(go.Scatter(
            x=data.reported["x"], y=data.reported["y"], mode="markers+text", text=data.reported["label"],
            textposition="top center", textfont={"size": 8}, marker={"symbol": "triangle-up", "color": "royalblue"},
            name=data.legend[2], yaxis="y2" if secondary else "y",
        ))
        if secondary:
            layout["yaxis"] = {"title": {"text": data.y_label, "font": {"color": "crimson"}}}
            layout["yaxis2"] = {"title": {"text": data.reported_label, "font": {"color": "royalblue"}},
                                "overlaying": "y", "side": "right"}
    figure.update_layout(**layout)
    figure.write_html(path, include_plotlyjs=True, full_html=True)
    return path
