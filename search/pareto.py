"""Pareto primitives shared by the search and the results: non-dominated sorting, hypervolume and
the hypervolume each candidate point would add to a front."""

from __future__ import annotations

import numpy as np


def hypervolume_improvements(front: np.ndarray, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """How much each of ``points`` alone would add to the hypervolume of ``front`` (minimised, bounded by
    ``reference``): the volume of its box up to the reference less the part ``front`` already covers."""
    points = np.minimum(points, reference)
    if front.shape[1] == 2:
        return _improvements_2d(front[np.all(front < reference, axis=1)], points, reference)
    return np.array([np.prod(reference - point) - hypervolume(np.maximum(front, point), reference)
                     for point in points])


def _improvements_2d(front: np.ndarray, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    # The front leaves uncovered, above each x, everything below the staircase height(x) = the lowest y
    # of the front's points left of x (the reference's y where there is none): a point's improvement is
    # the area between its y and that staircase, from its x to the reference's x.
    order = np.argsort(front[:, 0], kind="stable")
    xs, ys = front[order, 0], np.minimum.accumulate(front[order, 1]) if len(front) else front[:, 1]
    starts = np.concatenate([[-np.inf], xs])
    ends = np.concatenate([xs, [reference[0]]])
    heights = np.concatenate([[reference[1]], ys])
    widths = np.clip(np.minimum(ends, reference[0])[None, :] - np.maximum(starts[None, :], points[:, :1]), 0, None)
    return (widths * np.clip(heights[None, :] - points[:, 1:2], 0, None)).sum(axis=1)


def non_dominated_mask(points: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` (n, m), all objectives minimised, no other row dominates.

    A point dominates another when it is no worse in every objective and better in one; equal points
    do not dominate each other. Rows are visited in lexicographic order, where every dominator comes
    before the points it dominates, and compared with the front found so far only.
    """
    points = np.asarray(points, dtype=float)
    mask = np.zeros(len(points), dtype=bool)
    front: list[int] = []
    for index in np.lexsort(points.T[::-1]):
        point = points[index]
        if front:
            kept = points[front]
            if np.any(np.all(kept <= point, axis=1) & np.any(kept < point, axis=1)):
                continue
        front.append(int(index))
        mask[index] = True
    return mask


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Front number of every row: 0 for the Pareto front, 1 for the front once it is removed, ..."""
    points = np.asarray(points, dtype=float)
    ranks = np.full(len(points), -1)
    rank = 0
    while (remaining := np.flatnonzero(ranks < 0)).size:
        ranks[remaining[non_dominated_mask(points[remaining])]] = rank
        rank += 1
    return ranks


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``points`` (all objectives minimised) and bounded by ``reference``.

    Points not strictly better than the reference in every objective add nothing. Exact: a sweep in
    two dimensions, slices along the last objective above that.
    """
    points = np.asarray(points, dtype=float)
    reference = np.asarray(reference, dtype=float)
    inside = points[np.all(points < reference, axis=1)] if len(points) else points
    if not len(inside):
        return 0.0
    return _volume(np.unique(inside[non_dominated_mask(inside)], axis=0), reference)


def _volume(points: np.ndarray, reference: np.ndarray) -> float:
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    if points.shape[1] == 2:
        area, ceiling = 0.0, reference[1]
        for x, y in points[np.lexsort((points[:, 1], points[:, 0]))]:
            if y < ceiling:
                area += (reference[0] - x) * (ceiling - y)
                ceiling = y
        return float(area)
    points = points[np.argsort(points[:, -1], kind="stable")]
    volume = 0.0
    for index in range(len(points)):
        upper = points[index + 1, -1] if index + 1 < len(points) else reference[-1]
        if upper > points[index, -1]:
            slab = points[: index + 1, :-1]
            volume += (upper - points[index, -1]) * _volume(slab[non_dominated_mask(slab)], reference[:-1])
    return float(volume)
