"""Studies built directly from trial records (exact and fast), in the journal layout a search writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.costs import count_costs
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.storages import open_storage

BUDGET = {"dataset": "digits", "epochs": 2, "batch_size": 64, "seed": 0}


def _tiny_config(**changes: Any) -> ModelConfig:
    fields = {"img_size": 16, "in_chans": 1, "num_classes": 10, "patch_size": 4, "depth": 1, "embed_dim": 16,
              "num_heads": 2, "mlp_ratio": 1.0, **changes}
    return ModelConfig(**fields)


def _trial_attrs(config: ModelConfig, *, top1: float | None, status: str = "trained", **fields: Any) -> dict[str, Any]:
    costs = count_costs(config)
    record = TrialRecord(
        status=status, config=config.to_dict(), config_hash=config.config_hash(), params=costs.params,
        macs=costs.macs, flops=costs.flops, top1=top1, top1_curve=[] if top1 is None else [top1],
        epochs_run=0 if top1 is None else BUDGET["epochs"], dataset="digits", budget=BUDGET, budget_key="b1",
        provenance={"torch": "test", "device": "cpu"}, wall_time_s=1.0, **fields,
    )
    return record.model_dump(mode="json")


StudyFactory = Callable[..., optuna.Study]


@pytest.fixture
def tiny_config() -> Callable[..., ModelConfig]:
    """``tiny_config(**changes)``: a 16 px, 1-channel, 10-class model small enough to train in a second."""
    return _tiny_config


@pytest.fixture
def trial_attrs() -> Callable[..., dict[str, Any]]:
    """``trial_attrs(config, top1=..., status=..., **record_fields)``: a trial record with counted costs."""
    return _trial_attrs


@pytest.fixture
def make_study(tmp_path: Path) -> StudyFactory:
    """``make_study(name, [(config, top1, extra)...])``: a two-objective study (top1:max, params:min)
    in ``tmp_path/runs/NAME/journal.log``; ``extra`` may set ``state``, ``constraints`` or record fields."""

    def make(name: str, trials: list[tuple[ModelConfig, float | None, dict[str, Any]]]) -> optuna.Study:
        storage = open_storage(None, tmp_path / "runs" / name)
        study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
        study.set_user_attr("objectives", "top1:max,params:min")
        for config, top1, extra in trials:
            extra = dict(extra)
            state = extra.pop("state", TrialState.COMPLETE)
            constraints = extra.pop("constraints", None)
            attrs = _trial_attrs(config, top1=top1, **extra)
            values = [top1, attrs["params"] / 1e6] if state == TrialState.COMPLETE else None
            study.add_trial(optuna.trial.create_trial(state=state, values=values, user_attrs=attrs,
                                                      constraints=constraints))
        return study

    return make


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one thread: on shared, oversubscribed cores two OpenMP threads spin-wait on each other
    (a 16-wide linear layer took 30 ms instead of 0.1 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
