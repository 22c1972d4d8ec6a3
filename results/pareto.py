"""Pareto fronts over leaderboard columns, across studies, with their hypervolume.

Objectives name columns (``top1:max,params:min``; ``params``, ``macs``, ``flops``, ``latency`` are
aliases of ``params_m``, ``macs_g``, ``flops_g``, ``latency_ms``), so one front can span studies that
optimised different objectives. Ties: points with equal objective vectors do not dominate each other,
so all of them are on the front when one is. Duplicate trials (status ``duplicate``: the same
architecture and budget as an earlier trial, whose result they copy) are left out, so an architecture
counts once per budget; only complete, feasible trials are candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from refiner_nas.results.leaderboard import EmptyResultError
from refiner_nas.results.schema import COLUMNS
from refiner_nas.search.objectives import ObjectiveError  # one error for objectives, over trials or columns
from refiner_nas.search.pareto import hypervolume, nondominated_ranks

Direction = Literal["max", "min"]
ALIASES: dict[str, str] = {
    "params": "params_m", "macs": "macs_g", "flops": "flops_g", "latency": "latency_ms",
}
_MAXIMISED = {"top1", "full_top1", "throughput"}
_DIRECTIONS: dict[str, Direction] = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}


@dataclass(frozen=True)
class FrontObjective:
    """One objective: the leaderboard column and whether larger is better."""

    column: str
    direction: Direction

    def __str__(self) -> str:
        return f"{self.column}:{self.direction}"


def parse_front_objectives(text: str) -> list[FrontObjective]:
    """``"top1:max,params:min"``; a direction left out is max for accuracies and throughput, else min.

    Raises:
        ObjectiveError: an unknown or non-numeric column, a bad direction, a repeated objective.
    """
    numeric = [name for name, (dtype, _) in COLUMNS.items() if dtype in ("float64", "Int64")]
    numeric.remove("schema_version")
    objectives: list[FrontObjective] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, direction_text = item.partition(":")
        column = ALIASES.get(name.strip(), name.strip())
        if column not in numeric:
            raise ObjectiveError(
                f"objective {name!r} is not a recorded numeric column; choose from "
                f"{', '.join([*ALIASES, *numeric])}"
            )
        direction = _DIRECTIONS.get(direction_text.strip() or ("max" if column in _MAXIMISED else "min"))
        if direction is None:
            raise ObjectiveError(f"objective {name!r}: direction {direction_text!r} is not max or min")
        if any(o.column == column for o in objectives):
            raise ObjectiveError(f"objective {column!r} is given twice in {text!r}")
        objectives.append(FrontObjective(column, direction))
    if not objectives:
        raise ObjectiveError(f"no objective in {text!r}; e.g. --objectives top1:max,params:min")
    return objectives


def parse_reference(text: str, objectives: list[FrontObjective]) -> dict[str, float]:
    """``"top1=0,params=50"`` -> {column: value}; every objective needs a value.

    Raises:
        ObjectiveError: a name that is not an objective, a missing or non-numeric value.
    """
    values: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        column = ALIASES.get(name.strip(), name.strip())
        if not sep or column not in {o.column for o in objectives}:
            raise ObjectiveError(
                f"reference {item!r} must be OBJECTIVE=VALUE for one of {', '.join(o.column for o in objectives)}"
            )
        try:
            values[column] = float(value)
        except ValueError:
            raise ObjectiveError(f"reference value {value!r} for {column} is not a number") from None
    missing = [o.column for o in objectives if o.column not in values]
    if missing:
        raise ObjectiveError(f"reference point lacks {', '.join(missing)}; give every objective, e.g. top1=0,params=50")
    return values


@dataclass(frozen=True)
class ParetoResult:
    """A front and how it was computed.

    ``candidates``: the rows that competed (every objective known), with ``pareto_rank`` (0 on the
    front) and ``on_front``; ``front``: the rank-0 rows, best first by the first objective;
    ``reference``: the hypervolume's reference point per objective column; ``budgets``: how many
    different proxy budgets the candidates' ``top1`` values come from; ``left_out``: selected rows
    that could not compete (an objective missing, not complete, infeasible, or a duplicate).
    """

    objectives: tuple[FrontObjective, ...]
    candidates: pd.DataFrame
    front: pd.DataFrame
    reference: dict[str, float]
    hypervolume: float
    budgets: int
    left_out: int


def minimised(frame: pd.DataFrame, objectives: list[FrontObjective]) -> np.ndarray:
    """The objective values as an (n, m) array in which smaller is better everywhere."""
    values = frame[[o.column for o in objectives]].astype(float).to_numpy()
    signs = np.array([-1.0 if o.direction == "max" else 1.0 for o in objectives])
    return values * signs


def competing_rows(frame: pd.DataFrame, objectives: list[FrontObjective]) -> pd.DataFrame:
    """Rows with every objective known; proxy rows only when complete, feasible and not duplicates.

    Raises:
        ObjectiveError: an objective no selected row records.
        EmptyResultError: no row is selected at all.
    """
    if frame.empty:
        raise EmptyResultError("no rows are selected")
    for objective in objectives:
        if frame[objective.column].isna().all():
            recorded = [c for c in ("top1", "full_top1", "params_m", "macs_g", "flops_g", "throughput", "latency_ms")
                        if frame[c].notna().any()]
            raise ObjectiveError(
                f"objective {objective.column!r} is not recorded for any selected row; recorded: "
                f"{', '.join(recorded) or 'nothing'}"
            )
    known = frame[[o.column for o in objectives]].notna().all(axis=1)
    proxy = frame["kind"] == "proxy"
    usable = (frame["state"] == "complete") & frame["feasible"].fillna(True) & (frame["status"] != "duplicate")
    keep = known & (~proxy | usable.fillna(False))
    return frame[keep.to_numpy(bool)].reset_index(drop=True)


# The default reference of a cost lies this much beyond the worst candidate, so every front point
# (even a single one) encloses some volume.
COST_MARGIN = 1.1


def default_reference(candidates: pd.DataFrame, objectives: list[FrontObjective]) -> dict[str, float]:
    """A reference point every candidate improves on: 0 for maximised objectives (accuracy,
    throughput), ``COST_MARGIN`` times the worst candidate for minimised ones (costs)."""
    return {
        o.column: 0.0 if o.direction == "max" else float(candidates[o.column].max()) * COST_MARGIN
        for o in objectives
    }


def leaderboard_front(
    frame: pd.DataFrame, objectives: list[FrontObjective], *, reference: dict[str, float] | None = None
) -> ParetoResult:
    """The non-dominated rows of ``frame`` (already selected, e.g. by study and budget).

    ``reference`` defaults to ``default_reference``.

    Raises:
        ObjectiveError: an objective not recorded.
        EmptyResultError: no row can compete (a command adds which of its options widen the selection).
    """
    candidates = competing_rows(frame, objectives)
    if candidates.empty:
        raise EmptyResultError(
            f"no selected row has {', '.join(o.column for o in objectives)} and is a complete, feasible result"
        )
    points = minimised(candidates, objectives)
    if reference is None:
        reference = default_reference(candidates, objectives)
    reference_point = minimised(pd.DataFrame([reference]), objectives)[0]
    ranks = nondominated_ranks(points)
    candidates = candidates.assign(pareto_rank=ranks, on_front=ranks == 0)
    first = objectives[0]
    front = candidates[candidates["on_front"]].sort_values(
        first.column, ascending=first.direction == "min", kind="stable"
    ).reset_index(drop=True)
    proxy_budgets = candidates.loc[candidates["kind"] == "proxy", "budget_key"].dropna().nunique()
    return ParetoResult(
        objectives=tuple(objectives),
        candidates=candidates,
        front=front,
        reference=reference,
        hypervolume=hypervolume(points, reference_point),
        budgets=int(proxy_budgets),
        left_out=len(frame) - len(candidates),
    )
