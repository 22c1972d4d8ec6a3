"""The record every trial leaves in its study (Optuna user attributes), with a schema version.

Optuna and Ray runs write the same fields, so leaderboards and Pareto queries read any study alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from optuna.trial import FrozenTrial
from pydantic import BaseModel, ConfigDict

RECORD_VERSION = 1

Status = Literal["running", "trained", "over_budget", "duplicate", "pruned", "early_stopped", "paused", "failed"]
# Statuses of trials that evaluated an architecture (what ``--trials N`` counts): trained, stopped early
# or paused, or costed and found over budget. Duplicates reuse a result and failures have none; a trial
# that resumes a paused one (``resumed_from``) goes on with an architecture already counted.
EVALUATED: frozenset[str] = frozenset({"trained", "over_budget", "pruned", "early_stopped", "paused"})


class TrialRecord(BaseModel):
    """What one trial measured. Fields a trial did not reach (a failure before training) stay None.

    ``status``: ``trained`` (completed training), ``over_budget`` (broke a budget, never trained; its
    top-1 is recorded as 0 and its Optuna state is PRUNED, so Optuna's views hold no result for it),
    ``duplicate`` (same architecture and budget as ``duplicate_of``, whose result and Optuna state it
    reuses), ``pruned`` / ``early_stopped`` (stopped after some epochs; ``stop_reason`` says why),
    ``paused`` (stopped at a rung by the ``promote`` stopper, its training state kept in ``checkpoint_dir``;
    a later trial with ``resumed_from`` set to its number may go on from there, and its ``epochs_run``
    counts only the epochs it added), ``failed`` (``fail_reason`` says why; ``requeued`` when the failure
    was not the architecture's — Ctrl-C, a dead worker — and the same architecture was enqueued again).
    """

    model_config = ConfigDict(extra="ignore")

    record_version: int = RECORD_VERSION
    status: Status = "running"
    config: dict[str, Any] | None = None
    config_hash: str | None = None
    params: int | None = None
    macs: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    throughput: float | None = None
    constraint_values: list[float] | None = None
    top1_curve: list[float] = []
    top1: float | None = None
    epochs_run: int = 0
    wall_time_s: float | None = None
    train_time_s: float | None = None
    dataset: str | None = None
    budget: dict[str, Any] | None = None
    budget_key: str | None = None
    provenance: dict[str, str] | None = None
    duplicate_of: int | None = None
    fail_reason: str | None = None
    stop_reason: str | None = None
    backend: str = "optuna"
    worker: str | None = None
    ray_trial_id: str | None = None
    retry_of: int | None = None
    requeued: bool = False
    prescreen_s: float | None = None  # seconds pre-screening spent choosing this architecture (proxy, proposals)
    prescreen_score: float | None = None  # the proxy score that chose it
    resumed_from: int | None = None  # the paused trial this one went on from
    checkpoint_dir: str | None = None  # where a paused trial's training state waits to be resumed

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord:
        return cls.model_validate(trial.user_attrs)


def count_evaluated(trials: Iterable[FrozenTrial]) -> int:
    """Trials that evaluated an architecture (``EVALUATED``), read without validating whole records."""
    return sum(evaluated_architecture(trial.user_attrs) for trial in trials)


def evaluated_architecture(attrs: dict[str, Any]) -> bool:
    """Whether a trial's record fields count as an evaluated architecture (see ``EVALUATED``)."""
    return attrs.get("status") in EVALUATED and attrs.get("resumed_from") is None


def record_fields(**fields: Any) -> dict[str, Any]:
    """Validate some record fields (names and types) and return them JSON-ready, for user attributes."""
    unknown = set(fields) - set(TrialRecord.model_fields)
    if unknown:
        raise KeyError(f"not trial-record fields: {sorted(unknown)}")
    validated = TrialRecord.model_validate(fields)
    return validated.model_dump(include=set(fields), mode="json")


NOT_COMPETING = ("duplicate", "failed", "over_budget")


def record_costs(attrs: Mapping[str, Any]) -> dict[str, float]:
    """Cost objectives from a trial's record fields (validated when written: each epoch's decision reads
    every trial, so they are not validated again), in the units objectives use (params in M, MACs in G)."""
    return {"params": (attrs.get("params") or 0) / 1e6, "macs": (attrs.get("macs") or 0) / 1e9,
            "latency": attrs.get("latency_ms") or 0.0, "throughput": attrs.get("throughput") or 0.0}
