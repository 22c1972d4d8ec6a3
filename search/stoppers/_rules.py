"""Early stopping of multi-objective trials, chosen by the ``stopper`` setting.

- ``dominance``: ``refiner_nas.search.stoppers._dominance.DominanceEarlyStop`` (a completed trial dominates
  this one at the same epoch).
- ``mo_asha``: multi-objective asynchronous successive halving. Rungs sit at ``min_epoch * eta**k``
  epochs below the budget. A trial reaching a rung goes on only if it ranks in the best ``ceil(n / eta)``
  of the ``n`` trials that reached that rung so far (itself included), ranked by non-dominated sorting of
  (top-1 at the rung, cost objectives), ties within a front broken by crowding distance (boundary
  points first), as MO-ASHA (Schmucker et al., 2021) promotes. Asynchronous: no trial waits for others,
  the first trials at a rung always go on.
- ``promote``: pause and resume (``RungPromotion``). One rung at 40 % of the budget; a trial
  reaching it goes on only if it is in MO-ASHA's order among the best ``floor(n / eta)`` there (at
  least one, and none before ``min_population`` trials got there: nothing is lost by waiting) *and* its
  point at the rung would add at least 1 % to the hypervolume of the fully trained trials' points at the
  same rung. Otherwise it pauses (status ``paused``, its training state kept), and is resumed later, by the trial
  ``refiner_nas.search.samplers._promoting.PromotingSampler`` starts for it, once it passes both tests (more
  trials at the rung let more through, and the completed ones' front moves) or once the sampler weighs resuming it
  above drawing a new architecture. Unlike a stop, a pause loses nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.objectives import Objective
from refiner_nas.search.pareto import hypervolume_improvements, nondominated_ranks
from refiner_nas.search.records import NOT_COMPETING, record_costs
from refiner_nas.search.stoppers._dominance import DominanceEarlyStop


class EarlyStoppedTrial(optuna.TrialPruned):
    """Raised to stop a multi-objective trial; the message is the stop reason."""


class PausedTrial(EarlyStoppedTrial):
    """Raised to pause a multi-objective trial at a rung; it may be resumed from its checkpoint later."""


class EarlyStopper(Protocol):
    """Decides after each epoch whether a running multi-objective trial stops (or, when ``pauses``, pauses:
    the trial keeps its training state and may be resumed)."""

    pauses: bool

    def stop_reason(self, trials: Sequence[FrozenTrial], *, number: int, epoch: int, top1: float,
                    costs: dict[str, float], budget_key: str) -> str | None:
        """Why trial ``number`` (``top1`` after ``epoch``, counting from 1) stops, or None to go on.
        ``trials``: the study's trials; ``costs``: its cost objectives (params in M, MACs in G, ...)."""


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row of ``points`` (one front, minimised): boundary rows inf."""
    count, objectives = points.shape
    distance = np.zeros(count)
    if count <= 2:
        return np.full(count, np.inf)
    for column in range(objectives):
        order = np.argsort(points[:, column], kind="stable")
        values = points[order, column]
        span = values[-1] - values[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def promotion_order(points: np.ndarray) -> np.ndarray:
    """Row indices of ``points`` (n, m), all minimised, best first: by non-dominated front, then by
    crowding distance within the front (larger first), then by row index."""
    points = np.asarray(points, dtype=float)
    ranks = nondominated_ranks(points)
    crowding = np.zeros(len(points))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowding[members] = crowding_distance(points[members])
    return np.lexsort((np.arange(len(points)), -crowding, ranks))


def is_promoted(points: np.ndarray, index: int, reduction_factor: int) -> bool:
    """Whether row ``index`` is among the best ``ceil(n / reduction_factor)`` rows of ``points``."""
    keep = math.ceil(len(points) / reduction_factor)
    return index in promotion_order(points)[:keep]


@dataclass(frozen=True)
class DominanceStopper:
    """Today's rule (``refiner_nas.search.stoppers._dominance``) behind the ``EarlyStopper`` interface."""

    rule: DominanceEarlyStop
    pauses: bool = False

    def stop_reason(self, trials: Sequence[FrozenTrial], *, number: int, epoch: int, top1: float,
                    costs: dict[str, float], budget_key: str) -> str | None:
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        dominator = self.rule.dominating_trial(completed, epoch, top1, costs, budget_key)
        return None if dominator is None else f"dominated at epoch {epoch} by trial {dominator}"


@dataclass(frozen=True)
class MultiObjectiveASHA:
    """The ``mo_asha`` rule above, for a study's objectives (top-1 and costs known before training)."""

    objectives: Sequence[Objective]
    max_epoch: int
    reduction_factor: int = 3
    min_epoch: int = 1
    pauses: bool = False

    def __post_init__(self) -> None:
        if self.reduction_factor < 2:
            raise ValueError(f"reduction_factor={self.reduction_factor} must be at least 2")
        if self.min_epoch < 1:
            raise ValueError(f"min_epoch={self.min_epoch} must be at least 1")

    @property
    def rungs(self) -> list[int]:
        """Epochs after which trials are compared: ``min_epoch * eta**k`` below ``max_epoch``."""
        rungs, epoch = [], self.min_epoch
        while epoch < self.max_epoch:
            rungs.append(epoch)
            epoch *= self.reduction_factor
        return rungs

    def minimised(self, top1: float, costs: dict[str, float]) -> list[float]:
        """A trial's point at a rung, every coordinate to be minimised."""
        cost_objectives = [o for o in self.objectives if o.before_training]
        return [-top1, *(costs[o.name] if o.direction == "minimize" else -costs[o.name] for o in cost_objectives)]

    def stop_reason(self, trials: Sequence[FrozenTrial], *, number: int, epoch: int, top1: float,
                    costs: dict[str, float], budget_key: str) -> str | None:
        if epoch not in self.rungs:
            return None
        points = [self.minimised(top1, costs)]
        for trial in trials:
            if trial.number == number:
                continue
            attrs = trial.user_attrs
            curve = attrs.get("top1_curve") or ()
            if attrs.get("status") in NOT_COMPETING or attrs.get("budget_key") != budget_key or len(curve) < epoch:
                continue
            points.append(self.minimised(curve[epoch - 1], record_costs(attrs)))
        if is_promoted(np.array(points), 0, self.reduction_factor):
            return None
        keep = math.ceil(len(points) / self.reduction_factor)
        return f"not in the best {keep} of {len(points)} trials at the epoch-{epoch} rung (MO-ASHA)"


RESUME_OF = "resume_of"  # system attribute: the paused trial a trial was started to resume


@dataclass(frozen=True)
class RungPromotion:
    """The ``promote`` rule above: whether a trial at the rung goes on, and which paused trials resume.

    ``min_share``: the least hypervolume a point must add, as a share of the box spanned by the rung's points.
    ``min_population``: no trial goes on before this many reached the rung, so the first ones are compared
    with each other (the launch's start-up design) before any is trained further.
    """

    objectives: Sequence[Objective]
    max_epoch: int
    reduction_factor: int = 3
    min_share: float = 0.01
    min_population: int = 3
    pauses: bool = True

    @property
    def rung(self) -> int | None:
        """The epoch after which trials are compared (40 % of the budget); None below two epochs."""
        return max(1, round(0.4 * self.max_epoch)) if self.max_epoch >= 2 else None

    def stop_reason(self, trials: Sequence[FrozenTrial], *, number: int, epoch: int, top1: float,
                    costs: dict[str, float], budget_key: str) -> str | None:
        if epoch != self.rung:
            return None
        population, completed = self._rung_points(trials, budget_key)
        population.pop(number, None)
        gains = self.gains(population, completed, {number: self._asha.minimised(top1, costs)})
        if gains[number] > 0:
            return None
        return (f"paused at the epoch-{epoch} rung: not in the best third there, or adding less than "
                f"{self.min_share:.0%} to the completed trials' hypervolume at that epoch; may be resumed")

    def promotions(self, trials: Sequence[FrozenTrial], budget_key: str, *,
                   exhausted: bool = False) -> list[FrozenTrial]:
        """Paused trials of ``budget_key`` no other trial resumes, that pass the rule now, best first; once
        the space is ``exhausted`` (no new architecture left to draw), every such paused trial, those that
        pass first, then by MO-ASHA's order at the rung, so the search goes on where it paused."""
        population, completed = self._rung_points(trials, budget_key)
        paused = self._resumable(trials, population)
        if not paused:
            return []
        gains = self.gains(population, completed, {number: population[number] for number in paused})
        numbers = sorted(paused)
        position = {numbers[index]: place for place, index in
                    enumerate(promotion_order(np.array([population[n] for n in numbers], dtype=float)))}
        order = sorted((n for n in numbers if exhausted or gains[n] > 0), key=lambda n: (-gains[n], position[n]))
        return [paused[n] for n in order]

    def gains(self, population: dict[int, list[float]], completed: set[int],
              candidates: dict[int, list[float]]) -> dict[int, float]:
        """Per candidate (trial number -> minimised point at the rung): the hypervolume its point adds to
        the points of the ``completed`` trials of ``population``, as a share of the box of all points; 0
        when it is not in MO-ASHA's best ``floor(n / eta)`` of everyone (at least one once ``min_population``
        trials reached the rung, none before) or adds less than ``min_share``."""
        if not candidates:
            return {}
        everyone = {**population, **candidates}
        numbers = sorted(everyone)  # ties in MO-ASHA's order go to the earlier trial
        points = np.array([everyone[n] for n in numbers], dtype=float)
        keep = max(1, len(numbers) // self.reduction_factor) if len(numbers) >= self.min_population else 0
        best = {numbers[index] for index in promotion_order(points)[:keep]}
        reference = points.max(axis=0) + 0.1 * np.maximum(np.ptp(points, axis=0), 1e-9)
        box = float(np.prod(reference - points.min(axis=0)))
        front = np.array([population[n] for n in population if n in completed], dtype=float)
        added = hypervolume_improvements(front.reshape(-1, points.shape[1]),
                                         np.array(list(candidates.values()), dtype=float), reference)
        return {n: float(gain) / box if n in best and gain > self.min_share * box else 0.0
                for n, gain in zip(candidates, added, strict=True)}

    def paused_and_completed(self, trials: Sequence[FrozenTrial],
                             budget_key: str) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """The paused trials of ``budget_key`` no other trial resumes, and the completed trials whose points
        at the rung the paused ones would add to (what a sampler weighs a resumption against)."""
        population, completed = self._rung_points(trials, budget_key)
        by_number = {t.number: t for t in trials}
        return (list(self._resumable(trials, population).values()),
                [by_number[number] for number in sorted(completed)])

    def _resumable(self, trials: Sequence[FrozenTrial], population: dict[int, list[float]]) -> dict[int, FrozenTrial]:
        """Paused trials at the rung (in ``population``) that no other trial resumes, by number."""
        claimed = {t.system_attrs.get(RESUME_OF) for t in trials if t.state != TrialState.FAIL}
        return {t.number: t for t in trials if t.state == TrialState.PRUNED and t.number not in claimed
                and t.user_attrs.get("status") == "paused" and t.number in population}

    @property
    def _asha(self) -> MultiObjectiveASHA:
        return MultiObjectiveASHA(self.objectives, max_epoch=self.max_epoch, reduction_factor=self.reduction_factor)

    def _rung_points(self, trials: Sequence[FrozenTrial], budget_key: str) -> tuple[dict[int, list[float]], set[int]]:
        """Minimised points at the rung of the trials of ``budget_key`` that reached it and compete (a
        paused trial being resumed counts through the trial that resumes it, unless that one failed), and
        which of them completed."""
        resumed = {t.user_attrs.get("resumed_from") for t in trials if t.state != TrialState.FAIL}
        asha = self._asha
        points, completed = {}, set()
        for trial in trials:
            attrs = trial.user_attrs
            curve = attrs.get("top1_curve") or ()
            if (self.rung is None or attrs.get("status") in NOT_COMPETING or attrs.get("budget_key") != budget_key
                    or len(curve) < self.rung or trial.number in resumed):
                continue
            points[trial.number] = asha.minimised(curve[self.rung - 1], record_costs(attrs))
            if attrs.get("status") == "trained":
                completed.add(trial.number)
        return points, completed
