"""Figures of the analyses, drawn with matplotlib's Agg canvas (no pyplot, no global backend switch)
from the tables and records the analysis modules compute."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from torch import Tensor

from refiner_nas.refiner_space.analysis.maps import QueryAttention

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# Attention figures: readable on a screen even for a one-block, one-head model (inches, dots per inch).
MIN_ATTENTION_SIZE = (6.0, 3.5)
ATTENTION_DPI = 150


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the analysis figures need matplotlib; pip install matplotlib") from None
    return Figure(figsize=(width, height), layout="constrained")


def _per_block_axes(*, title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.ticker import MaxNLocator

    figure = _figure(6.4, 4.2)
    axes = figure.subplots()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return figure, axes


_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")
# Models' points are drawn this far apart along the block axis (in blocks, or this share of the blocks
# shown when more), so equal curves (e.g. the uniform maps of untrained models, all at share 1) stay
# visible side by side instead of on top of each other: about a marker's width.
_DODGE, _DODGE_SHARE = 0.08, 0.015


def _model_styles(tables: Mapping[str, pd.DataFrame]) -> list[tuple[float, str, str]]:
    """(x offset, line style, marker) of each model on one per-block figure."""
    span = max((float(table["block"].max()) for table in tables.values() if len(table)), default=0.0)
    step = max(_DODGE, _DODGE_SHARE * span)
    count = len(tables)
    return [((i - (count - 1) / 2) * step, _LINESTYLES[i % len(_LINESTYLES)], _MARKERS[i % len(_MARKERS)])
            for i in range(count)]


def _ratio_axis(axes: Axes, low: float, high: float) -> None:
    """A y axis for a ratio whose reference is 1: plain numbers (no '+1' offset) over at least [0, 1.05],
    so a curve at 1.0001 reads as 1 instead of filling the figure with its noise."""
    axes.ticklabel_format(axis="y", useOffset=False, style="plain")
    axes.set_ylim(min(0.0, low), max(1.05, high + 0.02))


def plot_feature_evolution(curves: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Save ``feature_evolution_figure(curves)`` as a PNG."""
    feature_evolution_figure(curves).savefig(path, dpi=120)
    return path


def feature_evolution_figure(curves: Mapping[str, pd.DataFrame]) -> Figure:
    """F_k against block k, one line style and marker per model (drawn side by side, so equal curves stay
    visible) with a ±1 std band over batches (tables from ``FeatureEvolution.to_frame``)."""
    figure, axes = _per_block_axes(
        title="Feature evolution (normalised linear CKA)",
        xlabel="block k (output of block k; 0 is the first; models side by side)",
        ylabel="CKA(f_k, f_out) / CKA(f_in, f_out)",
    )
    lows, highs = [], []
    for (label, table), (dx, style, marker) in zip(curves.items(), _model_styles(curves), strict=True):
        blocks = table["block"] + dx
        line = axes.plot(blocks, table["f_norm"], linestyle=style, marker=marker, markersize=4, label=label)[0]
        low, high = table["f_norm"] - table["f_norm_std"], table["f_norm"] + table["f_norm_std"]
        axes.fill_between(blocks, low, high, color=line.get_color(), alpha=0.2)
        lows.append(float(low.min()))
        highs.append(float(high.max()))
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    _ratio_axis(axes, min(lows, default=0.0), max(highs, default=1.0))
    axes.legend()
    return figure


def plot_density(tables: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Save ``density_figure(tables)`` as a PNG."""
    density_figure(tables).savefig(path, dpi=120)
    return path


def density_figure(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """Entropy share of the uniform maximum against block, one line style and marker per model (drawn
    side by side, so equal curves stay visible); hollow markers on blocks that reuse an earlier block's
    map (tables from ``AttentionDensity.to_frame``)."""
    figure, axes = _per_block_axes(
        title="Attention density of the raw (softmax) maps",
        xlabel="block (models side by side; hollow: reuses an earlier block's map)",
        ylabel="entropy / log(keys)",
    )
    for (label, table), (dx, style, marker) in zip(tables.items(), _model_styles(tables), strict=True):
        blocks = table["block"] + dx
        reused = table["reused"].to_numpy(bool)
        own = [i for i, reuses in enumerate(reused) if not reuses]
        line = axes.plot(blocks, table["share"], linestyle=style, marker=marker, markevery=own, markersize=5,
                         label=label)[0]
        axes.plot(blocks[reused], table["share"][reused], marker, markerfacecolor="none", color=line.get_color(),
                  markersize=6)
    _ratio_axis(axes, 0.0, 1.0)
    axes.legend()
    return figure


def _displayable(image: Tensor) -> np.ndarray:
    """(C, H, W) normalised image -> (H, W, C) in [0, 1] (min-max over the image)."""
    image = image.detach().float().cpu()
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
    return image.permute(1, 2, 0).numpy()


def attention_mosaic(result: QueryAttention, *, gap: int = 1) -> np.ndarray:
    """The panels of ``result`` as one RGBA image: a row per block and stage, a column per head, each
    cell the query's weights over the patch grid through viridis on its own min-max scale (cells are
    compared by pattern, not level: refined maps may be negative); white gaps and missing heads."""
    from matplotlib import colormaps

    rows, cols = result.token_grid
    colour = colormaps["viridis"]
    canvas = np.ones((len(result.panels) * (rows + gap) - gap, len(result.heads) * (cols + gap) - gap, 4))
    for r, panel in enumerate(result.panels):
        for c, weights in enumerate(panel.weights):
            if weights is None:
                continue
            grid = weights[result.prefix_tokens :].double().cpu().reshape(rows, cols).numpy()
            scaled = (grid - grid.min()) / max(float(grid.max() - grid.min()), 1e-12)
            top, left = r * (rows + gap), c * (cols + gap)
            canvas[top : top + rows, left : left + cols] = colour(scaled)
    return canvas


def plot_query_attention(result: QueryAttention, image: Tensor, *, patch_size: int, title: str, path: Path) -> Path:
    """A figure like the Refiner paper's Figure 5: the image with the query marked, beside the
    ``attention_mosaic`` of its maps (the class-token key is left out of the picture, kept in the CSV).
    One mosaic rather than an axes per cell keeps a 16-block, 12-head figure to about a second."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    rows, cols = result.token_grid
    gap = 1
    figure = _figure(max(2.6 + 0.8 * len(result.heads), MIN_ATTENTION_SIZE[0]),
                     max(0.6 + 0.8 * len(result.panels), MIN_ATTENTION_SIZE[1]))
    picture_axes, maps_axes = figure.subplots(1, 2, width_ratios=[1.4, 0.8 * len(result.heads)])
    picture = _displayable(image)
    picture_axes.imshow(picture, cmap="gray" if picture.shape[-1] == 1 else None)
    picture_axes.set_anchor("N")
    picture_axes.set(xticks=[], yticks=[])
    patch = result.query - result.prefix_tokens
    if patch >= 0:
        row, col = divmod(patch, cols)
        corner = (col * patch_size - 0.5, row * patch_size - 0.5)
        picture_axes.add_patch(Rectangle(corner, patch_size, patch_size, fill=False, edgecolor="red", linewidth=1.5))
    picture_axes.set_title("query: class token" if patch < 0 else f"query: patch {divmod(patch, cols)}", fontsize=8)
    maps_axes.imshow(attention_mosaic(result, gap=gap), interpolation="nearest")
    scale = ScalarMappable(Normalize(0.0, 1.0), cmap="viridis")
    bar = figure.colorbar(scale, ax=maps_axes, shrink=0.8)
    bar.set_label("weight (each map: min 0, max 1)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    maps_axes.set_xticks(
        [c * (cols + gap) + (cols - 1) / 2 for c in range(len(result.heads))],
        [f"head {head}" for head in result.heads],
        fontsize=8,
    )
    maps_axes.set_yticks(
        [r * (rows + gap) + (rows - 1) / 2 for r in range(len(result.panels))],
        [f"b{p.block} {p.stage}" + (" (reused)" if p.reused else "") for p in result.panels],
        fontsize=8,
    )
    maps_axes.xaxis.tick_top()
    maps_axes.tick_params(length=0)
    for spine in maps_axes.spines.values():
        spine.set_visible(False)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=ATTENTION_DPI)
    return path
