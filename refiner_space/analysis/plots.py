"""Figures of the analyses, drawn with matplotlib's Agg canvas (no pyplot, no global backend switch)
from the tables and records the analysis modules compute."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from torch import Tensor

from refiner_space.analysis.maps import QueryAttention

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def plot_feature_evolution(curves: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """F_k against block k, one line per model with a ±1 std band over batches (tables from
    :meth:`FeatureEvolution.to_frame`)."""
    figure, axes = _per_block_axes(
        title="Feature evolution (normalised linear CKA)",
        xlabel="block k (output of block k; 0 is the first)",
        ylabel="CKA(f_k, f_out) / CKA(f_in, f_out)",
    )
    for label, table in curves.items():
        line = axes.plot(table["block"], table["f_norm"], marker="o", markersize=3, label=label)[0]
        low, high = table["f_norm"] - table["f_norm_std"], table["f_norm"] + table["f_norm_std"]
        axes.fill_between(table["block"], low, high, color=line.get_color(), alpha=0.2)
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axes.legend()
    figure.savefig(path, dpi=120)
    return path


def plot_density(tables: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Entropy share of the uniform maximum against block, one line per model; hollow markers on blocks
    that reuse an earlier block's map (tables from :meth:`AttentionDensity.to_frame`)."""
    figure, axes = _per_block_axes(
        title="Attention density of the raw (softmax) maps",
        xlabel="block (hollow: reuses an earlier block's map)",
        ylabel="entropy / log(keys)",
    )
    for label, table in tables.items():
        line = axes.plot(table["block"], table["share"], label=label)[0]
        own, reused = table[~table["reused"]], table[table["reused"]]
        axes.plot(own["block"], own["share"], "o", color=line.get_color(), markersize=4)
        axes.plot(reused["block"], reused["share"], "o", markerfacecolor="none", color=line.get_color(), markersize=5)
    axes.set_ylim(0, 1.05)
    axes.legend()
    figure.savefig(path, dpi=120)
    return path


def _displayable(image: Tensor) -> np.ndarray:
    """(C, H, W) normalised image -> (H, W, C) in [0, 1] (min-max over the image)."""
    image = image.detach().float().cpu()
    image = (image - image.min()) / (image.max() - image.min()).clamp_min(1e-12)
    return image.permute(1, 2, 0).numpy()


def plot_query_attention(result: QueryAttention, image: Tensor, *, patch_size: int, title: str, path: Path) -> Path:
    """A grid like the Refiner paper's Figure 5: the image with the query marked, then one row per block
    and stage and one column per head, each cell the query's weights over the patch grid (its own colour
    scale; the class-token key is left out of the picture and kept in the CSV)."""
    from matplotlib.patches import Rectangle

    rows, cols = result.token_grid
    grid_rows, grid_cols = len(result.panels), len(result.heads) + 1
    figure = _figure(1.1 * grid_cols + 0.6, 1.1 * grid_rows + 0.6)
    axes = figure.subplots(grid_rows, grid_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    picture = _displayable(image)
    axes[0, 0].imshow(picture, cmap="gray" if picture.shape[-1] == 1 else None)
    patch = result.query - result.prefix_tokens
    if patch >= 0:
        row, col = divmod(patch, cols)
        box = Rectangle(
            (col * patch_size - 0.5, row * patch_size - 0.5),
            patch_size,
            patch_size,
            fill=False,
            edgecolor="red",
            linewidth=1.5,
        )
        axes[0, 0].add_patch(box)
    axes[0, 0].set_title("query: class token" if patch < 0 else f"query: patch {divmod(patch, cols)}", fontsize=7)
    for ax in axes[1:, 0]:
        ax.set_frame_on(False)  # an empty cell that still shows its row's label
    for r, panel in enumerate(result.panels):
        axes[r, 0].set_ylabel(f"b{panel.block} {panel.stage}" + (" (reused)" if panel.reused else ""), fontsize=7)
        for c, (head, weights) in enumerate(zip(result.heads, panel.weights, strict=True), start=1):
            if r == 0:
                axes[r, c].set_title(f"head {head}", fontsize=7)
            if weights is None:
                axes[r, c].axis("off")
                continue
            axes[r, c].imshow(weights[result.prefix_tokens :].float().cpu().reshape(rows, cols).numpy(), cmap="viridis")
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=80)
    return path
